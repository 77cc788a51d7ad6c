"""Pure-torch post-processing: tIoU, Soft-NMS (KT-MGFN Eq. 7), hard NMS, CAS runs."""

import math

import numpy as np
import pytest
import torch

from wtal.postprocess import (
    hard_nms,
    minmax,
    outer_inner_score,
    pairwise_tiou,
    runs_above,
    soft_nms,
)


def test_pairwise_tiou() -> None:
    a = torch.tensor([[0.0, 2.0], [5.0, 6.0]])
    b = torch.tensor([[1.0, 3.0], [2.0, 4.0], [0.0, 2.0]])
    iou = pairwise_tiou(a, b)
    np.testing.assert_allclose(iou.numpy(), [[1 / 3, 0.0, 1.0], [0.0, 0.0, 0.0]])


def test_soft_nms_decays_only_above_threshold() -> None:
    segs = torch.tensor([[0.0, 10.0], [1.0, 10.0], [5.0, 15.0], [20.0, 30.0]],
                        dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64)
    out_segs, out_scores = soft_nms(segs, scores, iou_threshold=0.5, epsilon=0.75)
    assert len(out_scores) == 4  # Soft-NMS re-scores, it does not drop
    # [1,10] has IoU 0.9 with [0,10] > 0.5: decayed by exp(-0.81/0.75)
    expected_second = 0.8 * math.exp(-(0.9**2) / 0.75)
    # [5,15] has IoU 1/3 with [0,10] < 0.5: kept at 0.7, and it now outranks [1,10]
    assert out_scores[1].item() == pytest.approx(0.7)
    assert out_segs[1].tolist() == [5.0, 15.0]
    # [1,10] vs [5,15]: IoU 5/14 < 0.5, no further decay; [20,30] overlaps nothing
    assert out_scores.tolist() == pytest.approx([0.9, 0.7, 0.6, expected_second])
    assert out_segs[3].tolist() == [1.0, 10.0]


def test_soft_nms_max_keep_and_empty() -> None:
    segs = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    scores = torch.tensor([0.1, 0.3, 0.2])
    s, sc = soft_nms(segs, scores, max_keep=2)
    assert s.tolist() == [[2.0, 3.0], [4.0, 5.0]]
    s, sc = soft_nms(torch.zeros((0, 2)), torch.zeros(0))
    assert s.shape == (0, 2)
    assert sc.shape == (0,)


def test_hard_nms() -> None:
    segs = torch.tensor([[0.0, 10.0], [1.0, 10.0], [5.0, 15.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    s, sc = hard_nms(segs, scores, iou_threshold=0.5)
    assert s.tolist() == [[0.0, 10.0], [5.0, 15.0]]
    assert sc.tolist() == pytest.approx([0.9, 0.7])


def test_runs_above() -> None:
    v = np.array([0.0, 0.6, 0.7, 0.1, 0.9, 0.9, 0.9, 0.2, 0.8])
    assert runs_above(v, 0.5) == [(1, 2), (4, 6), (8, 8)]
    assert runs_above(v, 0.95) == []
    assert runs_above(np.ones(3), 0.5) == [(0, 2)]


def test_outer_inner_score_prefers_tight_segments() -> None:
    cas = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    tight = outer_inner_score(cas, 3, 6, inflation=0.5)
    loose = outer_inner_score(cas, 1, 8, inflation=0.5)
    partial = outer_inner_score(cas, 4, 5, inflation=0.5)
    assert tight == pytest.approx(1.0)
    assert tight > loose
    assert tight > partial


def test_minmax() -> None:
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(minmax(np.array([1.0, 1.0])), [0.0, 0.0])
