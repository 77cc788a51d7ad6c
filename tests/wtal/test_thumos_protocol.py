"""The THUMOS14 protocol of wtal.evaluate: hand-worked cases for each rule of the official MATLAB
kit (TH14evaldet.m, TH14eventdetpr.m, intervaloverlapvalseconds.m), the official file formats,
and a randomized comparison with a literal transcription of the kit written below."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wtal.evaluate import (
    THUMOS14_RECALL_POINTS,
    ThumosGroundTruth,
    anet_detection_map,
    eleven_point_ap,
    evaluate,
    read_class_list,
    read_thumos14_detections,
    read_thumos14_ground_truth,
    segment_iou,
    thumos14_averages,
    thumos14_detection_map,
    thumos_overlap,
    write_thumos14_detections,
)

# ---------------------------------------------------------------------------------------------
# Literal transcription of the kit (plain Python; MATLAB's sort is stable, as Python's)
# ---------------------------------------------------------------------------------------------

# MATLAB's 0:0.1:1: first half a + k*d, second half b - k*d (MathWorks' COLONOP description).
MATLAB_RECALL_POINTS = [0.0, 0.1, 0.2, 3 * 0.1, 0.4, 0.5, 1 - 4 * 0.1, 1 - 3 * 0.1, 1 - 2 * 0.1,
                        1 - 0.1, 1.0]


@dataclass
class Event:
    video: str
    interval: tuple[float, float]
    cls: str
    conf: float = 1.0


def kit_overlap(i1: tuple[float, float], i2: tuple[float, float]) -> float:
    """intervalsingleoverlapvalseconds with normtype 0."""
    a = (min(i1), max(i1))
    b = (min(i2), max(i2))
    ua = max(a[1], b[1]) - min(a[0], b[0])
    iw = min(a[1], b[1]) - max(a[0], b[0])
    return iw / ua if iw > 0 else 0.0


def kit_prap(rec: list[float], prec: list[float]) -> float:
    ap = 0.0
    for t in MATLAB_RECALL_POINTS:
        p = [pr for r, pr in zip(rec, prec, strict=True) if r >= t]
        ap = ap + (max(p) if p else 0.0) / len(MATLAB_RECALL_POINTS)
    return ap


def kit_eventdetpr(det: list[Event], gt: list[Event], cls: str, thr: float) -> float:
    videonames = sorted({e.video for e in gt} | {e.video for e in det})
    npos = sum(e.cls == cls for e in gt)
    assert npos > 0
    tpconf: list[float] = []
    fpconf: list[float] = []
    for v in videonames:
        g = [e for e in gt if e.video == v and e.cls == cls]
        amb = [e for e in gt if e.video == v and e.cls == "Ambiguous"]
        d = [e for e in det if e.video == v and e.cls == cls]
        if not d:
            continue
        d = sorted(d, key=lambda e: -e.conf)
        conf = [e.conf for e in d]
        indfree = [1] * len(d)
        indamb = [0.0] * len(d)
        for ge in g:
            ind = [i for i in range(len(d)) if indfree[i]]
            if ind:
                ov = [kit_overlap(ge.interval, d[i].interval) for i in ind]
                vm = max(ov)
                im = ov.index(vm)
                if vm > thr:
                    indfree[ind[im]] = 0
        if amb:
            indamb = [sum(kit_overlap(a.interval, e.interval) for a in amb) for e in d]
        tpconf += [conf[i] for i in range(len(d)) if indfree[i] == 0]
        fpconf += [conf[i] for i in range(len(d)) if indfree[i] == 1 and indamb[i] == 0]
    pooled = sorted([(c, 1) for c in tpconf] + [(c, 2) for c in fpconf], key=lambda x: -x[0])
    tp = fp = 0
    rec: list[float] = []
    prec: list[float] = []
    for _, flag in pooled:
        tp += flag == 1
        fp += flag == 2
        rec.append(tp / npos)
        prec.append(tp / (fp + tp))
    return kit_prap(rec, prec)


def kit_evaldet(
    gt_files: dict[str, list[tuple[str, float, float]]],
    class_list: list[tuple[int, str]],
    det_rows: list[tuple[str, float, float, int, float]],
    thresholds: list[float],
) -> tuple[dict[str, list[float]], list[float]]:
    """TH14evaldet on parsed files; classes without GT are skipped (the kit would assert)."""
    gt = [Event(v, (a, b), cls) for cls in [*(n for _, n in class_list), "Ambiguous"]
          for v, a, b in gt_files.get(cls, [])]
    name = dict(class_list)
    det = [Event(v.replace(".mpeg", ""), (a, b), name[c], s) for v, a, b, c, s in det_rows
           if c in name]
    aps = {n: [kit_eventdetpr(det, gt, n, t) for t in thresholds] for _, n in class_list
           if gt_files.get(n)}
    m_ap = [sum(ap[j] for ap in aps.values()) / len(aps) for j in range(len(thresholds))]
    return aps, m_ap


# ---------------------------------------------------------------------------------------------
# Helpers: write official files, build project JSON
# ---------------------------------------------------------------------------------------------

CLASSES = [(7, "BaseballPitch"), (9, "BasketballDunk"), (12, "Billiards")]


def write_gt_folder(folder: Path, gt_files: dict[str, list[tuple[str, float, float]]],
                    class_list: list[tuple[int, str]] | None, suffix: str = "test",
                    sep: str = " ") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if class_list is not None:
        (folder / "detclasslist.txt").write_text(
            "".join(f"{i}{sep}{n}\n" for i, n in class_list))
    for cls, rows in gt_files.items():
        (folder / f"{cls}_{suffix}.txt").write_text(
            "".join(f"{v}{sep}{a!r}{sep}{b!r}\n" for v, a, b in rows))
    return folder


def write_det_file(path: Path, rows: list[tuple[str, float, float, int, float]]) -> Path:
    path.write_text("".join(f"{v} {a!r} {b!r} {c} {s!r}\n" for v, a, b, c, s in rows))
    return path


def as_json(gt_files: dict[str, list[tuple[str, float, float]]],
            class_list: list[tuple[int, str]], det_rows: list, subset: str = "test"):
    """The same data as this project's gt.json and a detections.json."""
    database: dict[str, Any] = {}
    for _, cls in class_list:
        for v, a, b in gt_files.get(cls, []):
            database.setdefault(v, {"subset": subset, "annotations": []})["annotations"].append(
                {"segment": [a, b], "label": cls})
    ambiguous: dict[str, list] = {}
    for v, a, b in gt_files.get("Ambiguous", []):
        database.setdefault(v, {"subset": subset, "annotations": []})
        ambiguous.setdefault(v, []).append([a, b])
    gt = {"taxonomy": [{"nodeName": n, "nodeId": i} for i, (_, n) in enumerate(class_list)],
          "database": database, "ambiguous": ambiguous}
    name = dict(class_list)
    results: dict[str, list] = {}
    for v, a, b, c, s in det_rows:
        results.setdefault(v.replace(".mpeg", ""), []).append(
            {"segment": [a, b], "label": name.get(c, f"unknown{c}"), "score": s})
    return gt, {"results": results}


def th14(gt_files: dict, det_rows: list, thresholds: list[float],
         class_list: list[tuple[int, str]] = CLASSES):
    """Our THUMOS14 result on in-memory official rows."""
    gt, sub = as_json(gt_files, class_list, det_rows)
    return thumos14_detection_map(gt, sub, subset="test", tious=thresholds)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


def test_recall_points_are_matlabs_colon_not_linspace() -> None:
    assert list(THUMOS14_RECALL_POINTS) == MATLAB_RECALL_POINTS
    lin = np.linspace(0, 1, 11)
    differ = [i for i in range(11) if lin[i] != THUMOS14_RECALL_POINTS[i]]
    assert differ == [6, 7]  # linspace: 0.6000000000000001, 0.7000000000000001
    assert THUMOS14_RECALL_POINTS[3] == 0.30000000000000004 != 0.3


def test_overlap_is_intersection_over_hull_in_order() -> None:
    assert thumos_overlap([0.0, 10.0], [5.0, 15.0]) == 5 / 15
    assert thumos_overlap([10.0, 0.0], [15.0, 5.0]) == 5 / 15  # [min max] first, as the kit
    assert thumos_overlap([0.0, 10.0], [10.0, 20.0]) == 0.0  # touching: no intersection
    assert thumos_overlap([0.0, 1.0], [5.0, 6.0]) == 0.0
    assert thumos_overlap([3.0, 3.0], [3.0, 3.0]) == 0.0  # zero length: iw > 0 fails
    # the kit's division differs from ActivityNet's in the last bit at these thresholds
    a, b = np.array([15.6, 29.6]), np.array([18.5, 21.3])
    assert thumos_overlap(a, b) == 0.20000000000000004
    assert segment_iou(a, b[None])[0] == 0.2


def test_eleven_point_ap_by_hand() -> None:
    # 10 GT; ranking TP TP TP FP TP FP FP ...: recall .1 .2 .3 .3 .4; precision 1 1 1 .75 .8
    rec = np.array([1, 2, 3, 3, 4]) / 10
    prec = np.array([1, 1, 1, 0.75, 0.8])
    # t = 0, .1, .2: 1; t = 0.30000000000000004: rec 3/10 = 0.3 is below it, so .8; t = .4: .8
    expected = 0.0
    for p in [1, 1, 1, 0.8, 0.8, 0, 0, 0, 0, 0, 0]:
        expected = expected + p / 11
    assert eleven_point_ap(prec, rec) == expected
    assert eleven_point_ap(np.array([]), np.array([])) == 0.0
    # recall exactly 6/10 reaches MATLAB's 0.6 (linspace's 0.6000000000000001 would not)
    rec6 = np.array([1, 2, 3, 4, 5, 6]) / 10
    assert eleven_point_ap(np.ones(6), rec6) == pytest.approx(7 / 11, abs=1e-15)


def test_averages_only_for_evaluated_ranges() -> None:
    tious = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    m = [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    av = thumos14_averages(tious, m)
    assert av == pytest.approx({"0.1:0.5": 0.5, "0.1:0.7": 0.4, "0.3:0.7": 0.3})
    assert thumos14_averages([0.1, 0.2, 0.3, 0.4, 0.5], m[:5]) == pytest.approx(
        {"0.1:0.5": 0.5})


# ---------------------------------------------------------------------------------------------
# Hand-worked cases, one per rule
# ---------------------------------------------------------------------------------------------

A = "BaseballPitch"
B = "BasketballDunk"
A_ID, B_ID = 7, 9


def test_threshold_is_strict_where_activitynet_is_not() -> None:
    gt = {A: [("v", 0.0, 10.0)]}
    dets = [("v", 0.0, 5.0, A_ID, 0.9)]  # overlap exactly 0.5
    res = th14(gt, dets, [0.5, float(np.nextafter(0.5, 0))])
    # eleven times p/11 added up, as the kit does, makes a perfect AP 1.0000000000000002
    assert res.ap[0].tolist() == [0.0, 1.0000000000000002]
    gt_json, sub = as_json(gt, CLASSES, dets)
    anet = anet_detection_map(gt_json, sub, subset="test", tious=[0.5])
    assert anet.ap[0, 0] == 1.0  # tIoU >= threshold


def test_overlap_uses_the_hull_division() -> None:
    # 0.20000000000000004 > 0.2 with the kit's division; IoU with len+len-inter gives 0.2
    res = th14({A: [("v", 15.6, 29.6)]}, [("v", 18.5, 21.3, A_ID, 0.9)], [0.2])
    assert res.ap[0, 0] == pytest.approx(1.0, abs=1e-15)


def test_gt_takes_most_confident_of_equal_overlaps() -> None:
    gt = {A: [("v", 0.0, 10.0)]}
    # both overlap 0.5; the more confident [5,10] is taken, [0,5] is an FP ranked below it
    res = th14(gt, [("v", 0.0, 5.0, A_ID, 0.8), ("v", 5.0, 10.0, A_ID, 0.9)], [0.4])
    assert res.ap[0, 0] == pytest.approx(1.0, abs=1e-15)


def test_equal_confidence_ties_follow_file_order() -> None:
    gt = {A: [("v", 0.0, 10.0), ("v", 0.0, 5.0)]}
    d1, d2 = ("v", 0.0, 5.0, A_ID, 0.9), ("v", 5.0, 10.0, A_ID, 0.9)
    # GT 1 ([0,10], first in the file) takes the first of the equal-overlap detections in
    # file order. d1 first: GT 2 ([0,5]) then has only d2 (overlap 0): 1 TP, 1 FP of 2 GT
    res = th14(gt, [d1, d2], [0.4])
    assert res.ap[0, 0] == pytest.approx(6 / 11, abs=1e-15)
    # d2 first: GT 1 takes d2, GT 2 takes d1: 2 TP
    assert th14(gt, [d2, d1], [0.4]).ap[0, 0] == pytest.approx(1.0, abs=1e-15)
    # GT file order matters too: [0,5] first takes d1, then [0,10] takes d2
    gt_swapped = {A: [("v", 0.0, 5.0), ("v", 0.0, 10.0)]}
    assert th14(gt_swapped, [d1, d2], [0.4]).ap[0, 0] == pytest.approx(1.0, abs=1e-15)


def test_equal_confidence_across_videos_ranks_true_positives_first() -> None:
    gt = {A: [("vb", 0.0, 10.0)]}
    # "va" sorts first and holds the FP; the kit pools [TPs, FPs] and sorts stably
    res = th14(gt, [("va", 50.0, 60.0, A_ID, 0.5), ("vb", 0.0, 10.0, A_ID, 0.5)], [0.5])
    assert res.ap[0, 0] == pytest.approx(1.0, abs=1e-15)
    # with a strictly higher FP the precision at recall 1 is 1/2
    res = th14(gt, [("va", 50.0, 60.0, A_ID, 0.6), ("vb", 0.0, 10.0, A_ID, 0.5)], [0.5])
    assert res.ap[0, 0] == pytest.approx(0.5, abs=1e-15)


def test_ambiguous_overlap_removes_false_positives_only() -> None:
    gt = {A: [("v", 0.0, 10.0)], "Ambiguous": [("v", 20.0, 30.0), ("v", 2.0, 4.0)]}
    dets = [
        ("v", 25.0, 40.0, A_ID, 0.9),  # unmatched, overlaps Ambiguous [20,30]: not an FP
        ("v", 30.0, 35.0, A_ID, 0.8),  # touches [20,30] only: an FP
        ("v", 0.0, 10.0, A_ID, 0.7),  # matched, overlaps Ambiguous [2,4]: still a TP
    ]
    res = th14(gt, dets, [0.5])
    # ranking: FP (.8), TP (.7): precision 1/2 at recall 1
    assert res.ap[0, 0] == pytest.approx(0.5, abs=1e-15)
    # Ambiguous segments of another video do not count
    gt_other = {A: gt[A], "Ambiguous": [("w", 20.0, 30.0)]}
    dets_first = [("v", 25.0, 40.0, A_ID, 0.9), ("v", 0.0, 10.0, A_ID, 0.7)]
    assert th14(gt_other, dets_first, [0.5]).ap[0, 0] == pytest.approx(0.5, abs=1e-15)


def test_duplicates_and_empty_classes(caplog: pytest.LogCaptureFixture) -> None:
    gt = {A: [("v", 0.0, 10.0)], B: [("v", 20.0, 30.0), ("v", 20.0, 30.0)]}
    dets = [
        ("v", 0.0, 10.0, A_ID, 0.9), ("v", 0.0, 10.0, A_ID, 0.9),  # duplicate: TP then FP
        ("v", 20.0, 30.0, B_ID, 0.5),  # one detection for two identical GTs: recall 1/2
        ("v", 1.0, 2.0, 12, 0.3),  # Billiards has no GT in the subset
    ]
    with caplog.at_level(logging.WARNING, logger="wtal.evaluate"):
        res = th14(gt, dets, [0.5])
    assert res.labels == (A, B)
    assert res.ap[:, 0].tolist() == pytest.approx([1.0, 6 / 11], abs=1e-15)
    assert res.mAP[0] == pytest.approx((1 + 6 / 11) / 2, abs=1e-15)
    assert dict(res.classes_without_ground_truth) == {"Billiards": 1}
    assert "Billiards" in caplog.text
    # a class with GT but no detections scores 0 and counts in the mean
    res = th14(gt, dets[:2], [0.5])
    assert res.ap[:, 0].tolist() == pytest.approx([1.0, 0.0], abs=1e-15)
    assert res.mAP[0] == pytest.approx(0.5, abs=1e-15)


def test_unknown_labels_and_class_ids_are_reported_not_raised(tmp_path: Path) -> None:
    gt_files = {A: [("v", 0.0, 10.0)], B: [], "Billiards": [("w", 0.0, 5.0)]}
    rows = [("v", 0.0, 10.0, A_ID, 0.9), ("v", 3.0, 4.0, 99, 1.0), ("w", 0.0, 5.0, 12, 0.4),
            ("v.mpeg", 0.0, 10.0, 99, 0.2)]
    folder = write_gt_folder(tmp_path / "gt", gt_files, CLASSES)
    det = write_det_file(tmp_path / "det.txt", rows)
    with pytest.raises(ValueError, match=r"det\.txt: labels that are not classes.*2 detection"):
        evaluate(folder, det, subset="test", tious=[0.5], protocol="thumos14")  # not lenient
    out = evaluate(folder, det, subset="test", tious=[0.5], protocol="thumos14", lenient=True)
    assert out["unknown_labels"] == {"class id 99": 2}
    assert out["mAP"] == pytest.approx([1.0], abs=1e-15)
    gt_json, sub = as_json(gt_files, CLASSES, rows)
    res = thumos14_detection_map(gt_json, sub, subset="test", tious=[0.5])
    assert dict(res.unknown_labels) == {"unknown99": 2}
    assert res.mAP.tolist() == pytest.approx([1.0], abs=1e-15)


def test_detections_on_videos_without_ground_truth_are_false_positives() -> None:
    gt = {A: [("v", 0.0, 10.0)]}
    res = th14(gt, [("ghost", 0.0, 10.0, A_ID, 0.9), ("v", 0.0, 10.0, A_ID, 0.8)], [0.5])
    assert res.ap[0, 0] == pytest.approx(0.5, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# Official files
# ---------------------------------------------------------------------------------------------


def test_reads_official_folder_with_any_whitespace(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "annotation"
    folder.mkdir()
    (folder / "detclasslist.txt").write_text("7\tBaseballPitch\r\n9  BasketballDunk\n\n")
    (folder / "BaseballPitch_val.txt").write_text("video_validation_1  1.0\t2.5 \r\n\n"
                                                  "video_validation_2 3 4\n")
    (folder / "BasketballDunk_val.txt").write_text("")
    (folder / "Ambiguous_val.txt").write_text("video_validation_3  0.0 1.4\n")
    gt = read_thumos14_ground_truth(folder, "validation")  # finds the _val files
    assert isinstance(gt, ThumosGroundTruth)
    assert gt.classes == ("BaseballPitch", "BasketballDunk")
    assert dict(gt.class_ids) == {7: "BaseballPitch", 9: "BasketballDunk"}
    assert gt.instance_videos == ("video_validation_1", "video_validation_2")
    assert gt.segments.tolist() == [[1.0, 2.5], [3.0, 4.0]]
    assert gt.videos == ("video_validation_1", "video_validation_2", "video_validation_3")
    assert gt.ambiguous.tolist() == [[0.0, 1.4]]
    # without detclasslist.txt: sorted class files, ids 1..N; without Ambiguous: a warning
    (folder / "detclasslist.txt").unlink()
    (folder / "Ambiguous_val.txt").unlink()
    with caplog.at_level(logging.WARNING, logger="wtal.evaluate"):
        gt = read_thumos14_ground_truth(folder, "val")
    assert dict(gt.class_ids) == {1: "BaseballPitch", 2: "BasketballDunk"}
    assert "Ambiguous_val.txt" in caplog.text
    (folder / "BaseballPitch_val.txt").write_text("video_validation_1 1.0\n")
    with pytest.raises(ValueError, match=r"BaseballPitch_val\.txt:1"):
        read_thumos14_ground_truth(folder, "val")
    with pytest.raises(FileNotFoundError, match="_test"):
        read_thumos14_ground_truth(folder, "test")


def test_reads_detection_file_and_class_list(tmp_path: Path) -> None:
    path = tmp_path / "det.txt"
    path.write_text("video_test_1.mpeg  1.5\t2.0 7 0.9\n\nvideo_test_2 3 4 9.0 1e-3\r\n")
    det = read_thumos14_detections(path)
    assert det.videos == ("video_test_1", "video_test_2")
    assert det.segments.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert det.class_ids.tolist() == [7, 9]
    assert det.scores.tolist() == [0.9, 0.001]
    path.write_text("video_test_1 1.5 2.0 7\n")
    with pytest.raises(ValueError, match=r"det\.txt:1"):
        read_thumos14_detections(path)
    path.write_text("video_test_1 1.5 nan 7 0.5\n")
    with pytest.raises(ValueError, match="finite"):
        read_thumos14_detections(path)
    lst = tmp_path / "detclasslist.txt"
    lst.write_text("1 A\n2 A\n")
    with pytest.raises(ValueError, match="twice"):
        read_class_list(lst)


def test_written_text_file_evaluates_like_the_json(tmp_path: Path) -> None:
    gt_files, class_list, rows = random_case(4)
    gt, sub = as_json(gt_files, class_list, rows)
    sub["results"] = {v: [d for d in dets if not d["label"].startswith("unknown")]
                      for v, dets in sub["results"].items()}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "det.json").write_text(json.dumps(sub))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    classes = [n for _, n in class_list]
    listed = write_thumos14_detections(out_dir / "det.txt", sub["results"], classes)
    assert listed == out_dir / "detclasslist.txt"
    assert read_class_list(listed) == {i + 1: n for i, n in enumerate(classes)}
    from_json = evaluate(tmp_path / "gt.json", tmp_path / "det.json", subset="test",
                         protocol="thumos14", protocols=["anet"])
    from_text = evaluate(tmp_path / "gt.json", out_dir / "det.txt", subset="test",
                         protocol="thumos14", protocols=["anet"])
    assert from_text["protocols"] == from_json["protocols"]
    assert 0 < from_json["average_mAP"] < 1
    with pytest.raises(ValueError, match="not among"):
        write_thumos14_detections(out_dir / "x.txt", {"v": [{"label": "Q", "score": 1,
                                                             "segment": [0, 1]}]}, classes)


def test_evaluate_layout_with_both_protocols(tmp_path: Path) -> None:
    gt_files = {A: [("v1", 0.0, 10.0), ("v2", 5.0, 9.0)], B: [("v2", 20.0, 30.0)],
                "Ambiguous": [("v1", 40.0, 50.0)]}
    rows = [("v1", 0.0, 10.0, A_ID, 0.9), ("v1", 41.0, 49.0, A_ID, 0.8),
            ("v2", 20.0, 26.0, B_ID, 0.7)]
    gt, sub = as_json(gt_files, CLASSES[:2], rows)
    sub["video_scores"] = {"v1": {A: 0.9, B: 0.1}, "v2": {A: 0.6, B: 0.8}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "det.json").write_text(json.dumps(sub))
    out = evaluate(tmp_path / "gt.json", tmp_path / "det.json", subset="test",
                   protocol="anet", protocols=["thumos14"], dataset="d", model="m")
    assert out["protocol"] == "anet"
    assert set(out["protocols"]) == {"anet", "thumos14"}
    anet_block = out["protocols"]["anet"]
    assert {k: out[k] for k in anet_block} == anet_block  # the primary block at the top
    th = out["protocols"]["thumos14"]
    assert th["tiou"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]  # per-protocol defaults
    assert anet_block["tiou"] == pytest.approx(np.linspace(0.5, 0.95, 10).tolist())
    assert set(th["averages"]) == {"0.1:0.5", "0.1:0.7", "0.3:0.7"}
    assert th["classes_without_ground_truth"] == {}
    assert "MATLAB" in th["definition"]
    assert "ActivityNet" in anet_block["definition"]
    # v1's [41,49] is ambiguous for THUMOS14 but an FP for ActivityNet; B at 0.6 matches
    # only ActivityNet's >= (overlap exactly 0.6)
    assert th["per_class"][A] == pytest.approx([6 / 11] * 7, abs=1e-15)  # TP only, of 2 GT
    assert anet_block["per_class"][A] == [0.5] * 10  # TP, then the FP: precision 1/2
    assert anet_block["per_class"][B] == [1.0, 1.0, 1.0] + [0.0] * 7  # tIoU 0.6 >= 0.6
    assert th["per_class"][B][:5] == pytest.approx([1.0] * 5, abs=1e-15)
    assert th["per_class"][B][5:] == [0.0, 0.0]
    assert out["classification"]["mAP"] == 1.0
    json.dumps(out, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# Randomized comparison with the literal transcription
# ---------------------------------------------------------------------------------------------


def random_case(seed: int):
    rng = random.Random(seed)
    ids = rng.choice([[7, 9, 12], [1, 2, 3], [3, 1, 2]])
    names = rng.sample(["A", "B", "C", "D"], 3)
    class_list = list(zip(ids, names, strict=True))
    videos = [f"video_test_{rng.randint(0, 99):07d}" for _ in range(rng.randint(1, 6))]

    def seg() -> tuple[float, float]:
        s = rng.randint(0, 30) / 2
        e = s + rng.randint(0 if rng.random() < 0.05 else 1, 16) / 2
        return (e, s) if rng.random() < 0.05 else (s, e)  # a few reversed intervals

    gt_files: dict[str, list] = {}
    for _, n in class_list:
        rows = [(rng.choice(videos), *seg()) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.2:
            rows.append(rows[0])  # duplicate GT
        gt_files[n] = rows
    gt_files["Ambiguous"] = [(rng.choice(videos), *seg()) for _ in range(rng.randint(0, 3))]
    pool = [round(rng.random(), 1) for _ in range(rng.randint(1, 5))]  # tied confidences
    rows_det = []
    for _ in range(rng.randint(0, 60)):
        vid = rng.choice([*videos, "video_test_9999999"])
        if rng.random() < 0.05:
            vid += ".mpeg"
        cid = rng.choice(ids) if rng.random() > 0.05 else 42
        rows_det.append((vid, *seg(), cid, rng.choice(pool)))
        if rng.random() < 0.1:
            rows_det.append(rows_det[-1])  # duplicate detection
    return gt_files, class_list, rows_det


@pytest.mark.parametrize("block", range(4))
def test_matches_literal_kit_transcription(block: int, tmp_path: Path) -> None:
    thresholds = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    nontrivial = 0
    for seed in range(block * 50, (block + 1) * 50):
        gt_files, class_list, rows = random_case(seed)
        ref_ap, ref_map = kit_evaldet(gt_files, class_list, rows, thresholds)
        # official files in, official semantics out
        folder = write_gt_folder(tmp_path / f"gt{seed}", gt_files, class_list,
                                 sep="\t" if seed % 2 else "  ")
        det = write_det_file(tmp_path / f"det{seed}.txt", rows)
        # evaluate() refuses empty or reversed detections (the kit scores them); lenient, it
        # skips and counts them and gives the kit's numbers on the rest
        valid = [r for r in rows if r[2] > r[1] >= 0]
        valid_ap, valid_map = kit_evaldet(gt_files, class_list, valid, thresholds)
        out = evaluate(folder, det, subset="test", tious=thresholds, protocol="thumos14",
                       lenient=True)
        assert out["per_class"] == valid_ap
        assert out["mAP"] == valid_map
        assert sum(out["skipped_detections"].values()) == len(rows) - len(valid)
        # the project's JSON files give the same numbers
        gt, sub = as_json(gt_files, class_list, rows)
        res = thumos14_detection_map(gt, sub, subset="test", tious=thresholds)
        assert res.mAP.tolist() == ref_map
        assert dict(zip(res.labels, res.ap.tolist(), strict=True)) == ref_ap
        nontrivial += 0 < ref_map[2] < 1
    assert nontrivial > 20


def test_large_groups_match_literal_kit() -> None:
    # long (class, video) lists: many steps of the vectorised matching, ties everywhere
    rng = random.Random(7)
    gt_files = {n: [("v", rng.randint(0, 200) / 2, rng.randint(0, 200) / 2)
                    for _ in range(60)] for _, n in CLASSES}
    gt_files["Ambiguous"] = [("v", 10.0, 20.0), ("v", 50.0, 55.0)]
    rows = [("v", rng.randint(0, 200) / 2, rng.randint(0, 200) / 2, rng.choice([7, 9, 12]),
             rng.choice([0.1, 0.5, 0.9])) for _ in range(400)]
    ref_ap, ref_map = kit_evaldet(gt_files, CLASSES, rows, [0.1, 0.5])
    res = th14(gt_files, rows, [0.1, 0.5])
    assert res.mAP.tolist() == ref_map
    assert dict(zip(res.labels, res.ap.tolist(), strict=True)) == ref_ap


# ---------------------------------------------------------------------------------------------
# The command line on official files
# ---------------------------------------------------------------------------------------------


def official_files(tmp_path: Path, seed: int = 11):
    gt_files, class_list, rows = random_case(seed)
    rows = [r for r in rows if r[2] > r[1] >= 0]  # wtal eval refuses empty or reversed ones
    # rows grouped by video, as a results dict holds them: ActivityNet breaks score ties by
    # submission order, so the text file and the JSON must list detections in the same order
    videos = list(dict.fromkeys(v.replace(".mpeg", "") for v, *_ in rows))
    rows = sorted(rows, key=lambda r: videos.index(r[0].replace(".mpeg", "")))
    folder = write_gt_folder(tmp_path / "TH14_Temporal_Annotations_Test", gt_files, class_list)
    det = write_det_file(tmp_path / "run1.txt", rows)
    return gt_files, class_list, rows, folder, det


def test_cli_thumos14_on_official_folder_and_text(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from wtal.cli import main

    gt_files, class_list, rows, folder, det = official_files(tmp_path)
    out = tmp_path / "res.json"
    code = main(["eval", "--ground-truth", str(folder), "--predictions", str(det),
                 "--protocol", "thumos14", "--out", str(out)])
    assert code == 2  # class id 42 is not a class: an error unless --lenient, printed once
    err = capsys.readouterr().err
    assert err.count("error") == 1
    assert str(det) in err
    assert "not classes of the dataset" in err
    code = main(["eval", "--ground-truth", str(folder), "--predictions", str(det),
                 "--protocol", "thumos14", "--out", str(out), "--lenient"])
    assert code == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    default = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    ref_ap, ref_map = kit_evaldet(gt_files, class_list, rows, default)
    assert result["tiou"] == default
    assert result["mAP"] == ref_map
    assert result["per_class"] == ref_ap
    assert result["average_mAP"] == pytest.approx(np.mean(ref_map))
    assert result["averages"]["0.1:0.5"] == pytest.approx(np.mean(ref_map[:5]))
    n_unknown = sum(c == 42 for *_, c, _ in rows)
    assert n_unknown > 0
    assert result["unknown_labels"] == {"class id 42": n_unknown}
    assert "THUMOS14 protocol" in text
    assert f"0.30        {ref_map[2] * 100:6.2f}" in text
    assert "avg 0.3:0.7" in text
    for _, name in class_list:
        assert name in text
    assert f"class id 42 ×{n_unknown}" in text


def test_cli_anet_on_official_files_and_json(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from wtal.cli import main

    gt_files, class_list, rows, folder, det = official_files(tmp_path)
    out = tmp_path / "res.json"
    assert main(["eval", "--ground-truth", str(folder), "--predictions", str(det),
                 "--protocol", "anet", "--out", str(out), "--lenient"]) == 0
    result = json.loads(out.read_text())
    gt, sub = as_json(gt_files, class_list, rows)
    ref = anet_detection_map(gt, sub, subset="test", tious=np.linspace(0.5, 0.95, 10))
    assert result["tiou"] == pytest.approx(np.linspace(0.5, 0.95, 10).tolist())
    assert result["mAP"] == pytest.approx(ref.mAP.tolist(), abs=1e-12)
    assert "ActivityNet protocol" in capsys.readouterr().out
    # the project's JSON files, thresholds given, video-level classification printed
    sub["video_scores"] = {v: {n: 0.5 for _, n in class_list} for v in sub["results"]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "det.json").write_text(json.dumps(sub))
    assert main(["eval", "--ground-truth", str(tmp_path / "gt.json"), "--predictions",
                 str(tmp_path / "det.json"), "--tiou", "0.3", "0.5", "--lenient"]) == 0
    text = capsys.readouterr().out
    assert "classification mAP" in text
    assert f"0.50        {ref.mAP[0] * 100:6.2f}" in text  # ActivityNet default protocol


def test_cli_class_list_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wtal.cli import main

    _, class_list, rows, folder, det = official_files(tmp_path)
    # the same detections with ids 1..3 and a class list saying so
    renumber = {cid: i + 1 for i, (cid, _) in enumerate(class_list)}
    det2 = write_det_file(tmp_path / "run2.txt",
                          [(v, a, b, renumber.get(c, 42), s) for v, a, b, c, s in rows])
    lst = tmp_path / "ids.txt"
    lst.write_text("".join(f"{i + 1} {n}\n" for i, (_, n) in enumerate(class_list)))
    outs = []
    for pred, extra in ((det, []), (det2, ["--class-list", str(lst)])):
        out = tmp_path / f"{pred.stem}.json"
        assert main(["eval", "--ground-truth", str(folder), "--predictions", str(pred),
                     "--protocol", "thumos14", "--out", str(out), "--lenient", *extra]) == 0
        outs.append(json.loads(out.read_text()))
    # --class-list also names the folder's classes; the ids differ, the numbers do not
    assert outs[0]["mAP"] == outs[1]["mAP"]
    capsys.readouterr()
    assert main(["eval", "--ground-truth", str(folder), "--predictions",
                 str(tmp_path / "missing.txt"), "--protocol", "thumos14"]) == 2
    assert "missing.txt" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("video_test_0000001 1.0 2.0 7\n")
    assert main(["eval", "--ground-truth", str(folder), "--predictions", str(bad),
                 "--protocol", "thumos14"]) == 2
    assert "bad.txt:1" in capsys.readouterr().err
