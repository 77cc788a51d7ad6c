"""Pure-torch post-processing: tIoU, Soft-NMS (KT-MGFN Eq. 7), hard NMS, CAS runs."""

import math

import numpy as np
import pytest
import torch

from wtal.postprocess import (
    batched_nms,
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


# ---------------------------------------------------------------------------------------------
# Batched NMS / Soft-NMS against a straightforward one-at-a-time reference
# ---------------------------------------------------------------------------------------------


def ref_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def ref_nms(
    segs: list[tuple[float, float]],
    scores: list[float],
    *,
    method: str,
    theta: float,
    eps: float = 0.75,
    max_keep: int | None = None,
    min_score: float = -math.inf,
) -> list[tuple[int, float]]:
    """Greedy suppression of one group, one selection at a time, in plain Python."""
    sc = list(scores)
    remaining = list(range(len(sc)))
    out: list[tuple[int, float]] = []
    while remaining and (max_keep is None or len(out) < max_keep):
        best = max(remaining, key=lambda i: (sc[i], -i))  # first index among equal scores
        if sc[best] < min_score:
            break
        out.append((best, sc[best]))
        remaining.remove(best)
        for i in list(remaining):
            iou = ref_iou(segs[best], segs[i])
            if iou > theta:
                if method == "hard":
                    remaining.remove(i)
                elif method == "gaussian":
                    sc[i] *= math.exp(-(iou * iou) / eps)
                else:
                    sc[i] *= 1.0 - iou
    return out


def ref_batched(segs: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                **kwargs: object) -> tuple[list[int], list[float]]:
    keep: list[int] = []
    new: list[float] = []
    for g in sorted(set(groups.tolist())):
        members = [i for i, x in enumerate(groups.tolist()) if x == g]
        out = ref_nms([tuple(segs[i].tolist()) for i in members],
                      [float(scores[i]) for i in members], **kwargs)  # type: ignore[arg-type]
        keep += [members[j] for j, _ in out]
        new += [s for _, s in out]
    return keep, new


def random_proposals(seed: int, n: int, n_groups: int, *, quantized: bool):
    g = torch.Generator().manual_seed(seed)
    if quantized:  # many exact ties, duplicates, zero-length and touching segments
        start = torch.randint(0, 40, (n,), generator=g).to(torch.float64) / 2
        length = torch.randint(0, 12, (n,), generator=g).to(torch.float64) / 2
        scores = torch.randint(1, 8, (n,), generator=g).to(torch.float64) / 8
    else:
        start = torch.rand(n, generator=g, dtype=torch.float64) * 100
        length = torch.rand(n, generator=g, dtype=torch.float64) * 20
        scores = torch.rand(n, generator=g, dtype=torch.float64)
    groups = torch.randint(0, n_groups, (n,), generator=g) * 7 - 3  # any integers
    return torch.stack([start, start + length], 1), scores, groups


@pytest.mark.parametrize("method", ["gaussian", "linear", "hard"])
@pytest.mark.parametrize("quantized", [False, True])
def test_batched_nms_equals_reference(method: str, quantized: bool) -> None:
    for seed in range(12):
        n = [0, 1, 7, 40, 120, 300][seed % 6]
        segs, scores, groups = random_proposals(seed, n, 1 + seed % 4, quantized=quantized)
        theta = [0.0, 0.3, 0.5, 0.7][seed % 4]
        keep, new = batched_nms(segs, scores, groups, method=method, iou_threshold=theta)
        ref_keep, ref_new = ref_batched(segs, scores, groups, method=method, theta=theta)
        assert keep.tolist() == ref_keep
        if method == "gaussian":  # torch.exp and math.exp may differ in the last bit
            np.testing.assert_allclose(new.numpy(), ref_new, rtol=1e-12, atol=0)
        else:
            assert new.tolist() == ref_new


def test_batched_nms_long_group_uses_topk_and_ties() -> None:
    # one group far longer than the 64 candidates of a round: the topk path, with ties at the
    # k-th score on quantized scores (full-sort fallback), and many rounds
    segs, scores, _ = random_proposals(5, 700, 1, quantized=True)
    for method in ("linear", "hard"):
        keep, new = batched_nms(segs, scores, method=method, iou_threshold=0.4)
        ref_keep, ref_new = ref_batched(segs, scores, torch.zeros(700, dtype=torch.long),
                                        method=method, theta=0.4)
        assert keep.tolist() == ref_keep
        assert new.tolist() == ref_new


def test_batched_nms_small_budget_equals_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    import wtal.postprocess as pp

    monkeypatch.setattr(pp, "_BUDGET", 50)  # rounds of one or two candidates per row
    segs, scores, groups = random_proposals(3, 200, 5, quantized=False)
    keep, new = batched_nms(segs, scores, groups, method="gaussian", iou_threshold=0.2)
    ref_keep, ref_new = ref_batched(segs, scores, groups, method="gaussian", theta=0.2)
    assert keep.tolist() == ref_keep
    np.testing.assert_allclose(new.numpy(), ref_new, rtol=1e-12)


@pytest.mark.parametrize("method", ["gaussian", "linear", "hard"])
def test_batched_nms_max_keep_and_min_score_per_group(method: str) -> None:
    segs, scores, groups = random_proposals(11, 150, 3, quantized=False)
    for max_keep, min_score in [(1, -math.inf), (5, -math.inf), (None, 0.4), (7, 0.3)]:
        keep, new = batched_nms(segs, scores, groups, method=method, iou_threshold=0.3,
                                max_keep=max_keep, min_score=min_score)
        ref_keep, ref_new = ref_batched(segs, scores, groups, method=method, theta=0.3,
                                        max_keep=max_keep, min_score=min_score)
        assert keep.tolist() == ref_keep
        np.testing.assert_allclose(new.numpy(), ref_new, rtol=1e-12)


def test_eq7_threshold_is_strict_and_linear_decay() -> None:
    segs = torch.tensor([[0.0, 10.0], [0.0, 5.0], [0.0, 6.0]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    # IoU([0,10],[0,5]) = 0.5 exactly: not above θ = 0.5, so [0,5] keeps 0.8; [0,6] has IoU
    # 0.6 with [0,10], then 5/6 with [0,5]: decayed twice
    _, sc = soft_nms(segs, scores, iou_threshold=0.5, epsilon=0.75)
    expected = 0.7 * math.exp(-0.36 / 0.75) * math.exp(-(25 / 36) / 0.75)
    assert sc.tolist() == pytest.approx([0.9, 0.8, expected])
    _, sc = soft_nms(segs, scores, iou_threshold=0.5, method="linear")
    # [0,5] then [0,6]: IoU([0,5],[0,6]) = 5/6 > θ, so [0,6] decays twice: (1-.6)(1-5/6)
    assert sc.tolist() == pytest.approx([0.9, 0.8, 0.7 * 0.4 * (1 / 6)])
    s, _ = hard_nms(segs, scores, iou_threshold=0.5)
    assert s.tolist() == [[0.0, 10.0], [0.0, 5.0]]


def test_equal_scores_keep_input_order() -> None:
    segs = torch.tensor([[0.0, 1.0], [5.0, 6.0], [0.0, 1.0], [5.0, 6.0]])
    scores = torch.tensor([0.5, 0.5, 0.5, 0.5])
    keep, _ = batched_nms(segs, scores, method="hard", iou_threshold=0.5)
    assert keep.tolist() == [0, 1]  # the duplicates 2 and 3 are suppressed, not 0 and 1
    keep, new = batched_nms(segs, scores, torch.tensor([1, 0, 1, 0]), method="linear")
    # group 0 first; within a group, the duplicate decays to 0 (IoU 1)
    assert keep.tolist() == [1, 3, 0, 2]
    assert new.tolist() == [0.5, 0.0, 0.5, 0.0]


def test_batched_nms_validates_and_keeps_dtypes() -> None:
    segs = torch.tensor([[0.0, 1.0]], dtype=torch.float32)
    with pytest.raises(ValueError, match="method"):
        batched_nms(segs, torch.ones(1), method="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="iou_threshold"):
        batched_nms(segs, torch.ones(1), iou_threshold=-0.1)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        batched_nms(segs, torch.ones(2))
    s, sc = soft_nms(segs, torch.ones(1, dtype=torch.float32))
    assert (s.dtype, sc.dtype) == (torch.float32, torch.float32)
    keep, new = batched_nms(segs, torch.ones(1), max_keep=0)
    assert keep.shape == (0,)
    assert new.shape == (0,)


def test_time_clusters_split_only_where_nothing_overlaps() -> None:
    from wtal.postprocess import _time_clusters

    segs = torch.tensor([[0.0, 2.0], [1.0, 3.0], [3.0, 4.0], [10.0, 11.0], [0.5, 0.6],
                         [10.5, 10.6]], dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 0, 0, 1])
    c = _time_clusters(segs, groups).tolist()
    assert c[0] == c[1] == c[4]  # chained by positive overlaps
    assert len({c[0], c[2], c[3], c[5]}) == 4  # touching at 3.0 is no overlap; other group
