"""Decode stage: probe a video with decord and plan its resampling to the dataset's frame rate.

:func:`probe` opens the file once, checks that it is a readable video with frames, reads the
presentation time of every frame (cheap: no pixels are decoded) and writes a *frame plan*: for
output frame ``j`` at time ``j / fps`` the source frame shown at that time. Variable frame rate
videos are handled through the real timestamps, not the average rate.

:func:`iter_frames` then streams the planned frames in bounded chunks, so memory never grows
with the length of the video. Flow and feature extraction both read frames through it, so both
see exactly the same frames.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wtal.io import read_json, write_json

PLAN_VERSION = 1


class VideoError(ValueError):
    """A video cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class FramePlan:
    """How a video is resampled to a constant frame rate.

    Output frame ``j`` (time ``j / fps``) is source frame ``source_indices[j]``.
    """

    video: str  # path of the video file
    fps: float  # target frame rate of the output frames
    source_fps: float  # average frame rate reported by the container
    source_frames: int  # number of frames in the source
    duration: float  # seconds, end of the last source frame
    width: int  # source frame width
    height: int  # source frame height
    variable_frame_rate: bool  # whether the source timestamps are irregular
    source_indices: list[int] = field(repr=False)  # (n_frames,) source frame per output frame

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
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FramePlan:
        """Read a plan written by the decode stage."""
        d = read_json(path)
        if not isinstance(d, dict) or d.get("version") != PLAN_VERSION:
            raise ValueError(f"{path}: not a frame plan of version {PLAN_VERSION}")
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


def plan_indices(frame_starts: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """Source frame shown at each output time ``j / fps``.

    Args:
        frame_starts: presentation time of every source frame, seconds, ascending, shape (N,).
        duration: end of the last source frame, seconds.
        fps: target frame rate.

    Returns:
        Source indices, shape (floor(duration * fps),), int64.
    """
    n_out = math.floor(duration * fps + 1e-6)
    times = np.arange(n_out, dtype=np.float64) / fps
    idx = np.searchsorted(frame_starts, times + 1e-6, side="right") - 1
    return np.clip(idx, 0, len(frame_starts) - 1).astype(np.int64)


def probe(video: str | os.PathLike[str], *, fps: float) -> FramePlan:
    """Open ``video``, check it, and plan its resampling to ``fps``.

    Raises:
        VideoError: the file is missing, unreadable, empty, not a video, has no decodable
            frames, or its first and last frames cannot be decoded.
    """
    path = Path(video)
    reader = _open(path)
    n_src = len(reader)
    if n_src == 0:
        raise VideoError(f"{path}: the video has no frames")
    source_fps = float(reader.get_avg_fps())
    try:
        stamps = np.asarray(reader.get_frame_timestamp(list(range(n_src))), dtype=np.float64)
        starts, ends = stamps[:, 0], stamps[:, 1]
        timestamps_ok = bool(np.all(np.diff(starts) > 0) and ends[-1] > starts[0])
    except Exception:
        timestamps_ok = False
    if not timestamps_ok:
        if not source_fps > 0:
            raise VideoError(f"{path}: neither frame timestamps nor a frame rate can be read")
        starts = np.arange(n_src, dtype=np.float64) / source_fps
        duration = n_src / source_fps
        vfr = False
    else:
        starts = starts - starts[0]
        duration = float(ends[-1] - stamps[0, 0])
        steps = np.diff(starts)
        vfr = bool(len(steps) > 1 and (steps.max() - steps.min()) > 0.5 * np.median(steps))
    # Decode the first and the last frame: catches truncated files early and cheaply.
    try:
        first = reader.get_batch([0]).asnumpy()
        reader.get_batch([n_src - 1]).asnumpy()
    except Exception as err:
        raise VideoError(f"{path}: frames cannot be decoded ({err})") from err
    height, width = int(first.shape[1]), int(first.shape[2])
    indices = plan_indices(starts, duration, fps)
    if len(indices) == 0:
        raise VideoError(f"{path}: shorter than one frame at {fps} fps ({duration:.3f} s)")
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
    )


def decode(video: str | os.PathLike[str], out: str | os.PathLike[str], *, fps: float) -> FramePlan:
    """Decode stage: probe ``video`` and write its frame plan to ``out`` (JSON, atomically)."""
    plan = probe(video, fps=fps)
    write_json(out, plan.to_dict())
    return plan


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
