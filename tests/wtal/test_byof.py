"""Bring-your-own features: the three public layouts, indexing, import, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from byof_fixtures import (
    CLASSES,
    HALF,
    SNIPPET_SECONDS,
    make_videos,
    write_basnet,
    write_per_video,
    write_trimmed,
    write_wtalc,
)

from extractors.features import load_features
from extractors.grid import SnippetGrid
from wtal.byof import (
    build_features_index,
    import_features,
    import_split,
    split_files,
    unpack_joint,
)
from wtal.datasets import index_from_config, input_listing
from wtalio import read_json


def config(extra: dict, **kw: object) -> dict:
    return {"name": "byo", "format": "features", "snippet_seconds": SNIPPET_SECONDS,
            "train_subset": "validation", "test_subset": "test", **extra, **kw}


@pytest.fixture(scope="module")
def videos() -> dict:
    return make_videos(seed=3, n_train=4, n_test=3)


def test_per_video_layout_with_v_prefix_and_string_segments(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos))
    index, gt = build_features_index(cfg)
    # files are v_<key>.npy while the JSON keys have no prefix: the pipeline uses the file stem
    assert sorted(index["videos"]) == sorted(f"v_{k}" for k in videos)
    assert set(gt["database"]) == set(index["videos"])
    key = "video_validation_0000000"
    record = index["videos"][f"v_{key}"]
    assert record["split"] == "train"
    assert record["labels"] == sorted({a["label"] for a in videos[key]["annotations"]},
                                      key=CLASSES.index)
    # string segments became numbers
    seg = gt["database"][f"v_{key}"]["annotations"][0]["segment"]
    assert seg == videos[key]["annotations"][0]["segment"]
    assert index["classes"] == CLASSES
    assert index["missing"] == []


def test_import_writes_grid_and_streams(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos),
                 streams={"rgb": [0, HALF], "flow": [HALF, 2 * HALF]})
    index, _ = build_features_index(cfg)
    name = "v_video_test_0000001"
    out = tmp_path / "out" / f"{name}.npy"
    import_features(name, index["videos"][name], out, snippet_seconds=SNIPPET_SECONDS,
                    streams=cfg["streams"])
    x, sidecar = load_features(out)
    np.testing.assert_array_equal(x, videos["video_test_0000001"]["features"])
    grid = SnippetGrid.from_dict(sidecar["grid"])
    assert grid.n_snippets == x.shape[0]
    # row i covers [i * 0.64, (i + 1) * 0.64)
    assert grid.run_to_seconds(3, 4) == pytest.approx((3 * 0.64, 5 * 0.64))
    assert sidecar["streams"] == {"rgb": [0, HALF], "flow": [HALF, 2 * HALF]}
    assert sidecar["extractor"] == "imported"


def test_basnet_layout_concatenates_rgb_first(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_basnet(tmp_path, videos), train_subset="train")
    index, gt = build_features_index(cfg)
    key = "video_test_0000002"
    record = index["videos"][key]
    assert record["subset"] == "test"
    # no duration in BaSNet's gt.json: rows x snippet_seconds
    rows = videos[key]["features"].shape[0]
    assert record["duration"] == pytest.approx(rows * SNIPPET_SECONDS)
    out = tmp_path / "imp" / f"{key}.npy"
    sidecar = import_features(key, record, out, snippet_seconds=SNIPPET_SECONDS)
    x = np.load(out)
    np.testing.assert_array_equal(x[:, :HALF], videos[key]["features"][:, :HALF])  # rgb
    np.testing.assert_array_equal(x[:, HALF:], videos[key]["features"][:, HALF:])  # flow
    assert sidecar["streams"] == {"rgb": [0, HALF], "flow": [HALF, 2 * HALF]}
    assert gt["database"][key]["duration"] == pytest.approx(rows * SNIPPET_SECONDS)


def test_wtalc_layout_unpacks_once(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_wtalc(tmp_path, videos))
    index, gt = build_features_index(cfg)
    assert sorted(index["videos"]) == sorted(videos)
    key = "video_validation_0000003"
    assert gt["database"][key]["duration"] == videos[key]["duration"]
    assert [a["label"] for a in gt["database"][key]["annotations"]] == [
        a["label"] for a in videos[key]["annotations"]]
    folder = tmp_path / "unpacked"
    n = unpack_joint(next(Path(cfg["features_dir"]).glob("*.npy")), cfg["annotations"], folder)
    assert n == len(videos)
    out = tmp_path / "imp" / f"{key}.npy"
    import_features(key, index["videos"][key], out, snippet_seconds=SNIPPET_SECONDS,
                    unpacked=folder)
    np.testing.assert_array_equal(np.load(out), videos[key]["features"])


def test_missing_features_are_listed_not_dropped_silently(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos))
    (Path(cfg["features_dir"]) / "v_video_test_0000000.npy").unlink()
    index, gt = build_features_index(cfg)
    assert "v_video_test_0000000" not in index["videos"]
    assert "v_video_test_0000000" not in gt["database"]
    assert [m["video"] for m in index["missing"]] == ["video_test_0000000"]
    assert "no features" in index["missing"][0]["reason"]


def test_nan_features_name_file_and_row(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos))
    path = Path(cfg["features_dir"]) / "v_video_test_0000001.npy"
    x = np.load(path)
    x[5, 3] = np.nan
    np.save(path, x)
    index, _ = build_features_index(cfg)
    name = "v_video_test_0000001"
    with pytest.raises(ValueError, match=r"v_video_test_0000001.npy: 1 NaN or infinite values "
                                         r"\(first in row 5\)"):
        import_features(name, index["videos"][name], tmp_path / "o.npy",
                        snippet_seconds=SNIPPET_SECONDS)
    assert not (tmp_path / "o.npy").exists()


def test_wrong_shape_and_stream_ranges(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos))
    path = Path(cfg["features_dir"]) / "v_video_test_0000002.npy"
    good = np.load(path)
    np.save(path, np.zeros(7, dtype=np.float32))
    with pytest.raises(ValueError, match=r"v_video_test_0000002.npy: expected a \(T, D\) array"):
        build_features_index(cfg)  # the index reads every file's shape (snippet_seconds check)
    index = {"videos": {"v_video_test_0000002": {"features": {
        "layout": "per_video", "files": [str(path)]}}}}
    with pytest.raises(ValueError, match=r"v_video_test_0000002.npy: expected a \(T, D\) array"):
        import_features("v_video_test_0000002", index["videos"]["v_video_test_0000002"],
                        tmp_path / "o.npy", snippet_seconds=SNIPPET_SECONDS)
    np.save(path, good)
    index, _ = build_features_index(cfg)
    # the message names the user's file (and the setting), not only the video
    with pytest.raises(ValueError, match=r"v_video_test_0000001\.npy: stream flow columns "
                       r"\[32, 64\) \(setting 'streams'\) are outside"):
        import_features("v_video_test_0000001", index["videos"]["v_video_test_0000001"],
                        tmp_path / "o.npy", snippet_seconds=SNIPPET_SECONDS,
                        streams={"rgb": [0, 32], "flow": [32, 64]})


def test_basnet_streams_of_different_length(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_basnet(tmp_path, videos), train_subset="train")
    flow = Path(cfg["features_dir"]) / "test" / "flow" / "video_test_0000000.npy"
    np.save(flow, np.load(flow)[:-2])
    index, _ = build_features_index(cfg)
    with pytest.raises(ValueError, match=r"rgb/video_test_0000000.npy has \d+ rows but .*flow"):
        import_features("video_test_0000000", index["videos"]["video_test_0000000"],
                        tmp_path / "o.npy", snippet_seconds=SNIPPET_SECONDS)


def test_unknown_class_and_bad_segment_name_file_and_video(tmp_path: Path,
                                                           videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos), classes=["Jump"])
    with pytest.raises(ValueError, match=r"annotations.json: video video_\w+: unknown class "
                                         r"'Throw'"):
        build_features_index(cfg)
    data = json.loads(Path(cfg["annotations"]).read_text())
    data["database"]["video_test_0000001"]["annotations"][0]["segment"] = ["5.0", "2.0"]
    Path(cfg["annotations"]).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"database\['video_test_0000001'\].annotations\[0\]: "
                                         r"segment \[5.0, 2.0\] is empty or negative"):
        build_features_index(config(write_per_video(tmp_path / "b", videos),
                                    annotations=cfg["annotations"]))


def test_unknown_subset_is_an_error(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos), test_subset="testing")
    with pytest.raises(ValueError, match=r"no video of subset 'testing'"):
        build_features_index(cfg)


def test_ambiguous_label_becomes_ambiguous_segments(tmp_path: Path, videos: dict) -> None:
    """THUMOS14's Ambiguous segments, given as label "Ambiguous", reach gt.json's ambiguous map
    (the THUMOS14 kit ignores detections on them) and are neither a class nor an instance."""
    key = "video_test_0000001"
    with_amb = {k: dict(v) for k, v in videos.items()}
    with_amb[key]["annotations"] = [*videos[key]["annotations"],
                                    {"segment": [1.0, 2.5], "label": "Ambiguous"}]
    cfg = config(write_per_video(tmp_path, with_amb))
    index = index_from_config(tmp_path / "i.json", tmp_path / "gt.json", cfg)
    gt = read_json(tmp_path / "gt.json")
    assert index["classes"] == CLASSES
    assert gt["ambiguous"] == {f"v_{key}": [[1.0, 2.5]]}
    labels = {a["label"] for e in gt["database"].values() for a in e["annotations"]}
    assert "Ambiguous" not in labels
    assert len(gt["database"][f"v_{key}"]["annotations"]) == len(videos[key]["annotations"])


def test_index_from_config_writes_both_files(tmp_path: Path, videos: dict) -> None:
    cfg = config(write_per_video(tmp_path, videos))
    index = index_from_config(tmp_path / "i.json", tmp_path / "gt.json", cfg)
    assert read_json(tmp_path / "i.json") == index
    assert index["snippet_seconds"] == SNIPPET_SECONDS
    assert read_json(tmp_path / "gt.json")["taxonomy"][1]["nodeName"] == "Throw"


def test_by_hand_with_the_cli(tmp_path: Path, videos: dict,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """wtal index + wtal import-features: the W-TALC layout, unpacked by the same command."""
    import yaml

    from wtal.cli import main

    cfg = config(write_wtalc(tmp_path, videos), streams={"rgb": [0, HALF], "flow": [HALF, 32]})
    del cfg["format"]  # implied by features_dir
    (tmp_path / "byo.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["index", "--dataset-config", str(tmp_path / "byo.yaml"),
                 "--index", str(tmp_path / "i.json"), "--gt", str(tmp_path / "g.json")]) == 0
    assert f"indexed {len(videos)} videos of byo; 0 missing" in capsys.readouterr().out
    joint = next(Path(cfg["features_dir"]).glob("*-JOINTFeatures.npy"))
    assert main(["import-features", "--index", str(tmp_path / "i.json"),
                 "--out-dir", str(tmp_path / "imported"), "--unpacked", str(tmp_path / "u"),
                 "--unpack-joint", str(joint), cfg["annotations"]]) == 0
    x, sidecar = load_features(tmp_path / "imported" / "video_test_0000000.npy")
    np.testing.assert_array_equal(x, videos["video_test_0000000"]["features"])
    assert sidecar["streams"] == {"rgb": [0, HALF], "flow": [HALF, 32]}
    assert main(["import-features", "--index", str(tmp_path / "i.json"), "--split", "test",
                 "--out-dir", str(tmp_path / "test_only"), "--unpacked", str(tmp_path / "u")]) == 0
    tests = sorted(v for v in videos if videos[v]["subset"] == "test")
    assert tests
    assert sorted(p.stem for p in (tmp_path / "test_only").glob("*.npy")) == tests
    assert f"the {len(tests)} videos of split test" in capsys.readouterr().out
    assert main(["import-features", "--index", str(tmp_path / "i.json"), "--split", "trimmed",
                 "--out-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no videos in split 'trimmed'" in err
    assert "i.json" in err


def test_trimmed_clips_given_as_features_are_indexed_and_imported(tmp_path: Path,
                                                                  videos: dict) -> None:
    """UCF101 clips' features (KT-MGFN, TSRNet) in the UCF101 folder layout: split trimmed,
    the dataset's class as label, duration = rows × snippet_seconds, not in gt.json."""
    trimmed = write_trimmed(tmp_path / "ucf", folders={"Jump": "LongJump", "Throw": "Throw"})
    cfg = config(write_per_video(tmp_path, videos), trimmed=trimmed["trimmed"])
    index, gt = build_features_index(cfg)
    clips = {v: r for v, r in index["videos"].items() if r["split"] == "trimmed"}
    assert sorted(clips) == sorted(trimmed["clips"])
    for name, (cls, x) in trimmed["clips"].items():
        assert clips[name]["labels"] == [cls]
        assert clips[name]["duration"] == pytest.approx(x.shape[0] * SNIPPET_SECONDS)
        assert clips[name]["ucf101_class"] == ("LongJump" if cls == "Jump" else "Throw")
        assert name not in gt["database"]
    assert len(index["videos"]) == len(videos) + len(clips)
    name = "v_LongJump_g01_c02"
    sidecar = import_features(name, clips[name], tmp_path / "imp" / f"{name}.npy",
                              snippet_seconds=SNIPPET_SECONDS,
                              streams={"rgb": [0, HALF], "flow": [HALF, 2 * HALF]})
    x, _ = load_features(tmp_path / "imp" / f"{name}.npy")
    np.testing.assert_array_equal(x, trimmed["clips"][name][1])
    assert sidecar["grid"] == SnippetGrid(fps=1 / SNIPPET_SECONDS, n_frames=x.shape[0],
                                          length=1, stride=1).to_dict()


def test_trimmed_clip_features_bad_input_names_the_file(tmp_path: Path, videos: dict) -> None:
    data = write_per_video(tmp_path, videos)
    trimmed = write_trimmed(tmp_path / "ucf")["trimmed"]
    with pytest.raises(FileNotFoundError, match=r"trimmed\.root"):
        build_features_index(config(data, trimmed={"root": str(tmp_path / "nope")}))
    with pytest.raises(FileNotFoundError, match="Jumping: UCF101 class folder does not exist"):
        build_features_index(config(data, trimmed={**trimmed, "classes": {"Jump": "Jumping"}}))
    bad = tmp_path / "ucf" / "Throw" / "Throw_clip.npy"
    np.save(bad, np.zeros((4, 32), np.float32))
    with pytest.raises(ValueError, match=r"Throw_clip\.npy: not a UCF101 clip name"):
        build_features_index(config(data, trimmed=trimmed))
    bad.unlink()
    flat = tmp_path / "ucf" / "Throw" / "v_Throw_g09_c01.npy"
    np.save(flat, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"v_Throw_g09_c01.npy: expected a \(T, D\) array"):
        build_features_index(config(data, trimmed=trimmed))
    flat.unlink()
    for clip in (tmp_path / "ucf" / "Jump").iterdir():
        clip.unlink()
    with pytest.raises(ValueError, match=r"Jump: no feature files \(.npy\)"):
        build_features_index(config(data, trimmed=trimmed))


def test_a_new_trimmed_clip_changes_the_input_listing(tmp_path: Path, videos: dict) -> None:
    """The index rule's ``input_files`` param: a clip added later reruns the index."""
    trimmed = write_trimmed(tmp_path / "ucf")["trimmed"]
    cfg = config(write_per_video(tmp_path, videos), trimmed=trimmed)
    before = input_listing(cfg)
    assert before != input_listing({k: v for k, v in cfg.items() if k != "trimmed"})
    np.save(tmp_path / "ucf" / "Jump" / "v_Jump_g07_c01.npy", np.zeros((3, 32), np.float32))
    assert input_listing(cfg) != before


def test_the_trimmed_split_is_imported_in_one_call_and_read_back_in_index_order(
        tmp_path: Path, videos: dict) -> None:
    """import_split writes every clip of the split (none of the videos) into one folder;
    split_files expands that folder into the clips' files in the index's order, keeps plain
    files, and names a clip missing from the folder; a bad clip stops the import, named."""
    trimmed = write_trimmed(tmp_path / "ucf", per_class=3)
    index, _ = build_features_index(config(write_per_video(tmp_path, videos),
                                           trimmed=trimmed["trimmed"]))
    out = tmp_path / "imported_trimmed"
    paths = import_split(index, "trimmed", out, snippet_seconds=SNIPPET_SECONDS,
                         streams={"rgb": [0, HALF], "flow": [HALF, 2 * HALF]})
    names = sorted(trimmed["clips"])
    assert [p.stem for p in paths] == names
    assert sorted(p.stem for p in out.glob("*.npy")) == names  # the clips and nothing else
    for name in names:
        x, sidecar = load_features(out / f"{name}.npy")
        np.testing.assert_array_equal(x, trimmed["clips"][name][1])
        assert sidecar["streams"] == {"rgb": [0, HALF], "flow": [HALF, 2 * HALF]}
    assert split_files([out], index, "trimmed") == paths
    plain = tmp_path / "some.npy"
    assert split_files([plain], index, "trimmed") == [plain]
    assert split_files([], index, "trimmed") == []
    (out / f"{names[1]}.npy").unlink()
    with pytest.raises(ValueError, match=f"no features of trimmed video '{names[1]}'"):
        split_files([out], index, "trimmed")
    with pytest.raises(ValueError, match="no videos in split 'nope'"):
        import_split(index, "nope", out, snippet_seconds=SNIPPET_SECONDS)
    bad = next(iter(trimmed["clips"]))
    x = trimmed["clips"][bad][1].copy()
    x[2, 1] = np.nan
    np.save(index["videos"][bad]["features"]["files"][0], x)
    with pytest.raises(ValueError, match=f"{bad}.npy: 1 NaN or infinite values .first in row 2"):
        import_split(index, "trimmed", tmp_path / "again", snippet_seconds=SNIPPET_SECONDS)
