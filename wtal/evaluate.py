"""Temporal action detection mAP with the exact semantics of two official evaluators.

Two protocols, which give different numbers on the same detections; every result says which
one it is (``protocol`` and ``definition`` in ``map.json``):

``anet`` — activitynet/ActivityNet ``Evaluation/eval_detection.py`` (HEAD 82304fa), the code
that BaSNet, CoLA and most WTAL papers also use on THUMOS14::

    ground truth (subset only) ──► label index in first-seen order ──► GT list per class
    predictions (all videos)   ──► per class, np.argsort(scores)[::-1]
    each prediction, in turn, takes the first GT of its video, in descending tIoU
    (tiou.argsort()[::-1]), with tIoU >= threshold that no earlier prediction took
    ──► cumsum tp/fp ──► VOC all-point interpolated AP ──► mean over the subset's classes

``thumos14`` — the official THUMOS14 MATLAB kit (``TH14evaldet.m``, ``TH14eventdetpr.m``,
``intervaloverlapvalseconds.m``)::

    per class and video: detections sorted by confidence (stable: file order among equal)
    each GT segment, in file order, takes the free detection of highest overlap (the most
    confident among equal overlaps) if overlap > threshold (strict)
    unmatched detections that overlap an Ambiguous segment are not counted as false positives
    all videos (sorted by name) pooled; stable sort by confidence of [TPs, FPs], so among
    equal confidences true positives come first ──► 11-point interpolated AP ──► mean

    overlap = (min(ends) - max(starts)) / (max(ends) - min(starts)), 0 unless the
    intersection is positive: the intersection over the *hull* span. Where the segments
    overlap this is the IoU, but computed as the kit computes it (the ActivityNet code divides
    by len1 + len2 - intersection, which can differ in the last bit). Each interval is first
    put in order (``[min, max]``), as the kit does.

    recall points: MATLAB's ``0:0.1:1``, which is *not* ``np.linspace(0, 1, 11)``: MATLAB
    builds the first half as ``k*0.1`` and the second half as ``1 - k*0.1``, giving 0.6 and
    0.7 where linspace gives 0.6000000000000001 and 0.7000000000000001 (and both give
    0.30000000000000004). ``rec >= t`` at a recall of exactly 6/10 depends on it.

Deliberate differences, all reported rather than raised:

* a predicted label (or class id) not in the ground truth's classes: the official ActivityNet
  code raises ``KeyError`` and the kit prints a warning; here the prediction is skipped and
  counted in ``unknown_labels``;
* THUMOS14: a class without ground truth in the subset (the kit's ``assert(npos>0)``) is left
  out of the mean and listed, with its number of detections, in
  ``classes_without_ground_truth``.

Files: ground truth as ``gt.json`` (ActivityNet schema; with this project's ``taxonomy`` and
``ambiguous`` entries, see :mod:`wtal.datasets`) or as the official THUMOS14 folder
(``<Class>_<subset>.txt``, ``Ambiguous_<subset>.txt``, ``detclasslist.txt``); predictions as
a submission JSON (``results``, optional ``video_scores``) or the official THUMOS14 text
format (``video t1 t2 classid conf`` per line). ``evaluate`` builds the ``map.json`` dict;
``classification_map`` adds video-level classification mAP.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from wtalio import atomic_open, read_json, read_text

__all__ = [
    "DEFAULT_TIOUS",
    "PROTOCOLS",
    "PROTOCOL_DEFINITIONS",
    "THUMOS14_AVERAGES",
    "THUMOS14_RECALL_POINTS",
    "DetectionResult",
    "ThumosDetections",
    "ThumosGroundTruth",
    "anet_detection_map",
    "check_predictions",
    "classification_map",
    "dataset_classes",
    "eleven_point_ap",
    "evaluate",
    "interpolated_prec_rec",
    "read_class_list",
    "read_thumos14_detections",
    "read_thumos14_ground_truth",
    "segment_iou",
    "thumos14_averages",
    "thumos14_detection_map",
    "thumos14_ground_truth_from_json",
    "thumos_overlap",
    "training_record",
    "validate_detections",
    "write_thumos14_detections",
]

logger = logging.getLogger(__name__)

#: Evaluation protocols that ``evaluate`` knows.
PROTOCOLS: tuple[str, ...] = ("anet", "thumos14")

#: One line per protocol, written into every result block.
PROTOCOL_DEFINITIONS: Mapping[str, str] = MappingProxyType({
    "anet": "ActivityNet eval_detection.py: tIoU >= threshold, predictions in score order "
            "claim their best free GT, VOC all-point interpolated AP",
    "thumos14": "THUMOS14 MATLAB kit TH14evaldet.m: overlap (intersection / hull span) > "
                "threshold, each GT in file order claims its best free detection, Ambiguous "
                "overlaps are not false positives, 11-point interpolated AP",
})

#: Default tIoU thresholds: THUMOS14 0.1:0.1:0.7, ActivityNet 0.5:0.05:0.95 (decimal values).
DEFAULT_TIOUS: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "thumos14": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    "anet": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
})

#: The averages THUMOS14 papers report, over these thresholds.
THUMOS14_AVERAGES: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "0.1:0.5": (0.1, 0.2, 0.3, 0.4, 0.5),
    "0.1:0.7": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    "0.3:0.7": (0.3, 0.4, 0.5, 0.6, 0.7),
})

#: MATLAB's ``0:0.1:1``: ``k*0.1`` for the first half, ``1 - k*0.1`` for the second.
THUMOS14_RECALL_POINTS: tuple[float, ...] = (
    *(k * 0.1 for k in range(6)),
    *(1.0 - k * 0.1 for k in range(4, -1, -1)),
)

_AMBIGUOUS = "Ambiguous"
_CLASS_LIST = "detclasslist.txt"
_SUBSET_SUFFIXES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "validation": ("validation", "val"),
    "val": ("val", "validation"),
    "test": ("test", "testing"),
    "testing": ("testing", "test"),
})


# ---------------------------------------------------------------------------------------------
# Numerical kernels
# ---------------------------------------------------------------------------------------------


def _iou_rows(targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Elementwise tIoU of ``targets[i]`` and ``candidates[i]`` (arrays broadcast to ``(N, 2)``).

    The arithmetic is that of the official ``segment_iou`` operation for operation, so the
    values are bit-identical. A zero union gives ``nan`` (silently), as there.
    """
    tt1 = np.maximum(targets[..., 0], candidates[..., 0])
    tt2 = np.minimum(targets[..., 1], candidates[..., 1])
    intersection = (tt2 - tt1).clip(0)
    union = (candidates[..., 1] - candidates[..., 0]) + (targets[..., 1] - targets[..., 0])
    union = union - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / union


def segment_iou(target: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Temporal IoU between one segment and each of several segments (ActivityNet).

    Args:
        target: ``(2,)`` array ``[start, end]``.
        candidates: ``(N, 2)`` array of ``[start, end]`` rows.

    Returns:
        ``(N,)`` float64 array: ``max(0, min(ends) - max(starts))`` divided by
        ``len(target) + len(candidate) - intersection``. As in the official code, a zero
        union gives ``nan`` (no warning is raised here).
    """
    target = np.asarray(target, dtype=np.float64).reshape(2)
    candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    return _iou_rows(target[None, :], candidates)


def thumos_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Overlap of the THUMOS14 kit (``intervaloverlapvalseconds``, default normalisation).

    Each interval is first put in order (``[min, max]``); the overlap is the intersection
    ``min(ends) - max(starts)`` divided by the hull span ``max(ends) - min(starts)`` where the
    intersection is positive, else 0.

    Args:
        a: ``(..., 2)`` intervals.
        b: ``(..., 2)`` intervals, broadcast against ``a``.

    Returns:
        ``(...)`` float64 overlaps in [0, 1].
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a0, a1 = np.minimum(a[..., 0], a[..., 1]), np.maximum(a[..., 0], a[..., 1])
    b0, b1 = np.minimum(b[..., 0], b[..., 1]), np.maximum(b[..., 0], b[..., 1])
    hull = np.maximum(a1, b1) - np.minimum(a0, b0)
    inter = np.minimum(a1, b1) - np.maximum(a0, b0)
    positive = inter > 0
    return np.where(positive, inter / np.where(positive, hull, 1.0), 0.0)


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """VOC2010+ all-point interpolated average precision (ActivityNet).

    Precision is padded with 0 at both ends and recall with 0 and 1; precision is replaced by
    its running maximum from the right, and ``Δrecall · precision`` is summed wherever recall
    changes.
    """
    mprec = np.hstack([[0.0], np.asarray(prec, dtype=np.float64), [0.0]])
    mrec = np.hstack([[0.0], np.asarray(rec, dtype=np.float64), [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def eleven_point_ap(prec: np.ndarray, rec: np.ndarray) -> float:
    """11-point interpolated AP of the THUMOS14 kit (``prap``).

    For each recall point ``t`` of MATLAB's ``0:0.1:1`` (:data:`THUMOS14_RECALL_POINTS`), the
    highest precision at a recall ``>= t`` (0 if none); the eleven values are summed as
    ``ap = ap + p/11`` in order.

    Args:
        prec: ``(n,)`` precision in ranking order.
        rec: ``(n,)`` recall in ranking order (non-decreasing).
    """
    prec = np.asarray(prec, dtype=np.float64)
    rec = np.asarray(rec, dtype=np.float64)
    n_points = len(THUMOS14_RECALL_POINTS)
    if prec.size == 0:
        return 0.0
    suffix_max = np.maximum.accumulate(prec[::-1])[::-1]  # max(prec[i:])
    first = np.searchsorted(rec, THUMOS14_RECALL_POINTS, side="left")  # first rec >= t
    ap = 0.0
    for i in first.tolist():
        p = float(suffix_max[i]) if i < prec.size else 0.0
        ap = ap + p / n_points
    return ap


def thumos14_averages(tious: Sequence[float], m_ap: Sequence[float]) -> dict[str, float]:
    """The usual THUMOS14 averages of mAP (``0.1:0.5``, ``0.1:0.7``, ``0.3:0.7``).

    Only the ranges whose thresholds were all evaluated (to 1e-9) are returned.
    """
    values = [(float(t), float(m)) for t, m in zip(tious, m_ap, strict=True)]
    out: dict[str, float] = {}
    for name, wanted in THUMOS14_AVERAGES.items():
        picked = []
        for w in wanted:
            match = [m for t, m in values if abs(t - w) < 1e-9]
            if not match:
                break
            picked.append(match[0])
        else:
            out[name] = float(np.mean(picked))
    return out


def _segment_bounds(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, local)`` of consecutive blocks of ``counts`` elements.

    ``starts[i]`` is where block ``i`` begins; ``local[j]`` is element ``j``'s offset in its
    block. Shapes ``(B,)`` and ``(counts.sum(),)``.
    """
    ends = np.cumsum(counts)
    starts = ends - counts
    total = int(ends[-1]) if len(ends) else 0
    return starts, np.arange(total) - np.repeat(starts, counts)


def _greedy_matching(
    block_step: np.ndarray,
    block_size: np.ndarray,
    pair_target: np.ndarray,
    pair_score: np.ndarray,
    eligible: np.ndarray,
    n_targets: int,
) -> np.ndarray:
    """Sequential greedy matching, run for all independent groups and thresholds at once.

    Pairs come in *blocks* (the candidate pairs of one prediction, or of one GT segment),
    laid out block after block. Each block belongs to a step; the blocks of one step belong to
    different groups, so they never compete for a target, while a block sees every target
    locked at earlier steps. For every threshold, a block takes, among its eligible pairs
    whose target is still free, the one with the highest ``pair_score`` (the first in layout
    order among equal scores), and locks its target.

    Args:
        block_step: ``(B,)`` step of each block, non-decreasing.
        block_size: ``(B,)`` pairs per block (at least 1).
        pair_target: ``(P,)`` target (GT or detection) of each pair.
        pair_score: ``(P,)`` preference of each pair (higher first).
        eligible: ``(K, P)`` bool per threshold and pair.
        n_targets: number of targets.

    Returns:
        ``(K, B)`` pair taken by each block, or -1.
    """
    n_thr, n_blocks = eligible.shape[0], len(block_size)
    taken = np.full((n_thr, n_blocks), -1, dtype=np.int64)
    if n_blocks == 0:
        return taken
    locked = np.zeros((n_thr, n_targets), dtype=bool)
    block_start = np.cumsum(block_size) - block_size
    step_first = np.flatnonzero(np.r_[True, block_step[1:] != block_step[:-1]])
    step_last = np.r_[step_first[1:], n_blocks]
    for b0, b1 in zip(step_first.tolist(), step_last.tolist(), strict=True):
        p0 = int(block_start[b0])
        p1 = int(block_start[b1 - 1] + block_size[b1 - 1])
        tgt = pair_target[p0:p1]
        value = np.where(eligible[:, p0:p1] & ~locked[:, tgt], pair_score[p0:p1], -np.inf)
        heads = block_start[b0:b1] - p0
        best = np.maximum.reduceat(value, heads, axis=1)  # (K, blocks of the step)
        width = p1 - p0
        at_best = value == np.repeat(best, block_size[b0:b1], axis=1)
        first = np.minimum.reduceat(np.where(at_best, np.arange(width), width), heads, axis=1)
        kk, bb = np.nonzero(best > -np.inf)
        chosen = first[kk, bb]
        locked[kk, tgt[chosen]] = True
        taken[kk, b0 + bb] = p0 + chosen
    return taken


def _block_rank(owner: np.ndarray) -> np.ndarray:
    """Rank of each element among the elements of its owner, in array order (owners sorted)."""
    return np.arange(len(owner)) - np.searchsorted(owner, owner, side="left")


def _anet_ap(
    gt_vid: np.ndarray,
    gt_labels: np.ndarray,
    gt_segments: np.ndarray,
    pred_vid: np.ndarray,
    pred_labels: np.ndarray,
    pred_segments: np.ndarray,
    pred_scores: np.ndarray,
    n_classes: int,
    tious: np.ndarray,
    curves: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """AP per class and threshold, as ``compute_average_precision_detection`` for each class.

    With ``curves``, each class's (precision, recall) in ranking order at the first threshold
    is stored there (class index → arrays), for the report's PR curves.

    ``gt_vid`` and ``pred_vid`` are video ids in one shared numbering. Vectorised over
    classes, videos and thresholds; the only sequential dimension is the rank of a prediction
    among the predictions of its class and video. Returns ``(C, K)``.
    """
    n_thr = len(tious)
    ap = np.zeros((n_classes, n_thr))
    n_pred = len(pred_vid)
    if n_pred == 0:
        return ap
    n_vid = int(max(gt_vid.max(initial=-1), pred_vid.max(initial=-1))) + 1

    # Each class's predictions in the official order: argsort()[::-1] of its scores taken in
    # submission order (not a stable order; the same call on the same array repeats it).
    by_class = np.argsort(pred_labels, kind="stable")
    class_counts = np.bincount(pred_labels, minlength=n_classes)
    class_starts = np.cumsum(class_counts) - class_counts
    seq = np.empty(n_pred, dtype=np.int64)  # position in the ranking -> prediction row
    for c in np.flatnonzero(class_counts).tolist():
        span = slice(int(class_starts[c]), int(class_starts[c] + class_counts[c]))
        rows = by_class[span]
        seq[span] = rows[pred_scores[rows].argsort()[::-1]]

    # GT groups (class, video), GT order kept within a group.
    gt_key = gt_labels * n_vid + gt_vid
    gt_order = np.argsort(gt_key, kind="stable")
    group_key, group_start, group_size = np.unique(gt_key[gt_order], return_index=True,
                                                   return_counts=True)
    seq_key = pred_labels[seq] * n_vid + pred_vid[seq]
    g = np.searchsorted(group_key, seq_key).clip(max=len(group_key) - 1)
    matched = np.flatnonzero(group_key[g] == seq_key)  # ranking positions with GT to match
    tp = np.zeros((n_thr, n_pred))
    if len(matched):
        mg = g[matched]  # (Pm,) group of each matched prediction
        n_pairs = group_size[mg]
        pair_start, local = _segment_bounds(n_pairs)
        owner = np.repeat(np.arange(len(matched)), n_pairs)
        pair_gt = gt_order[np.repeat(group_start[mg], n_pairs) + local]
        tiou = _iou_rows(pred_segments[seq[matched[owner]]], gt_segments[pair_gt])

        # A prediction tries its GTs in tiou.argsort()[::-1] order: nan first, then by
        # decreasing tIoU. A plain sort gives the same order except among equal values, which
        # matter only if they can match (tIoU >= lowest threshold) or are both nan; for those
        # predictions the official call itself decides.
        nan = np.isnan(tiou)
        key = np.where(nan, -np.inf, -tiou)
        pref = np.lexsort((local, key, owner))
        pref_rank = np.empty(len(pref), dtype=np.int64)
        pref_rank[pref] = local  # owner-major, so the k-th of a block gets rank k
        s_key, s_owner = key[pref], owner[pref]
        same = s_owner[1:] == s_owner[:-1]
        tie = same & (s_key[1:] == s_key[:-1]) & ~(-s_key[1:] < tious.min())
        for i in np.unique(s_owner[1:][tie]).tolist():
            block = int(pair_start[i]) + np.arange(int(n_pairs[i]))
            pref_rank[block[tiou[block].argsort()[::-1]]] = np.arange(len(block))

        # Step j: the j-th prediction (in ranking order) of every (class, video) group.
        order = np.argsort(mg, kind="stable")
        step = np.empty(len(mg), dtype=np.int64)
        step[order] = _block_rank(mg[order])
        by_step = np.argsort(step, kind="stable")  # blocks in step order
        block_size = n_pairs[by_step]
        _, block_local = _segment_bounds(block_size)
        layout = np.repeat(pair_start[by_step], block_size) + block_local  # pair per slot
        eligible = ~(tiou[layout][None, :] < tious[:, None])  # nan passes, as officially
        taken = _greedy_matching(step[by_step], block_size, pair_gt[layout],
                                 -pref_rank[layout].astype(np.float64), eligible,
                                 len(gt_vid))
        tp[:, matched[by_step]] = taken >= 0

    # AP per class from the ranked TP/FP flags, as the official code computes it.
    for c in np.flatnonzero(class_counts).tolist():
        block = tp[:, class_starts[c] : class_starts[c] + class_counts[c]]  # (K, M_c)
        tp_cumsum = np.cumsum(block, axis=1)
        fp_cumsum = np.cumsum(1.0 - block, axis=1)
        recall = tp_cumsum / float(np.count_nonzero(gt_labels == c))
        precision = tp_cumsum / (tp_cumsum + fp_cumsum)
        for t in range(n_thr):
            ap[c, t] = interpolated_prec_rec(precision[t], recall[t])
        if curves is not None:
            curves[c] = (precision[0], recall[0])
    return ap


def _thumos_ap(
    gt_rank: np.ndarray,
    gt_labels: np.ndarray,
    gt_segments: np.ndarray,
    amb_rank: np.ndarray,
    amb_segments: np.ndarray,
    det_rank: np.ndarray,
    det_labels: np.ndarray,
    det_segments: np.ndarray,
    det_scores: np.ndarray,
    n_classes: int,
    tious: np.ndarray,
    curves: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """AP per class and threshold, as ``TH14eventdetpr`` for each class.

    With ``curves``, each class's (precision, recall) at the first threshold is stored there.

    ``*_rank`` are the videos' positions in the sorted list of all video names (the kit's
    ``unique``), ``*_labels`` class indices; GT rows are in file order, detections in file
    order. Vectorised over classes, videos and thresholds; the only sequential dimension is
    the position of a GT segment in its (class, video) list. Returns ``(C, K)`` (0 for a class
    without GT: the caller leaves those out).
    """
    n_thr = len(tious)
    ap = np.zeros((n_classes, n_thr))
    n_det = len(det_scores)
    n_vid = int(max(gt_rank.max(initial=-1), amb_rank.max(initial=-1),
                    det_rank.max(initial=-1))) + 1
    npos = np.bincount(gt_labels, minlength=n_classes)

    # Detections by class, video, confidence (descending), file order: each (class, video)
    # block in the order of the kit's sort(-conf) (MATLAB's sort is stable).
    file_index = np.arange(n_det)
    det_order = np.lexsort((file_index, -det_scores, det_rank, det_labels))
    det_key = (det_labels * n_vid + det_rank)[det_order]
    gt_key = gt_labels * n_vid + gt_rank
    gt_order = np.argsort(gt_key, kind="stable")  # file order within a (class, video)
    gkey, gfirst, gcount = np.unique(gt_key[gt_order], return_index=True, return_counts=True)
    dkey, dfirst, dcount = np.unique(det_key, return_index=True, return_counts=True)
    both, gi, di = np.intersect1d(gkey, dkey, assume_unique=True, return_indices=True)

    free = np.ones((n_thr, n_det), dtype=bool)  # per threshold, detection row
    if len(both):
        # Step k: the k-th GT (file order) of every (class, video) with detections. Its block
        # holds one pair per detection of the group, in sorted order; it takes the free one
        # of highest overlap (the first among equal overlaps) if that overlap > threshold.
        n_gt_g, n_det_g = gcount[gi], dcount[di]
        gt_rows = np.repeat(gfirst[gi], n_gt_g) + _segment_bounds(n_gt_g)[1]
        gt_group = np.repeat(np.arange(len(both)), n_gt_g)
        step = _segment_bounds(n_gt_g)[1]
        by_step = np.lexsort((gt_group, step))  # blocks: by step, then group
        block_group = gt_group[by_step]
        block_gt = gt_order[gt_rows[by_step]]
        block_size = n_det_g[block_group]
        _, local = _segment_bounds(block_size)
        pair_det = det_order[np.repeat(dfirst[di][block_group], block_size) + local]
        overlap = thumos_overlap(np.repeat(gt_segments[block_gt], block_size, axis=0),
                                 det_segments[pair_det])
        eligible = overlap[None, :] > tious[:, None]  # strict, as the kit
        taken = _greedy_matching(step[by_step], block_size, pair_det, overlap, eligible,
                                 n_det)
        kk, bb = np.nonzero(taken >= 0)
        free[kk, pair_det[taken[kk, bb]]] = False

    # Unmatched detections overlapping an Ambiguous segment of their video are not counted.
    ambiguous = np.zeros(n_det, dtype=bool)
    if len(amb_rank) and n_det:
        amb_order = np.argsort(amb_rank, kind="stable")
        first = np.searchsorted(amb_rank[amb_order], det_rank, side="left")
        count = np.searchsorted(amb_rank[amb_order], det_rank, side="right") - first
        owner = np.repeat(file_index, count)
        rows = amb_order[np.repeat(first, count) + _segment_bounds(count)[1]]
        hit = thumos_overlap(amb_segments[rows], det_segments[owner]) > 0
        ambiguous[owner[hit]] = True

    # Pool per class: [TPs of every video, FPs of every video] (videos in name order, each in
    # its confidence order), then a stable sort by confidence. Equivalently: class, confidence
    # (descending), TP before FP, video, file order.
    base = np.lexsort((file_index, det_rank, -det_scores, det_labels))
    base_label, base_score = det_labels[base], det_scores[base]
    run = np.cumsum(np.r_[True, (base_label[1:] != base_label[:-1])
                          | (base_score[1:] != base_score[:-1])])  # (label, score) run id
    for t in range(n_thr):
        is_tp = ~free[t, base]
        counted = is_tp | ~ambiguous[base]
        rows = np.flatnonzero(counted)
        rows = rows[np.argsort(run[rows] * 2 + ~is_tp[rows], kind="stable")]
        labels = base_label[rows]
        bounds = np.searchsorted(labels, np.arange(n_classes + 1))
        tp_flags = is_tp[rows]
        for c in np.flatnonzero(npos).tolist():
            flags = tp_flags[bounds[c] : bounds[c + 1]]
            tp = np.cumsum(flags, dtype=np.float64)
            fp = np.cumsum(~flags, dtype=np.float64)
            ap[c, t] = eleven_point_ap(tp / (fp + tp), tp / float(npos[c]))
            if curves is not None and t == 0:
                curves[c] = (tp / (fp + tp), tp / float(npos[c]))
    return ap


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroundTruth:
    """The subset's ground truth, flattened in database order then annotation order."""

    videos: tuple[str, ...]  # every video of the subset, with or without annotations
    labels: tuple[str, ...]  # class order: first seen
    instance_videos: tuple[str, ...]
    instance_labels: tuple[int, ...]
    segments: np.ndarray  # (N, 2) float64


def _segment(value: Any, where: str) -> tuple[float, float]:
    """Cast a ``[start, end]`` pair with ``float()``; a malformed one raises ``ValueError``."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{where}: segment must be a [start, end] pair, got {value!r}")
    try:
        return float(value[0]), float(value[1])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: segment values must be numbers, got {value!r}") from err


def _parse_ground_truth(ground_truth: Mapping[str, Any], subset: str, source: str) -> _GroundTruth:
    """Read the subset's videos and annotations from an ActivityNet-style dict."""
    database = ground_truth.get("database") if isinstance(ground_truth, Mapping) else None
    if not isinstance(database, Mapping):
        raise ValueError(f"{source}: no 'database' mapping (ActivityNet ground-truth schema)")
    videos: list[str] = []
    label_index: dict[str, int] = {}
    instance_videos: list[str] = []
    instance_labels: list[int] = []
    segments: list[tuple[float, float]] = []
    for vid, entry in database.items():
        if not isinstance(entry, Mapping) or "subset" not in entry:
            raise ValueError(f"{source}: video {vid!r} has no 'subset' field")
        if entry["subset"] != subset:
            continue
        videos.append(vid)
        annotations = entry.get("annotations")
        if not isinstance(annotations, list):
            raise ValueError(f"{source}: video {vid!r} has no 'annotations' list")
        for ann in annotations:
            where = f"{source}: video {vid!r}"
            if not isinstance(ann, Mapping) or "segment" not in ann or "label" not in ann:
                raise ValueError(f"{where}: annotation without 'segment' and 'label': {ann!r}")
            label = ann["label"]
            if not isinstance(label, str):
                raise ValueError(f"{where}: label must be a string, got {label!r}")
            if label not in label_index:
                label_index[label] = len(label_index)
            instance_videos.append(vid)
            instance_labels.append(label_index[label])
            segments.append(_segment(ann["segment"], where))
    return _GroundTruth(
        videos=tuple(videos),
        labels=tuple(label_index),
        instance_videos=tuple(instance_videos),
        instance_labels=tuple(instance_labels),
        segments=np.asarray(segments, dtype=np.float64).reshape(-1, 2),
    )


@dataclass(frozen=True)
class _RawPredictions:
    """Predictions in file order, labels not yet checked against a ground truth."""

    names: tuple[str, ...]  # distinct videos, in order of appearance
    video: np.ndarray  # (M,) int64 index into names
    labels: tuple[str | None, ...]  # None: a class id that the class list does not have
    segments: np.ndarray  # (M, 2) float64
    scores: tuple[int | float, ...]  # as given: all-int scores stay ints, as pandas infers
    unknown: Mapping[str, int]  # unknown class ids, "class id 42" -> count
    video_scores: Mapping[str, Any] | None = None


def raw_from_json(predictions: Mapping[str, Any], source: str) -> _RawPredictions:
    """Read the ``results`` (and ``video_scores``) of a submission dict."""
    results = predictions.get("results") if isinstance(predictions, Mapping) else None
    if not isinstance(results, Mapping):
        raise ValueError(f"{source}: no 'results' mapping (ActivityNet submission schema)")
    names: list[str] = []
    counts: list[int] = []
    labels: list[str | None] = []
    starts: list[float] = []
    ends: list[float] = []
    scores: list[int | float] = []
    for vid, entries in results.items():
        where = f"{source}: video {vid!r}"
        if not isinstance(entries, list):
            raise ValueError(f"{where}: results must be a list of detections")
        for det in entries:
            try:  # the common case, checked fast; anything else gets the full checks below
                label, score, seg = det["label"], det["score"], det["segment"]
                ok = (type(label) is str and type(score) in (float, int)
                      and type(seg) is list and len(seg) == 2)
            except (KeyError, TypeError, IndexError):
                ok = False
            if not ok:
                if not isinstance(det, Mapping) or not {"label", "score", "segment"} <= det.keys():
                    raise ValueError(f"{where}: detection without 'label', 'score', 'segment'")
                label, score, seg = det["label"], det["score"], det["segment"]
                if not isinstance(label, str):
                    raise ValueError(f"{where}: label must be a string, got {label!r}")
                if isinstance(score, bool) or not isinstance(score, int | float):
                    raise ValueError(f"{where}: score must be a number, got {score!r}")
                start, end = _segment(seg, where)
            else:
                try:
                    start, end = float(seg[0]), float(seg[1])
                except (TypeError, ValueError):
                    start, end = _segment(seg, where)  # raises, naming the video
            starts.append(start)
            ends.append(end)
            labels.append(label)
            scores.append(score)
        names.append(vid)
        counts.append(len(entries))
    video_scores = predictions.get("video_scores")
    if video_scores is not None and not isinstance(video_scores, Mapping):
        raise ValueError(f"{source}: 'video_scores' must map video -> label scores")
    return _RawPredictions(
        names=tuple(names),
        video=np.repeat(np.arange(len(names), dtype=np.int64), counts),
        labels=tuple(labels),
        segments=np.stack([np.asarray(starts, dtype=np.float64),
                           np.asarray(ends, dtype=np.float64)], axis=1),
        scores=tuple(scores),
        unknown=MappingProxyType({}),
        video_scores=video_scores,
    )


@dataclass(frozen=True)
class _Predictions:
    """Predictions with a known label, in submission order."""

    names: tuple[str, ...]  # video names
    video: np.ndarray  # (M,) int64 index into names
    labels: np.ndarray  # (M,) int64 class index
    segments: np.ndarray  # (M, 2) float64
    scores: np.ndarray  # (M,) int64 if every score is an int (as pandas would infer), else float64
    unknown: dict[str, int] = field(default_factory=dict)


def _index_predictions(raw: _RawPredictions, label_index: Mapping[str, int]) -> _Predictions:
    """Keep the predictions whose label is in ``label_index``; count the others per label."""
    unknown: dict[str, int] = dict(raw.unknown)
    lookup = {label: i for label, i in label_index.items()}
    idx = np.fromiter((lookup.get(label, -1) if label is not None else -1
                       for label in raw.labels), dtype=np.int64, count=len(raw.labels))
    keep = idx >= 0
    if keep.all():
        scores_kept: Sequence[int | float] = raw.scores
    else:
        rows = np.flatnonzero(keep).tolist()
        scores_kept = [raw.scores[i] for i in rows]
        for i in np.flatnonzero(~keep).tolist():
            label = raw.labels[i]
            if label is not None:
                unknown[label] = unknown.get(label, 0) + 1
    score_arr = np.array(scores_kept)
    if score_arr.dtype.kind not in "if":  # empty, or ints beyond int64
        score_arr = np.array(scores_kept, dtype=np.float64)
    return _Predictions(
        names=raw.names,
        video=raw.video[keep],
        labels=idx[keep],
        segments=raw.segments[keep].reshape(-1, 2),
        scores=score_arr,
        unknown=unknown,
    )


def _parse_predictions(
    predictions: Mapping[str, Any], label_index: Mapping[str, int], source: str
) -> _Predictions:
    """Read the ``results`` of a submission; unknown labels are counted, not raised."""
    return _index_predictions(raw_from_json(predictions, source), label_index)


def _video_ids(*groups: Sequence[str]) -> tuple[list[str], list[np.ndarray]]:
    """Shared integer ids for several lists of video names: ``(sorted names, ids per list)``.

    Ids are positions in the sorted list of all distinct names (the order MATLAB's
    ``unique`` gives the kit's video loop). Strings are handled once per distinct name.
    """
    distinct = sorted({name for group in groups for name in set(group)})
    position = {name: i for i, name in enumerate(distinct)}
    return distinct, [np.fromiter((position[n] for n in group), dtype=np.int64, count=len(group))
                      for group in groups]


def _thresholds(tious: Sequence[float]) -> np.ndarray:
    """Validate tIoU thresholds: a non-empty 1-D sequence of finite numbers."""
    arr = np.asarray(tious, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"tious must be a non-empty 1-D sequence of finite numbers: {tious!r}")
    return arr


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


# ---------------------------------------------------------------------------------------------
# THUMOS14 official files
# ---------------------------------------------------------------------------------------------


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines of a text file, split on any whitespace, with 1-based line numbers."""
    text = read_text(path)  # UTF-8, a byte-order mark skipped; else an error naming the line
    return [(n, f) for n, line in enumerate(text.splitlines(), start=1) if (f := line.split())]


def _finite(token: str, what: str, where: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{where}: {what} must be a number, got {token!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} must be finite, got {token!r}")
    return value


def _class_id(token: str, where: str) -> int:
    try:
        return int(token)
    except ValueError:
        value = _finite(token, "class id", where)
        if not value.is_integer():
            raise ValueError(f"{where}: class id must be an integer, got {token!r}") from None
        return int(value)


def read_class_list(path: str | os.PathLike[str]) -> dict[int, str]:
    """Read a ``detclasslist.txt``: ``id name`` per line (any whitespace), in file order.

    Raises:
        ValueError: a malformed line, or a repeated id or name (naming the file and line).
    """
    path = Path(path)
    out: dict[int, str] = {}
    for lineno, fields in _lines(path):
        where = f"{path}:{lineno}"
        if len(fields) != 2:
            raise ValueError(f"{where}: expected 'id name', got {' '.join(fields)!r}")
        cid = _class_id(fields[0], where)
        if cid in out or fields[1] in out.values():
            raise ValueError(f"{where}: class id {cid} or name {fields[1]!r} appears twice")
        out[cid] = fields[1]
    if not out:
        raise ValueError(f"{path}: no classes")
    return out


@dataclass(frozen=True, eq=False)
class ThumosGroundTruth:
    """Ground truth of one subset in the THUMOS14 kit's terms.

    Attributes:
        subset: the subset name.
        classes: class names in class order (``detclasslist.txt`` or ``taxonomy`` order).
        class_ids: detection class id → class name.
        videos: the subset's videos (annotated, or with Ambiguous segments only).
        instance_videos: per GT segment, its video; segments grouped by class in class order,
            in file (annotation) order within a class.
        instance_labels: ``(N,)`` int64 class index of each GT segment.
        segments: ``(N, 2)`` float64 ``[t1, t2]`` as read.
        ambiguous_videos: per Ambiguous segment, its video.
        ambiguous: ``(A, 2)`` float64 Ambiguous segments.
    """

    subset: str
    classes: tuple[str, ...]
    class_ids: Mapping[int, str]
    videos: tuple[str, ...]
    instance_videos: tuple[str, ...]
    instance_labels: np.ndarray
    segments: np.ndarray
    ambiguous_videos: tuple[str, ...]
    ambiguous: np.ndarray

    def to_database(self) -> dict[str, Any]:
        """The same ground truth as an ActivityNet-style ``{"database": ...}`` dict."""
        database: dict[str, Any] = {v: {"subset": self.subset, "annotations": []}
                                    for v in self.videos}
        for vid, label, (start, end) in zip(self.instance_videos, self.instance_labels.tolist(),
                                            self.segments.tolist(), strict=True):
            database[vid]["annotations"].append(
                {"segment": [start, end], "label": self.classes[label]})
        return {"database": database}


def _subset_files(folder: Path, subset: str) -> str:
    """The file suffix of ``subset`` in ``folder`` (``validation`` may be spelt ``val``)."""
    for suffix in _SUBSET_SUFFIXES.get(subset, (subset,)):
        if any(folder.glob(f"*_{suffix}.txt")):
            return suffix
    raise FileNotFoundError(f"{folder}: no annotation files '*_{subset}.txt'")


def read_thumos14_ground_truth(
    folder: str | os.PathLike[str],
    subset: str,
    *,
    class_list: str | os.PathLike[str] | None = None,
) -> ThumosGroundTruth:
    """Read the official THUMOS14 ground-truth folder, as the kit does.

    The classes and their detection ids come from ``class_list``, else the folder's
    ``detclasslist.txt``; without one, every ``<Class>_<subset>.txt`` except ``Ambiguous`` is a
    class, in sorted order, with ids 1, 2, … (the order WTAL codebases use). Each class file
    has ``video t1 t2`` lines (any whitespace). ``Ambiguous_<subset>.txt`` is optional (the
    kit requires it; a warning is logged). ``subset`` is the file suffix (``test``, ``val``;
    ``validation`` finds ``val`` files).

    Raises:
        FileNotFoundError: no folder, no files for the subset, or a listed class's file.
        ValueError: a malformed line (file and line named).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: ground-truth folder does not exist")
    suffix = _subset_files(folder, subset)
    list_path = Path(class_list) if class_list is not None else folder / _CLASS_LIST
    if list_path.exists():
        class_ids = read_class_list(list_path)
    else:
        names = sorted(p.name[: -len(f"_{suffix}.txt")] for p in folder.glob(f"*_{suffix}.txt"))
        names = [n for n in names if n != _AMBIGUOUS]
        class_ids = {i + 1: name for i, name in enumerate(names)}
        logger.info("%s: no %s; classes %s get ids 1..%d in sorted order",
                    folder, _CLASS_LIST, ", ".join(names), len(names))
    classes = tuple(class_ids.values())

    def read(name: str) -> list[tuple[str, float, float]]:
        path = folder / f"{name}_{suffix}.txt"
        rows = []
        for lineno, fields in _lines(path):
            where = f"{path}:{lineno}"
            if len(fields) != 3:
                raise ValueError(f"{where}: expected 'video t1 t2', got {' '.join(fields)!r}")
            rows.append((fields[0], _finite(fields[1], "t1", where),
                         _finite(fields[2], "t2", where)))
        return rows

    instance_videos: list[str] = []
    labels: list[int] = []
    segments: list[tuple[float, float]] = []
    for c, name in enumerate(classes):
        if not (folder / f"{name}_{suffix}.txt").exists():
            raise FileNotFoundError(f"{folder / f'{name}_{suffix}.txt'}: missing GT file of "
                                    f"class {name!r}")
        for vid, t1, t2 in read(name):
            instance_videos.append(vid)
            labels.append(c)
            segments.append((t1, t2))
    amb_path = folder / f"{_AMBIGUOUS}_{suffix}.txt"
    if amb_path.exists():
        amb = read(_AMBIGUOUS)
    else:
        logger.warning("%s: not found; no Ambiguous segments", amb_path)
        amb = []
    return ThumosGroundTruth(
        subset=subset,
        classes=classes,
        class_ids=MappingProxyType(dict(class_ids)),
        videos=tuple(sorted(set(instance_videos) | {v for v, _, _ in amb})),
        instance_videos=tuple(instance_videos),
        instance_labels=_readonly(np.asarray(labels, dtype=np.int64)),
        segments=_readonly(np.asarray(segments, dtype=np.float64).reshape(-1, 2)),
        ambiguous_videos=tuple(v for v, _, _ in amb),
        ambiguous=_readonly(np.asarray([(a, b) for _, a, b in amb],
                                       dtype=np.float64).reshape(-1, 2)),
    )


def thumos14_ground_truth_from_json(
    ground_truth: Mapping[str, Any], subset: str, *, source: str = "ground truth"
) -> ThumosGroundTruth:
    """The THUMOS14 view of an ActivityNet-style ground-truth dict (this project's gt.json).

    Classes: the ``taxonomy`` node names in ``nodeId`` order, then any other label of the
    subset in first-seen order; detection class ids are their 1-based positions. Ambiguous
    segments: the top-level ``ambiguous`` map (``{video: [[t1, t2], ...]}``), for the subset's
    videos.
    """
    gt = _parse_ground_truth(ground_truth, subset, source)
    classes: list[str] = []
    taxonomy = ground_truth.get("taxonomy")
    if isinstance(taxonomy, list):
        nodes = [n for n in taxonomy if isinstance(n, Mapping) and "nodeName" in n]
        nodes.sort(key=lambda n: n.get("nodeId", 0))
        classes = list(dict.fromkeys(str(n["nodeName"]) for n in nodes))
    classes += [label for label in gt.labels if label not in classes]
    index = {name: i for i, name in enumerate(classes)}
    videos = set(gt.videos)
    amb_videos: list[str] = []
    amb_segments: list[tuple[float, float]] = []
    ambiguous = ground_truth.get("ambiguous") or {}
    if not isinstance(ambiguous, Mapping):
        raise ValueError(f"{source}: 'ambiguous' must map video -> [[t1, t2], ...]")
    for vid, segs in ambiguous.items():
        if vid not in videos:
            continue
        if not isinstance(segs, list):
            raise ValueError(f"{source}: ambiguous segments of {vid!r} must be a list")
        for seg in segs:
            amb_videos.append(vid)
            amb_segments.append(_segment(seg, f"{source}: ambiguous, video {vid!r}"))
    return ThumosGroundTruth(
        subset=subset,
        classes=tuple(classes),
        class_ids=MappingProxyType({i + 1: name for i, name in enumerate(classes)}),
        videos=gt.videos,
        instance_videos=gt.instance_videos,
        instance_labels=_readonly(np.asarray([index[gt.labels[i]] for i in gt.instance_labels],
                                             dtype=np.int64)),
        segments=_readonly(gt.segments),
        ambiguous_videos=tuple(amb_videos),
        ambiguous=_readonly(np.asarray(amb_segments, dtype=np.float64).reshape(-1, 2)),
    )


@dataclass(frozen=True, eq=False)
class ThumosDetections:
    """Rows of an official THUMOS14 detection file, in file order.

    Attributes:
        videos: video names (``.mpeg`` removed, as the kit does).
        segments: ``(M, 2)`` float64 ``[t1, t2]``.
        class_ids: ``(M,)`` int64 detection class ids.
        scores: ``(M,)`` float64 confidences.
    """

    videos: tuple[str, ...]
    segments: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray


def read_thumos14_detections(path: str | os.PathLike[str]) -> ThumosDetections:
    """Read an official THUMOS14 detection file: ``video t1 t2 classid conf`` per line.

    Any whitespace separates fields; blank lines are skipped; ``.mpeg`` is removed from video
    names (``regexprep(videonames,'\\.mpeg','')`` in the kit).

    Raises:
        ValueError: a line without five fields, or a field that is not a (finite) number.
    """
    path = Path(path)
    videos: list[str] = []
    segments: list[tuple[float, float]] = []
    class_ids: list[int] = []
    scores: list[float] = []
    for lineno, fields in _lines(path):
        where = f"{path}:{lineno}"
        if len(fields) != 5:
            raise ValueError(f"{where}: expected 'video t1 t2 classid conf', "
                             f"got {' '.join(fields)!r}")
        videos.append(fields[0].replace(".mpeg", ""))
        segments.append((_finite(fields[1], "t1", where), _finite(fields[2], "t2", where)))
        class_ids.append(_class_id(fields[3], where))
        scores.append(_finite(fields[4], "conf", where))
    return ThumosDetections(
        videos=tuple(videos),
        segments=_readonly(np.asarray(segments, dtype=np.float64).reshape(-1, 2)),
        class_ids=_readonly(np.asarray(class_ids, dtype=np.int64)),
        scores=_readonly(np.asarray(scores, dtype=np.float64)),
    )


def _raw_from_text(det: ThumosDetections, class_ids: Mapping[int, str]) -> _RawPredictions:
    """Detection rows with class names; ids missing from ``class_ids`` are counted."""
    unknown: dict[str, int] = {}
    labels: list[str | None] = []
    for cid in det.class_ids.tolist():
        name = class_ids.get(cid)
        if name is None:
            key = f"class id {cid}"
            unknown[key] = unknown.get(key, 0) + 1
        labels.append(name)
    position: dict[str, int] = {}
    video = np.fromiter((position.setdefault(v, len(position)) for v in det.videos),
                        dtype=np.int64, count=len(det.videos))
    return _RawPredictions(names=tuple(position), video=video, labels=tuple(labels),
                           segments=det.segments, scores=tuple(det.scores.tolist()),
                           unknown=MappingProxyType(unknown))


def write_thumos14_detections(
    path: str | os.PathLike[str],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    classes: Sequence[str],
) -> Path:
    """Write detections in the official THUMOS14 text format, and ``detclasslist.txt`` beside.

    Each detection ``{"label", "score", "segment"}`` of ``results`` (video → detections, the
    ActivityNet ``results`` mapping) becomes a line ``video t1 t2 classid conf``; class ids
    are 1-based positions in ``classes``, listed as ``id name`` lines in ``detclasslist.txt``
    in the same folder (overwritten). Numbers are written with ``repr`` (shortest text that
    reads back as the same float), so both files evaluate identically.

    Returns:
        The path of the written ``detclasslist.txt``.

    Raises:
        ValueError: a label not in ``classes``, or a video or class name with whitespace.
    """
    for name in classes:
        if not name or len(name.split()) != 1:
            raise ValueError(f"class name {name!r} cannot be written in the THUMOS14 format")
    class_id = {name: i + 1 for i, name in enumerate(classes)}
    lines: list[str] = []
    for vid, dets in results.items():
        if not vid or len(vid.split()) != 1:
            raise ValueError(f"video name {vid!r} cannot be written in the THUMOS14 format")
        for det in dets:
            label = det["label"]
            if label not in class_id:
                raise ValueError(f"video {vid!r}: label {label!r} is not among {list(classes)}")
            start, end = (float(x) for x in det["segment"])
            lines.append(f"{vid} {start!r} {end!r} {class_id[label]} {float(det['score'])!r}\n")
    path = Path(path)
    list_path = path.parent / _CLASS_LIST
    with atomic_open(path) as handle:
        handle.writelines(lines)
    with atomic_open(list_path) as handle:
        handle.writelines(f"{i} {name}\n" for name, i in class_id.items())
    return list_path


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """Detection mAP of one submission on one subset, under one protocol.

    Attributes:
        tious: ``(K,)`` tIoU thresholds.
        labels: class names in class order (ActivityNet: first seen in the subset's ground
            truth; THUMOS14: the class list's order, classes without GT left out).
        ap: ``(C, K)`` average precision per class and threshold.
        mAP: ``(K,)`` mean of ``ap`` over the classes.
        average_mAP: mean of ``mAP`` over the thresholds.
        unknown_labels: predictions skipped because their label (or class id) is not a class
            of the ground truth, counted per label.
        n_videos: videos in the subset (with or without annotations).
        n_ground_truth: GT instances in the subset.
        n_predictions: predictions evaluated (unknown labels excluded).
        protocol: ``"anet"`` or ``"thumos14"``.
        classes_without_ground_truth: THUMOS14: classes of the class list without GT in the
            subset (left out of the mean), with their number of detections.
    """

    tious: np.ndarray
    labels: tuple[str, ...]
    ap: np.ndarray
    mAP: np.ndarray
    average_mAP: float
    unknown_labels: Mapping[str, int]
    n_videos: int
    n_ground_truth: int
    n_predictions: int
    protocol: str = "anet"
    classes_without_ground_truth: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({}))

    def summary(self) -> dict[str, Any]:
        """The protocol's block of ``map.json``.

        Keys: ``definition``, ``tiou``, ``mAP`` (aligned with ``tiou``), ``average_mAP``,
        ``per_class`` (label → AP per tIoU), ``unknown_labels``, ``counts`` (``videos``,
        ``ground_truth``, ``predictions``); for THUMOS14 also ``averages`` (``"0.1:0.5"``,
        ``"0.1:0.7"``, ``"0.3:0.7"`` where evaluated) and ``classes_without_ground_truth``.
        """
        tiou = [float(t) for t in self.tious]
        m_ap = [float(m) for m in self.mAP]
        out: dict[str, Any] = {
            "definition": PROTOCOL_DEFINITIONS[self.protocol],
            "tiou": tiou,
            "mAP": m_ap,
            "average_mAP": float(self.average_mAP),
            "per_class": {
                label: [float(a) for a in self.ap[c]] for c, label in enumerate(self.labels)
            },
            "unknown_labels": dict(self.unknown_labels),
            "counts": {"videos": self.n_videos, "ground_truth": self.n_ground_truth,
                       "predictions": self.n_predictions},
        }
        if self.protocol == "thumos14":
            out["averages"] = thumos14_averages(tiou, m_ap)
            out["classes_without_ground_truth"] = dict(self.classes_without_ground_truth)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: thresholds, mAP, average mAP, per-class AP, counts."""
        block = self.summary()
        counts = block.pop("counts")
        return {"protocol": self.protocol, **block, "n_videos": counts["videos"],
                "n_ground_truth": counts["ground_truth"],
                "n_predictions": counts["predictions"]}


def _result(tious: np.ndarray, labels: Sequence[str], ap: np.ndarray, m_ap: np.ndarray,
            preds: Any, gt: Any, *, protocol: str, **extra: Any) -> DetectionResult:
    """A :class:`DetectionResult` from a protocol's AP table (read-only arrays)."""
    return DetectionResult(
        tious=_readonly(tious.copy()),
        labels=tuple(labels),
        ap=_readonly(ap),
        mAP=_readonly(m_ap),
        average_mAP=float(m_ap.mean()),
        unknown_labels=MappingProxyType(dict(preds.unknown)),
        n_videos=len(gt.videos),
        n_ground_truth=len(gt.instance_videos),
        n_predictions=len(preds.video),
        protocol=protocol,
        **extra,
    )


def _warn_unknown(unknown: Mapping[str, int], what: str) -> None:
    if unknown:
        logger.warning(
            "skipped %d predictions whose label is not a class of the %s: %s",
            sum(unknown.values()), what,
            ", ".join(f"{label!r} ×{n}" for label, n in unknown.items()),
        )


def _anet_result(gt: _GroundTruth, raw: _RawPredictions, tious: np.ndarray,
                 source: str) -> DetectionResult:
    """The ActivityNet protocol on parsed inputs."""
    if not gt.labels:
        raise ValueError(f"{source}: subset has no annotated instances")
    preds = _index_predictions(raw, {label: i for i, label in enumerate(gt.labels)})
    _, (gt_vid, name_vid) = _video_ids(gt.instance_videos, preds.names)
    ap = _anet_ap(gt_vid, np.asarray(gt.instance_labels, dtype=np.int64), gt.segments,
                  name_vid[preds.video], preds.labels, preds.segments, preds.scores,
                  len(gt.labels), tious)
    # The official array is (K, C) and averages over its contiguous last axis.
    m_ap = np.ascontiguousarray(ap.T).mean(axis=1)
    _warn_unknown(preds.unknown, "subset's ground truth")
    return _result(tious, gt.labels, ap, m_ap, preds, gt, protocol="anet")


def anet_detection_map(
    ground_truth: Mapping[str, Any],
    predictions: Mapping[str, Any],
    *,
    subset: str,
    tious: Sequence[float],
) -> DetectionResult:
    """Detection mAP exactly as ``ANETdetection`` (``check_status=False``) computes it.

    Args:
        ground_truth: ``{"database": {vid: {"subset", "annotations": [{"segment", "label"}]}}}``.
            Only videos whose ``subset`` equals ``subset`` are used.
        predictions: ``{"results": {vid: [{"label", "score", "segment"}]}}``, not filtered by
            subset. Other top-level keys are ignored.
        subset: e.g. ``"validation"``.
        tious: tIoU thresholds; a prediction matches a GT when ``tIoU >= threshold``.

    Raises:
        ValueError: missing ``database``/``results``, a malformed entry (the video is named),
            or a subset without ground truth.
    """
    thresholds = _thresholds(tious)
    gt = _parse_ground_truth(ground_truth, subset, "ground truth")
    if not gt.labels:
        raise ValueError(f"ground truth: subset {subset!r} has no annotated instances")
    raw, _ = validate_detections(raw_from_json(predictions, "predictions"),
                                 source="predictions", segments=False)
    return _anet_result(gt, raw, thresholds, "ground truth")


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall of one class in ranking order, and the protocol's AP."""

    precision: np.ndarray  # (n,)
    recall: np.ndarray  # (n,)
    ap: float
    n_ground_truth: int


def precision_recall(
    ground_truth: Mapping[str, Any],
    predictions: Mapping[str, Any],
    *,
    subset: str,
    tiou: float,
    protocol: str,
) -> dict[str, PRCurve]:
    """Per-class precision-recall curves at one tIoU, from the same matching as the mAP
    (:func:`anet_detection_map` / :func:`thumos14_detection_map`): each curve's ``ap`` is that
    class's AP there.

    Args:
        ground_truth: a ``gt.json`` dict.
        predictions: a submission dict.
        subset: the evaluated subset.
        tiou: the threshold.
        protocol: ``anet`` (classes of the subset's ground truth, in first-seen order; a class
            without predictions has an empty curve) or ``thumos14`` (classes with ground truth,
            in class-list order).

    Raises:
        ValueError: an unknown protocol, or what the mAP functions refuse.
    """
    tious = _thresholds([tiou])
    raw = raw_from_json(predictions, "predictions")
    curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if protocol == "anet":
        gt = _parse_ground_truth(ground_truth, subset, "ground truth")
        if not gt.labels:
            raise ValueError(f"ground truth: subset {subset!r} has no annotated instances")
        preds = _index_predictions(raw, {label: i for i, label in enumerate(gt.labels)})
        _, (gt_vid, name_vid) = _video_ids(gt.instance_videos, preds.names)
        gt_labels = np.asarray(gt.instance_labels, dtype=np.int64)
        ap = _anet_ap(gt_vid, gt_labels, gt.segments, name_vid[preds.video], preds.labels,
                      preds.segments, preds.scores, len(gt.labels), tious, curves)
        labels = list(enumerate(gt.labels))
        npos = np.bincount(gt_labels, minlength=len(gt.labels))
    elif protocol == "thumos14":
        th = thumos14_ground_truth_from_json(ground_truth, subset)
        preds = _index_predictions(raw, {name: i for i, name in enumerate(th.classes)})
        _, (gt_rank, amb_rank, name_rank) = _video_ids(th.instance_videos,
                                                        th.ambiguous_videos, preds.names)
        npos = np.bincount(th.instance_labels, minlength=len(th.classes))
        ap = _thumos_ap(gt_rank, th.instance_labels, th.segments, amb_rank, th.ambiguous,
                        name_rank[preds.video], preds.labels, preds.segments,
                        preds.scores.astype(np.float64), len(th.classes), tious, curves)
        labels = [(c, th.classes[c]) for c in np.flatnonzero(npos).tolist()]
    else:
        raise ValueError(f"unknown protocol {protocol!r} (anet or thumos14)")
    empty = np.zeros(0)
    return {label: PRCurve(*curves.get(c, (empty, empty)), float(ap[c, 0]), int(npos[c]))
            for c, label in labels}


def _mean(values: Sequence[float]) -> float:
    """MATLAB's ``mean`` of a short vector: left-to-right sum, then one division."""
    total = 0.0
    for v in values:
        total = total + v
    return total / len(values)


def _thumos_result(gt: ThumosGroundTruth, raw: _RawPredictions, tious: np.ndarray,
                   source: str) -> DetectionResult:
    """The THUMOS14 protocol on parsed inputs."""
    index = {name: i for i, name in enumerate(gt.classes)}
    preds = _index_predictions(raw, index)
    n_classes = len(gt.classes)
    labels = gt.instance_labels
    npos = np.bincount(labels, minlength=n_classes)
    if not npos.any():
        raise ValueError(f"{source}: subset {gt.subset!r} has no annotated instances")
    pred_labels = preds.labels
    _, (gt_rank, amb_rank, name_rank) = _video_ids(gt.instance_videos, gt.ambiguous_videos,
                                                    preds.names)
    ap = _thumos_ap(gt_rank, labels, gt.segments, amb_rank, gt.ambiguous,
                    name_rank[preds.video], pred_labels, preds.segments,
                    preds.scores.astype(np.float64), n_classes, tious)
    with_gt = np.flatnonzero(npos)
    without = {gt.classes[c]: int(np.count_nonzero(pred_labels == c))
               for c in np.flatnonzero(npos == 0).tolist()}
    if without:
        logger.warning("THUMOS14 protocol: classes without ground truth in subset %r left out "
                       "of the mean (the kit would stop): %s", gt.subset, without)
    _warn_unknown(preds.unknown, "class list")
    ap = ap[with_gt]
    m_ap = np.asarray([_mean(ap[:, t].tolist()) for t in range(len(tious))])
    return _result(tious, tuple(gt.classes[c] for c in with_gt.tolist()), ap, m_ap, preds, gt,
                   protocol="thumos14", classes_without_ground_truth=MappingProxyType(without))


def thumos14_detection_map(
    ground_truth: ThumosGroundTruth | Mapping[str, Any],
    predictions: ThumosDetections | Mapping[str, Any],
    *,
    subset: str,
    tious: Sequence[float],
    class_ids: Mapping[int, str] | None = None,
) -> DetectionResult:
    """Detection mAP exactly as the THUMOS14 kit (``TH14evaldet``) computes it.

    Args:
        ground_truth: a :class:`ThumosGroundTruth` (see :func:`read_thumos14_ground_truth`)
            or an ActivityNet-style dict (see :func:`thumos14_ground_truth_from_json`).
        predictions: official detection rows (:func:`read_thumos14_detections`) or a
            submission dict ``{"results": {vid: [{"label", "score", "segment"}]}}``.
        subset: the subset of a dict ground truth (a ``ThumosGroundTruth`` has its own).
        tious: overlap thresholds; a detection matches when ``overlap > threshold``.
        class_ids: class id → name for detection rows (default: the ground truth's).

    Raises:
        ValueError: malformed input, non-finite detections, or no GT in the subset.
    """
    thresholds = _thresholds(tious)
    gt = (ground_truth if isinstance(ground_truth, ThumosGroundTruth)
          else thumos14_ground_truth_from_json(ground_truth, subset))
    raw = (_raw_from_text(predictions, class_ids if class_ids is not None else gt.class_ids)
           if isinstance(predictions, ThumosDetections)
           else raw_from_json(predictions, "predictions"))
    raw, _ = validate_detections(raw, source="predictions", segments=False)
    return _thumos_result(gt, raw, thresholds, "ground truth")


def _classification_map(gt: _GroundTruth, video_scores: Mapping[str, Any], source: str) -> float:
    """Video-level mAP on parsed ground truth (see ``classification_map``)."""
    n_videos, n_classes = len(gt.videos), len(gt.labels)
    row = {vid: i for i, vid in enumerate(gt.videos)}
    positive = np.zeros((n_videos, n_classes), dtype=bool)
    for vid, cidx in zip(gt.instance_videos, gt.instance_labels, strict=True):
        positive[row[vid], cidx] = True
    scores = np.zeros((n_videos, n_classes))
    for vid, i in row.items():
        per_label = video_scores.get(vid)
        if per_label is None:
            continue
        if not isinstance(per_label, Mapping):
            raise ValueError(f"{source}: video_scores of video {vid!r} must map label -> score")
        for cidx, label in enumerate(gt.labels):
            value = per_label.get(label, 0.0)
            try:
                scores[i, cidx] = float(value)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{source}: video {vid!r}: score of {label!r} is not a number: {value!r}"
                ) from err
    aps = np.zeros(n_classes)
    ranks = np.arange(1, n_videos + 1, dtype=np.float64)
    for cidx in range(n_classes):
        order = np.argsort(-scores[:, cidx], kind="stable")
        hits = positive[order, cidx]
        precision_at = np.cumsum(hits) / ranks
        aps[cidx] = precision_at[hits].mean()
    return float(aps.mean())


def classification_map(
    ground_truth: Mapping[str, Any],
    video_scores: Mapping[str, Mapping[str, float]],
    *,
    subset: str,
) -> float:
    """Video-level classification mAP over the subset's videos and GT classes.

    For each class, the subset's videos are ranked by descending score (ties keep database
    order); positives are videos with at least one GT instance of the class; AP is the mean
    of the precision at each positive's rank (not interpolated). A video missing from
    ``video_scores``, or a label missing from a video's scores, scores 0.
    """
    gt = _parse_ground_truth(ground_truth, subset, "ground truth")
    if not gt.labels:
        raise ValueError(f"ground truth: subset {subset!r} has no annotated instances")
    return _classification_map(gt, video_scores, "video_scores")


# ---------------------------------------------------------------------------------------------
# Files → map.json
# ---------------------------------------------------------------------------------------------


def _is_json(path: Path) -> bool:
    """Whether a predictions file is JSON (``.json``, or text starting with ``{``)."""
    if path.suffix.lower() == ".json":
        return True
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"{")


@dataclass(frozen=True)
class _Inputs:
    """Ground truth and predictions read once, for every protocol."""

    anet_gt: Mapping[str, Any]  # ActivityNet-style dict
    thumos_gt: ThumosGroundTruth | None  # set for an official folder, else built on demand
    raw: _RawPredictions
    gt_source: str
    pred_source: str


def _read_inputs(
    ground_truth: Path, predictions: Path, subset: str, class_list: Path | None
) -> _Inputs:
    thumos_gt: ThumosGroundTruth | None = None
    if ground_truth.is_dir():
        thumos_gt = read_thumos14_ground_truth(ground_truth, subset, class_list=class_list)
        anet_gt: Mapping[str, Any] = thumos_gt.to_database()
    else:
        anet_gt = read_json(ground_truth)
    if not predictions.exists():
        raise FileNotFoundError(f"{predictions}: no such predictions file")
    if _is_json(predictions):
        raw = raw_from_json(read_json(predictions), str(predictions))
    else:
        text_rows = read_thumos14_detections(predictions)
        beside = predictions.parent / _CLASS_LIST
        if class_list is not None:
            ids: Mapping[int, str] = read_class_list(class_list)
        elif beside.exists():
            ids = read_class_list(beside)
        elif thumos_gt is not None:
            ids = thumos_gt.class_ids
        else:
            ids = thumos14_ground_truth_from_json(anet_gt, subset,
                                                  source=str(ground_truth)).class_ids
        if thumos_gt is not None and dict(ids) != dict(thumos_gt.class_ids):
            # a folder without detclasslist.txt only has inferred ids: nothing to warn about
            level = (logging.WARNING if (ground_truth / _CLASS_LIST).exists() else logging.INFO)
            logger.log(level, "%s: class ids of the predictions differ from %s; using the former",
                       beside if class_list is None else class_list, ground_truth)
        raw = _raw_from_text(text_rows, ids)
    return _Inputs(anet_gt=anet_gt, thumos_gt=thumos_gt, raw=raw,
                   gt_source=str(ground_truth), pred_source=str(predictions))


def dataset_classes(ground_truth: Mapping[str, Any],
                    thumos_gt: ThumosGroundTruth | None = None) -> set[str]:
    """Every class of a ground truth: ``taxonomy`` node names and every annotated label (all
    subsets), or an official folder's class list."""
    classes: set[str] = set(thumos_gt.classes) if thumos_gt is not None else set()
    taxonomy = ground_truth.get("taxonomy") if isinstance(ground_truth, Mapping) else None
    if isinstance(taxonomy, list):
        classes |= {str(n["nodeName"]) for n in taxonomy
                    if isinstance(n, Mapping) and "nodeName" in n}
    database = ground_truth.get("database") if isinstance(ground_truth, Mapping) else None
    if isinstance(database, Mapping):
        for entry in database.values():
            for ann in (entry.get("annotations") or []) if isinstance(entry, Mapping) else []:
                if isinstance(ann, Mapping) and isinstance(ann.get("label"), str):
                    classes.add(ann["label"])
    return classes


#: What :func:`validate_detections` refuses (strict) or skips and counts (lenient), by reason.
DETECTION_PROBLEMS = (
    "label is not a class of the dataset",
    "score is not finite",
    "segment is not finite",
    "segment starts before 0 s",
    "segment is empty or inverted (end <= start)",
)


def _select(raw: _RawPredictions, keep: np.ndarray) -> _RawPredictions:
    rows = np.flatnonzero(keep).tolist()
    return _RawPredictions(
        names=raw.names,
        video=raw.video[keep],
        labels=tuple(raw.labels[i] for i in rows),
        segments=raw.segments.reshape(-1, 2)[keep],
        scores=tuple(raw.scores[i] for i in rows),
        unknown=raw.unknown,
        video_scores=raw.video_scores,
    )


def validate_detections(
    raw: _RawPredictions, *, source: str, classes: set[str] | None = None,
    lenient: bool = False, segments: bool = True,
) -> tuple[_RawPredictions, dict[str, int]]:
    """The one check of a detections file, for every protocol, the pipeline and ``wtal eval``.

    Refused (the reasons of :data:`DETECTION_PROBLEMS`): a label (or class id) that is not a
    class of the dataset at all (only when ``classes`` is given; a class of the dataset without
    instances in the evaluated subset is fine: it only adds false positives; when lenient,
    the protocols skip such labels and count them under ``unknown_labels``), a score or
    segment that is NaN or infinite, a segment starting before 0 s, an empty or inverted
    segment (end <= start).

    Args:
        raw: the parsed detections.
        source: the file, for the message.
        classes: every class of the dataset; None skips the label check.
        lenient: skip the refused detections and count them instead of raising.
        segments: refuse negative, empty and inverted segments too. The official-semantics
            functions (:func:`anet_detection_map`, :func:`thumos14_detection_map`) pass
            False: the official code gives such segments a defined result, but none to NaN.

    Returns:
        ``(detections kept, {reason: count})``; the counts are empty when nothing was skipped.

    Raises:
        ValueError: (not lenient) naming the file, the reason, how many detections and the
            first one's video, segment, label and score.
    """
    seg = raw.segments.reshape(-1, 2)
    n = len(raw.labels)
    scores = np.array([float(x) for x in raw.scores], dtype=np.float64).reshape(n)
    unknown_label = np.zeros(n, dtype=bool)
    if classes is not None and not lenient:  # lenient: the protocols skip and count them
        unknown_label = np.fromiter((label is None or label not in classes
                                     for label in raw.labels), dtype=bool, count=n)
    finite = np.isfinite(seg).all(axis=1)
    clean = np.where(finite[:, None], seg, 0.0)
    checks = [
        unknown_label,
        ~np.isfinite(scores),
        ~finite,
        finite & (clean[:, 0] < 0) & segments,
        finite & (clean[:, 1] <= clean[:, 0]) & segments,
    ]
    counts: dict[str, int] = {}
    bad_any = np.zeros(n, dtype=bool)
    for what, bad in zip(DETECTION_PROBLEMS, checks, strict=True):
        bad = bad & ~bad_any  # each detection counted once, under its first problem
        rows = np.flatnonzero(bad)
        if not len(rows):
            continue
        if not lenient:
            i = int(rows[0])
            label = ("a class id not in the class list" if raw.labels[i] is None
                     else repr(raw.labels[i]))
            if what == DETECTION_PROBLEMS[0] and classes is not None:
                names = sorted({str(raw.labels[j]) if raw.labels[j] is not None else
                                "(class ids not in the class list)" for j in rows.tolist()})
                raise ValueError(
                    f"{source}: labels that are not classes of the dataset: {names} "
                    f"(classes: {sorted(classes)}); wrong dataset or class list? "
                    f"({len(rows)} detection(s), first in video "
                    f"{raw.names[int(raw.video[i])]!r}; wtal eval --lenient skips them)"
                )
            raise ValueError(
                f"{source}: {len(rows)} detection(s) whose {what}, first in video "
                f"{raw.names[int(raw.video[i])]!r}: segment {seg[i].tolist()}, label "
                f"{label}, score {raw.scores[i]!r} (wtal eval --lenient skips them)"
            )
        counts[what] = len(rows)
        bad_any |= bad
    if not counts:
        return raw, {}
    logger.warning("%s: skipped %d invalid detections (lenient): %s", source,
                   int(bad_any.sum()), ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return _select(raw, ~bad_any), counts


def check_predictions(raw: _RawPredictions, classes: set[str], source: str) -> None:
    """Strict checks of a predictions file (:func:`validate_detections`, not lenient)."""
    validate_detections(raw, source=source, classes=classes)


def evaluate(
    ground_truth_path: str | os.PathLike[str],
    predictions_path: str | os.PathLike[str],
    *,
    subset: str,
    tious: Sequence[float] | None = None,
    protocol: str = "anet",
    protocols: Sequence[str] = (),
    dataset: str | None = None,
    model: str | None = None,
    class_list: str | os.PathLike[str] | None = None,
    lenient: bool = False,
    strict: bool = True,
) -> dict[str, Any]:
    """Evaluate a predictions file against a ground truth and return the ``map.json`` dict.

    Args:
        ground_truth_path: a ``gt.json`` (ActivityNet schema, optionally with ``taxonomy`` and
            ``ambiguous``) or an official THUMOS14 ground-truth folder.
        predictions_path: a submission JSON (``results``, optional ``video_scores``) or an
            official THUMOS14 detection text file. A text file's class ids are read from
            ``class_list``, else ``detclasslist.txt`` beside it, else the ground truth's; its
            line order is the submission order (which breaks ActivityNet's score ties).
        subset: the ground-truth subset (for a folder: the file suffix, e.g. ``test``).
        tious: thresholds of every protocol; ``None``: each protocol's ``DEFAULT_TIOUS``.
        protocol: the primary protocol, whose block is also at the top level.
        protocols: further protocols to compute.
        dataset: recorded in the result.
        model: recorded in the result.
        class_list: a ``detclasslist.txt`` for the ground-truth folder and text predictions.
        lenient: skip and count the detections that no model of this dataset can write
            (:func:`validate_detections`: labels that are not classes of the dataset, NaN or
            infinite scores and segments, negative, empty or inverted segments) instead of
            refusing the file; the counts are under ``skipped_detections``. The pipeline's
            evaluate stage is strict; ``wtal eval --lenient`` is lenient.
        strict: ``False`` is ``lenient=True`` (kept for earlier callers).

    Returns:
        ``{"dataset", "model", "protocol", "subset", **block of the primary protocol,
        "protocols": {name: block}, "classification": {"mAP": x}}`` where a block is
        :meth:`DetectionResult.summary` and ``classification`` (video-level mAP) is present
        when the predictions have a top-level ``video_scores`` mapping.

    Raises:
        ValueError: unknown protocol, or a malformed file (the message names the file and,
            for a bad entry, the video or line).
        FileNotFoundError: a missing file or folder.
    """
    computed = list(dict.fromkeys([protocol, *protocols]))
    for name in computed:
        if name not in PROTOCOLS:
            raise ValueError(
                f"unknown evaluation protocol {name!r}; available: {', '.join(PROTOCOLS)}")
    thresholds = {name: _thresholds(DEFAULT_TIOUS[name] if tious is None else tious)
                  for name in computed}
    inputs = _read_inputs(Path(ground_truth_path), Path(predictions_path), subset,
                          Path(class_list) if class_list is not None else None)
    gt_source = inputs.gt_source
    anet_view = _parse_ground_truth(inputs.anet_gt, subset, gt_source)
    if not anet_view.labels:
        raise ValueError(f"{gt_source}: subset {subset!r} has no annotated instances")
    raw, skipped = validate_detections(
        inputs.raw, source=inputs.pred_source, lenient=lenient or not strict,
        classes=dataset_classes(inputs.anet_gt, inputs.thumos_gt))
    inputs = dataclasses.replace(inputs, raw=raw)
    blocks: dict[str, dict[str, Any]] = {}
    for name in computed:
        if name == "anet":
            result = _anet_result(anet_view, inputs.raw, thresholds[name], gt_source)
        else:
            thumos_gt = inputs.thumos_gt or thumos14_ground_truth_from_json(
                inputs.anet_gt, subset, source=gt_source)
            result = _thumos_result(thumos_gt, inputs.raw, thresholds[name], gt_source)
        blocks[name] = result.summary()
    out: dict[str, Any] = {
        "dataset": dataset,
        "model": model,
        "protocol": protocol,
        "subset": subset,
        **copy.deepcopy(blocks[protocol]),
        "protocols": blocks,
    }
    if lenient or not strict:
        out["skipped_detections"] = skipped
    if inputs.raw.video_scores is not None:
        out["classification"] = {
            "mAP": _classification_map(anet_view, inputs.raw.video_scores, inputs.pred_source)
        }
    return out


#: What ``map.json`` says of a model that learns from trimmed clips but was trained without any.
NO_TRIMMED = ("off: no trimmed videos configured (the dataset's `trimmed` setting is null; "
              "set `trimmed: {root: <UCF-101 folder>, class_index: <classInd.txt>}`)")


def training_record(
    train_log: Mapping[str, Any], *, learns_from_trimmed: bool
) -> dict[str, Any]:
    """What ``map.json`` carries over from the train stage's ``train.json``.

    ``pretrain`` is the model's pretraining log as recorded (:meth:`Localizer.pretrain`). For a
    model whose settings declare ``trimmed: true`` (its paper transfers knowledge from trimmed
    clips), ``knowledge_transfer`` says whether it did: ``"on: N trimmed clips"``, or
    ``"off: ..."`` with the reason (:data:`NO_TRIMMED` when the dataset has none, else the
    pretraining log's own words), so that a result without the paper's transfer is never read
    as the paper's method. Models that do not declare it get no such field.

    Args:
        train_log: the ``train.json`` dict.
        learns_from_trimmed: the model's settings say ``trimmed: true``.
    """
    record: dict[str, Any] = {"pretrain": copy.deepcopy(train_log.get("pretrain"))}
    if not learns_from_trimmed:
        return record
    n_trimmed = int(train_log.get("n_trimmed") or 0)
    used = train_log.get("used_trimmed", n_trimmed > 0)
    if n_trimmed == 0:
        record["knowledge_transfer"] = NO_TRIMMED
    elif used:
        record["knowledge_transfer"] = f"on: {n_trimmed} trimmed clips"
    else:
        record["knowledge_transfer"] = f"off: {n_trimmed} trimmed clips given but not used " \
                                       f"(pretrain: {train_log.get('pretrain')})"
    return record
