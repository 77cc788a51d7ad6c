"""Tests for the synthetic demo dataset (wtal.demo) on a tiny configuration."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import decord
import numpy as np
import pytest

from wtal import demo
from wtal.demo import (
    ACTION_CLASSES,
    DEMO_CLASSES,
    SceneRenderer,
    frame_range,
    plan_demo,
    synthesize_demo,
)

TINY: dict[str, Any] = {
    "n_validation": 2,
    "n_test": 1,
    "duration_range": (6.0, 7.0),
    "instance_duration": (1.0, 1.5),
    "instances_per_video": (1, 2),
    "n_trimmed_per_class": 1,
    "trimmed_duration": (1.0, 1.5),
    "width": 64,
    "height": 48,
    "fps": 30.0,
}
ONE_DECIMAL = re.compile(r"^\d+\.\d$")
SUFFIX = {"validation": "val", "test": "test"}


def colour_fraction(frames: np.ndarray, colour: Sequence[int], *, tol: float = 70.0) -> np.ndarray:
    """Fraction of pixels within ``tol`` (RGB distance) of ``colour``, per frame."""
    diff = frames.astype(np.float32) - np.asarray(colour, np.float32)
    return (np.linalg.norm(diff, axis=-1) < tol).mean(axis=(-2, -1))


def decode(path: Path) -> np.ndarray:
    """Every frame of ``path`` as ``(n, h, w, 3)`` uint8, via decord."""
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A tiny demo (seed 0), its summary and its demo.json."""
    root = tmp_path_factory.mktemp("tiny") / "demo"
    summary = synthesize_demo(root, seed=0, **TINY)
    meta = json.loads((root / "demo.json").read_text())
    return root, summary, meta


def test_layout_and_thumos_annotations(tiny: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    root, summary, meta = tiny
    videos = meta["videos"]
    assert meta["classes"] == list(DEMO_CLASSES)
    assert meta["seed"] == 0
    assert meta["arguments"]["width"] == 64
    assert summary["validation"] == {
        "videos": 2,
        "instances": sum(len(v["instances"]) for v in videos.values()
                         if v["subset"] == "validation")}
    expected = {f"validation/video_validation_{i:07d}.mp4" for i in (1, 2)}
    expected |= {"test/video_test_0000001.mp4"}
    expected |= {f"trimmed/{c}/v_{c}_g01_c01.mp4" for c in DEMO_CLASSES}
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
    assert on_disk == expected
    assert {v["path"] for v in videos.values()} == expected
    # Nothing but the dataset in the parent: no temporary folder left behind.
    assert [p.name for p in root.parent.iterdir()] == ["demo"]

    for subset, suffix in SUFFIX.items():
        folder = root / "annotations" / subset
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted([f"{c}_{suffix}.txt" for c in DEMO_CLASSES]
                               + [f"Ambiguous_{suffix}.txt"])
        from_files: set[tuple[str, str, float, float]] = set()
        per_video: dict[str, list[tuple[float, float]]] = {}
        for label in DEMO_CLASSES:
            for line in (folder / f"{label}_{suffix}.txt").read_text().splitlines():
                name, start_text, end_text = line.split()
                assert ONE_DECIMAL.match(start_text), line
                assert ONE_DECIMAL.match(end_text), line
                assert videos[name]["subset"] == subset
                start, end = float(start_text), float(end_text)
                assert 1.0 <= start < end <= videos[name]["duration"] - 1.0 + 1e-9, line
                from_files.add((name, label, start, end))
                per_video.setdefault(name, []).append((start, end))
        for spans in per_video.values():
            spans.sort()
            for (_, end), (start, _) in itertools.pairwise(spans):
                assert start - end >= 1.5 - 1e-9  # non-overlapping, >= 1.5 s of background
        from_json = {(name, inst["label"], inst["start"], inst["end"])
                     for name, v in videos.items() if v["subset"] == subset
                     for inst in v["instances"]}
        assert from_files == from_json
        assert from_json  # the tiny config does have instances in both subsets


def test_decord_reads_every_video(tiny: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    root, _, meta = tiny
    for video in meta["videos"].values():
        path = root / video["path"]
        reader = decord.VideoReader(str(path))
        assert video["n_frames"] == math.ceil(video["duration"] * 30.0 - 1e-9)
        assert len(reader) == video["n_frames"]
        assert reader.get_avg_fps() == pytest.approx(30.0, abs=1e-6)
        assert reader[0].shape == (48, 64, 3)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert stream.average_rate == 30


def test_same_seed_same_data_other_seed_differs(
        tiny: tuple[Path, dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    root, _, _ = tiny
    again = tmp_path / "again"
    synthesize_demo(again, seed=0, **TINY)
    assert (again / "demo.json").read_bytes() == (root / "demo.json").read_bytes()
    rel = "validation/video_validation_0000002.mp4"
    assert np.array_equal(decode(again / rel), decode(root / rel))

    other = tmp_path / "other"
    synthesize_demo(other, seed=1, **TINY)
    assert (other / "demo.json").read_text() != (root / "demo.json").read_text()
    a, b = decode(other / rel), decode(root / rel)
    n = min(len(a), len(b))
    assert np.abs(a[:n].astype(np.int16) - b[:n]).mean() > 5


def test_action_visible_exactly_at_annotated_times(
        tiny: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    root, _, meta = tiny
    colours = {c: ACTION_CLASSES[c].colour for c in DEMO_CLASSES}
    for video in meta["videos"].values():
        frames = decode(root / video["path"])
        n = len(frames)
        fractions = {c: colour_fraction(frames, colour) for c, colour in colours.items()}
        shown = np.zeros(n, bool)
        for inst in video["instances"]:
            first, stop = inst["first_frame"], inst["end_frame"]
            assert (first, stop) == frame_range(inst["start"], inst["end"], fps=30.0, n_frames=n)
            shown[first:stop] = True
            own = fractions[inst["label"]]
            # Big object from the first to the last frame of the instance...
            assert own[first:stop].min() > 0.10, (video["path"], inst)
            # ...and not one frame earlier or later (trimmed clips span the whole video).
            if first > 0:
                assert own[first - 1] < 0.01, (video["path"], inst)
            if stop < n:
                assert own[stop] < 0.01, (video["path"], inst)
            for other, frac in fractions.items():
                if other != inst["label"]:
                    assert frac[first:stop].max() < 0.01
        # Frames outside every instance look like background: no class colour anywhere.
        for frac in fractions.values():
            assert not (~shown).any() or frac[~shown].max() < 0.01
        # Mean colour statistics differ clearly inside instances.
        for inst in video["instances"]:
            inside = frames[inst["first_frame"]:inst["end_frame"]].reshape(-1, 3).mean(0)
            dominant = int(np.argmax(colours[inst["label"]]))
            if (~shown).any():
                outside = frames[~shown].reshape(-1, 3).mean(0)
                assert inside[dominant] - inside.mean() > outside[dominant] - outside.mean() + 10


def test_default_size_objects_are_big_and_move() -> None:
    plan = plan_demo(seed=3, n_validation=1, n_test=0, n_trimmed_per_class=1)
    for video in plan.subset("trimmed"):
        (inst,) = video.scene.instances
        renderer = SceneRenderer(video.scene)
        frames = np.stack([renderer.frame(k) for k in range(0, 30, 2)])
        assert frames.shape[1:] == (120, 160, 3)
        area = colour_fraction(frames, inst.colour, tol=40.0)
        assert 0.18 < area.mean() < 0.45, (inst.label, area.mean())
        masks = np.linalg.norm(frames.astype(np.float32) - inst.colour, axis=-1) < 40
        changed = (masks[1:] != masks[:-1]).mean(axis=(1, 2))
        # The object keeps moving (a slide reversing at a wall may pause for one step).
        assert np.median(changed) > 0.02, inst.label
        assert (changed > 0.005).mean() > 0.8, inst.label
    # Outside the actions the distractors keep moving: big changes that noise cannot make.
    (video,) = plan.subset("validation")
    renderer = SceneRenderer(video.scene)
    first = video.scene.instances[0].start
    a, b = renderer.frame(0), renderer.frame(int(first * 30) - 1)
    assert (np.abs(a.astype(np.int16) - b) > 60).mean() > 0.002


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_default_plan_is_balanced_and_well_formed(seed: int) -> None:
    plan = plan_demo(seed=seed)
    for subset, minimum in (("validation", 4), ("test", 2)):
        videos = plan.subset(subset)
        assert len(videos) == (16 if subset == "validation" else 8)
        for label in DEMO_CLASSES:
            having = [v for v in videos if any(i.label == label for i in v.scene.instances)]
            assert len(having) >= minimum, (subset, label)
        for video in videos:
            assert 14.0 <= video.duration <= 20.0
            assert video.scene.n_frames == round(video.duration * 30)
            labels = [i.label for i in video.scene.instances]
            assert 1 <= len(set(labels)) <= 2
            assert all(1 <= labels.count(c) <= 3 for c in set(labels))
            spans = [(i.start, i.end) for i in video.scene.instances]
            assert spans == sorted(spans)
            for start, end in spans:
                assert round(start * 10) == pytest.approx(start * 10, abs=1e-9)
                assert 2.0 - 1e-9 <= end - start <= 5.0 + 1e-9
            assert spans[0][0] >= 1.0
            assert spans[-1][1] <= video.duration - 1.0 + 1e-9
            assert all(b[0] - a[1] >= 1.5 - 1e-9 for a, b in itertools.pairwise(spans))
    assert len(plan.subset("trimmed")) == 12
    assert plan_demo(seed=seed).videos == plan.videos  # deterministic plan


@pytest.mark.parametrize("fps", [30.0, 25.0, 29.97, 12.5])
def test_frame_range_follows_the_time_rule(fps: float) -> None:
    n_frames = 400
    for start_ds, end_ds in ((0, 13), (11, 47), (42, 79), (100, 133)):
        start, end = start_ds / 10, end_ds / 10
        expected = [k for k in range(n_frames) if start <= k / fps < end]
        first, stop = frame_range(start, end, fps=fps, n_frames=n_frames)
        assert list(range(first, stop)) == expected


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        plan_demo(width=63)
    with pytest.raises(ValueError, match="classes"):
        plan_demo(classes=["RedBounce", "Juggling"])
    with pytest.raises(ValueError, match="cannot hold"):
        plan_demo(duration_range=(3.0, 3.0), instance_duration=(2.0, 2.0))
    with pytest.raises(ValueError, match="classes"):
        synthesize_demo(tmp_path / "demo", classes=[])
    assert list(tmp_path.iterdir()) == []


def _fake_writer(fail_on: int | None) -> Any:
    """A stand-in for the encoder that writes a stub file and raises on call ``fail_on``."""
    calls = {"n": 0}

    def write(path: Path, *, renderer: SceneRenderer, codec: str) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise RuntimeError("encoder exploded")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stub")

    return write


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "_write_video", _fake_writer(fail_on=3))
    with pytest.raises(RuntimeError, match="encoder exploded"):
        synthesize_demo(tmp_path / "demo", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_old_root_and_success_replaces_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    (root / "old.txt").write_text("previous dataset")
    monkeypatch.setattr(demo, "_write_video", _fake_writer(fail_on=3))
    with pytest.raises(RuntimeError):
        synthesize_demo(root, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
    assert (root / "old.txt").read_text() == "previous dataset"

    monkeypatch.setattr(demo, "_write_video", _fake_writer(fail_on=None))
    summary = synthesize_demo(root, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
    assert not (root / "old.txt").exists()
    assert (root / "demo.json").is_file()
    assert summary["test"]["videos"] == 1


def test_demo_without_trimmed_clips_indexes_without_them(tmp_path: Path, caplog) -> None:
    """The shipped demo config names a trimmed folder; a demo generated with no trimmed clips
    is indexed without them (and says so) instead of failing on the missing folder."""
    import logging

    import yaml

    from wtal.datasets import index_from_config

    root = tmp_path / "raw"
    demo.synthesize_demo(root, n_validation=2, n_test=1, n_trimmed_per_class=0,
                         duration_range=(4.0, 5.0), width=64, height=48)
    cfg = yaml.safe_load((Path(__file__).parents[2] / "pipeline/config/datasets/demo.yaml")
                         .read_text())
    assert cfg["trimmed"]
    cfg["root"] = str(root)
    cfg["synthetic"]["n_trimmed_per_class"] = 0
    with caplog.at_level(logging.WARNING):
        index = index_from_config(tmp_path / "index.json", tmp_path / "gt.json", cfg)
    assert "makes no trimmed clips" in caplog.text
    assert sorted(v["split"] for v in index["videos"].values()) == ["test", "train", "train"]
    cfg["synthetic"]["n_trimmed_per_class"] = 3  # the folder really is missing
    with pytest.raises(FileNotFoundError, match="UCF101 class folder does not exist"):
        index_from_config(tmp_path / "index.json", tmp_path / "gt.json", cfg)
