"""Frame plans of THUMOS14-length videos: exact for every output frame, at every frame rate.

The videos are five minutes long (THUMOS14's run from one to over twenty) but 32×32 pixels, so
they cost seconds to make. Each frame's pixels encode its index (four 16×16 blocks, base-12
digits), so a test can read back which source frame the decoder really returned.

The expected plan is computed here independently of :mod:`extractors.decode`: from the pts of
the frames PyAV *decodes* (not the demuxed packets the module reads), with Python fractions.
"""

from __future__ import annotations

import bisect
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from extractors.decode import iter_frames, probe

pytestmark = pytest.mark.slow

SIDE = 32
MINUTES = 5
DIGIT_STEP = 18  # grey levels between two digit values: survives H.264 at crf 10 easily


def index_frame(i: int) -> np.ndarray:
    """A 32×32 RGB frame whose four 16×16 blocks hold the base-12 digits of ``i``."""
    frame = np.empty((SIDE, SIDE, 3), dtype=np.uint8)
    for block in range(4):
        digit = (i // 12**block) % 12
        y, x = divmod(block, 2)
        frame[16 * y : 16 * y + 16, 16 * x : 16 * x + 16] = 20 + DIGIT_STEP * digit
    return frame


def read_index(frame: np.ndarray) -> int:
    """The source index written by :func:`index_frame`, read back from decoded pixels."""
    value = 0
    for block in range(4):
        y, x = divmod(block, 2)
        mean = frame[16 * y + 4 : 16 * y + 12, 16 * x + 4 : 16 * x + 12].mean()
        value += round((mean - 20) / DIGIT_STEP) * 12**block
    return value


def encode(path: Path, pts: list[int], time_base: Fraction, rate: Fraction,
           container_format: str | None = None) -> Path:
    """H.264 (with B-frames: libx264's defaults) with the given integer pts per frame."""
    import av

    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = stream.height = SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast", "bframes": "2"}
        stream.codec_context.time_base = time_base
        for i, tick in enumerate(pts):
            vf = av.VideoFrame.from_ndarray(index_frame(i), format="rgb24")
            vf.pts = tick
            vf.time_base = time_base
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decoded_times(path: Path) -> tuple[list[Fraction], Fraction, Fraction]:
    """Presentation times (seconds, from the first frame) of the decoded frames, sorted; the
    end of the last frame (its pts plus its duration); the time base."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = Fraction(stream.time_base)
        frames = sorted((int(f.pts), int(f.duration or 0)) for f in container.decode(stream))
    pts = [p for p, _ in frames]
    last = frames[-1][1] or int(np.median(np.diff(pts)))
    return [(p - pts[0]) * tb for p in pts], (pts[-1] + last - pts[0]) * tb, tb


def expected_plan(times: list[Fraction], end: Fraction, tb: Fraction, fps: Fraction) -> list[int]:
    """The documented rule, written out: frame j shows the last frame with time <= j / fps
    (half a tick of the container's rounding allowed); frames for every j / fps before the end."""
    half = tb / 2
    out = []
    j = 0
    while Fraction(j) / fps < end - half:
        out.append(bisect.bisect_right(times, Fraction(j) / fps + half) - 1)
        j += 1
    return out


RATES = {
    "23.976": Fraction(24000, 1001),
    "24": Fraction(24),
    "25": Fraction(25),
    "29.97": Fraction(30000, 1001),
    "30": Fraction(30),
    "50": Fraction(50),
    "59.94": Fraction(60000, 1001),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Five-minute 32×32 videos: one per constant rate, one variable-rate, one that starts late
    (first pts at 1.5 s), and one Matroska file (1 ms time base) at 30 fps."""
    folder = tmp_path_factory.mktemp("long_videos")
    made = {}
    for name, rate in RATES.items():
        tb = 1 / rate / 100  # 100 ticks a frame
        n = math.floor(MINUTES * 60 * rate)
        made[name] = encode(folder / f"cfr_{name}.mp4", [100 * i for i in range(n)], tb, rate)
    rng = np.random.default_rng(0)
    # variable rate: runs of 30, 15 and 24 fps with jittered intervals, 1 ms ticks
    steps = rng.choice([33, 34, 67, 41, 42, 50], size=7000)
    ticks = np.concatenate([[0], np.cumsum(steps)])
    ticks = ticks[ticks < MINUTES * 60 * 1000]
    made["vfr"] = encode(folder / "vfr.mp4", ticks.tolist(), Fraction(1, 1000), Fraction(30))
    tb = Fraction(1, 2500)
    made["late_start"] = encode(folder / "late.mp4", [3750 + 100 * i for i in range(7500)], tb,
                                Fraction(25))
    made["mkv30"] = encode(folder / "ms30.mkv", [round(i * 1000 / 30) for i in range(9000)],
                           Fraction(1, 1000), Fraction(30), container_format="matroska")
    return made


CASES = [(name, target) for name in [*RATES, "vfr", "late_start", "mkv30"]
         for target in (Fraction(25), Fraction(30), RATES.get(name, Fraction(10)))]


@pytest.mark.parametrize(("name", "target"), CASES, ids=[f"{n}->{float(t):.3f}" for n, t in CASES])
def test_plan_is_the_exact_rule_for_every_frame(videos: dict[str, Path], name: str,
                                                target: Fraction) -> None:
    path = videos[name]
    times, end, tb = decoded_times(path)
    plan = probe(path, fps=float(target))
    expected = expected_plan(times, end, tb, Fraction(repr(float(target))))
    assert plan.duration >= MINUTES * 60 - 1.5
    assert plan.n_frames == len(expected)
    wrong = [j for j, (a, b) in enumerate(zip(plan.source_indices, expected, strict=True))
             if a != b]
    assert wrong == [], f"{len(wrong)} output frames differ, first at {wrong[:5]}"


@pytest.mark.parametrize("name", list(RATES))
def test_equal_or_lower_rate_never_repeats_a_frame(videos: dict[str, Path], name: str) -> None:
    rate = RATES[name]
    for target in [rate] + [t for t in (Fraction(10), Fraction(24000, 1001), Fraction(25),
                                        Fraction(30)) if t <= rate]:
        indices = np.asarray(probe(videos[name], fps=float(target)).source_indices)
        repeats = np.flatnonzero(np.diff(indices) == 0)
        assert repeats.size == 0, f"{name} → {float(target)} fps: repeats at output {repeats[:5]}"
    # at its own rate, a constant-rate video maps one to one
    own = probe(videos[name], fps=float(rate))
    assert own.source_indices == list(range(own.source_frames))


def test_matroska_millisecond_pts_do_not_repeat_frames(videos: dict[str, Path]) -> None:
    plan = probe(videos["mkv30"], fps=30.0)
    assert plan.source_indices == list(range(9000))


def test_late_start_counts_from_the_first_frame(videos: dict[str, Path]) -> None:
    plan = probe(videos["late_start"], fps=25.0)
    assert plan.start_time == pytest.approx(1.5)
    assert plan.source_indices == list(range(7500))
    assert plan.duration == pytest.approx(300.0)


@pytest.mark.parametrize("name", ["25", "29.97", "vfr"])
def test_decoded_pixels_are_the_planned_frames_past_32_seconds(videos: dict[str, Path],
                                                               name: str) -> None:
    plan = probe(videos[name], fps=25.0)
    start, stop = 30 * 25, 45 * 25  # 30 s to 45 s: the float32 timestamps went wrong at 32 s
    frames = np.concatenate(list(iter_frames(plan, start=start, stop=stop, chunk_size=64)))
    got = [read_index(f) for f in frames]
    assert got == plan.source_indices[start:stop]
    tail = np.concatenate(list(iter_frames(plan, start=plan.n_frames - 10)))
    assert [read_index(f) for f in tail] == plan.source_indices[-10:]
