"""Decode stage: probing, resampling plans, chunked decoding, clear errors on bad files."""

from pathlib import Path

import numpy as np
import pytest
from conftest import counter_frames

from extractors.decode import FramePlan, VideoError, decode, iter_frames, plan_indices, probe


def brightness(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(len(frames), -1).mean(axis=1)


def test_probe_records_source_and_plan(make_video) -> None:
    video = make_video("a.mp4", counter_frames(60), fps=30.0)
    plan = probe(video, fps=15.0)
    assert plan.source_frames == 60
    assert plan.source_fps == pytest.approx(30.0)
    assert plan.duration == pytest.approx(2.0, abs=1e-3)
    assert (plan.width, plan.height) == (64, 48)
    assert not plan.variable_frame_rate
    assert plan.n_frames == 30
    assert plan.source_indices == list(range(0, 60, 2))


def test_resampled_frames_are_the_planned_ones(make_video) -> None:
    src = counter_frames(60)
    video = make_video("a.mp4", src, fps=30.0)
    plan = probe(video, fps=25.0)
    assert plan.n_frames == 50
    expected = np.floor(np.arange(50) * 30 / 25 + 1e-6).astype(int)
    assert plan.source_indices == expected.tolist()
    frames = np.concatenate(list(iter_frames(plan, chunk_size=7)))
    assert frames.shape == (50, 48, 64, 3)
    np.testing.assert_allclose(brightness(frames), brightness(src[expected]), atol=2.5)


def test_chunks_are_bounded_and_resize(make_video) -> None:
    video = make_video("a.mp4", counter_frames(40), fps=25.0)
    plan = probe(video, fps=25.0)
    chunks = list(iter_frames(plan, chunk_size=8, short_side=24))
    assert [len(c) for c in chunks] == [8, 8, 8, 8, 8]
    assert chunks[0].shape[1:] == (24, 32, 3)
    part = np.concatenate(list(iter_frames(plan, start=10, stop=13)))
    assert len(part) == 3


def test_decode_writes_plan_atomically(make_video, tmp_path: Path) -> None:
    video = make_video("a.mp4", counter_frames(30), fps=30.0)
    out = tmp_path / "plans" / "a.json"
    decode(video, out, fps=25.0)
    plan = FramePlan.load(out)
    assert plan.n_frames == 25
    assert plan.video == str(video)
    assert [p.name for p in out.parent.iterdir()] == ["a.json"]


def test_variable_frame_rate_uses_timestamps(make_video) -> None:
    # 10 frames 0.1 s apart, then 10 frames 0.2 s apart
    times = [0.1 * i for i in range(10)] + [1.0 + 0.2 * i for i in range(10)]
    src = counter_frames(20)
    video = make_video("vfr.mp4", src, fps=10.0, timestamps=times)
    plan = probe(video, fps=10.0)
    assert plan.variable_frame_rate
    # at t = 1.0 + 0.2k the source frame is 10 + k; at 1.1 + 0.2k it is still 10 + k
    assert plan.source_indices[10:16] == [10, 10, 11, 11, 12, 12]


def test_plan_indices_upsampling_repeats_frames() -> None:
    starts = np.arange(24) / 24.0
    idx = plan_indices(starts, 1.0, 25.0)
    assert len(idx) == 25
    assert np.all(np.diff(idx) >= 0)
    assert len(set(idx.tolist())) == 24


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "zero-length"),
        (b"this is not a video at all" * 100, "cannot be decoded"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=message) as info:
        probe(path, fps=25.0)
    assert str(path) in str(info.value)


def test_truncated_and_missing(make_video, tmp_path: Path) -> None:
    video = make_video("a.mp4", counter_frames(60), fps=30.0)
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as info:
        probe(cut, fps=25.0)
    assert "cut.mp4" in str(info.value)
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "missing.mp4", fps=25.0)


def test_changed_file_is_detected(make_video) -> None:
    video = make_video("a.mp4", counter_frames(30), fps=30.0)
    plan = probe(video, fps=30.0)
    make_video("a.mp4", counter_frames(20), fps=30.0)
    with pytest.raises(VideoError, match="changed since it was probed"):
        next(iter_frames(plan))
