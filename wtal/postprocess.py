"""Post-processing in pure torch: CAS thresholding into segments, NMS and Soft-NMS (1-D).

Suppression is the greedy algorithm, per group (one group per video and class): select the
group's highest remaining score (the first in input order among equal scores), then re-score
or remove the group's remaining segments that overlap the selection by IoU > θ, and repeat:

* ``"gaussian"`` (KT-MGFN Eq. 7): ``s ← s · exp(−iou² / ε)`` if ``iou > θ``, else unchanged.
  With θ = 0 this is the Gaussian Soft-NMS of Bodla et al. (``iou = 0`` leaves a score as is).
* ``"linear"`` (Bodla et al.): ``s ← s · (1 − iou)`` if ``iou > θ``. The paper writes ``≥``;
  its reference code (``cpu_soft_nms``) and this module use ``>``, like Eq. 7.
* ``"hard"``: segments with ``iou > θ`` are removed (greedy NMS).

:func:`batched_nms` gives the same selections and scores without one step per selection:
groups are split into time clusters that cannot interact, clusters are padded into rows and
run together, and each round selects a whole run of segments per row (see ``_rounds``).
Scores are processed in float64. ``soft_nms`` and ``hard_nms`` are the single-group forms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

#: Suppression methods of :func:`batched_nms`.
NmsMethod = Literal["gaussian", "linear", "hard"]
NMS_METHODS: tuple[str, ...] = ("gaussian", "linear", "hard")

# Elements of the (rows × candidates × slots) work arrays of one suppression round.
_BUDGET = 1 << 22


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
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, 1.0), 0.0)


def _tiou_elementwise(a: Tensor, b: Tensor) -> Tensor:
    """IoU of ``a[..., :]`` and ``b[..., :]`` (broadcast ``(..., 2)``), ``pairwise_tiou``'s formula.

    Returns:
        ``(...)`` IoU, 0 where the union is not positive.
    """
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, 1.0), 0.0)


@dataclass
class _Rows:
    """Padded per-group state of :func:`batched_nms` (one row per running group)."""

    group: Tensor  # (A,) group row in the output
    index: Tensor  # (A, N) input index of each slot, -1 for padding
    segs: Tensor  # (A, N, 2) float64
    score: Tensor  # (A, N) float64 current score, -inf once selected, removed or padding
    by_start: Tensor  # (A, N) slots sorted by start (padding last)
    starts: Tensor  # (A, N) sorted starts, +inf for padding
    reach: Tensor  # (A, N) running maximum of the ends in start order, +inf for padding

    def select(self, rows: Tensor) -> _Rows:
        return _Rows(*(t[rows] for t in (self.group, self.index, self.segs, self.score,
                                           self.by_start, self.starts, self.reach)))


def _pad_groups(segments: Tensor, scores: Tensor, groups: Tensor) -> tuple[_Rows, int]:
    """Lay the segments out as one padded row per group, input order kept within a row."""
    device, n = scores.device, int(scores.shape[0])
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)  # (G,)
    n_groups, n_max = int(counts.shape[0]), int(counts.max())
    member = torch.argsort(inverse, stable=True)  # (N,) grouped, input order kept
    starts = torch.cumsum(counts, 0) - counts  # (G,)
    row = inverse[member]  # (N,)
    col = torch.arange(n, device=device) - starts[row]  # (N,)
    index = torch.full((n_groups, n_max), -1, dtype=torch.long, device=device)
    index[row, col] = member
    segs = torch.zeros((n_groups, n_max, 2), dtype=torch.float64, device=device)
    segs[row, col] = segments[member].to(torch.float64)
    score = torch.full((n_groups, n_max), -float("inf"), dtype=torch.float64, device=device)
    score[row, col] = scores[member].to(torch.float64)
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=device)
    pad = index < 0
    start_key = torch.where(pad, inf, segs[..., 0])  # (G, N_max)
    sorted_starts, by_start = torch.sort(start_key, dim=1, stable=True)
    ends = torch.where(pad, inf, segs[..., 1]).gather(1, by_start)
    reach = torch.cummax(ends, dim=1).values  # (G, N_max)
    rows = _Rows(group=torch.arange(n_groups, device=device), index=index, segs=segs,
                 score=score, by_start=by_start, starts=sorted_starts, reach=reach)
    return rows, n_groups


def _best(score: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` best of each row by score (desc), then column (asc): a stable sort's head.

    ``topk`` finds them in linear time; it does not order ties by column, so its result is
    re-sorted stably by column, then by score. Where the k-th score is tied with a value left
    out, the row's head is taken from a full stable sort instead.

    Args:
        score: (A, N).

    Returns:
        ``(values (A, k), columns (A, k))``.
    """
    if 4 * k >= score.shape[1]:
        values, columns = torch.sort(score, dim=1, descending=True, stable=True)
        return values[:, :k], columns[:, :k]
    values, columns = torch.topk(score, k, dim=1)
    columns = torch.sort(columns, dim=1).values  # by column, then stably by score
    values = score.gather(1, columns)
    values, order = torch.sort(values, dim=1, descending=True, stable=True)
    columns = columns.gather(1, order)
    kth = values[:, -1:]  # (A, 1)
    tied = ((score >= kth).sum(1) > k) & (kth[:, 0] > -float("inf"))  # (A,) a tie left out
    if bool(tied.any()):
        full_values, full_columns = torch.sort(score[tied], dim=1, descending=True, stable=True)
        values[tied], columns[tied] = full_values[:, :k], full_columns[:, :k]
    return values, columns


def _rounds(
    segs: Tensor,
    scores: Tensor,
    ids: Tensor,
    *,
    method: str,
    iou_threshold: float,
    epsilon: float,
    quota: int | None,
    min_score: float,
) -> tuple[Tensor, Tensor]:
    """Greedy suppression of every id's segments; returns the selected indices and scores.

    Each *round* sorts every id's remaining segments by score (stable, so input order breaks
    ties) and selects the longest leading run in which no two segments overlap by more than
    θ: none of them changes another's score and every other segment only loses score, so the
    one-at-a-time algorithm would select exactly this run next. The run's re-scoring is then
    applied to the segments in the run's time windows (binary search on the segments sorted by
    start), each segment multiplied by its weights in selection order.

    Args:
        segs: (N, 2) float64.
        scores: (N,) float64.
        ids: (N,) int64 group of each segment.

    Returns:
        ``(index (K,), score (K,))`` of the selections, in no particular order.
    """
    device = scores.device
    rows, _ = _pad_groups(segs, scores, ids)
    n_max = int(rows.index.shape[1])
    quota = n_max if quota is None else min(n_max, quota)
    n_picked = torch.zeros(int(rows.group.shape[0]), dtype=torch.long, device=device)
    out_index: list[Tensor] = []
    out_score: list[Tensor] = []
    neg_inf = -float("inf")
    positions = torch.arange(n_max, device=device)
    earlier = torch.zeros((0, 0), dtype=torch.bool, device=device)
    while rows.group.numel() > 0:
        n_rows = int(rows.group.shape[0])
        width = max(1, min(n_max, 64, _BUDGET // (n_rows * n_max)))
        cand_score, cand = _best(rows.score, width)  # (A, B)
        cand_segs = rows.segs.gather(1, cand[..., None].expand(-1, -1, 2))  # (A, B, 2)
        pair_iou = _tiou_elementwise(cand_segs[:, :, None], cand_segs[:, None, :])  # (A, B, B)
        if earlier.shape[0] != width:
            earlier = positions[:width, None] < positions[None, :width]  # (B, B) i < j
        conflict = ((pair_iou > iou_threshold) & earlier).any(dim=1)  # (A, B)
        usable = (cand_score > neg_inf) & (cand_score >= min_score)
        stop = conflict | ~usable
        first_stop = torch.where(stop.any(1), stop.to(torch.int8).argmax(1), width)  # (A,)
        run = torch.minimum(first_stop, quota - n_picked[rows.group])  # (A,)
        in_run = positions[None, :width] < run[:, None]  # (A, B)

        rr, jj = in_run.nonzero(as_tuple=True)  # row-major: by row, then selection order
        slot = cand[rr, jj]
        out_index.append(rows.index[rr, slot])
        out_score.append(cand_score[rr, jj])
        n_picked[rows.group] += run
        rows.score[rr, slot] = neg_inf

        sel_segs = cand_segs[rr, jj]  # (S, 2)
        lo = torch.searchsorted(rows.reach[rr], sel_segs[:, :1].contiguous(), right=True)[:, 0]
        hi = torch.searchsorted(rows.starts[rr], sel_segs[:, 1:].contiguous())[:, 0]  # (S,)
        span = int((hi - lo).max()) if rr.numel() else 0
        if span > 0:
            pos = lo[:, None] + positions[None, :span]  # (S, W)
            slots = rows.by_start[rr[:, None], pos.clamp(max=n_max - 1)]  # (S, W)
            iou = _tiou_elementwise(sel_segs[:, None, :], rows.segs[rr[:, None], slots])  # (S, W)
            hit = (pos < hi[:, None]) & (iou > iou_threshold)
            hit &= rows.score[rr[:, None], slots] > neg_inf
            hs, hw = hit.nonzero(as_tuple=True)  # by selection order, then window position
            h_row, h_slot = rr[hs], slots[hs, hw]
            if method == "hard":
                rows.score[h_row, h_slot] = neg_inf
            elif h_row.numel():
                h_iou = iou[hs, hw]
                weight = (torch.exp(-(h_iou * h_iou) / epsilon) if method == "gaussian"
                          else 1.0 - h_iou)
                # the r-th weight of each slot (in selection order) is applied in pass r
                key = h_row * n_max + h_slot
                order = torch.argsort(key, stable=True)
                key = key[order]
                count = torch.arange(key.numel(), device=device)
                head = torch.ones_like(key, dtype=torch.bool)
                head[1:] = key[1:] != key[:-1]
                rank = count - torch.cummax(torch.where(head, count, 0), 0).values
                for r in range(int(rank.max()) + 1):
                    at = order[rank == r]
                    rows.score[h_row[at], h_slot[at]] *= weight[at]

        # done: stopped by an unusable score (not a conflict), quota reached, nothing left
        ended = (run == first_stop) & (first_stop < width)
        ended &= ~conflict.gather(1, first_stop.clamp(max=width - 1)[:, None])[:, 0]
        ended |= n_picked[rows.group] >= quota
        ended |= ~(rows.score > neg_inf).any(1)
        if bool(ended.any()):
            keep_rows = ~ended
            rows = rows.select(keep_rows)
            n_picked = n_picked[keep_rows]
            rows.group = torch.arange(int(rows.group.shape[0]), device=device)
    if not out_index:
        return (torch.zeros(0, dtype=torch.long, device=device),
                torch.zeros(0, dtype=torch.float64, device=device))
    return torch.cat(out_index), torch.cat(out_score)


@contextlib.contextmanager
def _intra_op_threads(device: torch.device, n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads on the CPU (restored afterwards).

    Suppression is a sequence of small tensor operations; on them, intra-op parallelism only
    adds synchronisation, which on a loaded machine costs a scheduler time slice per operation
    (measured: ``exp`` of 600 values, 50 µs → 19 ms with 2 threads and load 12 on 2 cores).
    """
    if device.type != "cpu" or torch.get_num_threads() == n:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _time_clusters(segs: Tensor, groups: Tensor) -> Tensor:
    """Split each group into runs of segments chained by positive overlaps (exactly).

    Segments of different clusters never overlap, so they never re-score each other. Times are
    replaced by their dense ranks, so ``group * n_values + rank`` orders by group, then time,
    in exact integer arithmetic. Returns (N,) int64 cluster ids.
    """
    n = int(segs.shape[0])
    _, ranks = torch.unique(segs.reshape(-1), sorted=True, return_inverse=True)
    ranks = ranks.reshape(n, 2)  # (N, 2) dense ranks of start and end
    n_values = int(ranks.max()) + 2
    _, group_rank = torch.unique(groups, sorted=True, return_inverse=True)
    start_key = group_rank * n_values + ranks[:, 0]
    end_key = group_rank * n_values + torch.maximum(ranks[:, 0], ranks[:, 1])
    order = torch.argsort(start_key, stable=True)  # by group, then start
    reach = torch.cummax(end_key[order], 0).values  # (N,)
    new = torch.ones(n, dtype=torch.bool, device=segs.device)
    new[1:] = start_key[order][1:] >= reach[:-1]  # no positive overlap with anything before
    cluster = torch.empty(n, dtype=torch.long, device=segs.device)
    cluster[order] = torch.cumsum(new, 0) - 1
    return cluster


def batched_nms(
    segments: Tensor,
    scores: Tensor,
    groups: Tensor | None = None,
    *,
    method: NmsMethod = "gaussian",
    iou_threshold: float = 0.5,
    epsilon: float = 0.75,
    max_keep: int | None = None,
    min_score: float = -float("inf"),
) -> tuple[Tensor, Tensor]:
    """NMS or Soft-NMS of every group at once, equal to the one-at-a-time greedy algorithm.

    The greedy algorithm selects the best remaining segment of a group (the first in input
    order among equal scores), re-scores or removes the remaining segments overlapping it by
    IoU > θ, and repeats. Its selections come out in decreasing order of their final scores,
    ties in input order (a later selection never scored more than an earlier one had when it
    was taken). So the groups are split into time clusters that cannot interact, clusters of
    similar size are run together in rounds (see ``_rounds``), and the selections of a group
    are then sorted by final score (desc) and input index (asc).

    Args:
        segments: (N, 2) [start, end].
        scores: (N,) confidences.
        groups: (N,) integer group of each segment (e.g. ``video * n_classes + class``);
            ``None`` puts all segments in one group.
        method: ``"gaussian"`` (Eq. 7), ``"linear"`` or ``"hard"`` (see the module docstring).
        iou_threshold: θ ≥ 0: only segments overlapping the selection by IoU > θ are affected.
        epsilon: ε > 0 of the Gaussian.
        max_keep: select at most this many segments per group.
        min_score: a group stops when its best remaining (decayed) score is below this.

    Returns:
        ``(keep, new_scores)``: (K,) int64 indices into the inputs and their (K,) float64
        scores after decay, ordered by group (ascending) and, within a group, by selection.
    """
    if method not in NMS_METHODS:
        raise ValueError(f"unknown NMS method {method!r}; available: {', '.join(NMS_METHODS)}")
    if method == "gaussian" and not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if not iou_threshold >= 0:
        raise ValueError(f"iou_threshold must be >= 0, got {iou_threshold}")
    n = int(scores.shape[0])
    if segments.shape != (n, 2):
        raise ValueError(f"segments must be ({n}, 2), got {tuple(segments.shape)}")
    device = scores.device
    if n == 0 or (max_keep is not None and max_keep <= 0):
        return (torch.zeros(0, dtype=torch.long, device=device),
                torch.zeros(0, dtype=torch.float64, device=device))
    if groups is None:
        groups = torch.zeros(n, dtype=torch.long, device=device)
    elif groups.shape != (n,):
        raise ValueError(f"groups must be ({n},), got {tuple(groups.shape)}")
    with _intra_op_threads(device, 1):
        return _batched_nms(segments.to(device=device, dtype=torch.float64),
                            scores.to(torch.float64), groups.to(device=device, dtype=torch.long),
                            method=method, iou_threshold=iou_threshold, epsilon=epsilon,
                            max_keep=max_keep, min_score=min_score)


def _batched_nms(
    segs: Tensor,
    sc: Tensor,
    groups: Tensor,
    *,
    method: str,
    iou_threshold: float,
    epsilon: float,
    max_keep: int | None,
    min_score: float,
) -> tuple[Tensor, Tensor]:
    """``batched_nms`` on validated float64 inputs."""
    device = sc.device

    cluster = _time_clusters(segs, groups)  # (N,)
    _, cluster, sizes = torch.unique(cluster, return_inverse=True, return_counts=True)
    bucket = torch.ceil(torch.log2(sizes.to(torch.float64))).to(torch.long)[cluster]  # (N,)
    picked: list[Tensor] = []
    picked_scores: list[Tensor] = []
    for b in torch.unique(bucket).tolist():
        members = (bucket == b).nonzero()[:, 0]
        idx, val = _rounds(segs[members], sc[members], cluster[members], method=method,
                           iou_threshold=iou_threshold, epsilon=epsilon, quota=max_keep,
                           min_score=min_score)
        picked.append(members[idx])
        picked_scores.append(val)
    keep, new_scores = torch.cat(picked), torch.cat(picked_scores)
    # group ascending, then final score descending, then input index ascending
    order = torch.argsort(keep, stable=True)
    order = order[torch.argsort(new_scores[order], descending=True, stable=True)]
    order = order[torch.argsort(groups[keep][order], stable=True)]
    keep, new_scores = keep[order], new_scores[order]
    if max_keep is not None:
        g = groups[keep]
        head = torch.ones_like(g, dtype=torch.bool)
        head[1:] = g[1:] != g[:-1]
        count = torch.arange(g.numel(), device=device)
        rank = count - torch.cummax(torch.where(head, count, 0), 0).values
        keep, new_scores = keep[rank < max_keep], new_scores[rank < max_keep]
    return keep, new_scores


def soft_nms(
    segments: Tensor,
    scores: Tensor,
    *,
    iou_threshold: float = 0.5,
    epsilon: float = 0.75,
    max_keep: int | None = None,
    min_score: float = -float("inf"),
    method: Literal["gaussian", "linear"] = "gaussian",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS of one group; Gaussian as in KT-MGFN Eq. (7) by default.

    Repeatedly takes the highest-scoring remaining segment τ_m; every other remaining segment
    τ_n with iou(τ_m, τ_n) > θ has its score multiplied by exp(−iou² / ε) (``"gaussian"``) or
    by 1 − iou (``"linear"``); segments at or below θ keep their score. Nothing is removed
    except by ``max_keep`` and ``min_score``.

    Args:
        segments: (N, 2) [start, end].
        scores: (N,) confidences.
        iou_threshold: θ (0.5 on THUMOS14, 0.4 on ActivityNet in KT-MGFN).
        epsilon: ε of the Gaussian (0.75 in KT-MGFN).
        max_keep: keep at most this many, in order of selection.
        min_score: stop when the best remaining decayed score is below this.
        method: ``"gaussian"`` or ``"linear"``.

    Returns:
        ``(segments, scores)`` in selection order, scores decayed (input dtypes).
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"soft_nms method must be gaussian or linear, got {method!r}")
    keep, new_scores = batched_nms(segments, scores, method=method, iou_threshold=iou_threshold,
                                   epsilon=epsilon, max_keep=max_keep, min_score=min_score)
    return segments[keep], new_scores.to(scores.dtype)


def hard_nms(
    segments: Tensor, scores: Tensor, *, iou_threshold: float = 0.5, max_keep: int | None = None
) -> tuple[Tensor, Tensor]:
    """Greedy 1-D NMS: drop every segment overlapping a kept one by more than the threshold.

    Returns:
        ``(segments, scores)`` of the kept segments in order of selection (best first; among
        equal scores the earlier input first).
    """
    keep, _ = batched_nms(segments, scores, method="hard", iou_threshold=iou_threshold,
                          max_keep=max_keep)
    return segments[keep], scores[keep]


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


def masked_minmax(x: Tensor, mask: Tensor, *, flat: float = 0.0) -> Tensor:
    """Min-max normalise (B, T, C) along time over the valid snippets of each video, per class,
    into [0, 1] (the CAS normalisation of ECM, CPMN's Eq. 3 and ASSG's seeds).

    Args:
        x: (B, T, C) scores.
        mask: (B, T) valid snippets.
        flat: what a class constant over the video maps to.

    Returns:
        (B, T, C); padding is 0.
    """
    valid = mask.unsqueeze(-1)  # (B, T, 1)
    lo = x.masked_fill(~valid, float("inf")).amin(dim=1, keepdim=True)  # (B, 1, C)
    hi = x.masked_fill(~valid, float("-inf")).amax(dim=1, keepdim=True)  # (B, 1, C)
    span = hi - lo
    ok = torch.isfinite(span) & (span > 1e-12)
    out = torch.where(ok, (x - lo) / torch.where(ok, span, torch.ones_like(span)),
                      torch.full_like(x, flat))
    return out.masked_fill(~valid, 0.0).clamp(0.0, 1.0)


def chosen_classes(video_scores: np.ndarray, threshold: float) -> list[int]:
    """The classes a video is localised for: those whose score reaches ``threshold``, the top
    one if none does (the infer stage's ``class_threshold``)."""
    chosen = [c for c in range(len(video_scores)) if video_scores[c] >= threshold]
    return chosen or [int(np.argmax(video_scores))]
