"""Readers of the real datasets' formats, with the quirks of the real files (formats.md §1, §2).

THUMOS14: both capitalisations of the annotation folders, double spaces, Ambiguous files, the
known-bad videos and out-of-range tails. ActivityNet-1.3: the official JSON, ``v_`` files,
videos gone from YouTube. UCF101: the standard layout, CRLF ``classInd.txt``, the
``HandstandPushups`` / ``v_HandStandPushups`` spelling.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import counter_frames, write_video

from extractors.decode import VideoError
from wtal.datasets import (
    THUMOS14_KNOWN_BAD,
    THUMOS14_UCF101_IDS,
    KnownBad,
    SubsetSpec,
    build_activitynet_index,
    build_index,
    index_from_config,
)
from wtal.ucf101 import (
    ACTIVITYNET13_TO_UCF101,
    THUMOS14_TO_UCF101,
    default_mapping,
    index_trimmed,
    read_class_index,
)
from wtalio import read_json

THUMOS_CLASSES = list(THUMOS14_UCF101_IDS)


def video(path: Path, seconds: float = 2.0, fps: float = 25.0) -> Path:
    write_video(path, counter_frames(round(seconds * fps)), fps=fps)
    return path


@pytest.fixture(scope="module")
def thumos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A THUMOS14 copy laid out as distributed, with the real spellings of the folders."""
    root = tmp_path_factory.mktemp("thumos14")
    val = root / "TH14_Temporal_annotations_validation" / "annotation"
    # this copy spells the test folder in lower case; the config names the other spelling
    test = root / "TH14_Temporal_annotations_test" / "annotations" / "annotation"
    val.mkdir(parents=True)
    test.mkdir(parents=True)
    for c in THUMOS_CLASSES:
        (val / f"{c}_val.txt").write_text("")
        (test / f"{c}_test.txt").write_text("")
    (val / "BaseballPitch_val.txt").write_text(
        "video_validation_0000051 0.2 1.0\nvideo_validation_0000364 1.0 1.5\n"
        "video_validation_0000364 1.7 3.4\n"  # ends after the 2 s video (an out-of-range tail)
    )
    # every CliffDiving instance is also a Diving instance
    (val / "CliffDiving_val.txt").write_text("video_validation_0000051 1.1 1.6\n")
    (val / "Diving_val.txt").write_text("video_validation_0000051 1.1 1.6\n")
    (test / "Billiards_test.txt").write_text(
        "video_test_0000004 0.0 0.9\nvideo_test_0000270 0.5 7.0\nvideo_test_0001496 0.1 0.4\n"
    )
    # double spaces as in the shipped Ambiguous_test.txt; 1292 has only Ambiguous annotations
    (test / "Ambiguous_test.txt").write_text(
        "video_test_0000004  1.0 1.4\nvideo_test_0001292  0.0 1.4\nvideo_test_0001292  1.5 1.9\n"
    )
    for name in ("video_validation_0000051", "video_validation_0000364"):
        video(root / "validation" / f"{name}.mp4")
    for name in ("video_test_0000004", "video_test_0001292", "video_test_0001496"):
        video(root / "test" / f"{name}.mp4")
    # video_test_0000270 is absent on purpose: an excluded video is never looked for
    return root


SUBSETS = [
    SubsetSpec(name="validation", split="train", videos="validation",
               annotations="TH14_Temporal_annotations_validation/annotation", suffix="val"),
    SubsetSpec(name="test", split="test", videos="test",
               annotations="TH14_Temporal_Annotations_Test/annotations/annotation",
               suffix="test"),
]


def thumos_index(root: Path, policy: KnownBad) -> tuple[dict, dict]:
    return build_index(dataset="thumos14", classes=THUMOS_CLASSES, subsets=SUBSETS, fps=25.0,
                       root=root, known_bad=policy)


def test_thumos14_papers_policy(thumos: Path) -> None:
    index, gt = thumos_index(thumos, KnownBad(exclude=THUMOS14_KNOWN_BAD, out_of_range="keep"))
    assert sorted(index["videos"]) == ["video_test_0000004", "video_validation_0000051",
                                       "video_validation_0000364"]
    assert {e["video"] for e in index["excluded"]} == set(THUMOS14_KNOWN_BAD)
    assert all(e["reason"] == "known_bad.exclude" for e in index["excluded"])
    # the out-of-range tail is kept as annotated, and recorded
    segs = [a["segment"] for a in gt["database"]["video_validation_0000364"]["annotations"]]
    assert segs == [[1.0, 1.5], [1.7, 3.4]]
    assert index["adjusted"] == [{"video": "video_validation_0000364", "label": "BaseballPitch",
                                  "segment": [1.7, 3.4], "duration": pytest.approx(2.0),
                                  "policy": "keep", "action": "kept"}]
    assert index["videos"]["video_validation_0000051"]["labels"] == [
        "BaseballPitch", "CliffDiving", "Diving"]
    # Ambiguous segments (double spaces) reach gt.json for the THUMOS14 protocol
    assert gt["ambiguous"] == {"video_test_0000004": [[1.0, 1.4]]}
    assert index["known_bad"]["out_of_range"] == "keep"


def test_thumos14_keep_everything_and_clip(thumos: Path) -> None:
    with pytest.raises(VideoError, match=r"video_test_0000270: no video file in .*test \(looked"):
        thumos_index(thumos, KnownBad())
    index, gt = thumos_index(thumos, KnownBad(exclude=("video_test_0000270",),
                                              out_of_range="clip"))
    # 1292 stays, with no labels and its Ambiguous segments
    assert index["videos"]["video_test_0001292"]["labels"] == []
    assert gt["ambiguous"]["video_test_0001292"] == [[0.0, 1.4], [1.5, 1.9]]
    segs = [a["segment"] for a in gt["database"]["video_validation_0000364"]["annotations"]]
    assert segs[1] == [1.7, pytest.approx(2.0)]
    assert index["adjusted"][0]["action"] == "clipped"


def test_thumos14_drop_and_error(thumos: Path) -> None:
    index, gt = thumos_index(thumos, KnownBad(exclude=THUMOS14_KNOWN_BAD, out_of_range="drop"))
    assert len(gt["database"]["video_validation_0000364"]["annotations"]) == 1
    assert index["adjusted"][0]["action"] == "removed"
    with pytest.raises(ValueError, match=r"video_validation_0000364: segment BaseballPitch "
                                         r"\[1.7, 3.4\] ends after the video"):
        thumos_index(thumos, KnownBad(exclude=THUMOS14_KNOWN_BAD, out_of_range="error"))


def test_thumos14_unknown_class_file_is_an_error(tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    for c in ("Alpha", "Beta"):
        (ann / f"{c}_val.txt").write_text("")
    (ann / "Gamma_val.txt").write_text("v1 0.1 0.5\n")
    spec = SubsetSpec(name="validation", split="train", videos="v", annotations="ann",
                      suffix="val")
    with pytest.raises(ValueError, match=r"ann: annotation files of unknown classes "
                                         r"\['Gamma_val.txt'\]"):
        build_index(dataset="toy", classes=["Alpha", "Beta"], subsets=[spec], fps=25.0,
                    root=tmp_path)


def test_thumos14_missing_folder_names_it(thumos: Path) -> None:
    spec = SubsetSpec(name="test", split="test", videos="test", annotations="nowhere/annotation",
                      suffix="test")
    with pytest.raises(FileNotFoundError, match=r"nowhere/annotation: folder does not exist"):
        build_index(dataset="t", classes=THUMOS_CLASSES, subsets=[spec], fps=25.0, root=thumos)


# ---- ActivityNet-1.3 ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official JSON layout (keys without v_, numeric segments, resolution strings)."""
    root = tmp_path_factory.mktemp("anet")
    database = {
        "abc123XYZ_-": {"subset": "training", "duration": 2.0, "resolution": "640x360",
                        "url": "https://www.youtube.com/watch?v=abc123XYZ_-",
                        "annotations": [{"segment": [0.2, 1.1], "label": "Archery"}]},
        "gone0000000": {"subset": "training", "duration": 130.0, "resolution": "1280x720",
                        "url": "https://www.youtube.com/watch?v=gone0000000",
                        "annotations": [{"segment": [3.0, 9.0], "label": "Archery"}]},
        "val_0000001": {"subset": "validation", "duration": 2.0, "resolution": "480x360",
                        "url": "", "annotations": [
                            {"segment": [0.1, 0.9], "label": "Blow-drying hair"},
                            {"segment": [1.0, 1.8], "label": "Archery"}]},
        "testing0001": {"subset": "testing", "duration": 2.0, "resolution": "480x360",
                        "url": "", "annotations": []},
    }
    taxonomy = [{"nodeId": 1, "nodeName": "Archery", "parentId": 0, "parentName": "Sports"}]
    (root / "activity_net.v1-3.min.json").write_text(
        json.dumps({"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database}))
    video(root / "videos" / "v_abc123XYZ_-.mp4")
    video(root / "videos" / "v_val_0000001.mkv")
    return root


ANET_SUBSETS = [SubsetSpec(name="training", split="train"),
                SubsetSpec(name="validation", split="test")]


def test_activitynet_index_skips_and_lists_missing_videos(anet: Path) -> None:
    index, gt = build_activitynet_index(dataset="activitynet13",
                                        annotations="activity_net.v1-3.min.json",
                                        subsets=ANET_SUBSETS, fps=25.0, root=anet)
    assert sorted(index["videos"]) == ["v_abc123XYZ_-", "v_val_0000001"]
    assert index["missing"] == [{"video": "v_gone0000000", "subset": "training",
                                 "reason": f"no file v_gone0000000.* in {anet / 'videos'}"}]
    assert index["classes"] == ["Archery", "Blow-drying hair"]  # sorted labels
    rec = index["videos"]["v_val_0000001"]
    assert (rec["id"], rec["split"], rec["labels"]) == ("val_0000001", "test",
                                                        ["Archery", "Blow-drying hair"])
    assert rec["duration"] == 2.0  # from the JSON
    assert set(gt["database"]) == {"v_abc123XYZ_-", "v_val_0000001"}
    assert "testing0001" not in str(index)


def test_activitynet_unknown_class_names_video(anet: Path) -> None:
    with pytest.raises(ValueError, match=r"video val_0000001: unknown class 'Blow-drying hair'"):
        build_activitynet_index(dataset="a", annotations="activity_net.v1-3.min.json",
                                subsets=ANET_SUBSETS, fps=25.0, root=anet, classes=["Archery"])


def test_activitynet_malformed_entries(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    for entry, message in [
        ({"duration": 3.0, "annotations": []}, r"database\['x'\]: no 'subset'"),
        ({"subset": "training", "duration": "long", "annotations": []},
         r"database\['x'\]: duration 'long' is not a number"),
        ({"subset": "training", "duration": 3.0, "annotations": [{"segment": [1.0]}]},
         r"database\['x'\].annotations\[0\]: needs 'segment' and 'label'"),
        ({"subset": "training", "duration": 3.0,
          "annotations": [{"segment": [1.0], "label": "A"}]},
         r"database\['x'\].annotations\[0\]: segment \[1.0\] is not \[start, end\]"),
    ]:
        path.write_text(json.dumps({"database": {"x": entry}}))
        with pytest.raises(ValueError, match=message):
            build_activitynet_index(dataset="a", annotations=str(path),
                                    subsets=ANET_SUBSETS, fps=25.0, root=tmp_path)
    path.write_text(json.dumps({"results": {}}))
    with pytest.raises(ValueError, match=r"a.json: not an ActivityNet-schema file"):
        build_activitynet_index(dataset="a", annotations=str(path), subsets=ANET_SUBSETS,
                                fps=25.0, root=tmp_path)


# ---- UCF101 trimmed ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ucf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ucf101")
    for cls in ("BaseballPitch", "Diving"):
        for g in (1, 2):
            video(root / "UCF-101" / cls / f"v_{cls}_g{g:02d}_c01.avi", seconds=1.0)
    # the official archive spells the files of this folder with a capital S
    video(root / "UCF-101" / "HandstandPushups" / "v_HandStandPushups_g01_c01.avi", seconds=1.0)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes(
        b"7 BaseballPitch\r\n26 Diving\r\n37 HandstandPushups\r\n")
    return root


def test_ucf101_trimmed_clips(ucf: Path) -> None:
    records = index_trimmed(ucf / "UCF-101", classes=["BaseballPitch", "Diving", "Billiards"],
                            mapping={"BaseballPitch": "BaseballPitch", "Diving": "Diving"},
                            class_index=str(ucf / "ucfTrainTestlist" / "classInd.txt"))
    assert sorted(records) == ["v_BaseballPitch_g01_c01", "v_BaseballPitch_g02_c01",
                               "v_Diving_g01_c01", "v_Diving_g02_c01"]
    rec = records["v_Diving_g02_c01"]
    assert (rec["split"], rec["subset"], rec["labels"]) == ("trimmed", "ucf101", ["Diving"])
    assert rec["duration"] == pytest.approx(1.0, abs=0.05)
    quirk = index_trimmed(ucf / "UCF-101", classes=["Handstand"],
                          mapping={"Handstand": "HandstandPushups"})
    assert list(quirk) == ["v_HandStandPushups_g01_c01"]


def test_ucf101_class_index_and_errors(ucf: Path, tmp_path: Path) -> None:
    ids = read_class_index(ucf / "ucfTrainTestlist" / "classInd.txt")
    assert ids == {"BaseballPitch": 7, "Diving": 26, "HandstandPushups": 37}
    with pytest.raises(ValueError, match=r"classInd.txt: UCF101 classes \['Billiards'\] are not"):
        index_trimmed(ucf / "UCF-101", classes=["Billiards"],
                      class_index=str(ucf / "ucfTrainTestlist" / "classInd.txt"))
    with pytest.raises(FileNotFoundError, match=r"UCF-101/Billiards: UCF101 class folder"):
        index_trimmed(ucf / "UCF-101", classes=["Billiards"])
    bad = tmp_path / "Diving"
    bad.mkdir()
    (bad / "diving clip 1.avi").write_bytes(b"")
    with pytest.raises(ValueError, match=r"diving clip 1.avi: not a UCF101 clip name"):
        index_trimmed(tmp_path, classes=["Diving"])


def test_class_mappings_are_written_down() -> None:
    assert {c: c for c in THUMOS_CLASSES} == THUMOS14_TO_UCF101
    assert [THUMOS14_UCF101_IDS[c] for c in THUMOS_CLASSES] == [
        7, 9, 12, 21, 22, 23, 24, 26, 31, 33, 36, 40, 45, 51, 68, 79, 85, 92, 93, 97]
    assert len(ACTIVITYNET13_TO_UCF101) == 30
    assert len(set(ACTIVITYNET13_TO_UCF101.values())) == 30
    assert default_mapping(["Archery", "Zumba"]) == {"Archery": "Archery"}
    assert default_mapping(THUMOS_CLASSES[:2]) == {c: c for c in THUMOS_CLASSES[:2]}


def test_thumos14_config_with_trimmed_clips(thumos: Path, ucf: Path, tmp_path: Path) -> None:
    """The index stage from a dataset config: trimmed clips under split 'trimmed', kept out of
    gt.json."""
    cfg = {
        "name": "thumos14", "format": "thumos14", "root": str(thumos), "fps": 25,
        "classes": THUMOS_CLASSES,
        "subsets": [{"name": s.name, "split": s.split, "videos": s.videos,
                     "annotations": s.annotations, "suffix": s.suffix} for s in SUBSETS],
        "known_bad": {"exclude": list(THUMOS14_KNOWN_BAD)},
        "trimmed": {"root": str(ucf / "UCF-101"),
                    "class_index": str(ucf / "ucfTrainTestlist" / "classInd.txt")},
    }
    # the default mapping wants all 20 class folders: give only two
    cfg["trimmed"]["classes"] = {"BaseballPitch": "BaseballPitch", "Diving": "Diving"}
    index = index_from_config(tmp_path / "index.json", tmp_path / "gt.json", cfg)
    trimmed = sorted(v for v, r in index["videos"].items() if r["split"] == "trimmed")
    assert len(trimmed) == 4
    gt = read_json(tmp_path / "gt.json")
    assert not set(trimmed) & set(gt["database"])
