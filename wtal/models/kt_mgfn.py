"""``kt_mgfn``: the Transferable-Knowledge-based Multi-Granularity Fusion Network (Su et al. 2020).

Four modules over snippet features, each switchable for the paper's ablation (table V):

* **MDCM** (multi-dilated convolution module, ``mdcm``): a base net of two temporal
  convolutions, then branches with dilation rates 1, 2, 3, 5, each a dilated temporal
  convolution → GAP → FC classifier trained with sigmoid cross-entropy on the video labels.
  Applying each FC to every time step gives the branch's localisation sequence (CAM); the fused
  sequence is ``H = H0 + mean_i Hi`` (H0: dilation 1, Hi: the dilated branches). Off: the d = 1
  branch only, ``H = H0`` (the "simple CAS").
* **CCM** (cascaded classification module with Online Adversarial Erasing, ``ccm``): a second
  classifier of the same architecture sees the input with the snippets of the first stage's
  discriminative regions erased (set to 0, the mean of standardised features): per class, the
  first stage's ``H`` is min-max normalised over the video and snippets at or above
  ξ_era = 0.8 are erased (:func:`erase_mask`). Cascaded CAS ``H_cas = max(H, H̄)``.
  ``num_stages`` (table VI: one, two, three classifiers): stage s reads the input with the
  regions of every earlier stage erased (the paper does not describe its third stage).
* **KTM** (knowledge transfer module, ``ktm``): β · MMD² with a Gaussian kernel (Eq. 3,
  :func:`mmd2`) between the GAP-layer representations of trimmed and untrimmed videos of the
  same class. The trimmed representations come from a separately trained trimmed branch and are
  passed to :meth:`KTMGFN.loss` (see :class:`TrimmedReps`); without them the term is off.
* **BRM** (boundary regression module, ``brm``): three temporal convolutions (128 filters,
  k = 3) and a 2M-filter convolution predict ``(p_x, p_w)`` for M anchor scales at every
  position; inner segment ``r_x = t_x + t_w·p_x``, ``r_w = t_w·exp(p_w)``, outer segment
  inflated by γ·r_w on each side (:func:`decode_anchors`); trained with α · the
  Outer-Inner-Contrastive loss (Eq. 2, :func:`outer_inner_contrast`) on the enhanced CAS of the
  video's classes with the paper's anchor filtering (:func:`select_anchors`) and Soft-NMS over
  the kept anchors (:func:`soft_nms_weights`), jointly with the classification network
  (``joint``, table VII; :meth:`KTMGFN.oic_objective`); scored proposals
  ``p_conf = p_act · p_oic · p_class`` (Eq. 5-6) by :meth:`KTMGFN.proposals`, for every class,
  ``p_class`` the mean probability of the trained classifiers (:meth:`KTMGFN.probabilities`).

::

    x (B, T, D) ─┬─ stage 1: base(2 × Conv1d k3) ─┬─ Conv1d d=1 ─ ReLU ─▶ F0 ─ FC ─▶ H0 (B, T, C)
                 │                                ├─ Conv1d d=2 ─ ReLU ─▶ F1 ─ FC ─▶ H1
                 │                                ├─ Conv1d d=3 ─ ReLU ─▶ F2 ─ FC ─▶ H2
                 │                                └─ Conv1d d=5 ─ ReLU ─▶ F3 ─ FC ─▶ H3
                 │        H = H0 + mean(H1, H2, H3); video logits per branch = GAP(Hi)
                 │        embedding = [GAP(F0), …, GAP(F3)] (B, 4·hidden)  → KTM (MMD²)
                 │                 │ erase snippets where minmax(H[:, :, k]) ≥ ξ_era
                 ├─ x ⊙ (1 − erased) ─ stage 2 (same architecture, own weights) ─▶ H̄
                 │        cas = max(H, H̄) (B, T, C); p_class = mean σ(branch logits)
                 └─ BRM: 3 × (Conv1d 128 k3 ─ ReLU) ─ Conv1d 2M k3 ─▶ (p_x, p_w) (B, T, M, 2)
                          anchors (t + ½, scale) → inner [s, e], outer [S, E] → OIC on a(cas)

Coordinates of segments are continuous snippet units: snippet ``t`` covers ``[t, t + 1)`` and
an anchor at position ``t`` is centred at ``t_x = t + 0.5``; ``SnippetGrid.index_to_seconds``
maps these coordinates to seconds. The activation ``a_k(t)`` used by the BRM, ``p_act`` and
:meth:`KTMGFN.probabilities` is the enhanced CAS of class k min-max normalised over the video
(``activation="minmax"``, the scale the erasing threshold reads) or its sigmoid.

KTM (§III.D): the generic training loop calls :meth:`KTMGFN.pretrain` once before the main
loop with the dataset's trimmed clips; it trains the trimmed branch (a ``kt_mgfn`` with the same
classification block, no BRM) with the classification loss and keeps the GAP-layer
representations of its clips (:class:`TrimmedReps`, not saved in the state dict), which
:meth:`KTMGFN.loss` then compares with the untrimmed videos' by β · MMD² (loss parts
``kt_on = 1``, ``kt_classes``). Without trimmed clips the module is off with a warning, and
``train.json`` records why under ``pretrain``. The representations are pretrain's explicit
output (``Pretrained.reference``), handed to every ``net.loss(out, labels, mask, epoch=e,
reference=reps)`` by the main loop.

Inference (§III.F): a model trained on sampled sequences reads a test video uniformly sampled
to the training length (:meth:`KTMGFN.test_indices`; the inference stage maps the CAS and the
candidates back to the video's snippets). :meth:`KTMGFN.candidates` gives the BRM's scored
proposals of every class (Eq. 5-6), or, with the BRM off, CAS-threshold candidates scored by the
same product; the inference loop applies Soft-NMS (Eq. 7).

Training schedule (§IV.A): the BRM term joins the objective from epoch ``brm_start_epoch``
(30 in the paper, of 100). The paper also drops the learning rate from 1e-3 to 1e-4 at that
epoch: the generic loop's step schedule (``lr_milestones``) does it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wtal.fitting import fit, make_optimizer
from wtal.losses import multilabel_bce
from wtal.models.base import Localizer, Pretrained, PretrainInputs
from wtal.models.cas_baseline import temporal_pool
from wtal.models.registry import register_model
from wtal.postprocess import batched_nms, runs_above, soft_nms
from wtal.sampling import uniform_indices

logger = logging.getLogger(__name__)

THUMOS14_ANCHORS = (1, 2, 4, 8, 16, 32)  # anchor lengths in snippets (§IV.A)
ACTIVITYNET_ANCHORS = (4, 8, 16, 32, 64, 128)


class KTMGFNOutput(NamedTuple):
    """What :class:`KTMGFN` gives for a batch."""

    cas: Tensor  # (B, T, C) enhanced CAS logits, max over stages of H0 + mean_i Hi
    video_logits: Tensor  # (B, C) logit of p_class: mean σ of every branch classifier's logits
    stage_cas: Tensor  # (B, S, T, C) fused localisation sequence H of each stage (S = 1 or 2)
    branch_logits: Tensor  # (B, S, NB, C) video logits of every branch classifier
    embedding: Tensor  # (B, R) GAP-layer representation of stage 1 (branches concatenated)
    erased: Tensor  # (B, T) bool, snippets erased from the input of the last stage
    regression: Tensor | None  # (B, T, M, 2) BRM (p_x, p_w); None without the BRM
    mask: Tensor  # (B, T) bool, valid snippets


class TrimmedReps(NamedTuple):
    """GAP-layer representations of trimmed clips, the knowledge transferred by the KTM.

    ``embeddings`` are what a converged trimmed branch gives (``KTMGFN.embed`` of a ``kt_mgfn``
    trained on the trimmed clips with the same ``hidden``/``dilations``/``mdcm``); they are
    constants for the untrimmed model.
    """

    embeddings: Tensor  # (N, R) one row per trimmed clip
    labels: Tensor  # (N, C) multi-hot classes of the clips (the untrimmed dataset's classes)


class Proposals(NamedTuple):
    """Scored segments of one video, from the BRM (Eq. 5-6)."""

    segments: Tensor  # (N, 2) [start, end) in continuous snippet units
    scores: Tensor  # (N,) p_conf (after Soft-NMS when asked for)
    classes: Tensor  # (N,) long class indices


# --------------------------------------------------------------------------------------------
# Pure functions (tested on hand numbers)
# --------------------------------------------------------------------------------------------


def fuse_branches(branch_cas: Tensor) -> Tensor:
    """``H = H0 + mean_i Hi`` over the dilated branches; ``H0`` alone with one branch.

    Args:
        branch_cas: (..., NB, T, C) localisation sequences, branch 0 the undilated one.

    Returns:
        (..., T, C).
    """
    if branch_cas.shape[-3] == 1:
        return branch_cas[..., 0, :, :]
    return branch_cas[..., 0, :, :] + branch_cas[..., 1:, :, :].mean(dim=-3)


def minmax_over_time(cas: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-video, per-class min-max normalisation over the valid snippets.

    Args:
        cas: (B, T, C) scores; mask: (B, T) valid snippets.

    Returns:
        ``(normalised (B, T, C) in [0, 1], flat (B, 1, C))``; a constant sequence (``flat``)
        becomes zeros. Differentiable in ``cas``.
    """
    m = mask.unsqueeze(-1)  # (B, T, 1)
    lo = cas.masked_fill(~m, float("inf")).amin(dim=1, keepdim=True)  # (B, 1, C)
    hi = cas.masked_fill(~m, float("-inf")).amax(dim=1, keepdim=True)  # (B, 1, C)
    span = hi - lo
    flat = ~(span > 1e-6)  # also catches videos with no valid snippet (inf - inf)
    safe_lo = torch.where(flat, torch.zeros_like(lo), lo)
    safe_span = torch.where(flat, torch.ones_like(span), span)
    norm = ((cas - safe_lo) / safe_span).clamp(0.0, 1.0)
    return torch.where(flat, torch.zeros_like(norm), norm), flat


def erase_mask(cas: Tensor, mask: Tensor, classes: Tensor, *, threshold: float) -> Tensor:
    """Online Adversarial Erasing: the snippets a first-stage CAS finds discriminative.

    For every class in ``classes`` the CAS is min-max normalised over the video's valid
    snippets; snippets at or above ``threshold`` (ξ_era) for any of these classes are erased.
    A constant CAS has no discriminative region and erases nothing.

    Args:
        cas: (B, T, C) first-stage localisation sequence (any monotone scale: logits here).
        mask: (B, T) valid snippets.
        classes: (B, C) bool, the classes whose regions are erased.
        threshold: ξ_era in [0, 1].

    Returns:
        (B, T) bool, True where the second stage sees erased features.
    """
    norm, flat = minmax_over_time(cas, mask)  # (B, T, C), (B, 1, C)
    hit = (norm >= threshold) & ~flat & mask.unsqueeze(-1) & classes.unsqueeze(1)  # (B, T, C)
    return hit.any(dim=-1)


def gaussian_kernel(a: Tensor, b: Tensor, *, sigma: float | Tensor) -> Tensor:
    """``k(a_i, b_j) = exp(-‖a_i − b_j‖² / (2σ²))``; a (N, R), b (M, R) → (N, M).

    The squared distances are ``‖a_i‖² + ‖b_j‖² − 2 a_iᵀb_j`` of the samples centred on a's
    mean (one matrix product, clamped at 0), not the (N, M, R) tensor of differences: with
    UCF101's 13,320 clips (about 670 per class) and R = 512 that tensor made one training step
    of the KTM take 12 s on one core, the product 0.3 s (``benchmarks/mmd_speed.py``). The
    product's rounding is relative to the centred norms, so the kernel's absolute error is
    about 1e-7 · ‖x − mean‖² / σ²: negligible at the median bandwidth (σ ≈ the samples'
    spread), visible only with a fixed σ far below it.
    """
    centre = a.detach().mean(0, keepdim=True)  # (1, R)
    a, b = a - centre, b - centre
    d2 = (a.pow(2).sum(-1).unsqueeze(1) + b.pow(2).sum(-1).unsqueeze(0)
          - 2.0 * a @ b.transpose(0, 1)).clamp_min(0.0)  # (N, M)
    return torch.exp(-d2 / (2.0 * sigma**2))


def median_bandwidth(t: Tensor, u: Tensor) -> Tensor:
    """σ of the median heuristic: the median distance between distinct pooled samples (no grad);
    1 when all samples coincide."""
    z = torch.cat([t, u]).detach()
    d = torch.cdist(z, z)
    off = d[~torch.eye(len(z), dtype=torch.bool, device=z.device)]
    if off.numel() == 0:
        return torch.ones((), dtype=z.dtype, device=z.device)
    med = off.median()
    return torch.where(med > 1e-12, med, torch.ones_like(med))


def mmd2(t: Tensor, u: Tensor, *, sigma: float | None = None) -> Tensor:
    """Squared Maximum Mean Discrepancy with a Gaussian kernel, Eq. (3) (biased estimator).

    ``mean k(t_i, t_j) + mean k(u_i, u_j) − 2 mean k(t_i, u_j)``.

    Args:
        t: (N_T, R) trimmed-video representations.
        u: (N_U, R) untrimmed-video representations of the same class.
        sigma: kernel bandwidth; None: the median heuristic (:func:`median_bandwidth`).
    """
    s = median_bandwidth(t, u) if sigma is None else sigma
    return (gaussian_kernel(t, t, sigma=s).mean() + gaussian_kernel(u, u, sigma=s).mean()
            - 2.0 * gaussian_kernel(t, u, sigma=s).mean())


def decode_anchors(
    regression: Tensor, scales: Sequence[float] | Tensor, *, inflation: float,
    max_log_scale: float = 5.0,
) -> tuple[Tensor, Tensor]:
    """Anchors adjusted by the BRM's regression values, and their inflated outer boundaries.

    Anchor ``(t, m)`` has centre ``t_x = t + 0.5`` and length ``t_w = scales[m]``;
    ``r_x = t_x + t_w·p_x``, ``r_w = t_w·exp(p_w)``; inner ``[s, e] = r_x ∓ r_w / 2``; outer
    ``[S, E] = [s − γ·r_w, e + γ·r_w]``.

    Args:
        regression: (..., T, M, 2) ``(p_x, p_w)``.
        scales: M anchor lengths in snippets.
        inflation: γ.
        max_log_scale: ``p_w`` is clamped to ±this before the exponential (overflow guard).

    Returns:
        ``(inner, outer)``, each (..., T, M, 2) ``[start, end]`` in snippet units, unclipped.
    """
    n_t = regression.shape[-3]
    t_w = torch.as_tensor(scales, dtype=regression.dtype, device=regression.device)  # (M,)
    t_x = torch.arange(n_t, dtype=regression.dtype, device=regression.device) + 0.5  # (T,)
    t_x = t_x.unsqueeze(-1)  # (T, 1)
    p_x = regression[..., 0]  # (..., T, M)
    p_w = regression[..., 1].clamp(-max_log_scale, max_log_scale)
    r_x = t_x + t_w * p_x
    r_w = t_w * torch.exp(p_w)
    s, e = r_x - r_w / 2, r_x + r_w / 2
    inner = torch.stack([s, e], dim=-1)
    outer = torch.stack([s - inflation * r_w, e + inflation * r_w], dim=-1)
    return inner, outer


def _integral(act: Tensor, x: Tensor, lengths: Tensor) -> Tensor:
    """``∫_0^x a(t) dt`` of the piecewise-constant activation (snippet i on [i, i + 1)).

    Args:
        act: (P, T) activations.
        x: (P, K) positions, already clipped to [0, length].
        lengths: (P,) valid snippets (≥ 1).

    Returns:
        (P, K), differentiable in ``act`` and ``x``.
    """
    cum = F.pad(act.cumsum(dim=1), (1, 0))  # (P, T + 1)
    last = (lengths - 1).clamp(min=0).unsqueeze(1)  # (P, 1)
    i = torch.minimum(x.detach().floor().long(), last)  # (P, K)
    frac = x - i.to(x.dtype)
    return cum.gather(1, i) + act.gather(1, i) * frac


def _integral_extended(act: Tensor, x: Tensor, lengths: Tensor) -> Tensor:
    """``∫_0^x a(t) dt`` for any ``x``, the video's first and last activations extended beyond
    its ends (``a(t) = a(0)`` for t < 0, ``a(t) = a(length − 1)`` for t ≥ length).

    Args:
        act: (P, T); x: (P, K) unclipped positions; lengths: (P,) valid snippets (≥ 1).
    """
    top = lengths.to(act.dtype).unsqueeze(1)  # (P, 1)
    inside = _integral(act, torch.minimum(x.clamp(min=0.0), top), lengths)
    first = act[:, :1]  # (P, 1)
    last = act.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1))  # (P, 1)
    return inside + x.clamp(max=0.0) * first + (x - top).clamp(min=0.0) * last


def outer_inner_contrast(
    act: Tensor, inner: Tensor, outer: Tensor, lengths: Tensor, *, eps: float = 1e-4
) -> tuple[Tensor, Tensor]:
    """Outer-Inner-Contrastive loss, Eq. (2): mean activation of ``[S, s) ∪ [e, E)`` minus the
    mean activation of ``[s, e)``, on the piecewise-constant activation sequence.

    The inner segment is clipped to the valid part ``[0, length]`` (a detection lies inside the
    video); with integer boundaries inside the video this is the paper's sums over inclusive
    snippet ranges (lengths ``e − s + 1``). Where the outer band reaches past an end of the
    video, the video's edge activation is taken to continue there (Eq. 2 leaves the area outside
    the video undefined): every segment keeps its full outer band of ``γ·r_w`` a side, so the
    contrast of a segment at the video's edge compares with what the edge shows. (Clipping the
    band instead, and counting a band clipped away as zero activation, made the whole video the
    best segment of every position whenever a video's activation was high on average: on the
    demo most proposals of a video with two instances were the whole video. Averaging over the
    part of the band left inside the video instead makes the outer mean of a segment ending
    near an edge that of a thin sliver, with a gradient growing as 1 / the band left.)

    Args:
        act: (P, T) activations of one class each.
        inner: (P, K, 2) inner segments [s, e].
        outer: (P, K, 2) outer segments [S, E].
        lengths: (P,) valid snippets.

    Returns:
        ``(oic, inner_mean)``, each (P, K); ``inner_mean`` is p_act of Eq. (5).
    """
    top = lengths.to(act.dtype).unsqueeze(1)  # (P, 1)
    s = torch.minimum(inner[..., 0].clamp(min=0.0), top)
    e = torch.minimum(inner[..., 1].clamp(min=0.0), top)
    big_s = torch.minimum(outer[..., 0], s)
    big_e = torch.maximum(outer[..., 1], e)
    i_s, i_e = _integral(act, s, lengths), _integral(act, e, lengths)
    area_in = i_e - i_s
    area_out = ((i_s - _integral_extended(act, big_s, lengths))
                + (_integral_extended(act, big_e, lengths) - i_e))
    len_in = e - s
    len_out = (s - big_s) + (big_e - e)
    inner_mean = area_in / len_in.clamp(min=eps)
    outer_mean = torch.where(len_out > eps, area_out / len_out.clamp(min=eps),
                             torch.zeros_like(area_out))  # γ = 0: no outer band
    return outer_mean - inner_mean, inner_mean


def select_anchors(
    oic: Tensor, act: Tensor, valid: Tensor, *, min_activation: float, max_oic: float
) -> tuple[Tensor, Tensor]:
    """The paper's anchor filtering (§III.E), computed without gradients.

    Positions with activation below ``min_activation`` lose all their anchors; of the M anchors
    of each remaining position only the lowest-OIC one is kept; kept anchors with OIC above
    ``max_oic`` are removed.

    Args:
        oic: (P, T, M) OIC loss of every anchor.
        act: (P, T) activation at each anchor's position.
        valid: (P, T) bool, real (not padded) positions.
        min_activation: 0.1 in the paper.
        max_oic: −0.3 in the paper.

    Returns:
        ``(best, keep)``: (P, T) long index of the kept scale, (P, T) bool kept.
    """
    with torch.no_grad():
        best_oic, best = oic.min(dim=-1)  # (P, T)
        keep = valid & (act >= min_activation) & (best_oic <= max_oic)
    return best, keep


def soft_nms_weights(
    segments: Tensor, scores: Tensor, keep: Tensor, *, iou_threshold: float, epsilon: float
) -> Tensor:
    """Soft-NMS (Eq. 7) over the kept anchors of each row, as a weight per anchor (§III.E).

    Gaussian Soft-NMS (:func:`wtal.postprocess.batched_nms`, one group per row) re-scores the
    kept anchors of a row: an anchor overlapping a better one by IoU > θ has its score
    multiplied by ``exp(−IoU² / ε)``. The weight of an anchor is its final score over its
    initial one (1 for an anchor nothing better overlaps), computed without gradients.

    Args:
        segments: (P, T, 2) the kept scale's segment at each position.
        scores: (P, T) positive confidences (the training step uses ``p_oic = 1 − OIC``).
        keep: (P, T) bool, the anchors :func:`select_anchors` keeps.
        iou_threshold: θ_NMS; epsilon: ε.

    Returns:
        (P, T) weights in (0, 1], 1 where ``keep`` is False.
    """
    with torch.no_grad():
        weight = torch.ones_like(scores)
        rows, cols = keep.nonzero(as_tuple=True)
        if len(rows) == 0:
            return weight
        seg = segments[rows, cols].double()
        score = scores[rows, cols].double()
        picked, decayed = batched_nms(seg, score, rows, method="gaussian",
                                      iou_threshold=iou_threshold, epsilon=epsilon)
        ratio = torch.ones_like(score)
        ratio[picked] = decayed / score[picked]
        weight[rows, cols] = ratio.to(weight.dtype)
    return weight




# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class DilatedClassifier(nn.Module):
    """One classification stage: base net, dilated branches, GAP → FC per branch (MDCM)."""

    def __init__(
        self, *, in_dim: int, num_classes: int, hidden: int, kernel_size: int,
        dilations: Sequence[int], dropout: float,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.base = nn.Sequential(
            nn.Conv1d(in_dim, hidden, kernel_size, padding=pad), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(hidden, hidden, kernel_size, padding=pad), nn.ReLU(), nn.Dropout(dropout),
        )
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(hidden, hidden, kernel_size, dilation=d, padding=d * pad),
                nn.ReLU(), nn.Dropout(dropout),
            )
            for d in dilations
        )
        self.fcs = nn.ModuleList(nn.Linear(hidden, num_classes) for _ in dilations)

    def forward(
        self, x: Tensor, mask: Tensor, *, pooling: str, topk_ratio: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Args: x (B, T, D); mask (B, T).

        Returns:
            branch CAS (B, NB, T, C), branch video logits (B, NB, C), GAP features (B, NB, H).
        """
        h = self.base(x.transpose(1, 2))  # (B, H, T)
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        n = mask.sum(dim=1).clamp(min=1).to(x.dtype).unsqueeze(-1)  # (B, 1)
        cas, logits, gaps = [], [], []
        for branch, fc in zip(self.branches, self.fcs, strict=True):
            f = branch(h).transpose(1, 2)  # (B, T, H)
            gaps.append((f * m).sum(dim=1) / n)  # (B, H)
            c = fc(f)  # (B, T, C): the FC applied at every time step (CAM)
            cas.append(c)
            logits.append(temporal_pool(c, mask, pooling=pooling, topk_ratio=topk_ratio))
        return torch.stack(cas, 1), torch.stack(logits, 1), torch.stack(gaps, 1)


class BoundaryRegressor(nn.Module):
    """BRM head: ``layers`` × (Conv1d(hidden, k) → ReLU), then Conv1d(2M, k) → (p_x, p_w)."""

    def __init__(
        self, *, in_dim: int, num_scales: int, hidden: int = 128, kernel_size: int = 3,
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        channels = in_dim
        for _ in range(num_layers):
            layers += [nn.Conv1d(channels, hidden, kernel_size, padding=pad), nn.ReLU()]
            channels = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv1d(channels, 2 * num_scales, kernel_size, padding=pad)
        # start close to the anchors themselves (p_x ≈ p_w ≈ 0)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.zeros_(self.out.bias)
        self.num_scales = num_scales

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, D) → (B, T, M, 2) regression values ``(p_x, p_w)``."""
        y = self.out(self.body(x.transpose(1, 2)))  # (B, 2M, T)
        b, _, t = y.shape
        return y.view(b, self.num_scales, 2, t).permute(0, 3, 1, 2)  # (B, T, M, 2)


@dataclass(frozen=True)
class KTMGFNInferOptions:
    """KT-MGFN's own inference knobs (``infer.model`` in its settings): the factors of a
    candidate's confidence p_conf (Eq. 6; table VIII switches them), and how a test video is
    sampled (``test_sampling``, :meth:`KTMGFN.test_indices`): ``"uniform"`` (the paper,
    §III.F) or ``"native"`` (every snippet, whatever the training sequences' length).

    ``max_oic``: the OIC ceiling of the BRM's anchor filter at test (:func:`select_anchors`).
    None (the default) keeps the model's own, the training one (−0.3), as §III.F says ("the
    conditions as described in the training procedure"); a number replaces it at inference
    only, e.g. 0 keeps every anchor whose inner activation exceeds its outer band's."""

    score_act: bool = True
    score_oic: bool = True
    score_class: bool = True
    test_sampling: str = "uniform"
    max_oic: float | None = None

    def __post_init__(self) -> None:
        if self.test_sampling not in ("uniform", "native"):
            raise ValueError(f"test_sampling must be uniform or native, not "
                             f"{self.test_sampling!r}")
        if self.max_oic is not None and not -1.0 <= self.max_oic <= 1.0:
            raise ValueError(f"max_oic is an OIC value (outer minus inner mean activation, "
                             f"in [-1, 1]), not {self.max_oic!r}")


@register_model("kt_mgfn")
class KTMGFN(Localizer):
    """KT-MGFN: cascaded dilated classification block, knowledge transfer, boundary regression.

    The builder's defaults are the paper's except ``brm=False``: the BRM's parameters do not
    feed the video logits, and a model built with defaults must train on ``video_logits``
    alone. ``pipeline/config/models/kt_mgfn.yaml`` turns it on (the paper's configuration).
    Choices the paper leaves open: ``hidden``, ``dropout``, ``inflation`` γ (AutoLoc's 0.25),
    ``kt_sigma`` (median heuristic), ``activation`` (min-max, see :meth:`KTMGFN.activations`),
    how Soft-NMS enters the training step (a weight per anchor, :func:`soft_nms_weights`),
    how the classifiers' scores make p_class (their mean probability), the classes erased without
    labels (``erase_class_threshold``), which GAP layer feeds the KTM (stage 1, branches
    concatenated) and how long the trimmed branch trains (``trimmed_epochs``, 30: the paper's
    1e-3 phase; ``trimmed_lr`` / ``trimmed_batch_size``, None: the main loop's, see
    :meth:`KTMGFN.pretrain`).
    Ablation switches: ``mdcm``, ``ccm``, ``ktm``, ``brm`` (table V); ``num_stages`` (table VI);
    ``joint`` (table VII: False is stage-wise training); ``train_soft_nms``; ``dilations``
    (Fig. 5); ``erase_threshold`` ξ_era (Fig. 6); table VIII's ``score_act`` / ``score_oic`` /
    ``score_class`` and ``test_sampling`` are inference knobs (``infer.model``,
    :class:`KTMGFNInferOptions`).
    """

    InferOptions = KTMGFNInferOptions

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        hidden: int = 512,
        kernel_size: int = 3,
        dropout: float = 0.5,
        pooling: str = "mean",
        topk_ratio: float = 0.125,
        activation: str = "minmax",
        mdcm: bool = True,
        dilations: Sequence[int] = (1, 2, 3, 5),
        ccm: bool = True,
        num_stages: int | None = None,
        erase_threshold: float = 0.8,
        erase_class_threshold: float = 0.5,
        ktm: bool = True,
        beta: float = 10.0,
        kt_sigma: float | None = None,
        brm: bool = False,
        anchor_scales: Sequence[float] = THUMOS14_ANCHORS,
        brm_hidden: int = 128,
        brm_layers: int = 3,
        inflation: float = 0.25,
        alpha: float = 10.0,
        brm_start_epoch: int = 30,
        min_activation: float = 0.1,
        max_oic: float = -0.3,
        oic_reduction: str = "sum",
        joint: bool = True,
        train_soft_nms: bool = True,
        train_nms_iou: float = 0.5,
        train_nms_epsilon: float = 0.75,
        trimmed_epochs: int = 30,
        trimmed_lr: float | None = None,
        trimmed_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if trimmed_epochs < 0:
            raise ValueError(f"trimmed_epochs must be >= 0, got {trimmed_epochs}")
        if not math.isfinite(erase_threshold) or not 0.0 <= erase_threshold <= 1.0:
            raise ValueError(f"erase_threshold must be in [0, 1], got {erase_threshold}")
        if pooling not in {"mean", "topk"}:
            raise ValueError(f"unknown pooling {pooling!r} (mean or topk)")
        if activation not in {"minmax", "sigmoid"}:
            raise ValueError(f"unknown activation {activation!r} (minmax or sigmoid)")
        if oic_reduction not in {"sum", "mean"}:
            raise ValueError(f"unknown oic_reduction {oic_reduction!r} (sum or mean)")
        if num_stages is None:
            num_stages = 2 if ccm else 1
        if num_stages < 1 or (not ccm and num_stages != 1):
            raise ValueError(f"num_stages must be >= 1 (1 when ccm is off), got {num_stages} "
                             f"with ccm={ccm}")
        if not train_nms_epsilon > 0 or not train_nms_iou >= 0:
            raise ValueError(f"train_nms_iou must be >= 0 and train_nms_epsilon > 0, got "
                             f"{train_nms_iou}, {train_nms_epsilon}")
        dilations = tuple(int(d) for d in dilations)
        if not dilations:
            raise ValueError("dilations: at least one branch")
        if not mdcm:
            dilations = dilations[:1]  # the undilated branch only: H = H0
        self.dilations = dilations
        self.num_classes = num_classes
        self.pooling, self.topk_ratio, self.activation = pooling, topk_ratio, activation
        stage_args = dict(in_dim=in_dim, num_classes=num_classes, hidden=hidden,
                          kernel_size=kernel_size, dilations=dilations, dropout=dropout)
        self.stages = nn.ModuleList([DilatedClassifier(**stage_args)
                                     for _ in range(num_stages)])
        self.erase_threshold = erase_threshold
        self.erase_class_threshold = erase_class_threshold
        self.ktm, self.beta, self.kt_sigma = ktm, beta, kt_sigma
        self.anchor_scales = tuple(float(s) for s in anchor_scales)
        self.brm = (BoundaryRegressor(in_dim=in_dim, num_scales=len(self.anchor_scales),
                                      hidden=brm_hidden, kernel_size=kernel_size,
                                      num_layers=brm_layers) if brm else None)
        self.inflation, self.alpha, self.brm_start_epoch = inflation, alpha, brm_start_epoch
        self.min_activation, self.max_oic = min_activation, max_oic
        self.oic_reduction, self.joint = oic_reduction, joint
        self.train_soft_nms = train_soft_nms
        self.train_nms_iou, self.train_nms_epsilon = train_nms_iou, train_nms_epsilon
        self.embedding_dim = hidden * len(dilations)
        # what the trimmed branch shares with this model (KTM, :meth:`pretrain`)
        self._branch_args = dict(in_dim=in_dim, num_classes=num_classes, hidden=hidden,
                                 kernel_size=kernel_size, dropout=dropout, pooling=pooling,
                                 topk_ratio=topk_ratio, activation=activation, mdcm=mdcm,
                                 dilations=dilations, ccm=ccm, num_stages=num_stages,
                                 erase_threshold=erase_threshold,
                                 erase_class_threshold=erase_class_threshold)
        self.trimmed_epochs, self.trimmed_lr = trimmed_epochs, trimmed_lr
        self.trimmed_batch_size = trimmed_batch_size

    # ---------------------------------------------------------------- forward

    def _stage(self, i: int, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.stages[i](x, mask, pooling=self.pooling, topk_ratio=self.topk_ratio)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, *, labels: Tensor | None = None
    ) -> KTMGFNOutput:
        """Args:
            x: (B, T, D) features.
            mask: (B, T) valid snippets (default: all).
            labels: (B, C) video labels choosing the classes whose regions are erased for stage
                2; without them (the generic training loop, inference) the classes predicted by
                stage 1 (probability ≥ ``erase_class_threshold``, and always the top one).
        """
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        cas1, logits1, gap1 = self._stage(0, x, mask)  # (B,NB,T,C), (B,NB,C), (B,NB,H)
        h1 = fuse_branches(cas1)  # (B, T, C)
        stage_cas, branch_logits = [h1], [logits1]
        erased = torch.zeros_like(mask)
        if len(self.stages) > 1:
            with torch.no_grad():
                if labels is not None:
                    classes = labels > 0.5
                else:  # the classes stage 1's classifiers predict (their mean probability)
                    p1 = torch.sigmoid(logits1).mean(dim=1)  # (B, C)
                    classes = p1 >= self.erase_class_threshold
                    classes |= F.one_hot(p1.argmax(dim=1), p1.shape[1]).bool()
        for s in range(1, len(self.stages)):
            with torch.no_grad():  # cumulative: what every earlier stage found is erased
                erased = erased | erase_mask(stage_cas[-1].detach(), mask, classes,
                                             threshold=self.erase_threshold)
            xs = x.masked_fill(erased.unsqueeze(-1), 0.0)  # (B, T, D)
            cas_s, logits_s, _ = self._stage(s, xs, mask)
            stage_cas.append(fuse_branches(cas_s))
            branch_logits.append(logits_s)
        stacked = torch.stack(stage_cas, dim=1)  # (B, S, T, C)
        cas = stacked.amax(dim=1)  # (B, T, C): H_cas = max(H, H̄)
        logits = torch.stack(branch_logits, dim=1)  # (B, S, NB, C)
        # p_class: the mean probability of the trained classifiers (Eq. 1's σ(y_cls))
        video_logits = torch.logit(torch.sigmoid(logits).mean(dim=(1, 2)), eps=1e-6)
        regression = self.brm(x) if self.brm is not None else None  # (B, T, M, 2)
        return KTMGFNOutput(
            cas=cas, video_logits=video_logits, stage_cas=stacked,
            branch_logits=logits, embedding=gap1.flatten(1),
            erased=erased, regression=regression, mask=mask,
        )

    def activations(self, cas: Tensor, mask: Tensor) -> Tensor:
        """The activation sequence ``a_k(t)`` in [0, 1] of CAS logits (B, T, C) → (B, T, C).

        ``activation="minmax"``: each class's CAS min-max normalised over the video's valid
        snippets (the scale of the erasing threshold, so that ξ_era, the 0.1 activation floor
        and the −0.3 OIC ceiling all refer to one [0, 1] scale); ``"sigmoid"``: σ(cas), which
        saturates once GAP-trained logits grow large.
        """
        if self.activation == "sigmoid":
            return torch.sigmoid(cas)
        return minmax_over_time(cas, mask)[0]

    def probabilities(self, out: KTMGFNOutput) -> tuple[Tensor, Tensor]:
        """Enhanced CAS activations (B, T, C) (see :meth:`activations`) and the video scores
        p_class (B, C) of Eq. (6), both in [0, 1].

        p_class is the classification score of the augmented classification network: the mean,
        over every branch classifier of every stage, of ``σ(y_cls)`` (Eq. 1), i.e. the
        probabilities that ``L_class`` trains. (The paper does not say how the classifiers'
        scores are combined; σ of the pooled enhanced CAS, which no loss trains, was used
        before.)"""
        return self.activations(out.cas, out.mask), torch.sigmoid(out.video_logits)

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """The named per-snippet scores a report plots (see :mod:`wtal.report`), each on the
        activation scale of :meth:`activations` (what the localiser reads), (B, T, C):

        * ``simple_cas``: ``H0``, the undilated branch of stage 1 (table V's simple CAS);
        * ``multi_dilated_cas``: ``H = H0 + mean_i Hi`` of stage 1 (MDCM; equals the simple CAS
          without it);
        * ``mining_cas``: ``H̄`` of stage 2, on the erased input (CCM only);
        * ``cascaded_cas``: ``max(H, H̄)``, the enhanced CAS the model localises with (trained
          with the KTM's objective when trimmed representations were given);
        * ``erased`` (B, T): 1 where stage 2 saw erased snippets (CCM only).
        """
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        out = self.forward(x, mask)
        branches, _, _ = self._stage(0, x, mask)  # (B, NB, T, C)
        seqs = {
            "simple_cas": self.activations(branches[:, 0], mask),
            "multi_dilated_cas": self.activations(out.stage_cas[:, 0], mask),
        }
        if out.stage_cas.shape[1] > 1:
            seqs["mining_cas"] = self.activations(out.stage_cas[:, 1], mask)
        for s in range(2, out.stage_cas.shape[1]):  # table VI's third classifier
            seqs[f"mining_cas_{s + 1}"] = self.activations(out.stage_cas[:, s], mask)
        seqs["cascaded_cas"] = self.activations(out.cas, mask)
        if out.stage_cas.shape[1] > 1:
            seqs["erased"] = out.erased.to(x.dtype)
        return seqs

    @torch.no_grad()
    def embed(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """GAP-layer representation (B, R) of stage 1, as the trimmed branch provides for the
        KTM (call on a trimmed-branch model in eval mode)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return self._stage(0, x, mask)[2].flatten(1)

    # ---------------------------------------------------------------- KTM

    def check_reference(self, trimmed: TrimmedReps) -> TrimmedReps:
        """``trimmed`` if its representations have this model's GAP dimension."""
        if trimmed.embeddings.shape[1] != self.embedding_dim:
            raise ValueError(f"trimmed representations are {trimmed.embeddings.shape[1]}-d, "
                             f"this model's GAP layer gives {self.embedding_dim}")
        return trimmed

    def pretrain(self, inputs: PretrainInputs) -> Pretrained:
        """Train the trimmed branch and return its representations for the KTM (§III.D, Eq. 3).

        Called once by the training stage (``wtal.train``) before the main loop. The
        trimmed branch is a ``kt_mgfn`` with this model's classification block (``hidden``,
        ``kernel_size``, ``dropout``, ``pooling``, ``mdcm``/``dilations``, ``ccm``/ξ_era) and
        neither BRM nor KTM ("the boundary regression module is no longer necessary"),
        initialised with this model's initial classification weights (so the two GAP spaces
        start out alike), trained with the classification loss of Eq. (1) on the trimmed clips
        (Adam, ``trimmed_epochs`` epochs, ``trimmed_lr`` / ``trimmed_batch_size``, default the
        main loop's lr and batch size: "settings identical to those for the untrimmed one";
        the paper trains it "until it converges" without an epoch count). Its stage-1 GAP
        representations of every clip (:meth:`embed`, eval mode) become the constant
        :class:`TrimmedReps` that :meth:`loss` compares with the untrimmed videos' by β · MMD².
        The trimmed branch itself is discarded: nothing it leaves is in the state dict.

        Args:
            videos: training videos (T_i, D), standardised as the main loop sees them (unused:
                the trimmed branch trains on the clips alone).
            labels: (N, C) multi-hot labels of the training videos (to report shared classes).
            trimmed: ``(clips (T_j, D) standardised with the same statistics, (M, C) labels)``
                or None when the dataset has no trimmed clips.
            settings: ``wtal.train.TrainSettings`` (lr, batch_size, weight_decay, max_seqlen).
            rng: the loop's generator (shuffling and cropping of the clips).
            device: where to train.

        Returns:
            ``reference``: the :class:`TrimmedReps` (None when the KTM is off); ``log``: what
            ``train.json`` records under ``pretrain``: ``{"ktm": "off: …"}`` when the module is
            off, else ``{"ktm": "on", "trimmed_clips", "shared_classes", "epochs", "lr",
            "batch_size", "loss" (per epoch), "seconds"}``.
        """
        labels, trimmed, settings = inputs.labels, inputs.trimmed, inputs.settings
        rng, device = inputs.rng, inputs.device
        if not self.ktm:
            return Pretrained(log={"ktm": "off: switched off in the model arguments (ktm: false)"})
        clips, clip_labels = (list(trimmed[0]), np.asarray(trimmed[1], np.float32)
                              ) if trimmed is not None else ([], np.zeros((0, 0), np.float32))
        keep = [j for j, x in enumerate(clips) if len(x) > 0 and clip_labels[j].any()]
        if not keep:
            reason = "the dataset has no trimmed clips"
            logger.warning("kt_mgfn: the dataset has no trimmed clips, so the knowledge transfer "
                           "module (KTM) is off (train.json records it under 'pretrain')")
            return Pretrained(log={"ktm": f"off: {reason}"}, transfer_missing=reason)
        clips = [np.asarray(clips[j], np.float32) for j in keep]
        clip_labels = clip_labels[keep]
        if clip_labels.shape[1] != self.num_classes:
            raise ValueError(f"trimmed clips have {clip_labels.shape[1]} classes, the model "
                             f"{self.num_classes}")
        shared = int(((np.asarray(labels) > 0.5).any(axis=0) & (clip_labels > 0.5).any(axis=0)
                      ).sum())
        if shared == 0:
            logger.warning("kt_mgfn: no class of the trimmed clips has training videos, so the "
                           "knowledge transfer module (KTM) is off")
            reason = "no class of the trimmed clips has training videos"
            return Pretrained(log={"ktm": f"off: {reason}", "trimmed_clips": len(clips)},
                              transfer_missing=reason)
        t0 = time.time()
        lr = self.trimmed_lr if self.trimmed_lr is not None else float(settings.lr)
        batch = (self.trimmed_batch_size if self.trimmed_batch_size is not None
                 else int(settings.batch_size))
        branch = KTMGFN(**self._branch_args, ktm=False, brm=False).to(device)
        branch.stages.load_state_dict(self.stages.state_dict())
        opt = make_optimizer(branch.parameters(), optimizer="adam", lr=lr,
                             weight_decay=float(settings.weight_decay))
        max_len = int(settings.max_seqlen)
        y_all = torch.from_numpy(clip_labels)
        curve = fit(
            branch, clips, clip_labels,
            loss_of=lambda out, y, mask, epoch, step: (
                branch.loss(out, y, mask, epoch=epoch)[0], {}),
            opt=opt, epochs=self.trimmed_epochs, batch_size=batch, max_seqlen=max_len, rng=rng,
            device=device, name="kt_mgfn trimmed branch").loss
        branch.eval()
        with torch.no_grad():
            reps = torch.cat([branch.embed(torch.from_numpy(x).unsqueeze(0).to(device))
                              for x in clips])  # (M, R)
        log = {"ktm": "on", "trimmed_clips": len(clips), "shared_classes": shared,
               "epochs": self.trimmed_epochs, "lr": lr, "batch_size": batch, "loss": curve,
               "seconds": time.time() - t0}
        reference = self.check_reference(TrimmedReps(reps, y_all.to(device)))
        return Pretrained(log=log, reference=reference, used_trimmed=True)

    def knowledge_transfer(
        self, embedding: Tensor, labels: Tensor, trimmed: TrimmedReps
    ) -> tuple[Tensor, int]:
        """Mean over classes present on both sides of MMD²(trimmed_c, untrimmed_c), Eq. (3).

        Args:
            embedding: (B, R) untrimmed representations.
            labels: (B, C) their labels.
            trimmed: the trimmed branch's representations.

        Returns:
            ``(L_KT, number of classes compared)``; 0 when no class is shared.
        """
        if trimmed.embeddings.shape[1] != embedding.shape[1]:
            raise ValueError(f"trimmed representations are {trimmed.embeddings.shape[1]}-d, "
                             f"the untrimmed ones {embedding.shape[1]}")
        t_all = trimmed.embeddings.to(embedding)
        t_lab = trimmed.labels.to(embedding.device) > 0.5
        u_lab = labels > 0.5
        terms = []
        for c in range(labels.shape[1]):
            tc, uc = t_all[t_lab[:, c]], embedding[u_lab[:, c]]
            if len(tc) and len(uc):
                terms.append(mmd2(tc, uc, sigma=self.kt_sigma))
        if not terms:
            return embedding.new_zeros(()), 0
        return torch.stack(terms).mean(), len(terms)

    # ---------------------------------------------------------------- BRM

    def _anchor_oic(
        self, act: Tensor, regression: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """OIC of every anchor of P (video, class) pairs.

        Args:
            act: (P, T) activations; regression: (P, T, M, 2); lengths: (P,).

        Returns:
            oic (P, T, M), inner_mean (P, T, M), inner segments (P, T, M, 2).
        """
        p, t, m, _ = regression.shape
        inner, outer = decode_anchors(regression, self.anchor_scales, inflation=self.inflation)
        oic, inner_mean = outer_inner_contrast(act, inner.view(p, t * m, 2),
                                               outer.view(p, t * m, 2), lengths)
        return oic.view(p, t, m), inner_mean.view(p, t, m), inner

    def oic_objective(
        self, out: KTMGFNOutput, labels: Tensor, mask: Tensor
    ) -> tuple[Tensor, int]:
        """L_OIC of a batch (§III.E, Eq. 2), the paper's training step for the BRM.

        For every (video, ground-truth class) pair the anchors are decoded and filtered
        (:func:`select_anchors`: activation < 0.1 dropped, the lowest-OIC scale per position,
        OIC > −0.3 dropped); then Soft-NMS (Eq. 7, θ ``train_nms_iou``, ε
        ``train_nms_epsilon``) runs over the kept anchors of the pair (:func:`soft_nms_weights`)
        and each kept anchor's OIC loss is weighted by its Soft-NMS decay, so that anchors
        regressed onto (nearly) the same segment count about once. Per video the weighted OIC
        losses are summed (``oic_reduction="sum"``, the paper: "the summation of the OIC losses
        of all kept anchors") or averaged; then averaged over the videos. ``train_soft_nms``
        off: every kept anchor has weight 1.

        ``joint`` (the paper's end-to-end training, table VII's "end-to-end"): the OIC gradient
        reaches the classification network through the enhanced CAS as well as the BRM ("the
        optimization process will encourage the higher activation in the inner area but the
        lower activation in the outer area"). ``joint=False`` is table VII's "stage-wise": the CAS
        is detached, the BRM learns on it alone and the classification network never sees the
        OIC loss. In both the BRM reads the input features (§III.C: "given the encoded video
        features as the input"; Fig. 1(ii)).

        Returns:
            ``(L_OIC, number of kept anchors)``.
        """
        if out.regression is None:
            raise ValueError("kt_mgfn: built without the BRM (brm=False)")
        pairs = (labels > 0.5).nonzero()  # (P, 2) [video, class]
        if len(pairs) == 0:
            return out.cas.new_zeros(()), 0
        b, k = pairs[:, 0], pairs[:, 1]
        cas = out.cas if self.joint else out.cas.detach()
        act = self.activations(cas, mask)[b, :, k]  # (P, T)
        lengths = mask.sum(dim=1)[b]  # (P,)
        oic, _, inner = self._anchor_oic(act, out.regression[b], lengths)  # (P, T, M)
        best, keep = select_anchors(oic.detach(), act.detach(), mask[b],
                                    min_activation=self.min_activation, max_oic=self.max_oic)
        chosen = oic.gather(2, best.unsqueeze(-1)).squeeze(-1)  # (P, T)
        if self.train_soft_nms:
            seg = inner.detach().gather(2, best[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]
            top = lengths.to(seg.dtype)[:, None, None]
            seg = torch.minimum(seg.clamp(min=0.0), top)  # (P, T, 2) inside the video
            weight = soft_nms_weights(seg, 1.0 - chosen.detach(), keep,
                                      iou_threshold=self.train_nms_iou,
                                      epsilon=self.train_nms_epsilon)
            chosen = chosen * weight
        chosen = torch.where(keep, chosen, torch.zeros_like(chosen))
        per_pair = chosen.sum(dim=1)  # (P,)
        if self.oic_reduction == "mean":
            n_video = torch.zeros(len(labels), device=per_pair.device).index_add_(
                0, b, keep.sum(dim=1).to(per_pair.dtype))
            per_video = torch.zeros_like(n_video).index_add_(0, b, per_pair)
            per_video = per_video / n_video.clamp(min=1)
        else:
            per_video = torch.zeros(len(labels), dtype=per_pair.dtype,
                                    device=per_pair.device).index_add_(0, b, per_pair)
        return per_video.mean(), int(keep.sum())

    @torch.no_grad()
    def proposals(
        self,
        out: KTMGFNOutput,
        *,
        class_threshold: float = 0.0,
        soft_nms_iou: float | None = None,
        soft_nms_epsilon: float = 0.75,
        options: KTMGFNInferOptions | None = None,
    ) -> list[Proposals]:
        """Scored segments of every video of a batch (§III.F), for an inference stage.

        For every class (all of them by default, as the paper: "consider the CAS of all action
        categories"; those whose video score reaches ``class_threshold``), the BRM's anchors are
        decoded and filtered as in training (activation < ``min_activation`` dropped, lowest
        OIC per position, OIC > ``max_oic`` dropped, ``options.max_oic`` if set); each kept
        segment, clipped to the video, is scored ``p_conf = p_act · p_oic · p_class``
        (Eq. 5-6; ``p_act`` the mean activation inside, ``p_oic = 1 − OIC``, ``p_class`` the
        video score; each factor switched by ``options.score_act`` / ``score_oic`` /
        ``score_class`` for table VIII). With ``soft_nms_iou``,
        each class's segments go through Gaussian Soft-NMS (Eq. 7).

        Returns:
            one :class:`Proposals` per video, best first; segments in continuous snippet units
            (map with ``SnippetGrid.index_to_seconds``).
        """
        if out.regression is None:
            raise ValueError("kt_mgfn: proposals need the BRM (build with brm=True)")
        options = options if options is not None else KTMGFNInferOptions()
        act_all, video_scores = self.probabilities(out)  # (B, T, C), (B, C)
        max_oic = self.max_oic if options.max_oic is None else options.max_oic
        results = []
        for i in range(act_all.shape[0]):
            n = int(out.mask[i].sum())
            classes = (video_scores[i] >= class_threshold).nonzero().flatten()
            segs, scores, labels = [], [], []
            if n > 0 and len(classes):
                act = act_all[i, :n, classes].T  # (K, n)
                reg = out.regression[i, :n].expand(len(classes), -1, -1, -1)  # (K, n, M, 2)
                lengths = torch.full((len(classes),), n, device=act.device)
                oic, inner_mean, inner = self._anchor_oic(act, reg, lengths)
                best, keep = select_anchors(oic, act, torch.ones_like(act, dtype=torch.bool),
                                            min_activation=self.min_activation,
                                            max_oic=max_oic)
                pick = best.unsqueeze(-1)
                oic_b = oic.gather(2, pick).squeeze(-1)  # (K, n)
                act_b = inner_mean.gather(2, pick).squeeze(-1)
                seg_b = inner.gather(2, pick.unsqueeze(-1).expand(-1, -1, 1, 2)).squeeze(2)
                seg_b = seg_b.clamp(min=0.0, max=float(n))  # (K, n, 2)
                keep &= (seg_b[..., 1] - seg_b[..., 0]) > 1e-3
                for j, c in enumerate(classes.tolist()):
                    sel = keep[j]
                    if not sel.any():
                        continue
                    conf = torch.ones_like(oic_b[j, sel])
                    if options.score_act:
                        conf = conf * act_b[j, sel]
                    if options.score_oic:
                        conf = conf * (1.0 - oic_b[j, sel])
                    if options.score_class:
                        conf = conf * video_scores[i, c]
                    s = seg_b[j, sel]
                    if soft_nms_iou is not None:
                        s, conf = soft_nms(s, conf, iou_threshold=soft_nms_iou,
                                           epsilon=soft_nms_epsilon)
                    segs.append(s)
                    scores.append(conf)
                    labels.append(torch.full((len(conf),), c, dtype=torch.long))
            if segs:
                seg_t, sc_t, lab_t = torch.cat(segs), torch.cat(scores), torch.cat(labels)
                order = torch.argsort(sc_t, descending=True, stable=True)
                results.append(Proposals(seg_t[order], sc_t[order], lab_t[order]))
            else:
                results.append(Proposals(out.cas.new_zeros((0, 2)), out.cas.new_zeros((0,)),
                                         torch.zeros(0, dtype=torch.long)))
        return results

    @torch.no_grad()
    def candidates(
        self, out: KTMGFNOutput, *, settings: Any, options: Any = None
    ) -> list[tuple[int, float, float, float]]:
        """Candidate segments of the single video in ``out`` for the inference loop (§III.F).

        Classes: all of them (§III.F: "consider the CAS of all action categories"); a class the
        video does not show is ranked down by its p_class. ``settings.class_threshold`` is not
        read.

        * With the BRM: its scored proposals (:meth:`proposals`: anchors decoded and filtered
          as in training, ``p_conf = p_act · p_oic · p_class``, Eq. 5-6, each factor switched
          by ``score_act`` / ``score_oic`` / ``score_class``).
        * Without it (table V's rows before "+BRM"): the enhanced CAS thresholded, every maximal
          run of snippets whose activation (:meth:`activations`) reaches one of
          ``settings.cas_thresholds`` a candidate ``[first, last + 1)``, scored by the same
          Eq. 5-6 product as the BRM's proposals: ``p_act`` the mean activation inside,
          ``p_oic = 1 − OIC`` of Eq. (2) with the outer band inflated by this model's γ
          (``inflation``) on each side, ``p_class`` the video score. So the table-V rows differ
          only in where the segments come from, not in how they are ranked.

        Redundancy suppression (Soft-NMS with θ ``settings.nms_iou`` and ε, Eq. 7) is left to
        the inference loop.

        Args:
            out: forward output of a batch of one video.
            settings: ``wtal.infer.InferSettings``.

        Returns:
            ``(class index, start, end, score)`` in continuous snippet units (snippet t covers
            ``[t, t + 1)``), ``end > start``, best first.
        """
        if out.cas.shape[0] != 1:
            raise ValueError(f"kt_mgfn.candidates: one video at a time, got a batch of "
                             f"{out.cas.shape[0]}")
        options = options if options is not None else KTMGFNInferOptions()
        act_all, video_scores = self.probabilities(out)  # (1, T, C), (1, C)
        if self.brm is not None:
            (props,) = self.proposals(out, options=options)
            return [(int(c), float(se[0]), float(se[1]), float(sc)) for se, sc, c in
                    zip(props.segments.tolist(), props.scores.tolist(), props.classes.tolist(),
                        strict=True)]
        n = int(out.mask[0].sum())
        found: list[tuple[int, float, float, float]] = []
        if n == 0:
            return found
        for c in range(act_all.shape[2]):
            act = act_all[0, :n, c]  # (n,)
            seq = act.cpu().numpy()
            runs = sorted({r for level in settings.cas_thresholds
                           for r in runs_above(seq, float(level))})
            if not runs:
                continue
            inner = torch.tensor([[a, b + 1.0] for a, b in runs], dtype=act.dtype,
                                 device=act.device)  # (K, 2)
            width = inner[:, 1] - inner[:, 0]
            outer = torch.stack([inner[:, 0] - self.inflation * width,
                                 inner[:, 1] + self.inflation * width], dim=-1)
            oic, p_act = outer_inner_contrast(act.unsqueeze(0), inner.unsqueeze(0),
                                              outer.unsqueeze(0),
                                              torch.tensor([n], device=act.device))
            conf = torch.ones_like(oic[0])
            if options.score_act:
                conf = conf * p_act[0]
            if options.score_oic:
                conf = conf * (1.0 - oic[0])
            if options.score_class:
                conf = conf * video_scores[0, c]
            found += [(c, float(a), float(b), float(sc))
                      for (a, b), sc in zip(inner.tolist(), conf.tolist(), strict=True)]
        found.sort(key=lambda d: -d[3])
        return found

    def test_indices(
        self, n_snippets: int, *, train_settings: Mapping[str, Any], options: Any = None
    ) -> np.ndarray | None:
        """The snippets a test video is read at (§III.F: "During prediction, we adopt the uniform
        sampling method to sample the input video feature sequence").

        A model trained on sampled sequences (``train.sampling`` sparse, uniform or shot, of
        ``num_segments`` K units: the paper samples sparsely in training, §III.E) reads a test
        video as K uniformly spaced units (:func:`wtal.sampling.uniform_indices`), so that its
        dilated convolutions and snippet-sized anchors see the time scale they were trained
        at; the inference stage maps the CAS and the candidates back to the video's own
        snippets. None (every snippet) when the model was trained on whole videos or crops
        (``sampling: all``) and with ``options.test_sampling == "native"``.
        """
        strategy = train_settings.get("sampling", "all")
        if options is not None and getattr(options, "test_sampling", "uniform") == "native":
            return None
        if strategy == "all" or train_settings.get("feature_length") is not None:
            return None
        return uniform_indices(n_snippets, length=int(train_settings["num_segments"]))

    def unread_infer_settings(self) -> frozenset[str]:
        """Candidates are scored by Eq. 6 (the model's own γ), for every class; with the BRM
        they are its proposals, not CAS runs."""
        unread = {"class_threshold", "inflation", "video_score_weight"}
        if self.brm is not None:
            unread.add("cas_thresholds")
        return frozenset(unread)

    # ---------------------------------------------------------------- objective

    def loss(
        self,
        out: KTMGFNOutput,
        labels: Tensor,
        mask: Tensor,
        *,
        epoch: int,
        step: int = 0,
        reference: TrimmedReps | None = None,
        video_loss: str = "bce",
    ) -> tuple[Tensor, dict[str, float]]:
        """Eq. (4) without the L2 term (Adam's weight decay): L_class + α·L_OIC + β·L_KT.

        * ``L_class``: per stage, the mean over its branch classifiers of the sigmoid
          cross-entropy of their video logits; summed over the stages.
        * ``L_OIC`` (BRM built and ``epoch ≥ brm_start_epoch``): :meth:`oic_objective`.
        * ``L_KT`` (KTM on and the trimmed representations ``reference`` given, what
          :meth:`pretrain` returns): :meth:`knowledge_transfer`; otherwise off, said by
          ``kt_on = 0`` in the parts (and by :meth:`pretrain`'s log and warning).

        Args:
            out: the forward output; labels: (B, C) multi-hot; mask: (B, T);
            epoch: 0-based epoch; reference: the trimmed branch's representations;
            step, video_loss: not used.

        Returns:
            total loss and float parts: ``cls``, ``cls_stage{1,2}``, ``oic``, ``oic_anchors``
            (kept anchors per video), ``brm_on``, ``kt``, ``kt_classes``, ``kt_on``, ``total``.
        """
        del step, video_loss
        y = labels.to(out.branch_logits.dtype)
        parts: dict[str, float] = {}
        total = out.cas.new_zeros(())
        for s in range(out.branch_logits.shape[1]):
            stage = torch.stack([multilabel_bce(out.branch_logits[:, s, j], y)
                                 for j in range(out.branch_logits.shape[2])]).mean()
            parts[f"cls_stage{s + 1}"] = stage.item()
            total = total + stage
        parts["cls"] = total.item()

        brm_on = self.brm is not None and epoch >= self.brm_start_epoch
        parts["brm_on"] = float(brm_on)
        if brm_on:
            oic, n_kept = self.oic_objective(out, labels, mask)
            total = total + self.alpha * oic
            parts["oic"] = oic.item()
            parts["oic_anchors"] = n_kept / max(1, len(labels))
        elif self.brm is not None:
            parts["oic"] = 0.0
            parts["oic_anchors"] = 0.0

        if self.ktm:
            reps = reference
            if reps is None:  # pretrain said why (train.json's "pretrain", a warning)
                parts.update(kt=0.0, kt_classes=0.0, kt_on=0.0)
            else:
                kt, n_cls = self.knowledge_transfer(out.embedding, labels, reps)
                total = total + self.beta * kt
                parts.update(kt=kt.item(), kt_classes=float(n_cls), kt_on=1.0)
        else:
            parts["kt_on"] = 0.0
        parts["total"] = total.item()
        return total, parts
