"""Frame accuracy (wtal/frame_metrics.py, ECM table 6): class rejection, arg-max over the kept
classes, background snippets left out, ground truth mapped through the snippet grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from extractors.grid import SnippetGrid
from wtal.frame_metrics import (
    dataset_frame_accuracy,
    frame_accuracy,
    kept_classes,
    snippet_labels,
)

# 16-frame snippets at 16 fps: snippet t owns [t, t + 1) seconds and is centred at t + 0.5
GRID4 = SnippetGrid(fps=16.0, n_frames=64)


def test_snippet_labels_use_snippet_centres() -> None:
    grid = SnippetGrid(fps=16.0, n_frames=6 * 16)  # centres 0.5 … 5.5
    inside = snippet_labels([(1, 0.4, 2.5), (0, 2.0, 3.6), (1, 5.6, 9.0)], grid, 2)
    # class 1: centres 0.5, 1.5 in [0.4, 2.5); 2.5 is not (end excluded); nothing ≥ 5.6
    assert inside[:, 1].tolist() == [True, True, False, False, False, False]
    # class 0: centres 2.5, 3.5 in [2.0, 3.6)
    assert inside[:, 0].tolist() == [False, False, True, True, False, False]
    with pytest.raises(ValueError, match="out of range"):
        snippet_labels([(2, 0.0, 1.0)], grid, 2)


def test_frame_accuracy_by_hand() -> None:
    cas = np.array([[0.9, 0.8, 0.0], [0.1, 0.7, 0.9], [0.2, 0.1, 0.0], [0.5, 0.4, 0.6]])
    scores = np.array([0.6, 0.3, 0.1])  # class 2 rejected at τ = 0.25
    # snippets 0 and 3 are class 0, snippet 1 class 1, snippet 2 background (not counted)
    gt = [(0, 0.0, 1.0), (1, 1.0, 2.0), (0, 3.0, 4.0)]
    # predictions among the kept classes {0, 1}: 0, 1, (0), 0 → all three counted correct;
    # without rejection snippet 1 would go to class 2 and snippet 3 too
    assert frame_accuracy(cas, scores, gt, GRID4) == (3, 3)
    assert frame_accuracy(cas, scores, gt, GRID4, tau=0.0) == (1, 3)
    assert frame_accuracy(cas, scores, gt, GRID4, tau=0.5) == (2, 3)  # only class 0 kept
    # no class reaches τ: the best one alone is kept
    assert frame_accuracy(cas, scores, gt, GRID4, tau=0.9) == (2, 3)
    assert kept_classes(scores, tau=0.9).tolist() == [0]


def test_overlapping_instances_accept_either_class_and_background_is_ignored() -> None:
    cas = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    scores = np.array([0.9, 0.9])
    gt = [(0, 0.0, 2.0), (1, 1.0, 3.0)]  # snippet 1 is in both instances, snippet 3 in none
    assert frame_accuracy(cas, scores, gt, GRID4) == (3, 3)
    assert frame_accuracy(cas, scores, [], GRID4) == (0, 0)


def test_frame_accuracy_follows_the_grid_stride() -> None:
    # 8-frame stride, 16-frame snippets at 16 fps: centres 0.5, 1.0, 1.5, 2.0, 2.5
    grid = SnippetGrid(fps=16.0, n_frames=48, length=16, stride=8)
    assert grid.n_snippets == 5
    cas = np.array([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 2)
    scores = np.array([0.5, 0.5])
    gt = [(1, 1.2, 2.2)]  # centres 1.5 and 2.0 inside: predicted class 0 and 1
    assert frame_accuracy(cas, scores, gt, grid) == (1, 2)


def test_shape_errors_and_dataset_mean() -> None:
    with pytest.raises(ValueError, match="grid"):
        frame_accuracy(np.zeros((3, 2)), np.zeros(2), [], GRID4)
    with pytest.raises(ValueError, match="classes"):
        frame_accuracy(np.zeros((4, 2)), np.zeros(3), [], GRID4)
    assert dataset_frame_accuracy([(3, 4), (1, 6), (0, 0)]) == pytest.approx(0.4)
    assert math.isnan(dataset_frame_accuracy([(0, 0)]))
