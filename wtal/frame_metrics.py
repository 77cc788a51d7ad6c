"""Frame accuracy of a class activation sequence (ECM, Zhao et al., TPAMI, Sec. 4.3, table 6).

ECM measures how well the CAS classifies single temporal points, following the frame accuracy
of action segmentation: "we first predict the video-level classification scores and reject
categories whose classification scores are lower than threshold τ = 0.25. Then, for the
remaining responses, we perform max pooling and obtain the point-wise classification
predictions" and "we do not consider the background points".

The definition implemented here, on the project's snippet grid (a "point" is a snippet):

* **kept classes**: those whose video score reaches τ; when none does, the best-scoring class
  alone (every snippet needs a prediction, as in the localiser);
* **prediction** of snippet t: the kept class with the largest CAS value at t (the max pooling
  over the remaining responses);
* **counted snippets**: the snippets whose centre (:meth:`SnippetGrid.centers`) lies inside at
  least one ground-truth instance, ``start <= centre < end``; background snippets are left out;
* **correct**: the prediction is the class of an instance containing the snippet's centre (any
  of them where instances of different classes overlap).

:func:`frame_accuracy` returns ``(correct, counted)`` for one video; the dataset's frame
accuracy is Σ correct / Σ counted over the test videos (a snippet-weighted mean, not a mean of
per-video accuracies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from extractors.grid import SnippetGrid


def snippet_labels(
    gt: Sequence[tuple[int, float, float]], grid: SnippetGrid, num_classes: int
) -> np.ndarray:
    """Which classes' instances contain each snippet's centre: (T, C) bool.

    Args:
        gt: ground-truth instances ``(class index, start s, end s)``.
        grid: the video's snippet grid.
        num_classes: C.
    """
    centers = grid.centers()  # (T,)
    inside = np.zeros((len(centers), num_classes), dtype=bool)
    for c, start, end in gt:
        if not 0 <= c < num_classes:
            raise ValueError(f"ground-truth class {c} out of range (0..{num_classes - 1})")
        inside[:, c] |= (centers >= start) & (centers < end)
    return inside


def kept_classes(video_scores: np.ndarray, *, tau: float) -> np.ndarray:
    """Indices of the classes whose video score reaches τ (the best one if none does)."""
    kept = np.flatnonzero(video_scores >= tau)
    if kept.size == 0:
        kept = np.array([int(np.argmax(video_scores))])
    return kept


def frame_accuracy(
    cas: np.ndarray,
    video_scores: np.ndarray,
    gt: Sequence[tuple[int, float, float]],
    grid: SnippetGrid,
    *,
    tau: float = 0.25,
) -> tuple[int, int]:
    """ECM table 6's frame accuracy of one video (definition in the module docstring).

    Args:
        cas: (T, C) class activation sequence (any per-snippet scores that are monotone per
            class; only the arg-max over the kept classes matters).
        video_scores: (C,) video-level classification scores.
        gt: ground-truth instances ``(class index, start s, end s)`` of the video.
        grid: the video's snippet grid (T snippets).
        tau: rejection threshold on the video scores (0.25 in the paper).

    Returns:
        (correct, counted) action snippets.
    """
    cas = np.asarray(cas)
    video_scores = np.asarray(video_scores)
    if cas.ndim != 2 or cas.shape[0] != grid.n_snippets:
        raise ValueError(f"CAS has shape {cas.shape}, the grid {grid.n_snippets} snippets")
    if video_scores.shape != (cas.shape[1],):
        raise ValueError(f"video scores {video_scores.shape} do not match {cas.shape[1]} classes")
    kept = kept_classes(video_scores, tau=tau)
    pred = kept[np.argmax(cas[:, kept], axis=1)]  # (T,) predicted class per snippet
    inside = snippet_labels(gt, grid, cas.shape[1])  # (T, C)
    counted = inside.any(axis=1)  # (T,) action snippets
    correct = inside[np.arange(len(pred)), pred] & counted
    return int(correct.sum()), int(counted.sum())


def dataset_frame_accuracy(counts: Iterable[tuple[int, int]]) -> float:
    """Σ correct / Σ counted over videos' :func:`frame_accuracy` results (NaN if none counted)."""
    correct = counted = 0
    for c, n in counts:
        correct += c
        counted += n
    return correct / counted if counted else float("nan")
