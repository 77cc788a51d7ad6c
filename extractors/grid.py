"""The snippet grid: the one source of truth for which frames form a snippet and when it is.

Every stage that turns frames into snippets (feature extraction) or snippets back into seconds
(inference, reports, detection on a new video) calls :class:`SnippetGrid`; nothing else in the
project does this arithmetic.

Conventions (the W-TALC / BaSNet convention for 16-frame I3D snippets at 25 fps):

* frames are the video resampled to ``fps`` (see :mod:`extractors.decode`), numbered from 0;
* snippet ``i`` reads frames ``[i*stride, i*stride + length)``; a tail shorter than ``length``
  forms no snippet, so ``n_snippets = (n_frames - length) // stride + 1``;
* snippet ``i`` is centred at ``c_i = (i*stride + length/2) / fps`` seconds and *owns* the
  interval ``[c_i - stride/(2 fps), c_i + stride/(2 fps))``. With ``stride == length`` (the
  default) that is exactly ``[i*length/fps, (i+1)*length/fps)``;
* a run of snippets ``first..last`` (inclusive) is the time span from the start of the first
  owned interval to the end of the last.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SnippetGrid:
    """Snippets of ``length`` frames every ``stride`` frames over ``n_frames`` frames at ``fps``."""

    fps: float  # frame rate of the (resampled) frames the snippets are cut from
    n_frames: int  # number of frames available
    length: int = 16  # frames per snippet
    stride: int = 16  # frames between the starts of consecutive snippets

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"snippet grid: fps must be positive, got {self.fps}")
        if self.length < 1 or self.stride < 1:
            raise ValueError(
                f"snippet grid: length and stride must be >= 1, got {self.length}, {self.stride}"
            )
        if self.n_frames < 0:
            raise ValueError(f"snippet grid: n_frames must be >= 0, got {self.n_frames}")

    @property
    def n_snippets(self) -> int:
        """Number of whole snippets; 0 when the video is shorter than one snippet."""
        if self.n_frames < self.length:
            return 0
        return (self.n_frames - self.length) // self.stride + 1

    def frame_range(self, i: int) -> tuple[int, int]:
        """Frames ``[start, stop)`` read by snippet ``i``."""
        if not 0 <= i < self.n_snippets:
            raise IndexError(f"snippet {i} out of range (0..{self.n_snippets - 1})")
        start = i * self.stride
        return start, start + self.length

    def centers(self) -> np.ndarray:
        """Centre time of every snippet, seconds, shape (T,)."""
        i = np.arange(self.n_snippets, dtype=np.float64)
        return (i * self.stride + self.length / 2.0) / self.fps

    def starts(self) -> np.ndarray:
        """Start of every snippet's owned interval, seconds, shape (T,)."""
        return self.centers() - self.stride / (2.0 * self.fps)

    def ends(self) -> np.ndarray:
        """End of every snippet's owned interval, seconds, shape (T,)."""
        return self.centers() + self.stride / (2.0 * self.fps)

    def index_to_seconds(self, index: np.ndarray | float) -> np.ndarray:
        """Map a continuous snippet coordinate to seconds.

        Coordinate ``i`` is the start of snippet ``i``'s owned interval and ``i + 1`` its end,
        so a run of snippets ``[first, last]`` spans ``index_to_seconds([first, last + 1])``.
        """
        x = np.asarray(index, dtype=np.float64)
        return (x * self.stride + (self.length - self.stride) / 2.0) / self.fps

    def seconds_to_index(self, seconds: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`index_to_seconds`."""
        t = np.asarray(seconds, dtype=np.float64)
        return (t * self.fps - (self.length - self.stride) / 2.0) / self.stride

    def run_to_seconds(self, first: int, last: int) -> tuple[float, float]:
        """Time span of the run of snippets ``first..last`` (inclusive), seconds."""
        start, end = self.index_to_seconds(np.array([first, last + 1]))
        return float(start), float(end)

    def to_dict(self) -> dict[str, Any]:
        """The grid as JSON-ready fields, as written into feature sidecars."""
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> SnippetGrid:
        """Rebuild a grid written by :meth:`to_dict`."""
        return cls(
            fps=float(fields["fps"]),
            n_frames=int(fields["n_frames"]),
            length=int(fields["length"]),
            stride=int(fields["stride"]),
        )
