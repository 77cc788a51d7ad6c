"""Decode stage: probe a video and plan its resampling to the dataset's frame rate.

:func:`probe` opens the file once with decord (the decoder every later stage reads pixels
with), checks that it is a readable video with frames, reads every frame's presentation time
as the container stores it (integer ``pts`` in the stream's time base, read with PyAV by
demuxing only: no pixels are decoded) and writes a *frame plan*.

The rule (exact, in rational arithmetic; see :func:`plan_from_pts`):

* time 0 is the presentation time of the video's first frame (the smallest pts that is shown:
  a non-zero start time, an edit list's shift or B-frame reordering change nothing);
* output frame ``j`` is at time ``j / fps`` and shows the *last source frame whose presentation
  time is <= j / fps*, i.e. the frame on screen at that instant;
* the video ends where the last frame ends (its pts plus its duration); there are as many
  output frames as there are times ``j / fps`` strictly before that end, i.e.
  ``ceil(duration * fps)``: the last output frame shows the last source frame;
* a pts is the true time rounded to the stream's time base, so times are compared with half a
  tick of tolerance (this matters only for coarse time bases, such as Matroska's 1 ms).

The same rule serves constant and variable frame rates, up- and down-sampling. Source frames are
numbered in presentation order, as decord numbers them. Float timestamps are never compared:
decord's own are float32, which cannot hold ``j / 25`` to 1e-6 past 32 s (plan version 1 used
them and duplicated one frame in four after that point at 25 fps), so the plan records
``PLAN_VERSION`` and the stages that read a plan refuse any other version.

Pixels are used as stored: the sample aspect ratio (non-square pixels, e.g. anamorphic DVD
rips) is recorded in the plan but frames are *not* stretched to their display aspect; the
field's extractors (I3D, TSN, UntrimmedNet) ignore it too.

:func:`iter_frames` then streams the planned frames in bounded chunks, so memory never grows
with the length of the video. Flow and feature extraction both read frames through it, so both
see exactly the same frames.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wtalio import read_json, write_json

log = logging.getLogger(__name__)

#: Version of the frame plan's format and rule. Version 1 compared decord's float32 timestamps
#: (wrong past 32 s); version 2 uses exact integer pts. The decode rule passes it in its params,
#: so a change reruns decode and everything after it; :meth:`FramePlan.load` refuses others.
PLAN_VERSION = 2


class VideoError(ValueError):
    """A video cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class FramePlan:
    """How a video is resampled to a constant frame rate.

    Output frame ``j`` (time ``j / fps`` after the first frame) is source frame
    ``source_indices[j]`` (numbered in presentation order, as decord numbers them).
    """

    video: str  # path of the video file
    fps: float  # target frame rate of the output frames
    source_fps: float  # average frame rate reported by the container
    source_frames: int  # number of frames in the source
    duration: float  # seconds, from the first frame's start to the last frame's end
    width: int  # source frame width (stored pixels)
    height: int  # source frame height (stored pixels)
    variable_frame_rate: bool  # whether the source timestamps are irregular
    source_indices: list[int] = field(repr=False)  # (n_frames,) source frame per output frame
    sample_aspect_ratio: str = "1:1"  # pixel aspect "num:den" (recorded, frames not stretched)
    start_time: float = 0.0  # seconds, presentation time of the first frame in the container
    timestamps: str = "pts"  # "pts": exact integer pts; "average_rate": n / fps (no usable pts)

    @property
    def n_frames(self) -> int:
        """Number of output frames at ``fps``."""
        return len(self.source_indices)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict as written by the decode stage."""
        return {
            "version": PLAN_VERSION,
            "video": self.video,
            "fps": self.fps,
            "source_fps": self.source_fps,
            "source_frames": self.source_frames,
            "duration": self.duration,
            "width": self.width,
            "height": self.height,
            "sample_aspect_ratio": self.sample_aspect_ratio,
            "start_time": self.start_time,
            "timestamps": self.timestamps,
            "variable_frame_rate": self.variable_frame_rate,
            "n_frames": self.n_frames,
            "source_indices": self.source_indices,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FramePlan:
        """Rebuild a plan from :meth:`to_dict` output."""
        return cls(
            video=str(d["video"]),
            fps=float(d["fps"]),
            source_fps=float(d["source_fps"]),
            source_frames=int(d["source_frames"]),
            duration=float(d["duration"]),
            width=int(d["width"]),
            height=int(d["height"]),
            variable_frame_rate=bool(d["variable_frame_rate"]),
            source_indices=[int(i) for i in d["source_indices"]],
            sample_aspect_ratio=str(d["sample_aspect_ratio"]),
            start_time=float(d["start_time"]),
            timestamps=str(d["timestamps"]),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FramePlan:
        """Read a plan written by the decode stage; refuse one of another plan version."""
        d = read_json(path)
        if not isinstance(d, dict) or "source_indices" not in d:
            raise ValueError(f"{path}: not a frame plan")
        if d.get("version") != PLAN_VERSION:
            raise ValueError(
                f"{path}: frame plan of version {d.get('version')}, this code needs version "
                f"{PLAN_VERSION} (plans before version 2 repeat frames past 32 s); rerun the "
                f"decode stage (snakemake reruns it by itself: its params hold the version)"
            )
        return cls.from_dict(d)


def _open(video: Path) -> Any:
    """Open ``video`` with decord, turning every failure into a :class:`VideoError`."""
    import decord  # imported lazily: decord is heavy and only needed here

    if not video.exists():
        raise VideoError(f"{video}: no such file")
    if video.is_dir():
        raise VideoError(f"{video}: is a directory, not a video file")
    if not video.is_file():
        raise VideoError(f"{video}: not a regular file")
    if not os.access(video, os.R_OK):
        raise VideoError(f"{video}: not readable (permissions)")
    if video.stat().st_size == 0:
        raise VideoError(f"{video}: zero-length file")
    try:
        return decord.VideoReader(str(video), ctx=decord.cpu(0), num_threads=1)
    except Exception as err:  # decord raises its own DECORDError and RuntimeError
        if "cannot find video stream" in str(err):
            raise VideoError(f"{video}: has no video stream") from err
        raise VideoError(f"{video}: cannot be decoded as a video ({err})") from err


@dataclass(frozen=True)
class StreamTimes:
    """Presentation times of a video stream's frames, exactly as the container stores them."""

    pts: np.ndarray  # (N,) int64, ascending: frame i in presentation order (decord's numbering)
    end: int  # pts at which the last frame ends (its pts plus its duration)
    first: int  # pts of time 0: the first frame that is shown (not an edit list's discard)
    time_base: Fraction  # seconds per pts tick
    average_rate: Fraction | None  # the container's average frame rate, if any
    sample_aspect_ratio: Fraction | None  # pixel aspect, None when unknown (square)

    @property
    def duration(self) -> Fraction:
        """Seconds from time 0 to the end of the last frame, exactly."""
        return (self.end - self.first) * self.time_base

    @property
    def start_time(self) -> Fraction:
        """Seconds at which the first shown frame is presented in the container."""
        return self.first * self.time_base


def _open_container(path: Path) -> tuple[Any, Any]:
    """``(container, first video stream)`` opened with PyAV; failures are :class:`VideoError`."""
    import av  # PyAV: exact pts and time bases

    try:
        container = av.open(str(path))
    except Exception as err:
        raise VideoError(f"{path}: cannot be opened as a video container ({err})") from err
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def read_stream_times(video: str | os.PathLike[str]) -> StreamTimes | None:
    """Read every frame's integer pts of the first video stream, by demuxing (no decoding).

    Packets are taken as decord takes them (every packet of the stream, sorted by pts), so index
    ``i`` here is decord's frame ``i``. Edit-list packets flagged for discarding keep their place
    in that numbering but do not define time 0.

    Returns:
        The times, or None when some packet has no pts (then only the average rate is usable).

    Raises:
        VideoError: the file cannot be opened or has no video stream.
    """
    path = Path(video)
    container, stream = _open_container(path)
    with container:
        time_base = stream.time_base
        if time_base is None or time_base <= 0:
            return None
        pts: list[int] = []
        ends: list[int] = []
        shown: list[bool] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 and packet.pts is None:
                    continue  # the demuxer's end-of-stream flush packet, not a frame
                if packet.pts is None:
                    return None
                pts.append(int(packet.pts))
                ends.append(int(packet.pts) + int(packet.duration or 0))
                shown.append(not packet.is_discard)
        except Exception as err:
            raise VideoError(f"{path}: cannot be demuxed ({err})") from err
        rate = stream.average_rate
        sar = stream.sample_aspect_ratio
    if not pts:
        raise VideoError(f"{path}: the video has no frames")
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    sorted_pts = np.asarray(pts, dtype=np.int64)[order]
    if np.any(np.diff(sorted_pts) == 0):
        raise VideoError(f"{path}: two frames share one presentation time; re-encode the video "
                         f"(for example with ffmpeg -i IN -c:v libx264 OUT.mp4)")
    visible = [pts[i] for i in range(len(pts)) if shown[i]] or pts
    last = int(order[-1])
    end = ends[last]
    if end <= pts[last]:  # the last packet has no duration: take the typical frame interval
        steps = np.diff(sorted_pts)
        if len(steps):
            end = pts[last] + int(np.median(steps))
        elif rate:
            end = pts[last] + max(1, round(1 / (rate * time_base)))
        else:
            end = pts[last] + 1
    return StreamTimes(
        pts=sorted_pts,
        end=int(end),
        first=int(min(visible)),
        time_base=Fraction(time_base),
        average_rate=Fraction(rate) if rate else None,
        sample_aspect_ratio=Fraction(sar) if sar else None,
    )


def exact_fps(fps: float | Fraction) -> Fraction:
    """The target frame rate as a fraction: the decimal as written (29.97 → 2997/100)."""
    value = fps if isinstance(fps, Fraction) else Fraction(repr(float(fps)))
    if not value > 0:
        raise ValueError(f"the target frame rate must be positive, got {fps}")
    return value


def plan_from_pts(
    pts: np.ndarray, *, first: int, end: int, time_base: Fraction, fps: float | Fraction
) -> np.ndarray:
    """Source frame shown at each output time ``j / fps``, exactly.

    Output frame ``j`` takes the last frame ``i`` with ``(pts[i] - first) * time_base <=
    j / fps + time_base / 2``; there are as many output frames as times ``j / fps`` before
    ``(end - first - 1/2) * time_base``. The half tick is the container's own rounding: a pts
    is the true time rounded to the time base (1 ms in Matroska and WebM, so a 30 fps frame
    stored at 67 ms is the one shown at 66.67 ms); with MP4's fine time bases it changes
    nothing. Everything is integer arithmetic, exact for any length.

    Args:
        pts: (N,) presentation times of the source frames in ticks, ascending.
        first: the tick of time 0 (the first shown frame).
        end: the tick at which the last frame ends.
        time_base: seconds per tick.
        fps: target frame rate.

    Returns:
        (n_out,) int64 source indices, non-decreasing.
    """
    rate = exact_fps(fps)
    tb = Fraction(time_base)
    a, b, c, d = tb.numerator, tb.denominator, rate.numerator, rate.denominator
    # times j / fps < (end - first - 1/2) * tb   <=>   j < span
    span = (Fraction(2 * (end - first) - 1, 2)) * tb * rate
    n_out = max(0, math.ceil(span))
    # (pts - first) * a/b <= j * d/c + a/(2b)   <=>   2 (pts - first) a c <= 2 j b d + a c
    rel = [int(p) - first for p in pts]
    biggest = 2 * max(max((abs(r) for r in rel), default=0) * a * c, (n_out + 1) * b * d)
    if biggest < 2**62:
        keys = np.asarray(rel, dtype=np.int64) * (2 * a * c)
        thresholds = np.arange(n_out, dtype=np.int64) * (2 * b * d) + a * c
    else:  # Python integers: no overflow, whatever the time base
        keys = np.asarray([r * 2 * a * c for r in rel], dtype=object)
        thresholds = np.asarray([j * 2 * b * d + a * c for j in range(n_out)], dtype=object)
    idx = np.searchsorted(keys, thresholds, side="right") - 1
    return np.clip(idx, 0, len(pts) - 1).astype(np.int64)


def plan_indices(frame_starts: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """The same rule from float start times (seconds), for sources with no usable pts.

    Times are compared with a tolerance of a thousandth of the shorter frame interval, never a
    fixed number of seconds, so the result does not drift with the length of the video.
    """
    starts = np.asarray(frame_starts, dtype=np.float64)
    steps = np.diff(starts)
    interval = min(float(steps.min()) if len(steps) else duration, 1.0 / fps)
    tol = 1e-3 * interval
    n_out = max(0, math.ceil(duration * fps - 1e-3))
    times = np.arange(n_out, dtype=np.float64) / fps
    idx = np.searchsorted(starts, times + tol, side="right") - 1
    return np.clip(idx, 0, len(starts) - 1).astype(np.int64)


def _ratio(value: Fraction | None) -> str:
    return "1:1" if value is None else f"{value.numerator}:{value.denominator}"


def probe(video: str | os.PathLike[str], *, fps: float, min_frames: int = 1) -> FramePlan:
    """Open ``video``, check it, and plan its resampling to ``fps`` (see the module's rule).

    Args:
        video: the video file.
        fps: target frame rate.
        min_frames: fewest output frames the later stages need (one snippet); fewer is an error.

    Raises:
        VideoError: the file is missing, unreadable, empty, not a video, has no decodable
            frames, its first and last frames cannot be decoded, its frame count disagrees
            between demuxer and decoder, or it is shorter than ``min_frames`` output frames.
    """
    path = Path(video)
    reader, times, n_src, source_fps = _reader_and_times(path)
    if times is not None:
        if len(times.pts) != n_src:
            raise VideoError(
                f"{path}: the container lists {len(times.pts)} frames but the decoder {n_src}; "
                f"re-encode the video (for example with ffmpeg -i IN -c:v libx264 OUT.mp4)"
            )
        indices = plan_from_pts(times.pts, first=times.first, end=times.end,
                                time_base=times.time_base, fps=fps)
        steps = np.diff(times.pts)
        duration = float(times.duration)
        start_time = float(times.start_time)
        sar = _ratio(times.sample_aspect_ratio)
        stamps = "pts"
    else:
        log.warning("%s: frames carry no presentation times; planning from the average frame "
                    "rate %.3f fps", path, source_fps)
        duration = n_src / source_fps
        indices = plan_indices(np.arange(n_src) / source_fps, duration, fps)
        steps = np.ones(max(0, n_src - 1))
        start_time, sar, stamps = 0.0, "1:1", "average_rate"
    vfr = bool(len(steps) > 1 and (steps.max() - steps.min()) > 0.5 * np.median(steps))
    # Decode the first and the last frame: catches truncated files early and cheaply.
    try:
        first = reader.get_batch([0]).asnumpy()
        reader.get_batch([n_src - 1]).asnumpy()
    except Exception as err:
        raise VideoError(f"{path}: frames cannot be decoded ({err})") from err
    height, width = int(first.shape[1]), int(first.shape[2])
    need = max(1, min_frames)
    if len(indices) < need:
        raise VideoError(
            f"{path}: {duration:.3f} s long, {len(indices)} frame(s) at {fps} fps; one snippet "
            f"needs {need}. Leave it out with known_bad.exclude in the dataset's config"
        )
    return FramePlan(
        video=str(path),
        fps=float(fps),
        source_fps=source_fps,
        source_frames=n_src,
        duration=duration,
        width=width,
        height=height,
        variable_frame_rate=vfr,
        source_indices=indices.tolist(),
        sample_aspect_ratio=sar,
        start_time=start_time,
        timestamps=stamps,
    )


def decode(
    video: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fps: float,
    min_frames: int = 1,
) -> FramePlan:
    """Decode stage: probe ``video`` and write its frame plan to ``out`` (JSON, atomically)."""
    plan = probe(video, fps=fps, min_frames=min_frames)
    write_json(out, plan.to_dict())
    return plan


def _reader_and_times(path: Path) -> tuple[Any, StreamTimes | None, int, float]:
    """decord's reader, the exact stream times (None without pts), the frame count and the
    average fps; a video with neither times nor a rate is a :class:`VideoError`."""
    reader = _open(path)
    n_src = len(reader)
    if n_src == 0:
        raise VideoError(f"{path}: the video has no frames")
    fps = float(reader.get_avg_fps())
    times = read_stream_times(path)
    if times is None and not fps > 0:
        raise VideoError(f"{path}: neither frame timestamps nor a frame rate can be read")
    return reader, times, n_src, fps


def video_duration(video: str | os.PathLike[str]) -> float:
    """Seconds from the first frame's start to the last frame's end (exact pts when present).

    Raises:
        VideoError: the file cannot be used as a video (the message names it and why).
    """
    path = Path(video)
    times = read_stream_times(path)  # demuxing only: no decoder is opened when pts are there
    if times is not None:
        return float(times.duration)
    _, _, n_src, fps = _reader_and_times(path)
    return n_src / fps


def header_duration(video: str | os.PathLike[str]) -> float:
    """Duration from the container's header alone (cheap: no frame is read or demuxed).

    Raises:
        VideoError: the file is missing, empty, not a container, has no video stream or no
            duration in its header.
    """
    path = Path(video)
    if not path.is_file():
        raise VideoError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: zero-length file")
    container, stream = _open_container(path)
    with container:
        if stream.duration is not None and stream.time_base:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / 1_000_000  # AV_TIME_BASE
    raise VideoError(f"{path}: its header gives no duration")


def check_videos(
    videos: Mapping[str, str | os.PathLike[str]],
    *,
    fps: float,
    min_frames: int = 1,
    threads: int = 8,
    problems: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Check many videos from their headers; report every unusable one together, in one error.

    Cheap enough for every video of a dataset at the index stage (no frame is read). A video is
    unusable when it is missing, empty, not a container, has no video stream, or its header's
    duration gives fewer than ``min_frames`` frames at ``fps`` (shorter than one snippet). The
    decode stage checks each video again, exactly, from its frames' timestamps.

    Args:
        videos: ``{name: file}``.
        fps: the frame rate the pipeline resamples to.
        min_frames: frames of one snippet.
        threads: videos checked at once (the work is file I/O).
        problems: ``{name: why}`` of videos already known to be unusable (e.g. no file found),
            reported in the same error.

    Returns:
        ``{name: header duration in seconds}``.

    Raises:
        VideoError: listing every unusable video with its file and why, and how to leave them
            out (``known_bad.exclude``).
    """
    names = sorted(videos)

    def one(name: str) -> tuple[str, float | None, str | None]:
        try:
            duration = header_duration(videos[name])
        except VideoError as err:
            return name, None, str(err)
        n_out = math.ceil(duration * fps - 1e-6)
        if n_out < max(1, min_frames):
            return name, duration, (f"{videos[name]}: {duration:.3f} s long, {n_out} "
                                    f"frame(s) at {fps} fps; one snippet needs {min_frames}")
        return name, duration, None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(one, names))
    bad = [(name, why) for name, _, why in results if why is not None]
    bad = sorted([*bad, *dict(problems or {}).items()])
    if bad:
        lines = "\n".join(f"  {name}: {why}" for name, why in bad)
        listing = ", ".join(name for name, _ in bad)
        raise VideoError(
            f"{len(bad)} video(s) cannot be used:\n{lines}\n"
            f"Fix or replace the files, or leave them out in the dataset's config:\n"
            f"  known_bad:\n    exclude: [{listing}]"
        )
    return {name: float(duration) for name, duration, _ in results if duration is not None}


def resized_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Frame size after scaling the short side to ``short_side`` (aspect kept; None = as is)."""
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def iter_frames(
    plan: FramePlan,
    *,
    short_side: int | None = None,
    chunk_size: int = 64,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream the planned frames ``start..stop`` in chunks of at most ``chunk_size``.

    Frames are RGB uint8; with ``short_side`` they are resized with bilinear interpolation
    (DeepMind's I3D recipe) so that the short side has that length.

    Yields:
        Arrays of shape (n, H, W, 3), n <= chunk_size.
    """
    video = Path(plan.video)
    reader = _open(video)
    if len(reader) != plan.source_frames:
        raise VideoError(
            f"{video}: has {len(reader)} frames but its plan says {plan.source_frames}; "
            "the file changed since it was probed: rerun the decode stage"
        )
    size = resized_size(plan.width, plan.height, short_side)
    indices = plan.source_indices[start:stop]
    for lo in range(0, len(indices), chunk_size):
        chunk_idx = indices[lo : lo + chunk_size]
        try:
            frames = reader.get_batch(chunk_idx).asnumpy()  # (n, H0, W0, 3)
        except Exception as err:
            raise VideoError(
                f"{video}: frames {chunk_idx[0]}..{chunk_idx[-1]} cannot be decoded ({err})"
            ) from err
        if short_side is not None and (frames.shape[2], frames.shape[1]) != size:
            frames = np.stack(
                [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
            )
        yield frames


def iter_single_frames(plan: FramePlan, **kwargs: Any) -> Iterator[np.ndarray]:
    """Like :func:`iter_frames` but one (H, W, 3) frame at a time."""
    for chunk in iter_frames(plan, **kwargs):
        yield from chunk
