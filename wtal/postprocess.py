"""Post-processing in pure torch: CAS thresholding into segments, NMS and Soft-NMS (1-D)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def pairwise_tiou(a: Tensor, b: Tensor) -> Tensor:
    """Temporal IoU between segments.

    Args:
        a: (N, 2) [start, end].
        b: (M, 2) [start, end].

    Returns:
        (N, M) IoU, 0 where segments do not overlap.
    """
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1])
             - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)  # (N, M)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter  # (N, M)
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def soft_nms(
    segments: Tensor,
    scores: Tensor,
    *,
    iou_threshold: float = 0.5,
    epsilon: float = 0.75,
    max_keep: int | None = None,
    min_score: float = -float("inf"),
) -> tuple[Tensor, Tensor]:
    """Gaussian Soft-NMS as in KT-MGFN Eq. (7).

    Repeatedly takes the highest-scoring remaining segment τ_m; every other remaining segment
    τ_n with iou(τ_m, τ_n) > θ has its score multiplied by exp(−iou² / ε); segments below
    θ keep their score. Nothing is removed except by ``max_keep`` and ``min_score``.

    Args:
        segments: (N, 2) [start, end].
        scores: (N,) confidences.
        iou_threshold: θ (0.5 on THUMOS14, 0.4 on ActivityNet in KT-MGFN).
        epsilon: ε of the Gaussian (0.75 in KT-MGFN).
        max_keep: keep at most this many, in order of selection.
        min_score: stop when the best remaining decayed score is below this.

    Returns:
        ``(segments, scores)`` in selection order, scores decayed.
    """
    segs = segments.clone().to(torch.float64)
    sc = scores.clone().to(torch.float64)
    keep_segs, keep_scores = [], []
    remaining = torch.arange(len(sc))
    limit = len(sc) if max_keep is None else min(max_keep, len(sc))
    while len(remaining) > 0 and len(keep_scores) < limit:
        best = int(torch.argmax(sc[remaining]))
        m = remaining[best]
        if sc[m] < min_score:
            break
        keep_segs.append(segs[m])
        keep_scores.append(sc[m])
        remaining = torch.cat([remaining[:best], remaining[best + 1:]])
        if len(remaining) == 0:
            break
        iou = pairwise_tiou(segs[m].unsqueeze(0), segs[remaining])[0]  # (R,)
        decay = torch.where(iou > iou_threshold, torch.exp(-(iou**2) / epsilon),
                            torch.ones_like(iou))
        sc[remaining] = sc[remaining] * decay
    if not keep_scores:
        return segments.new_zeros((0, 2)), scores.new_zeros((0,))
    return (torch.stack(keep_segs).to(segments.dtype),
            torch.stack(keep_scores).to(scores.dtype))


def hard_nms(
    segments: Tensor, scores: Tensor, *, iou_threshold: float = 0.5, max_keep: int | None = None
) -> tuple[Tensor, Tensor]:
    """Greedy 1-D NMS: drop every segment overlapping a kept one by more than the threshold."""
    order = torch.argsort(scores, descending=True, stable=True)
    keep: list[int] = []
    suppressed = torch.zeros(len(scores), dtype=torch.bool)
    ious = pairwise_tiou(segments, segments)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        suppressed |= ious[i] > iou_threshold
    idx = torch.tensor(keep, dtype=torch.long)
    return segments[idx], scores[idx]


def runs_above(values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Maximal runs ``[first, last]`` (inclusive) of indices where ``values >= threshold``."""
    above = np.concatenate([[False], values >= threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return [(int(s), int(e) - 1) for s, e in zip(edges[0::2], edges[1::2], strict=True)]


def outer_inner_score(cas: np.ndarray, first: int, last: int, *, inflation: float) -> float:
    """Mean activation inside ``[first, last]`` minus the mean in the surrounding band.

    The band extends ``inflation × length`` snippets (at least one) on each side, clipped to the
    sequence (the outer-inner contrast of AutoLoc / KT-MGFN's OIC).

    Args:
        cas: (T,) activations of one class.
    """
    length = last - first + 1
    pad = max(1, round(inflation * length))
    lo, hi = max(0, first - pad), min(len(cas) - 1, last + pad)
    inner = float(cas[first : last + 1].mean())
    outer_vals = np.concatenate([cas[lo:first], cas[last + 1 : hi + 1]])
    outer = float(outer_vals.mean()) if len(outer_vals) else 0.0
    return inner - outer


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale (T,) values to [0, 1]; a constant sequence becomes zeros."""
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-12:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)
