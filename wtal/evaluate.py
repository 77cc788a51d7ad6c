"""Temporal action detection mAP with the exact semantics of the official ActivityNet code.

``anet_detection_map`` reproduces ``ANETdetection`` from activitynet/ActivityNet
``Evaluation/eval_detection.py`` (HEAD 82304fa) number for number, without pandas, joblib or
network access, on Python 3 and NumPy 2::

    ground truth (subset only) ──► label index in first-seen order ──► GT list per class
    predictions (all videos)   ──► per class, in file order
          │
          ▼  per class
    np.argsort(scores)[::-1] ──► for each prediction: tIoU to the GTs of its video,
    tiou.argsort()[::-1] ──► greedy match per threshold (tIoU >= thr, one prediction per GT)
          │
          ▼
    cumsum tp/fp ──► precision/recall ──► VOC all-point AP ──► mAP per threshold ──► average

The only deliberate difference: a prediction whose label is not among the subset's GT labels
makes the official code raise ``KeyError``; here it is skipped, counted per label in
``DetectionResult.unknown_labels`` and reported with ``logging.warning``.

``classification_map`` adds video-level classification mAP, and ``evaluate`` reads the JSON
files and builds the ``map.json`` dictionary.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from wtal.io import read_json

__all__ = [
    "PROTOCOLS",
    "DetectionResult",
    "anet_detection_map",
    "classification_map",
    "evaluate",
    "interpolated_prec_rec",
    "segment_iou",
]

logger = logging.getLogger(__name__)

#: Evaluation protocols that ``evaluate`` knows.
PROTOCOLS: tuple[str, ...] = ("anet",)


# ---------------------------------------------------------------------------------------------
# Numerical kernels (transcriptions of Evaluation/utils.py and eval_detection.py)
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
    """Temporal IoU between one segment and each of several segments.

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


def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """VOC2010+ all-point interpolated average precision.

    Precision is padded with 0 at both ends and recall with 0 and 1; precision is replaced by
    its running maximum from the right, and ``Δrecall · precision`` is summed wherever recall
    changes.
    """
    mprec = np.hstack([[0.0], np.asarray(prec, dtype=np.float64), [0.0]])
    mrec = np.hstack([[0.0], np.asarray(rec, dtype=np.float64), [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _class_average_precision(
    gt_videos: Sequence[str],
    gt_segments: np.ndarray,
    pred_videos: Sequence[str],
    pred_segments: np.ndarray,
    pred_scores: np.ndarray,
    tious: np.ndarray,
) -> np.ndarray:
    """AP of one class at each threshold (``compute_average_precision_detection``).

    ``gt_*`` hold the class's ground truth in GT order; ``pred_*`` the class's predictions in
    submission order. Returns a ``(K,)`` array.
    """
    n_thr = len(tious)
    ap = np.zeros(n_thr)
    n_pred = len(pred_videos)
    if n_pred == 0:
        return ap
    npos = float(len(gt_videos))

    # GT rows of each video, in GT order (pandas groupby/get_group keeps row order).
    gt_rows: dict[str, list[int]] = {}
    for row, vid in enumerate(gt_videos):
        gt_rows.setdefault(vid, []).append(row)

    # Predictions by decreasing score, exactly as the official code orders them.
    sort_idx = pred_scores.argsort()[::-1]
    sorted_rows = [gt_rows.get(pred_videos[p], []) for p in sort_idx.tolist()]

    # tIoU of every (prediction, GT of the same video) pair in one vectorised pass; the
    # values of prediction ``idx`` lie in ``flat_tiou[offsets[idx]:offsets[idx + 1]]``.
    counts = np.fromiter((len(r) for r in sorted_rows), dtype=np.int64, count=n_pred)
    offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()
    pair_gt = np.fromiter((g for r in sorted_rows for g in r), dtype=np.int64,
                          count=offsets[-1])
    pair_pred = np.repeat(sort_idx, counts)
    flat_tiou = _iou_rows(pred_segments[pair_pred], gt_segments[pair_gt])

    thresholds = [float(t) for t in tious]
    locked = [[False] * len(gt_videos) for _ in thresholds]  # lock_gt >= 0
    tp = [[0.0] * n_pred for _ in thresholds]
    for idx, rows in enumerate(sorted_rows):
        if not rows:  # no GT of this class in the video: FP at every threshold
            continue
        tiou_arr = flat_tiou[offsets[idx] : offsets[idx + 1]]
        tiou_sorted_idx = tiou_arr.argsort()[::-1].tolist()
        ordered = [(float(tiou_arr[j]), rows[j]) for j in tiou_sorted_idx]
        for tidx, thr in enumerate(thresholds):
            locks = locked[tidx]
            for tiou, gt_row in ordered:
                if tiou < thr:
                    break  # FP
                if locks[gt_row]:
                    continue
                tp[tidx][idx] = 1.0
                locks[gt_row] = True
                break
    # every prediction is exactly one of TP and FP at each threshold
    tp_arr = np.asarray(tp, dtype=np.float64).reshape(n_thr, n_pred)
    fp_arr = 1.0 - tp_arr

    tp_cumsum = np.cumsum(tp_arr, axis=1)
    fp_cumsum = np.cumsum(fp_arr, axis=1)
    recall = tp_cumsum / npos
    precision = tp_cumsum / (tp_cumsum + fp_cumsum)
    for tidx in range(n_thr):
        ap[tidx] = interpolated_prec_rec(precision[tidx, :], recall[tidx, :])
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
class _Predictions:
    """Predictions with a known label, in submission order."""

    videos: tuple[str, ...]
    labels: tuple[int, ...]
    segments: np.ndarray  # (M, 2) float64
    scores: np.ndarray  # (M,) int64 if every score is an int (as pandas would infer), else float64
    unknown: dict[str, int] = field(default_factory=dict)


def _parse_predictions(
    predictions: Mapping[str, Any], label_index: Mapping[str, int], source: str
) -> _Predictions:
    """Read the ``results`` of a submission; unknown labels are counted, not raised."""
    results = predictions.get("results") if isinstance(predictions, Mapping) else None
    if not isinstance(results, Mapping):
        raise ValueError(f"{source}: no 'results' mapping (ActivityNet submission schema)")
    videos: list[str] = []
    labels: list[int] = []
    segments: list[tuple[float, float]] = []
    scores: list[int | float] = []
    unknown: dict[str, int] = {}
    for vid, entries in results.items():
        where = f"{source}: video {vid!r}"
        if not isinstance(entries, list):
            raise ValueError(f"{where}: results must be a list of detections")
        for det in entries:
            if not isinstance(det, Mapping) or not {"label", "score", "segment"} <= det.keys():
                raise ValueError(f"{where}: detection without 'label', 'score', 'segment'")
            label, score = det["label"], det["score"]
            if not isinstance(label, str):
                raise ValueError(f"{where}: label must be a string, got {label!r}")
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise ValueError(f"{where}: score must be a number, got {score!r}")
            segment = _segment(det["segment"], where)
            if label not in label_index:
                unknown[label] = unknown.get(label, 0) + 1
                continue
            videos.append(vid)
            labels.append(label_index[label])
            segments.append(segment)
            scores.append(score)
    score_arr = np.array(scores)
    if score_arr.dtype.kind not in "if":  # empty, or ints beyond int64
        score_arr = np.array(scores, dtype=np.float64)
    return _Predictions(
        videos=tuple(videos),
        labels=tuple(labels),
        segments=np.asarray(segments, dtype=np.float64).reshape(-1, 2),
        scores=score_arr,
        unknown=unknown,
    )


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
# Public API
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """Detection mAP of one submission on one subset.

    Attributes:
        tious: ``(K,)`` tIoU thresholds.
        labels: class names in class order (first seen in the subset's ground truth).
        ap: ``(C, K)`` average precision per class and threshold.
        mAP: ``(K,)`` mean of ``ap`` over the classes.
        average_mAP: mean of ``mAP`` over the thresholds.
        unknown_labels: predictions skipped because their label has no GT in the subset,
            counted per label.
        n_videos: videos in the subset (with or without annotations).
        n_ground_truth: GT instances in the subset.
        n_predictions: predictions evaluated (unknown labels excluded).
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: thresholds, mAP, average mAP, per-class AP, counts."""
        return {
            "tiou": [float(t) for t in self.tious],
            "mAP": [float(m) for m in self.mAP],
            "average_mAP": float(self.average_mAP),
            "per_class": {
                label: [float(a) for a in self.ap[c]] for c, label in enumerate(self.labels)
            },
            "unknown_labels": dict(self.unknown_labels),
            "n_videos": self.n_videos,
            "n_ground_truth": self.n_ground_truth,
            "n_predictions": self.n_predictions,
        }


def _detection_map(
    gt: _GroundTruth, preds: _Predictions, tious: np.ndarray
) -> DetectionResult:
    """Run the official per-class evaluation on parsed inputs."""
    n_classes = len(gt.labels)
    gt_labels = np.asarray(gt.instance_labels, dtype=np.int64)
    pred_labels = np.asarray(preds.labels, dtype=np.int64)
    ap = np.zeros((n_classes, len(tious)))
    for cidx in range(n_classes):
        gt_rows = np.flatnonzero(gt_labels == cidx)
        pred_rows = np.flatnonzero(pred_labels == cidx)
        ap[cidx] = _class_average_precision(
            gt_videos=[gt.instance_videos[i] for i in gt_rows],
            gt_segments=gt.segments[gt_rows],
            pred_videos=[preds.videos[i] for i in pred_rows],
            pred_segments=preds.segments[pred_rows],
            pred_scores=preds.scores[pred_rows],
            tious=tious,
        )
    # The official array is (K, C) and averages over its contiguous last axis.
    m_ap = np.ascontiguousarray(ap.T).mean(axis=1)
    if preds.unknown:
        logger.warning(
            "skipped %d predictions whose label has no ground truth in the subset: %s",
            sum(preds.unknown.values()),
            ", ".join(f"{label!r} ×{n}" for label, n in preds.unknown.items()),
        )
    return DetectionResult(
        tious=_readonly(tious.copy()),
        labels=gt.labels,
        ap=_readonly(ap),
        mAP=_readonly(m_ap),
        average_mAP=float(m_ap.mean()),
        unknown_labels=MappingProxyType(dict(preds.unknown)),
        n_videos=len(gt.videos),
        n_ground_truth=len(gt.instance_videos),
        n_predictions=len(preds.videos),
    )


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
    label_index = {label: i for i, label in enumerate(gt.labels)}
    preds = _parse_predictions(predictions, label_index, "predictions")
    return _detection_map(gt, preds, thresholds)


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


def evaluate(
    ground_truth_path: Path,
    predictions_path: Path,
    *,
    subset: str,
    tious: Sequence[float],
    protocol: str = "anet",
    dataset: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Evaluate a detections file against a ground-truth file and return the ``map.json`` dict.

    Keys: ``dataset``, ``model``, ``protocol``, ``subset``, ``tiou``, ``mAP``, ``average_mAP``,
    ``per_class`` (label → AP per tIoU), ``unknown_labels``, ``protocols`` (``{protocol: {tiou,
    mAP, average_mAP, per_class, unknown_labels}}``) and, when the predictions file has a
    top-level ``video_scores`` mapping, ``classification`` (``{"mAP": x}``).

    Raises:
        ValueError: unknown protocol, or a malformed file (the message names the file and,
            for a bad entry, the video).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown evaluation protocol {protocol!r}; available: {', '.join(PROTOCOLS)}"
        )
    thresholds = _thresholds(tious)
    gt_data = read_json(ground_truth_path)
    pred_data = read_json(predictions_path)
    gt = _parse_ground_truth(gt_data, subset, str(ground_truth_path))
    if not gt.labels:
        raise ValueError(f"{ground_truth_path}: subset {subset!r} has no annotated instances")
    label_index = {label: i for i, label in enumerate(gt.labels)}
    preds = _parse_predictions(pred_data, label_index, str(predictions_path))
    result = _detection_map(gt, preds, thresholds).to_dict()
    summary = {
        key: result[key] for key in ("tiou", "mAP", "average_mAP", "per_class", "unknown_labels")
    }
    out: dict[str, Any] = {
        "dataset": dataset,
        "model": model,
        "protocol": protocol,
        "subset": subset,
        **summary,
        "protocols": {protocol: copy.deepcopy(summary)},
    }
    video_scores = pred_data.get("video_scores")
    if video_scores is not None:
        if not isinstance(video_scores, Mapping):
            raise ValueError(f"{predictions_path}: 'video_scores' must map video -> label scores")
        out["classification"] = {
            "mAP": _classification_map(gt, video_scores, str(predictions_path))
        }
    return out
