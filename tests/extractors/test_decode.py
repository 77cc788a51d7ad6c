"""Decode stage: probing, resampling plans, chunked decoding, clear errors on bad files.

Long videos at every frame rate: test_decode_long.py.
"""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import counter_frames

from extractors.decode import (
    PLAN_VERSION,
    FramePlan,
    VideoError,
    check_videos,
    decode,
    iter_frames,
    plan_from_pts,
    plan_indices,
    probe,
    video_duration,
)


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


def test_whole_number_duration_keeps_the_last_frame(make_video) -> None:
    # 2.8 s at 25 fps: 70 frames (float32 timestamps lost the 70th)
    video = make_video("a.mp4", counter_frames(70, 32, 32), fps=25.0)
    plan = probe(video, fps=25.0)
    assert plan.duration == pytest.approx(2.8)
    assert plan.source_indices == list(range(70))


def test_plan_from_pts_rule_at_the_edges() -> None:
    pts = np.arange(10, dtype=np.int64) * 512 + 1024  # 25 fps in 1/12800 ticks, late start
    # equal rate: one to one; the end is the last frame's end
    idx = plan_from_pts(pts, first=1024, end=1024 + 10 * 512, time_base=Fraction(1, 12800),
                        fps=25.0)
    assert idx.tolist() == list(range(10))
    # 12.5 fps: every other frame; 10 frames span 0.4 s → times 0, 0.08, ..., 0.32: 5 frames
    idx = plan_from_pts(pts, first=1024, end=1024 + 10 * 512, time_base=Fraction(1, 12800),
                        fps=12.5)
    assert idx.tolist() == [0, 2, 4, 6, 8]
    # a pts rounded half a tick late (1 ms ticks, 30 fps: frame 2 at 67 ms shows at 66.67 ms)
    ms = np.asarray([round(i * 1000 / 30) for i in range(6)])
    idx = plan_from_pts(ms, first=0, end=200, time_base=Fraction(1, 1000), fps=30.0)
    assert idx.tolist() == list(range(6))
    # no overflow with an absurdly fine time base
    idx = plan_from_pts(np.arange(5, dtype=np.int64) * 10**15, first=0, end=5 * 10**15,
                        time_base=Fraction(1, 25 * 10**15), fps=25.0)
    assert idx.tolist() == list(range(5))


def test_sample_aspect_ratio_is_recorded_and_pixels_kept(tmp_path: Path) -> None:
    import av

    path = tmp_path / "anamorphic.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(4, 3)
        for _ in range(20):
            frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    plan = probe(path, fps=25.0)
    assert plan.sample_aspect_ratio == "4:3"
    assert (plan.width, plan.height) == (32, 24)
    assert next(iter_frames(plan)).shape == (20, 24, 32, 3)


def test_shorter_than_a_snippet_is_an_error_naming_it(make_video) -> None:
    video = make_video("short.mp4", counter_frames(12, 32, 32), fps=25.0)
    with pytest.raises(VideoError, match=r"short\.mp4: 0\.480 s long, 12 frame\(s\) at 25\.0 fps; "
                       r"one snippet needs 16.*known_bad\.exclude"):
        probe(video, fps=25.0, min_frames=16)
    assert probe(video, fps=25.0, min_frames=12).n_frames == 12


def test_check_videos_lists_every_bad_video_at_once(make_video, tmp_path: Path) -> None:
    good = make_video("good.mp4", counter_frames(40, 32, 32), fps=25.0)
    short = make_video("short.mp4", counter_frames(10, 32, 32), fps=25.0)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 50)
    videos = {"good": good, "short": short, "broken": broken, "gone": tmp_path / "gone.mp4"}
    with pytest.raises(VideoError) as info:
        check_videos(videos, fps=25.0, min_frames=16)
    message = str(info.value)
    assert message.startswith("3 video(s) cannot be used")
    for name in ("short", "broken", "gone"):
        assert f"  {name}: " in message
    assert "good" not in message.split("exclude")[0]
    assert "exclude: [broken, gone, short]" in message
    durations = check_videos({"good": good}, fps=25.0, min_frames=16)
    assert durations == {"good": pytest.approx(1.6)}
    assert video_duration(good) == pytest.approx(1.6)


def test_plan_of_another_version_is_refused(make_video, tmp_path: Path) -> None:
    video = make_video("a.mp4", counter_frames(30), fps=30.0)
    out = tmp_path / "a.json"
    decode(video, out, fps=25.0)
    data = json.loads(out.read_text())
    assert data["version"] == PLAN_VERSION
    data["version"] = 1
    out.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"a\.json: frame plan of version 1.*rerun the decode"):
        FramePlan.load(out)
