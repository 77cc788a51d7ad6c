"""Bad or changed inputs are caught, named and recorded (index stage, imports, written files)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from byof_fixtures import SNIPPET_SECONDS, make_videos, write_per_video, write_wtalc
from conftest import counter_frames, write_video

from wtal.byof import build_features_index, import_features
from wtal.datasets import (
    SubsetSpec,
    build_index,
    index_from_config,
    input_listing,
    parse_annotation_file,
    read_anet_database,
)
from wtalio import atomic_open, read_json, save_npy, save_torch, write_json


def features_config(extra: dict, **kw: object) -> dict:
    return {"name": "byo", "format": "features", "snippet_seconds": SNIPPET_SECONDS,
            "train_subset": "validation", "test_subset": "test", **extra, **kw}


@pytest.fixture(scope="module")
def videos() -> dict:
    return make_videos(seed=5, n_train=3, n_test=3)


# ---- the index reruns when the set of files changes ----------------------------------------


def test_listing_changes_when_a_feature_file_appears(tmp_path: Path, videos: dict) -> None:
    cfg = features_config(write_per_video(tmp_path, videos))
    late = Path(cfg["features_dir"]) / "v_video_test_0000002.npy"
    kept = np.load(late)
    late.unlink()
    before = input_listing(cfg)
    index, _ = build_features_index(cfg)
    assert [m["video"] for m in index["missing"]] == ["video_test_0000002"]
    assert input_listing(cfg) == before  # stable while nothing changes
    np.save(late, kept)
    assert input_listing(cfg) != before
    index, _ = build_features_index(cfg)
    assert index["missing"] == []


def test_listing_changes_when_a_video_file_appears(tmp_path: Path) -> None:
    cfg = {"name": "anet", "format": "activitynet", "root": str(tmp_path),
           "annotations": "a.json", "videos": "videos",
           "subsets": [{"name": "training", "split": "train"}]}
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v_a.mp4").write_bytes(b"")
    before = input_listing(cfg)
    (tmp_path / "videos" / "notes.txt").write_text("not a video")
    assert input_listing(cfg) == before
    (tmp_path / "videos" / "v_b.mkv").write_bytes(b"")
    assert input_listing(cfg) != before


# ---- snippet_seconds ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["per_video", "wtalc"])
def test_wrong_snippet_seconds_is_an_error_naming_video_numbers_and_key(
        tmp_path: Path, videos: dict, layout: str) -> None:
    data = (write_per_video(tmp_path, videos) if layout == "per_video"
            else write_wtalc(tmp_path, videos))
    index, _ = build_features_index(features_config(data))
    check = index["duration_check"]
    assert check["videos_checked"] == len(videos)
    assert check["snippet_tolerance"] == 2.0
    assert check["max_difference_seconds"] < SNIPPET_SECONDS
    # features at 0.64 s a row read as 0.96 s: 1.5 x the annotated duration
    with pytest.raises(ValueError, match=r"video_test_0000000.*rows x snippet_seconds 0\.96 = "
                       r"[0-9.]+ s, but .* duration of [0-9.]+ s.*set snippet_seconds"):
        build_features_index(features_config(data, snippet_seconds=0.96))
    # switched off on purpose (features resized to a fixed length): recorded
    index, _ = build_features_index(features_config(data, snippet_seconds=0.96,
                                                    snippet_tolerance=None))
    assert index["duration_check"]["videos_checked"] == 0
    assert index["duration_check"]["snippet_tolerance"] is None


def test_stream_columns_error_names_the_users_file(tmp_path: Path, videos: dict) -> None:
    cfg = features_config(write_per_video(tmp_path, videos))
    index, _ = build_features_index(cfg)
    record = index["videos"]["v_video_test_0000001"]
    with pytest.raises(ValueError, match=r"features/v_video_test_0000001\.npy: stream flow"):
        import_features("v_video_test_0000001", record, tmp_path / "o.npy",
                        snippet_seconds=SNIPPET_SECONDS, streams={"flow": [16, 99]})


# ---- annotation files ----------------------------------------------------------------------


def test_video_listed_twice_in_activitynet_json(tmp_path: Path) -> None:
    path = tmp_path / "anet.json"
    path.write_text('{"database": {'
                    '"abc": {"subset": "training", "annotations": []},'
                    '"xyz": {"subset": "training", "annotations": []},'
                    '"abc": {"subset": "validation", "annotations": []}}}')
    with pytest.raises(ValueError, match=r"anet\.json: key 'abc' appears twice.*'training' and "
                       r"'validation'"):
        read_anet_database(path)


def test_infinite_times_are_rejected(tmp_path: Path) -> None:
    text = tmp_path / "Alpha_val.txt"
    text.write_text("video_validation_0000001 1.0 inf\n")
    with pytest.raises(ValueError, match=r"Alpha_val\.txt:1: start and end must be finite"):
        parse_annotation_file(text, "Alpha")
    path = tmp_path / "anet.json"
    path.write_text(json.dumps({"database": {"abc": {"subset": "training", "annotations": [
        {"segment": [1.0, float("inf")], "label": "x"}]}}}))
    with pytest.raises(ValueError, match=r"anet\.json.*'abc'.*not finite"):
        read_anet_database(path)


def test_byte_order_mark_is_stripped_and_other_encodings_named(tmp_path: Path) -> None:
    text = tmp_path / "Alpha_val.txt"
    text.write_bytes(b"\xef\xbb\xbfvideo_validation_0000001 1.0 2.0\n")
    (segment,) = parse_annotation_file(text, "Alpha")
    assert segment.video == "video_validation_0000001"
    text.write_bytes(b"video_validation_0000001 1.0 2.0\nvid\xe9o_2 1.0 2.0\n")  # Latin-1
    with pytest.raises(ValueError, match=r"Alpha_val\.txt:2: not UTF-8"):
        parse_annotation_file(text, "Alpha")
    path = tmp_path / "anet.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"database": {"abc": {
        "subset": "training", "annotations": []}}}).encode())
    assert list(read_anet_database(path)) == ["abc"]
    path.write_bytes(b'{"database":\n {"ab\xe7": {}}}')
    with pytest.raises(ValueError, match=r"anet\.json:2: not UTF-8"):
        read_anet_database(path)


def test_missing_ambiguous_file_is_recorded_and_warned(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "Alpha_test.txt").write_text("video_test_0000001 0.1 0.8\n")
    write_video(tmp_path / "test" / "video_test_0000001.mp4", counter_frames(30), fps=25.0)
    spec = SubsetSpec(name="test", split="test", videos="test", annotations="ann",
                      suffix="test")
    with caplog.at_level(logging.WARNING):
        index, _ = build_index(dataset="toy", classes=["Alpha"], subsets=[spec], fps=25.0,
                               root=tmp_path)
    assert index["ambiguous_missing"] == [{"subset": "test",
                                           "file": str(ann / "Ambiguous_test.txt")}]
    assert "Ambiguous_test.txt is missing" in caplog.text
    (ann / "Ambiguous_test.txt").write_text("")
    index, _ = build_index(dataset="toy", classes=["Alpha"], subsets=[spec], fps=25.0,
                           root=tmp_path)
    assert index["ambiguous_missing"] == []


# ---- written files -------------------------------------------------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_json(tmp_path / "a.json", {"x": 1})
    save_npy(tmp_path / "b.npy", np.zeros(3))
    with atomic_open(tmp_path / "c.txt") as handle:
        handle.write("c")
    save_torch(tmp_path / "d.pt", {"x": 1})
    for name in ("a.json", "b.npy", "c.txt", "d.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    os.umask(0o077)
    write_json(tmp_path / "e.json", {"x": 1})
    assert stat.S_IMODE((tmp_path / "e.json").stat().st_mode) == 0o600


def test_index_files_follow_the_umask(tmp_path: Path, videos: dict, umask_022: None) -> None:
    cfg = features_config(write_per_video(tmp_path / "data", videos))
    index_from_config(tmp_path / "index.json", tmp_path / "gt.json", cfg)
    assert stat.S_IMODE((tmp_path / "index.json").stat().st_mode) == 0o644
    assert read_json(tmp_path / "index.json")["duration_check"]["videos_checked"] == 6


def test_save_torch_is_byte_reproducible(tmp_path: Path) -> None:
    import torch

    obj = {"w": torch.arange(6.0).reshape(2, 3), "name": "m"}
    save_torch(tmp_path / "a" / "model.pt", obj)
    save_torch(tmp_path / "b" / "model.pt", obj)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    assert torch.load(tmp_path / "a" / "model.pt")["name"] == "m"
    assert not [p for p in (tmp_path / "a").iterdir() if p.name != "model.pt"]  # no leftovers


def test_trained_model_file_is_byte_reproducible(tmp_path: Path) -> None:
    """Same seed and settings, two runs: the same model.pt bytes (the archive's inner folder
    was named after a random temporary file)."""
    import torch

    from extractors.grid import SnippetGrid
    from wtal.train import TrainSettings, train

    rng = np.random.default_rng(0)
    paths, videos = [], {}
    for i in range(4):
        name = f"v{i}"
        save_npy(tmp_path / f"{name}.npy", rng.normal(size=(12, 8)).astype(np.float32))
        grid = SnippetGrid(fps=25.0, n_frames=12 * 16, length=16, stride=16)
        write_json(tmp_path / f"{name}.json", {"shape": [12, 8], "grid": grid.to_dict(),
                                               "extractor": "synthetic"})
        paths.append(tmp_path / f"{name}.npy")
        videos[name] = {"labels": ["A"] if i % 2 else ["B"], "split": "train",
                        "subset": "validation"}
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": ["A", "B"],
                                         "videos": videos})
    torch.set_num_threads(1)
    for run in ("a", "b"):
        train(tmp_path / "index.json", paths, tmp_path / run / "model.pt",
              tmp_path / run / "train.json", model="cas_baseline",
              model_args={"hidden": 8}, settings=TrainSettings(epochs=2, batch_size=2, seed=0),
              device="cpu")
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
