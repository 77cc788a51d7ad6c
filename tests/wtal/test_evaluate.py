"""Tests for wtal.evaluate: hand-computed cases and a randomized comparison with a literal
transcription of the official ActivityNet ``eval_detection.py`` algorithm."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wtal.evaluate import (
    DetectionResult,
    anet_detection_map,
    classification_map,
    evaluate,
    interpolated_prec_rec,
    segment_iou,
)

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def gt_db(videos: dict[str, list[tuple[Any, Any, str]]], subset: str = "validation") -> dict:
    """Ground truth dict; each video maps to [(start, end, label), ...]."""
    return {
        "database": {
            vid: {
                "subset": subset,
                "duration": 100.0,
                "annotations": [{"segment": [s, e], "label": lab} for s, e, lab in anns],
            }
            for vid, anns in videos.items()
        }
    }


def preds(videos: dict[str, list[tuple[Any, Any, str, float]]]) -> dict:
    """Submission dict; each video maps to [(start, end, label, score), ...]."""
    return {
        "version": "VERSION 1.3",
        "results": {
            vid: [{"segment": [s, e], "label": lab, "score": sc} for s, e, lab, sc in dets]
            for vid, dets in videos.items()
        },
        "external_data": {"used": False},
    }


# ---------------------------------------------------------------------------------------------
# Literal transcription of the official algorithm (plain lists; no wtal code involved).
# Rows mimic the pandas DataFrames of ANETdetection: one list per column, groupby keeps row
# order, get_group on a missing video is the "no GT in this video" branch.
# ---------------------------------------------------------------------------------------------


def ref_segment_iou(target_segment: Any, candidate_segments: np.ndarray) -> np.ndarray:
    tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
    tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
    segments_intersection = (tt2 - tt1).clip(0)
    segments_union = (
        (candidate_segments[:, 1] - candidate_segments[:, 0])
        + (target_segment[1] - target_segment[0])
        - segments_intersection
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return segments_intersection.astype(float) / segments_union


def ref_interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def ref_compute_ap(gt: dict[str, list], pred: dict[str, Any], tiou_thresholds: np.ndarray):
    """compute_average_precision_detection on column lists (gt already reset_index'ed)."""
    ap = np.zeros(len(tiou_thresholds))
    if len(pred["video-id"]) == 0:
        return ap
    npos = float(len(gt["video-id"]))
    lock_gt = np.ones((len(tiou_thresholds), len(gt["video-id"]))) * -1
    sort_idx = pred["score"].argsort()[::-1]
    p_vid = [pred["video-id"][i] for i in sort_idx]
    p_start = [pred["t-start"][i] for i in sort_idx]
    p_end = [pred["t-end"][i] for i in sort_idx]
    tp = np.zeros((len(tiou_thresholds), len(p_vid)))
    fp = np.zeros((len(tiou_thresholds), len(p_vid)))
    # groupby('video-id'): video -> list of original row indices, in row order
    groups: dict[str, list[int]] = {}
    for row in range(len(gt["video-id"])):
        groups.setdefault(gt["video-id"][row], []).append(row)
    for idx in range(len(p_vid)):
        if p_vid[idx] not in groups:
            fp[:, idx] = 1
            continue
        this_gt_index = groups[p_vid[idx]]
        this_gt_seg = np.array([[gt["t-start"][r], gt["t-end"][r]] for r in this_gt_index])
        target = np.array([p_start[idx], p_end[idx]], dtype=object)
        tiou_arr = ref_segment_iou(target, this_gt_seg)
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt_index[jdx]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt_index[jdx]] = idx
                break
            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1
    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos
    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = ref_interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
    return ap


def ref_anet(ground_truth: dict, prediction: dict, subset: str, tious: np.ndarray):
    """ANETdetection(check_status=False).evaluate(); returns (ap (K, C), mAP, average_mAP)."""
    activity_index: dict[str, int] = {}
    cidx = 0
    g_vid, g_start, g_end, g_label = [], [], [], []
    for videoid, v in ground_truth["database"].items():
        if subset != v["subset"]:
            continue
        for ann in v["annotations"]:
            if ann["label"] not in activity_index:
                activity_index[ann["label"]] = cidx
                cidx += 1
            g_vid.append(videoid)
            g_start.append(float(ann["segment"][0]))
            g_end.append(float(ann["segment"][1]))
            g_label.append(activity_index[ann["label"]])
    p_vid, p_start, p_end, p_label, p_score = [], [], [], [], []
    for videoid, v in prediction["results"].items():
        for result in v:
            label = activity_index[result["label"]]  # KeyError, as the official code
            p_vid.append(videoid)
            p_start.append(float(result["segment"][0]))
            p_end.append(float(result["segment"][1]))
            p_label.append(label)
            p_score.append(result["score"])
    score_column = np.array(p_score)  # pandas infers int64 or float64 the same way
    ap = np.zeros((len(tious), len(activity_index)))
    for c in activity_index.values():
        g_rows = [i for i in range(len(g_vid)) if g_label[i] == c]
        p_rows = [i for i in range(len(p_vid)) if p_label[i] == c]
        gt = {
            "video-id": [g_vid[i] for i in g_rows],
            "t-start": [g_start[i] for i in g_rows],
            "t-end": [g_end[i] for i in g_rows],
        }
        pr = {
            "video-id": [p_vid[i] for i in p_rows],
            "t-start": [p_start[i] for i in p_rows],
            "t-end": [p_end[i] for i in p_rows],
            "score": score_column[p_rows] if p_rows else np.array([]),
        }
        ap[:, c] = ref_compute_ap(gt, pr, tious)
    m_ap = ap.mean(axis=1)
    return ap, m_ap, m_ap.mean(), list(activity_index)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


def test_segment_iou_values() -> None:
    out = segment_iou(np.array([0.0, 10.0]), np.array([[0, 10], [5, 15], [10, 20], [12, 14]]))
    np.testing.assert_allclose(out, [1.0, 5 / 15, 0.0, 0.0])


def test_interpolated_prec_rec_by_hand() -> None:
    # running max from the right turns precision [1, .5, 2/3] into [1, 2/3, 2/3]
    ap = interpolated_prec_rec(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0]))
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Hand-computed detection cases
# ---------------------------------------------------------------------------------------------


def test_golden_one_class_two_gt_three_predictions() -> None:
    gt = gt_db({"v1": [(0, 10, "A"), (20, 30, "A")]})
    sub = preds({"v1": [(0, 10, "A", 0.9), (20, 25, "A", 0.7), (0, 8, "A", 0.8)]})
    res = anet_detection_map(gt, sub, subset="validation", tious=[0.5, 0.9])
    # sorted: p1 (tIoU 1 with g1), p3 (0.8 with g1), p2 (0.5 with g2)
    # thr .5: TP, FP (g1 taken, g2 tIoU 0), TP -> recall .5 .5 1, prec 1 .5 2/3 -> .5 + .5*2/3
    # thr .9: TP, FP, FP -> .5
    np.testing.assert_allclose(res.ap, [[5 / 6, 0.5]], atol=1e-12)
    np.testing.assert_allclose(res.mAP, [5 / 6, 0.5], atol=1e-12)
    assert res.average_mAP == pytest.approx(2 / 3, abs=1e-12)
    assert res.labels == ("A",)
    assert (res.n_videos, res.n_ground_truth, res.n_predictions) == (1, 2, 3)


@pytest.mark.parametrize(("pred_end", "thr"), [(5, 0.5), (7, 0.7), (1, 0.1), (25, 0.4)])
def test_tiou_equal_to_threshold_matches(pred_end: float, thr: float) -> None:
    gt = gt_db({"v": [(0, 10, "A")]})
    sub = preds({"v": [(0, pred_end, "A", 1.0)]})
    tiou = segment_iou(np.array([0.0, pred_end]), np.array([[0.0, 10.0]]))[0]
    assert tiou == thr  # exactly on the threshold
    res = anet_detection_map(gt, sub, subset="validation", tious=[thr, np.nextafter(thr, 1)])
    np.testing.assert_array_equal(res.ap[0], [1.0, 0.0])


def test_gt_matched_once_per_threshold() -> None:
    gt = gt_db({"v": [(0, 10, "A"), (20, 30, "A")]})
    # a duplicate detection of g1 ranks above the detection of g2: it must be an FP
    sub = preds({"v": [(0, 10, "A", 0.9), (0, 10, "A", 0.8), (20, 30, "A", 0.7)]})
    res = anet_detection_map(gt, sub, subset="validation", tious=[0.5])
    assert res.ap[0, 0] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-12)


def test_locks_are_per_threshold() -> None:
    gt = gt_db({"v": [(0, 10, "A")]})
    sub = preds({"v": [(0, 6, "A", 0.9), (0, 10, "A", 0.8)]})
    res = anet_detection_map(gt, sub, subset="validation", tious=[0.5, 0.9])
    # thr .5: first claims the GT, second FP -> AP 1; thr .9: first FP, second TP -> AP .5
    np.testing.assert_allclose(res.ap[0], [1.0, 0.5], atol=1e-12)


def test_prediction_on_video_without_gt_of_its_class_is_fp() -> None:
    gt = gt_db({"v1": [(0, 10, "A")], "v2": [(0, 10, "B")]})
    sub = preds(
        {
            "v2": [(0, 10, "A", 0.9), (0, 10, "B", 0.9)],  # A has no GT in v2
            "nowhere": [(0, 10, "A", 0.8)],  # video absent from the GT
            "v1": [(0, 10, "A", 0.5)],
        }
    )
    res = anet_detection_map(gt, sub, subset="validation", tious=[0.5])
    np.testing.assert_allclose(res.ap[:, 0], [1 / 3, 1.0], atol=1e-12)


def test_class_without_predictions_scores_zero_and_lowers_map() -> None:
    gt = gt_db({"v1": [(0, 10, "A")], "v2": [(0, 10, "B")]})
    sub = preds({"v1": [(0, 10, "A", 0.9)]})
    res = anet_detection_map(gt, sub, subset="validation", tious=[0.5, 0.7])
    np.testing.assert_array_equal(res.ap, [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(res.mAP, [0.5, 0.5])
    assert res.average_mAP == 0.5


def test_unknown_label_is_skipped_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    gt = gt_db({"v1": [(0, 10, "A")]})
    sub = preds({"v1": [(0, 10, "Z", 0.99), (0, 10, "A", 0.5), (3, 4, "Z", 0.1), (0, 1, "Y", 1)]})
    with caplog.at_level(logging.WARNING, logger="wtal.evaluate"):
        res = anet_detection_map(gt, sub, subset="validation", tious=[0.5])
    assert dict(res.unknown_labels) == {"Z": 2, "Y": 1}
    assert res.n_predictions == 1
    assert res.ap[0, 0] == 1.0
    assert any("'Z'" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert res.to_dict()["unknown_labels"] == {"Z": 2, "Y": 1}


def test_string_segments_equal_float_segments() -> None:
    anns = [(0, 10, "A"), (20, 30, "A"), (40, 55.5, "B")]
    dets = [(1, 9, "A", 0.3), (19, 31, "A", 0.6), (40, 50, "B", 0.4), (0, 5, "A", 0.9)]
    ref = anet_detection_map(gt_db({"v": anns}), preds({"v": dets}), subset="validation",
                             tious=[0.3, 0.5, 0.7, 0.9])
    s_anns = [(str(s), str(e), lab) for s, e, lab in anns]
    s_dets = [(str(s), str(e), lab, sc) for s, e, lab, sc in dets]
    res = anet_detection_map(gt_db({"v": s_anns}), preds({"v": s_dets}), subset="validation",
                             tious=[0.3, 0.5, 0.7, 0.9])
    np.testing.assert_array_equal(res.ap, ref.ap)
    assert 0 < res.average_mAP < 1


def test_subset_filters_ground_truth_but_not_predictions() -> None:
    gt = gt_db({"val1": [(0, 10, "A")]})
    gt["database"].update(gt_db({"tr1": [(0, 10, "A")], "tr2": [(0, 10, "C")]}, "training")[
        "database"
    ])
    gt["database"]["val_empty"] = {"subset": "validation", "annotations": []}
    sub = preds({"tr1": [(0, 10, "A", 0.9)], "val1": [(0, 10, "A", 0.8)],
                 "tr2": [(0, 10, "C", 0.7)]})
    val = anet_detection_map(gt, sub, subset="validation", tious=[0.5])
    # the training video's prediction is not dropped: it has no validation GT, so it is an FP
    assert val.ap[0, 0] == pytest.approx(0.5)
    assert val.labels == ("A",)
    assert dict(val.unknown_labels) == {"C": 1}  # C exists only in training
    assert (val.n_videos, val.n_ground_truth, val.n_predictions) == (2, 1, 2)
    train = anet_detection_map(gt, sub, subset="training", tious=[0.5])
    assert train.labels == ("A", "C")
    # in training, the validation prediction is the FP (ranked below the TP)
    np.testing.assert_array_equal(train.ap[:, 0], [1.0, 1.0])


def test_prediction_ties_break_like_reversed_argsort() -> None:
    # two predictions with equal scores: p0 hits the GT, p1 misses
    gt = gt_db({"v": [(0, 10, "A")]})
    sub = preds({"v": [(0, 10, "A", 0.5), (50, 60, "A", 0.5)]})
    res = anet_detection_map(gt, sub, subset="validation", tious=[0.5])
    first = int(np.argsort(np.array([0.5, 0.5]))[::-1][0])
    # p0 first -> AP 1; p1 first -> precision 1/2 at recall 1 -> AP .5 (stable order would give 1)
    assert res.ap[0, 0] == (1.0 if first == 0 else 0.5)


def test_gt_ties_break_like_reversed_argsort_in_file_order() -> None:
    # p1 has tIoU 0.5 with both g1 and g2; which one it claims decides whether p2 (tIoU 1 with
    # g1, 1/3 with g2) is a TP
    gt = gt_db({"v": [(0, 4, "A"), (2, 6, "A")]})
    sub = preds({"v": [(2, 4, "A", 0.9), (0, 4, "A", 0.8)]})
    tiou = segment_iou(np.array([2.0, 4.0]), np.array([[0.0, 4.0], [2.0, 6.0]]))
    assert tiou[0] == tiou[1] == 0.5
    claimed = int(tiou.argsort()[::-1][0])
    res = anet_detection_map(gt, sub, subset="validation", tious=[0.5])
    assert res.ap[0, 0] == (1.0 if claimed == 1 else 0.5)
    # swapping the file order of the two GTs swaps the outcome
    gt_swapped = gt_db({"v": [(2, 6, "A"), (0, 4, "A")]})
    swapped = anet_detection_map(gt_swapped, sub, subset="validation", tious=[0.5])
    assert swapped.ap[0, 0] == (1.0 if claimed == 0 else 0.5)


def test_result_is_frozen_and_json_ready() -> None:
    res = anet_detection_map(gt_db({"v": [(0, 10, "A")]}), preds({"v": [(0, 10, "A", 1)]}),
                             subset="validation", tious=[0.5])
    assert isinstance(res, DetectionResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.average_mAP = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        res.ap[0, 0] = 0.0
    d = json.loads(json.dumps(res.to_dict()))
    assert d["per_class"] == {"A": [1.0]}
    assert d["tiou"] == [0.5]
    assert d["mAP"] == [1.0]


def test_invalid_inputs_raise_value_error_naming_the_video() -> None:
    gt = gt_db({"v": [(0, 10, "A")]})
    with pytest.raises(ValueError, match=r"'bad'.*segment"):
        anet_detection_map(gt, {"results": {"bad": [{"label": "A", "score": 1, "segment": [1]}]}},
                           subset="validation", tious=[0.5])
    with pytest.raises(ValueError, match="'bad'"):
        anet_detection_map(gt_db({"bad": [("x", 1, "A")]}), preds({}), subset="validation",
                           tious=[0.5])
    with pytest.raises(ValueError, match="no annotated instances"):
        anet_detection_map(gt, preds({}), subset="testing", tious=[0.5])
    with pytest.raises(ValueError, match="tious"):
        anet_detection_map(gt, preds({}), subset="validation", tious=[])


# ---------------------------------------------------------------------------------------------
# Randomized comparison with the literal transcription
# ---------------------------------------------------------------------------------------------


def random_case(seed: int) -> tuple[dict, dict, np.ndarray]:
    rng = random.Random(seed)
    labels = ["A", "B", "C", "D"][: rng.randint(1, 4)]
    big = seed % 5 == 0  # many tied predictions per class: exercises argsort beyond 16 items
    n_videos = rng.randint(1, 8)
    database: dict[str, Any] = {}
    for v in range(n_videos):
        subset = "validation" if rng.random() < 0.8 else "training"
        anns = []
        for _ in range(rng.randint(0, 5)):
            s = rng.randint(0, 16) / 2
            e = s + rng.randint(0 if rng.random() < 0.05 else 1, 12) / 2
            seg: list[Any] = [s, e] if rng.random() < 0.8 else [str(s), str(e)]
            anns.append({"segment": seg, "label": rng.choice(labels)})
            if rng.random() < 0.15:  # duplicated GT
                anns.append({"segment": list(seg), "label": anns[-1]["label"]})
        database[f"vid{v}"] = {"subset": subset, "duration": 20.0, "annotations": anns}
    if not any(a for d in database.values() if d["subset"] == "validation"
               for a in d["annotations"]):
        database["vid_fix"] = {"subset": "validation",
                               "annotations": [{"segment": [0, 4], "label": labels[0]}]}
    known = sorted({a["label"] for d in database.values() if d["subset"] == "validation"
                    for a in d["annotations"]})
    int_scores = rng.random() < 0.1
    score_pool = [rng.randint(0, 5) for _ in range(4)] if int_scores else [
        round(rng.random(), 1) for _ in range(rng.randint(1, 6))]
    results: dict[str, list] = {}
    video_ids = [*database, "ghost"]
    for _ in range(rng.randint(0, 200 if big else 30)):
        vid = rng.choice(video_ids)
        s = rng.randint(0, 16) / 2
        e = s + rng.randint(0 if rng.random() < 0.05 else 1, 12) / 2
        results.setdefault(vid, []).append(
            {"segment": [s, e], "label": rng.choice(known), "score": rng.choice(score_pool)}
        )
    tious = rng.choice([np.linspace(0.5, 0.95, 10), np.array([0.1, 0.25, 0.5, 0.75]),
                        np.linspace(0.1, 0.9, 9)])
    return {"database": database}, {"results": results}, tious


@pytest.mark.parametrize("block", range(8))
def test_matches_literal_official_transcription(block: int) -> None:
    n_checked_nontrivial = 0
    for seed in range(block * 60, (block + 1) * 60):
        gt, sub, tious = random_case(seed)
        ap_ref, map_ref, avg_ref, labels_ref = ref_anet(gt, sub, "validation", tious)
        # unknown labels: ours skips them; the official code would need them removed first
        noisy = json.loads(json.dumps(sub))
        noisy["results"].setdefault("vid0", []).insert(
            0, {"segment": [0, 1], "label": "UNSEEN", "score": 0.3}
        )
        res = anet_detection_map(gt, noisy, subset="validation", tious=tious)
        assert list(res.labels) == labels_ref
        np.testing.assert_allclose(res.ap, ap_ref.T, rtol=0, atol=1e-9)
        np.testing.assert_allclose(res.mAP, map_ref, rtol=0, atol=1e-9)
        assert res.average_mAP == pytest.approx(avg_ref, abs=1e-9)
        assert dict(res.unknown_labels) == {"UNSEEN": 1}
        n_checked_nontrivial += bool(0 < avg_ref < 1)
    assert n_checked_nontrivial > 20  # the random cases are not degenerate


def test_reference_kernels_agree_with_module() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        prec, rec = rng.random(n), np.sort(rng.random(n))
        assert interpolated_prec_rec(prec, rec) == pytest.approx(
            ref_interpolated_prec_rec(prec, rec), abs=1e-12)
        segs = np.sort(rng.integers(0, 20, size=(n, 2)), axis=1).astype(float)
        target = np.sort(rng.integers(0, 20, size=2)).astype(float)
        np.testing.assert_array_equal(segment_iou(target, segs), ref_segment_iou(target, segs))


# ---------------------------------------------------------------------------------------------
# Classification mAP
# ---------------------------------------------------------------------------------------------


def test_classification_map_by_hand() -> None:
    gt = gt_db({"v1": [(0, 1, "A")], "v2": [(0, 1, "B")], "v3": [(0, 1, "A"), (2, 3, "B")]})
    gt["database"]["t1"] = {"subset": "training", "annotations": [{"segment": [0, 1],
                                                                   "label": "E"}]}
    scores = {
        "v1": {"A": 0.9, "B": 0.75},
        "v2": {"A": 0.8, "B": 0.7},
        "v3": {"A": 0.3},  # B missing -> 0
        "t1": {"A": 5.0, "B": 5.0},  # not in the subset: ignored
    }
    # A: v1+ v2- v3+ -> (1 + 2/3) / 2 ; B: v1- v2+ v3+ -> (1/2 + 2/3) / 2
    expected = ((1 + 2 / 3) / 2 + (1 / 2 + 2 / 3) / 2) / 2
    assert classification_map(gt, scores, subset="validation") == pytest.approx(expected)


def test_classification_map_ties_and_missing_videos() -> None:
    gt = gt_db({"v1": [], "v2": [(0, 1, "A")], "v3": []})
    # ties keep database order: v1 (negative) before v2 -> AP 1/2
    assert classification_map(gt, {"v1": {"A": 0.5}, "v2": {"A": 0.5}},
                              subset="validation") == pytest.approx(0.5)
    # v2 and v3 missing both score 0: v1 .5 (neg), v2 0 (pos), v3 0 -> AP 1/2
    assert classification_map(gt, {"v1": {"A": 0.5}}, subset="validation") == pytest.approx(0.5)
    assert classification_map(gt, {"v2": {"A": 0.1}}, subset="validation") == 1.0


# ---------------------------------------------------------------------------------------------
# evaluate() on files
# ---------------------------------------------------------------------------------------------


def write(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_evaluate_writes_documented_keys(tmp_path: Path) -> None:
    gt = write(tmp_path / "gt.json", gt_db({"v1": [(0, 10, "A")], "v2": [(0, 10, "B")]}))
    sub = preds({"v1": [(0, 10, "A", 0.9), (0, 10, "Q", 0.9)], "v2": [(0, 4, "B", 0.5)]})
    sub["video_scores"] = {"v1": {"A": 0.9, "B": 0.1}, "v2": {"A": 0.2, "B": 0.8}}
    det = write(tmp_path / "det.json", sub)
    with pytest.raises(ValueError, match=r"det\.json: labels that are not classes.*\[.Q.\]"):
        evaluate(gt, det, subset="validation", tious=[0.3, 0.5])  # strict unless lenient
    out = evaluate(gt, det, subset="validation", tious=[0.3, 0.5], dataset="anet", model="m",
                   lenient=True)
    assert set(out) == {"dataset", "model", "protocol", "subset", "definition", "tiou", "mAP",
                        "average_mAP", "per_class", "unknown_labels", "counts", "protocols",
                        "classification", "skipped_detections"}
    assert out["skipped_detections"] == {}
    assert (out["dataset"], out["model"], out["protocol"], out["subset"]) == (
        "anet", "m", "anet", "validation")
    assert out["tiou"] == [0.3, 0.5]
    assert out["per_class"] == {"A": [1.0, 1.0], "B": [1.0, 0.0]}
    assert out["mAP"] == [1.0, 0.5]
    assert out["average_mAP"] == 0.75
    assert out["unknown_labels"] == {"Q": 1}
    assert set(out["protocols"]) == {"anet"}
    assert out["protocols"]["anet"] == {
        k: out[k] for k in ("definition", "tiou", "mAP", "average_mAP", "per_class",
                            "unknown_labels", "counts")}
    assert out["counts"] == {"videos": 2, "ground_truth": 2, "predictions": 2}
    assert out["classification"] == {"mAP": 1.0}
    json.dumps(out, allow_nan=False)

    del sub["video_scores"]
    out2 = evaluate(gt, write(tmp_path / "det2.json", sub), subset="validation", tious=[0.5],
                    lenient=True)
    assert "classification" not in out2
    assert out2["dataset"] is None


def test_evaluate_bad_files_name_the_file(tmp_path: Path) -> None:
    good_gt = write(tmp_path / "gt.json", gt_db({"v1": [(0, 10, "A")]}))
    good_det = write(tmp_path / "det.json", preds({"v1": [(0, 10, "A", 0.9)]}))
    no_db = write(tmp_path / "nodb.json", {"version": "1.3"})
    with pytest.raises(ValueError, match=r"nodb\.json.*'database'"):
        evaluate(no_db, good_det, subset="validation", tious=[0.5])
    no_res = write(tmp_path / "nores.json", {"version": "1.3"})
    with pytest.raises(ValueError, match=r"nores\.json.*'results'"):
        evaluate(good_gt, no_res, subset="validation", tious=[0.5])
    bad_seg = write(tmp_path / "badseg.json", preds({"vX": [(0, "ten", "A", 0.9)]}))
    with pytest.raises(ValueError, match=r"badseg\.json.*'vX'"):
        evaluate(good_gt, bad_seg, subset="validation", tious=[0.5])
    bad_gt = write(tmp_path / "badgt.json", {"database": {"vG": {
        "subset": "validation", "annotations": [{"segment": 3, "label": "A"}]}}})
    with pytest.raises(ValueError, match=r"badgt\.json.*'vG'"):
        evaluate(bad_gt, good_det, subset="validation", tious=[0.5])
    with pytest.raises(ValueError, match="available: anet, thumos14"):
        evaluate(good_gt, good_det, subset="validation", tious=[0.5], protocol="thumos99")
