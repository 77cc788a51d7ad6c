"""Batched TV-L1 optical flow in PyTorch that reproduces OpenCV's ``DualTVL1OpticalFlow``.

The solver is the duality-based TV-L1 scheme of Zach, Pock and Bischof (2007) in the form of
Sánchez, Meinhardt-Llopis and Facciolo (IPOL 2013), with the loop structure, parameters and
discretisation of OpenCV's CPU implementation (``cv2.optflow.DualTVL1OpticalFlow``). It runs on
CUDA and on the CPU and solves many frame pairs at once: every tensor is ``(B, ...)``. Each
detail below was established by experiment against OpenCV 5.0 (``cv2.optflow``)::

    I0, I1 (B, H, W) grey levels 0..255 (uint8 as is; float input in [0, 1] is scaled by 255)
      pyramid: level s = cv::resize(level s-1, fx = fy = scale_step, INTER_LINEAR), sizes
               round(h * scale_step); levels whose short side would fall below 16 px are dropped
      coarsest level: u = 0
      for each level, coarse to fine:
        u ← bilinear resize of the coarser u (dsize = this level), flow channels × 1/scale_step
        p ← 0                                        (dual variables restart at every level)
        I1x, I1y ← centred differences of I1 (replicated border)
        repeat `warps` times:
          I1w, I1wx, I1wy ← bicubic (a = -0.75) warp of I1, I1x, I1y by u, zeros outside
          grad ← I1wx² + I1wy²;  rho_c ← I1w - I1wx u1 - I1wy u2 - I0
          error ← ∞
          outer: while error > ε² and n_outer < outer_iterations:
            u1, u2 ← medianBlur(u1, u2, median_filtering)   (if median_filtering > 1; so the
                     first filtering of a warp acts on the flow of the previous warp or level)
            inner: while error > ε² and n_inner < inner_iterations:
              rho ← rho_c + I1wx u1 + I1wy u2 (+ γ u3)
              v ← u + λθ g      where rho < -λθ grad        (thresholding, g = (I1wx, I1wy[, γ]))
                  u - λθ g      where rho > λθ grad
                  u - rho g / grad  elsewhere, if grad > 1e-10 (else v ← u)
              u ← v + θ div p;   error ← mean over pixels of Σ_channels (u_new - u_old)²
              p ← (p + τ/θ ∇u) / (1 + τ/θ |∇u|)
      flow = (u1, u2) at the finest level

Discretisation: ``∇u`` is the forward difference (0 on the last column / row), ``div`` the
matching backward difference (``p`` taken as 0 before the first column / row). With γ > 0 a third
unknown ``u3`` absorbs illumination changes: it takes part in the thresholding with the constant
"gradient" γ (but, as in OpenCV, γ² is *not* added to ``grad``), has its own dual variables, is
counted in the stopping error, is not median-filtered and is not rescaled between levels.

Batches and early stopping: the stopping rule is applied to every pair separately. A pair whose
inner (and therefore outer) loop has stopped is frozen, exactly where OpenCV would have stopped
for that pair, while the others go on; the batch leaves a loop when all its pairs have stopped.
So a pair's flow does not depend on the other pairs of its batch, up to float rounding.

Differences from OpenCV that remain are float rounding (other operation order, fused
multiply-adds, reductions): they are amplified where TV-L1 is ill-conditioned (a pixel's
thresholding branch flips, a pair stops one iteration earlier), so results agree closely but
not bit for bit: mean end-point error ~1e-5 px on the tests' textured scenes, 0.003-0.02 px on
224×224 demo frames with the default parameters, about what this solver itself moves when its
input changes by 1e-5 grey levels.

Speed: the inner iteration is about 60 elementwise operations. ``compiled=True`` (the default
on CUDA) fuses it, and the median filter, with ``torch.compile`` (the median as a min/max
selection network, exact like the eager sort); on the CPU the compiled form is ~6× faster than
eager but takes about a minute to compile the first time.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from tqdm import tqdm

from extractors.flow import (
    DEFAULT_BOUND,
    TVL1Params,
    quantize,
    to_gray,
    write_flow_cache,
)
from extractors.progresslog import ProgressLog

logger = logging.getLogger(__name__)

__all__ = [
    "BYTES_PER_PAIR_PIXEL",
    "DEFAULT_BATCH_PAIRS",
    "MIN_LEVEL_SIZE",
    "build_pyramid",
    "centered_gradient",
    "compute_flow_torch",
    "default_device",
    "median_blur",
    "median_blur_network",
    "pairs_for_memory",
    "pyramid_sizes",
    "resize_linear",
    "tvl1_pairs",
    "tvl1_sequence",
    "warp_cubic",
]

MIN_LEVEL_SIZE = 16  # OpenCV drops pyramid levels whose short side would be below 16 px
_GRAD_IS_ZERO = 1e-10  # below this |∇I1w|², the thresholding leaves u unchanged
DEFAULT_BATCH_PAIRS = 32  # frame pairs solved at once by compute_flow_torch
#: Memory one frame pair takes while it is solved, per pixel of the frame: measured as the rise
#: of peak RSS between batches of 1 and 8 pairs (224×224: 40 MB a pair) and of 1 and 5 pairs
#: (340×256: 66 MB a pair), eager on the CPU, default parameters. CUDA's figure is measured by
#: benchmarks/gpu_check.py (torch.cuda.max_memory_allocated).
BYTES_PER_PAIR_PIXEL = 800


def pairs_for_memory(budget_mb: float, height: int, width: int) -> int:
    """Frame pairs of ``height`` × ``width`` to solve at once within ``budget_mb`` megabytes.

    Uses :data:`BYTES_PER_PAIR_PIXEL` (measured); at least 1.

    Raises:
        ValueError: on a budget that is not positive.
    """
    if not budget_mb > 0:
        raise ValueError(f"the flow memory budget must be positive, got {budget_mb} MB")
    per_pair = BYTES_PER_PAIR_PIXEL * height * width
    return max(1, int(budget_mb * 1e6 // per_pair))


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------------------------
# Image operations, each matching the OpenCV function named in its docstring
# --------------------------------------------------------------------------------------------


def _linear_taps(
    n_out: int, n_in: int, inv_scale: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of a 1-D linear resize (OpenCV's pixel-centre mapping)."""
    x = (torch.arange(n_out, dtype=torch.float64) + 0.5) * inv_scale - 0.5
    x0 = torch.floor(x)
    frac = x - x0
    i0 = x0.long()
    frac = torch.where((i0 < 0) | (i0 >= n_in - 1), torch.zeros_like(frac), frac)
    i0 = i0.clamp(0, n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w = frac.to(torch.float32)
    return i0.to(device), i1.to(device), w.to(device)


def resize_linear(
    img: torch.Tensor, height: int, width: int, inv_scale_y: float, inv_scale_x: float
) -> torch.Tensor:
    """``cv::resize(..., INTER_LINEAR)`` of float images, border replicated.

    Destination pixel ``x`` samples the source at ``(x + 0.5) * inv_scale_x - 0.5``. OpenCV uses
    ``1 / fx`` as ``inv_scale`` when a factor is given and ``src / dst`` when a size is given.

    Args:
        img: (..., h, w) float32.
        height: output height.
        width: output width.
        inv_scale_y: source rows per destination row.
        inv_scale_x: source columns per destination column.

    Returns:
        (..., height, width) float32.
    """
    h, w = img.shape[-2:]
    x0, x1, fx = _linear_taps(width, w, inv_scale_x, img.device)
    y0, y1, fy = _linear_taps(height, h, inv_scale_y, img.device)
    rows = img[..., x0] * (1 - fx) + img[..., x1] * fx  # (..., h, width): horizontal pass
    fy = fy[:, None]
    return rows[..., y0, :] * (1 - fy) + rows[..., y1, :] * fy  # (..., height, width)


def pyramid_sizes(
    height: int, width: int, nscales: int, scale_step: float
) -> list[tuple[int, int]]:
    """Sizes (h, w) of the pyramid levels OpenCV's TV-L1 uses, finest first.

    Each level is ``round(previous * scale_step)``; a level whose short side would be below
    :data:`MIN_LEVEL_SIZE` ends the pyramid (so small frames get fewer than ``nscales`` levels).
    """
    sizes = [(height, width)]
    while len(sizes) < nscales:
        h, w = sizes[-1]
        nh, nw = round(h * scale_step), round(w * scale_step)
        if min(nh, nw) < MIN_LEVEL_SIZE:
            break
        sizes.append((nh, nw))
    return sizes


def build_pyramid(img: torch.Tensor, sizes: list[tuple[int, int]], scale_step: float
                  ) -> list[torch.Tensor]:
    """Image pyramid: each level is the previous one resized by ``scale_step`` (bilinear)."""
    levels = [img]
    for h, w in sizes[1:]:
        levels.append(resize_linear(levels[-1], h, w, 1 / scale_step, 1 / scale_step))
    return levels


def centered_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred differences ``(I[x+1] - I[x-1]) / 2`` with replicated border, of (B, H, W)."""
    pad = F.pad(img[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]  # (B, H+2, W+2)
    gx = 0.5 * (pad[:, 1:-1, 2:] - pad[:, 1:-1, :-2])
    gy = 0.5 * (pad[:, 2:, 1:-1] - pad[:, :-2, 1:-1])
    return gx, gy


def _cubic_weights(t: torch.Tensor) -> list[torch.Tensor]:
    """Keys cubic convolution weights (a = -0.75, OpenCV's INTER_CUBIC) of the 4 taps."""
    a = -0.75
    s = t + 1
    w0 = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    r = 1 - t
    w2 = ((a + 2) * r - (a + 3)) * r * r + 1
    return [w0, w1, w2, 1 - w0 - w1 - w2]


def warp_cubic(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``cv::remap(img, x + u, y + v, INTER_CUBIC, BORDER_CONSTANT 0)`` of several channels.

    Args:
        img: (B, C, H, W) float32 images, warped together.
        flow: (B, 2, H, W) float32 displacement (u, v) in pixels.

    Returns:
        (B, C, H, W): ``img`` sampled at ``(x + u, y + v)``; taps outside the image count as 0.
    """
    b, c, h, w = img.shape
    xs = torch.arange(w, dtype=img.dtype, device=img.device)
    ys = torch.arange(h, dtype=img.dtype, device=img.device)[:, None]
    # Far outside, all four taps are zeros anyway; the clamp keeps the integer maths in range.
    mx = (xs + flow[:, 0]).clamp(-3.0, w + 2.0)  # (B, H, W)
    my = (ys + flow[:, 1]).clamp(-3.0, h + 2.0)
    fx0 = torch.floor(mx)
    fy0 = torch.floor(my)
    wx = _cubic_weights(mx - fx0)
    wy = _cubic_weights(my - fy0)
    ix = fx0.long() + 1  # index in the zero-padded image of the tap at floor(x)
    iy = fy0.long() + 1
    padded = F.pad(img, (1, 1, 1, 1))  # (B, C, H+2, W+2), one ring of zeros
    hp, wp = h + 2, w + 2
    flat = padded.reshape(b, c, hp * wp)
    out = torch.zeros_like(img)
    for j in range(4):
        row = (iy + (j - 1)).clamp(0, hp - 1) * wp  # (B, H, W)
        acc = torch.zeros_like(img)
        for i in range(4):
            col = (ix + (i - 1)).clamp(0, wp - 1)
            index = (row + col).reshape(b, 1, h * w).expand(b, c, h * w)
            acc += wx[i][:, None] * torch.gather(flat, 2, index).reshape(b, c, h, w)
        out += wy[j][:, None] * acc
    return out


def median_blur(img: torch.Tensor, ksize: int) -> torch.Tensor:
    """``cv::medianBlur`` of float images (ksize 3 or 5, border replicated), by sorting windows.

    Args:
        img: (B, C, H, W) float32.
        ksize: window size.

    Returns:
        (B, C, H, W) median of each ``ksize × ksize`` window.
    """
    b, c, h, w = img.shape
    r = ksize // 2
    pad = F.pad(img.reshape(b * c, 1, h, w), (r, r, r, r), mode="replicate")
    windows = F.unfold(pad, ksize)  # (B*C, ksize², H*W)
    return windows.median(dim=1).values.reshape(b, c, h, w)


def _merge_exchange(n: int) -> list[tuple[int, int]]:
    """Batcher's merge-exchange sorting network for ``n`` keys (Knuth, TAOCP 5.2.2, Alg. M).

    Returns:
        Comparators ``(i, j)``, ``i < j``: after each, key ``i`` holds the minimum.
    """
    if n < 2:
        return []
    t = math.ceil(math.log2(n))
    comparators = []
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while True:
            comparators.extend((i, i + d) for i in range(n - d) if i & p == r)
            if q == p:
                break
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return comparators


def _median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The comparators of :func:`_merge_exchange` that the middle key depends on.

    Returns:
        ``(i, j, want_min, want_max)`` in order: only the wanted outputs need computing.
    """
    needed = {n // 2}
    kept = []
    for i, j in reversed(_merge_exchange(n)):
        if i in needed or j in needed:
            kept.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    return tuple(reversed(kept))


_MEDIAN_NETWORKS = {k: _median_network(k * k) for k in (3, 5)}  # medianBlur's float sizes


def median_blur_network(img: torch.Tensor, ksize: int) -> torch.Tensor:
    """The same as :func:`median_blur`, as a selection network of elementwise min / max.

    Slow in eager mode, but ``torch.compile`` fuses it into one kernel that reads each window
    once (the sorting in :func:`median_blur` materialises every window). Medians are exact, so
    both functions give identical results.
    """
    h, w = img.shape[-2:]
    r = ksize // 2
    b, c = img.shape[:2]
    pad = F.pad(img.reshape(b * c, 1, h, w), (r, r, r, r), mode="replicate")[:, 0]
    keys: list[torch.Tensor] = [pad[:, dy:dy + h, dx:dx + w]
                                for dy in range(ksize) for dx in range(ksize)]
    for i, j, want_min, want_max in _MEDIAN_NETWORKS[ksize]:
        lo = torch.minimum(keys[i], keys[j]) if want_min else keys[i]
        hi = torch.maximum(keys[i], keys[j]) if want_max else keys[j]
        keys[i], keys[j] = lo, hi
    return keys[ksize * ksize // 2].reshape(b, c, h, w)


def _forward_gradient(u: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, 2, H, W) forward differences, 0 on the last column / row."""
    ux = F.pad(u[..., 1:] - u[..., :-1], (0, 1))
    uy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return torch.stack([ux, uy], dim=2)


def _divergence(p: torch.Tensor) -> torch.Tensor:
    """(B, C, 2, H, W) → (B, C, H, W) backward-difference divergence (adjoint of -∇)."""
    px, py = p[:, :, 0], p[:, :, 1]
    return (px - F.pad(px[..., :-1], (1, 0))) + (py - F.pad(py[..., :-1, :], (0, 0, 1, 0)))


# --------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------


def _iteration(
    u: torch.Tensor,
    p: torch.Tensor,
    g: torch.Tensor,
    grad: torch.Tensor,
    rho_c: torch.Tensor,
    running: torch.Tensor,
    error: torch.Tensor,
    lt: float,
    theta: float,
    taut: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One inner iteration (thresholding, primal and dual updates) of the running pairs.

    Args:
        u: (B, C, H, W) primal variables (u1, u2[, u3]).
        p: (B, C, 2, H, W) dual variables.
        g: (B, C, H, W) the warped gradient (I1wx, I1wy[, γ]).
        grad: (B, H, W) I1wx² + I1wy².
        rho_c: (B, H, W) constant part of the linearised residual.
        running: (B,) bool, the pairs that still iterate; the others are returned unchanged.
        error: (B,) the pairs' last mean squared update.
        lt: λθ.
        theta: θ.
        taut: τ/θ.

    Returns:
        The new ``u``, ``p`` and ``error``.
    """
    rho = rho_c + (g * u).sum(dim=1)  # (B, H, W)
    thr = lt * grad
    step = torch.where(
        rho < -thr, lt,
        torch.where(rho > thr, -lt, torch.where(grad > _GRAD_IS_ZERO, -rho / grad, 0.0)),
    )  # (B, H, W)
    v = u + step[:, None] * g
    u_new = v + theta * _divergence(p)
    e = (u_new - u).square().sum(dim=(1, 2, 3)) / (u.shape[-1] * u.shape[-2])  # (B,)
    du = _forward_gradient(u_new)  # (B, C, 2, H, W)
    norm = 1 + taut * du.square().sum(dim=2).sqrt()  # (B, C, H, W)
    p_new = (p + taut * du) / norm[:, :, None]
    keep = running.view(-1, 1, 1, 1)
    return (torch.where(keep, u_new, u), torch.where(keep[..., None], p_new, p),
            torch.where(running, e, error))


def _median_step(u: torch.Tensor, running: torch.Tensor, ksize: int) -> torch.Tensor:
    """Median-filter the flow channels of the running pairs (sorting windows)."""
    flow = u[:, :2]
    filtered = torch.where(running.view(-1, 1, 1, 1), median_blur(flow, ksize), flow)
    return torch.cat([filtered, u[:, 2:]], dim=1)


def _median_step_network(u: torch.Tensor, running: torch.Tensor, ksize: int) -> torch.Tensor:
    """:func:`_median_step` with the selection network (for ``torch.compile``)."""
    flow = u[:, :2]
    filtered = torch.where(running.view(-1, 1, 1, 1), median_blur_network(flow, ksize), flow)
    return torch.cat([filtered, u[:, 2:]], dim=1)


@dataclass(frozen=True)
class _Kernels:
    """The two steps that run many times: eager functions or their ``torch.compile`` forms."""

    iteration: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    median: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


_EAGER = _Kernels(iteration=_iteration, median=_median_step)


@functools.cache
def _compiled() -> _Kernels:
    """Fused kernels (compiled lazily, once per process; shapes are dynamic across levels)."""
    return _Kernels(
        iteration=torch.compile(_iteration, dynamic=True, fullgraph=True),
        median=torch.compile(_median_step_network, dynamic=True, fullgraph=True),
    )


def _solve_level(
    i0: torch.Tensor,
    i1: torch.Tensor,
    u: torch.Tensor,
    params: TVL1Params,
    kernels: _Kernels,
    check_every: int,
) -> torch.Tensor:
    """Warps, outer and inner loops of one pyramid level for a batch of pairs.

    Args:
        i0: (B, H, W) first images of this level.
        i1: (B, H, W) second images of this level.
        u: (B, C, H, W) initial flow (C = 3 with the illumination term).
        params: TV-L1 parameters.
        kernels: eager or compiled steps.
        check_every: inner iterations between looks at whether every pair has stopped (each
            look synchronises with the device; stopped pairs stay frozen in between).

    Returns:
        (B, C, H, W) the flow after this level.
    """
    b, c, h, w = u.shape
    p = u.new_zeros(b, c, 2, h, w)
    gx, gy = centered_gradient(i1)
    stack = torch.stack([i1, gx, gy], dim=1)  # (B, 3, H, W), warped together
    del gx, gy
    eps2 = params.epsilon * params.epsilon
    lt = params.lambda_ * params.theta
    taut = params.tau / params.theta
    for _ in range(params.warps):
        warped = warp_cubic(stack, u[:, :2])  # (B, 3, H, W): I1w, I1wx, I1wy
        i1w, i1wx, i1wy = warped[:, 0], warped[:, 1], warped[:, 2]
        grad = i1wx * i1wx + i1wy * i1wy  # (B, H, W)
        rho_c = i1w - i1wx * u[:, 0] - i1wy * u[:, 1] - i0
        g = warped[:, 1:3] if c == 2 else torch.cat(
            [warped[:, 1:3], torch.full_like(warped[:, :1], params.gamma)], dim=1)
        g = g.contiguous()
        del warped, i1w, i1wx, i1wy
        error = torch.full((b,), math.inf, device=u.device)  # (B,)
        for _ in range(params.outer_iterations):
            running = error > eps2  # (B,)
            if not bool(running.any()):
                break
            if params.median_filtering > 1:
                u = kernels.median(u, running, params.median_filtering)
            for n in range(params.inner_iterations):
                if n:
                    running = error > eps2
                    if n % check_every == 0 and not bool(running.any()):
                        break
                u, p, error = kernels.iteration(u, p, g, grad, rho_c, running, error, lt,
                                                params.theta, taut)
    return u


def _as_grey(images: torch.Tensor) -> torch.Tensor:
    """uint8 grey levels as float32; float images in [0, 1] scaled by 255 (as OpenCV does)."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32)
    if not images.is_floating_point():
        raise ValueError(f"TV-L1: images must be uint8 or floating point, got {images.dtype}")
    return images.to(torch.float32) * 255


def _solve(pyr0: list[torch.Tensor], pyr1: list[torch.Tensor], params: TVL1Params,
           kernels: _Kernels, check_every: int) -> torch.Tensor:
    """Coarse-to-fine TV-L1 over prepared pyramids; returns (B, H, W, 2) float32."""
    c = 3 if params.gamma > 0 else 2
    coarse = pyr0[-1]
    u = coarse.new_zeros(coarse.shape[0], c, *coarse.shape[1:])
    for s in range(len(pyr0) - 1, -1, -1):
        h, w = pyr0[s].shape[-2:]
        if u.shape[-2:] != (h, w):
            uh, uw = u.shape[-2:]
            u = resize_linear(u, h, w, uh / h, uw / w)
            u[:, :2] *= 1 / params.scale_step  # u3 (illumination) is not rescaled
        u = _solve_level(pyr0[s], pyr1[s], u, params, kernels, check_every)
    return u[:, :2].permute(0, 2, 3, 1).contiguous()  # (B, H, W, 2)


def _check_params(params: TVL1Params) -> None:
    if params.use_initial_flow:
        raise ValueError("TV-L1 (torch): use_initial_flow is not supported")


def _run(pyr0: list[torch.Tensor], pyr1: list[torch.Tensor], params: TVL1Params, *,
         compiled: bool | None, check_every: int | None) -> torch.Tensor:
    """Pick eager or compiled kernels and the check interval for the device, then solve."""
    device = pyr0[0].device
    if compiled is None:
        compiled = device.type == "cuda"
    if check_every is None:
        check_every = 1 if device.type == "cpu" else 5
    if check_every < 1:
        raise ValueError(f"TV-L1: check_every must be >= 1, got {check_every}")
    return _solve(pyr0, pyr1, params, _compiled() if compiled else _EAGER, check_every)


@torch.no_grad()
def tvl1_pairs(
    prev: torch.Tensor,
    next_: torch.Tensor,
    params: TVL1Params | None = None,
    *,
    compiled: bool | None = None,
    check_every: int | None = None,
) -> torch.Tensor:
    """TV-L1 flow of frame pairs, like ``DualTVL1OpticalFlow.calc(prev, next)`` per pair.

    Runs on the device of ``prev``.

    Args:
        prev: (B, H, W) or (H, W) grey images: uint8 0..255, or float in [0, 1].
        next_: second images, same shape, dtype and device.
        params: TV-L1 parameters (OpenCV's defaults if None).
        compiled: see :func:`tvl1_sequence`.
        check_every: see :func:`tvl1_sequence`.

    Returns:
        (B, H, W, 2) float32 flow (or (H, W, 2) for 2-D inputs): ``next(x + u, y + v) ≈
        prev(x, y)``.

    Raises:
        ValueError: on mismatched or unsupported inputs.
    """
    params = params or TVL1Params()
    _check_params(params)
    if prev.shape != next_.shape or prev.dtype != next_.dtype or prev.device != next_.device:
        raise ValueError(f"TV-L1: prev and next must match, got {prev.dtype} {tuple(prev.shape)} "
                         f"on {prev.device} and {next_.dtype} {tuple(next_.shape)} on "
                         f"{next_.device}")
    single = prev.dim() == 2
    if single:
        prev, next_ = prev[None], next_[None]
    if prev.dim() != 3 or prev.shape[0] == 0:
        raise ValueError(f"TV-L1: expected (B, H, W) or (H, W) images, got {tuple(prev.shape)}")
    sizes = pyramid_sizes(prev.shape[1], prev.shape[2], params.nscales, params.scale_step)
    pyr0 = build_pyramid(_as_grey(prev), sizes, params.scale_step)
    pyr1 = build_pyramid(_as_grey(next_), sizes, params.scale_step)
    flow = _run(pyr0, pyr1, params, compiled=compiled, check_every=check_every)
    return flow[0] if single else flow


@torch.no_grad()
def tvl1_sequence(
    frames: torch.Tensor,
    params: TVL1Params | None = None,
    *,
    compiled: bool | None = None,
    check_every: int | None = None,
) -> torch.Tensor:
    """TV-L1 flow between consecutive frames, all pairs solved as one batch.

    Each frame's pyramid is built once and shared by the two pairs it belongs to.

    Args:
        frames: (N, H, W) grey frames (uint8 0..255, or float in [0, 1]), N >= 2, on the
            device to compute on.
        params: TV-L1 parameters (OpenCV's defaults if None).
        compiled: fuse the inner iteration and the median filter with ``torch.compile`` (default:
            on CUDA yes, on the CPU no). Compiling takes a while once per process (Inductor
            caches it on disk for later processes) and changes results only by float rounding.
        check_every: inner iterations between checks whether every pair has stopped (default
            1 on the CPU, 5 on a GPU, where each check waits for the device). The result does
            not depend on it: stopped pairs are frozen.

    Returns:
        (N - 1, H, W, 2) float32; flow ``i`` goes from frame ``i`` to frame ``i + 1``.

    Raises:
        ValueError: on fewer than 2 frames or an unsupported dtype.
    """
    params = params or TVL1Params()
    _check_params(params)
    if frames.dim() != 3 or frames.shape[0] < 2:
        raise ValueError(f"TV-L1: expected (N >= 2, H, W) frames, got {tuple(frames.shape)}")
    sizes = pyramid_sizes(frames.shape[1], frames.shape[2], params.nscales, params.scale_step)
    pyr = build_pyramid(_as_grey(frames), sizes, params.scale_step)
    return _run([lv[:-1] for lv in pyr], [lv[1:] for lv in pyr], params, compiled=compiled,
                check_every=check_every)


# --------------------------------------------------------------------------------------------
# The flow cache
# --------------------------------------------------------------------------------------------


def compute_flow_torch(
    frames: Iterable[npt.NDArray[np.uint8]],
    out: str | os.PathLike[str],
    *,
    params: TVL1Params,
    bound: float = DEFAULT_BOUND,
    codec: str = "jpg",
    device: str | torch.device | None = None,
    batch_pairs: int = DEFAULT_BATCH_PAIRS,
    compiled: bool | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compute TV-L1 flow with :func:`tvl1_sequence` and write the flow cache.

    The same archive as :func:`extractors.flow.compute_flow` (same grey conversion and
    quantisation), with ``backend: "torch"`` and ``device`` in its meta. Frames are consumed
    lazily, ``batch_pairs + 1`` at a time (consecutive chunks share one frame), so memory is
    bounded whatever the video's length.

    Args:
        frames: RGB uint8 frames, each (H, W, 3), all of the same size.
        out: path of the ``.zip`` archive to write (atomically).
        params: TV-L1 parameters (``use_initial_flow`` must be False).
        bound: quantisation bound in pixels.
        codec: ``"jpg"`` or ``"png"``.
        device: where to compute (default: CUDA when available, else the CPU).
        batch_pairs: frame pairs solved at once (bounds memory: measured about 40 MB per pair at
            224×224 and 66 MB at 340×256 on the CPU, see :data:`BYTES_PER_PAIR_PIXEL`;
            :func:`pairs_for_memory` chooses it from a budget).
        compiled: fuse the hot loops with ``torch.compile`` (default: on CUDA only); see
            :func:`tvl1_sequence`.
        extra_meta: more meta fields; ``backend`` and ``device`` are set here.
        progress: show a tqdm bar (one step per flow) on stderr.

    Returns:
        The meta dict written as ``meta.json``.

    Raises:
        ValueError: on fewer than 2 frames, frames that are not RGB uint8 or change size,
            ``params.use_initial_flow`` or ``batch_pairs < 1``. No file is left at ``out`` on
            failure.
    """
    _check_params(params)
    if batch_pairs < 1:
        raise ValueError(f"compute_flow_torch: batch_pairs must be >= 1, got {batch_pairs}")
    dev = torch.device(device) if device is not None else default_device()
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("compute_flow_torch: need at least 2 frames to compute flow, got 0")
    first_gray = to_gray(first)  # (H, W)
    frame_shape = first.shape
    del first
    height, width = first_gray.shape

    def grey_frames() -> Iterator[npt.NDArray[np.uint8]]:
        yield first_gray
        for index, frame in enumerate(it, start=1):
            if not isinstance(frame, np.ndarray) or frame.shape != frame_shape:
                shape = frame.shape if isinstance(frame, np.ndarray) else type(frame)
                raise ValueError(
                    f"compute_flow_torch: frame {index} has shape {shape}, but frame 0 has "
                    f"{frame_shape}; all frames of a video must have the same size"
                )
            yield to_gray(frame)

    done = ProgressLog(logger, "TV-L1 flow (torch)", unit="flows")

    def flows() -> Iterator[npt.NDArray[np.uint8]]:
        chunk: list[npt.NDArray[np.uint8]] = []  # at most batch_pairs + 1 grey frames
        solved = False
        with tqdm(desc="TV-L1 flow (torch)", unit="flow", disable=not progress) as bar:
            for grey in grey_frames():
                chunk.append(grey)
                if len(chunk) == batch_pairs + 1:
                    yield from solve(chunk, bar)
                    solved = True
                    chunk = chunk[-1:]  # the last frame starts the next chunk's first pair
            if len(chunk) >= 2:
                yield from solve(chunk, bar)
            elif not solved:
                raise ValueError("compute_flow_torch: need at least 2 frames to compute flow, "
                                 "got 1")

    def solve(chunk: list[npt.NDArray[np.uint8]], bar: tqdm) -> Iterator[npt.NDArray[np.uint8]]:
        batch = torch.from_numpy(np.stack(chunk)).to(dev)  # (n, H, W) uint8
        result = tvl1_sequence(batch, params, compiled=compiled).cpu().numpy()  # (n - 1, H, W, 2)
        del batch
        for flow in result:
            yield quantize(flow, bound)
            bar.update(1)
            done.update(1)

    meta = {**dict(extra_meta or {}), "backend": "torch", "device": str(dev)}
    return write_flow_cache(flows(), out, height=height, width=width, bound=bound, codec=codec,
                            params=params, extra_meta=meta)
