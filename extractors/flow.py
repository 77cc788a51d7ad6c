"""TV-L1 optical flow on the CPU (OpenCV) and the per-video flow cache it writes.

The flow stage turns a video's RGB frames into ``N - 1`` optical flows (flow ``i`` goes from
frame ``i`` to frame ``i + 1``) with OpenCV's ``DualTVL1OpticalFlow`` on grayscale frames,
quantises them to uint8 exactly like denseflow, and stores them in one ZIP archive per video::

    frames (H, W, 3) RGB uint8  ──to_gray──▶  (H, W) uint8
      consecutive pair ──TV-L1──▶ (H, W, 2) float32 ──quantize(bound)──▶ (H, W, 2) uint8
      ──imencode──▶ x/{i:06d}.{jpg|png}, y/{i:06d}.{jpg|png} + meta.json in {video}.zip

Flow sign convention (OpenCV's): for each pixel ``(x, y)`` of the first frame the flow
``(u, v)`` says where it went in the second, ``second(x + u, y + v) ≈ first(x, y)``. Channel 0
(``x/``) is ``u``, channel 1 (``y/``) is ``v``.

The archive uses ZIP_STORED entries (JPEG/PNG are already compressed), so any flow can be read
without touching the others (:class:`FlowCache`). :func:`write_flow_cache` is independent of
how flows are computed, so other backends (a GPU TV-L1) write the same format.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from extractors.progresslog import ProgressLog
from wtalio import atomic_path

logger = logging.getLogger(__name__)

FORMAT_NAME = "wtal-flow-cache"  # meta.json "format": what kind of file this is
FORMAT_VERSION = 1  # meta.json "version": bumped on incompatible layout changes
META_NAME = "meta.json"
CODECS = ("jpg", "png")
JPEG_QUALITY = 95  # denseflow writes its flow JPEGs with OpenCV's default quality, 95
DEFAULT_BOUND = 20.0  # flow magnitude (pixels) mapped to 0 / 255; mmaction2 and I3D use 20
RESERVED_META_KEYS = frozenset(
    {"format", "version", "n_flows", "height", "width", "bound", "codec", "params"}
)
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: same flows, same bytes
_VALID_MEDIAN = (0, 1, 3, 5)  # 0/1: off; OpenCV's medianBlur on float32 supports only 3 and 5


@dataclass(frozen=True)
class TVL1Params:
    """Parameters of OpenCV's ``DualTVL1OpticalFlow``; the defaults are OpenCV's.

    The config / JSON keys are the field names except ``lambda_``, which is ``"lambda"``.
    ``use_initial_flow`` is not a config key: the flow stage never has an initial flow.
    """

    tau: float = 0.25  # time step of the numerical scheme
    lambda_: float = 0.15  # weight of the data term (smaller: smoother flow)
    theta: float = 0.3  # coupling between the two halves of the splitting
    nscales: int = 5  # number of pyramid scales
    warps: int = 5  # warpings per scale
    epsilon: float = 0.01  # stopping threshold of the inner loop
    inner_iterations: int = 30  # inner iterations per warping (capped by epsilon)
    outer_iterations: int = 10  # outer iterations per warping
    scale_step: float = 0.8  # size ratio between consecutive pyramid scales
    gamma: float = 0.0  # weight of the illumination-change term (0: off)
    median_filtering: int = 5  # median filter size on the flow (0 or 1: off; 3 or 5)
    use_initial_flow: bool = False  # start from the flow passed to calc (never in this stage)

    def __post_init__(self) -> None:
        checks = [
            (self.tau > 0, "tau must be > 0"),
            (self.lambda_ > 0, "lambda must be > 0"),
            (self.theta > 0, "theta must be > 0"),
            (self.nscales >= 1, "nscales must be >= 1"),
            (self.warps >= 1, "warps must be >= 1"),
            (self.epsilon >= 0, "epsilon must be >= 0"),
            (self.inner_iterations >= 1, "inner_iterations must be >= 1"),
            (self.outer_iterations >= 1, "outer_iterations must be >= 1"),
            (0 < self.scale_step <= 1, "scale_step must be in (0, 1]"),
            (self.gamma >= 0, "gamma must be >= 0"),
            (self.median_filtering in _VALID_MEDIAN, "median_filtering must be 0, 1, 3 or 5"),
        ]
        errors = [message for ok, message in checks if not ok]
        if errors:
            raise ValueError(f"TVL1Params: {'; '.join(errors)} (got {self!r})")

    def to_dict(self) -> dict[str, float | int]:
        """Return the parameters under their config keys (JSON friendly).

        Returns:
            ``{"tau": ..., "lambda": ..., ..., "median_filtering": ...}``; no ``use_initial_flow``.
        """
        values = asdict(self)
        values.pop("use_initial_flow")
        return {_to_key(name): value for name, value in values.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TVL1Params:
        """Build parameters from config keys; missing keys take OpenCV's defaults.

        Args:
            d: mapping with any of the keys of :meth:`to_dict`.

        Returns:
            The parameters.

        Raises:
            ValueError: on unknown keys (all listed), values of the wrong type, or values
                out of range.
        """
        defaults = {_to_key(f.name): f.default for f in fields(cls)
                    if f.name != "use_initial_flow"}
        unknown = sorted(set(d) - set(defaults))
        if unknown:
            raise ValueError(
                f"TVL1Params: unknown key(s) {unknown}; allowed keys are {sorted(defaults)}"
            )
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"TVL1Params: {key!r} must be a number, got {value!r}")
            if isinstance(defaults[key], int) and not isinstance(defaults[key], bool):
                if value != int(value):
                    raise ValueError(f"TVL1Params: {key!r} must be an integer, got {value!r}")
                value = int(value)
            else:
                value = float(value)
            kwargs[_from_key(key)] = value
        return cls(**kwargs)


def _to_key(field_name: str) -> str:
    return "lambda" if field_name == "lambda_" else field_name


def _from_key(key: str) -> str:
    return "lambda_" if key == "lambda" else key


def create_opencv_tvl1(params: TVL1Params) -> cv2.optflow.DualTVL1OpticalFlow:
    """Create OpenCV's CPU TV-L1 solver with every parameter of ``params``.

    Threading is OpenCV's global setting; this function leaves it alone (the caller may call
    ``cv2.setNumThreads``).

    Args:
        params: the TV-L1 parameters.

    Returns:
        A ``cv2.optflow.DualTVL1OpticalFlow``; ``calc(prev, next, None)`` on two (H, W) uint8
        images returns a (H, W, 2) float32 flow.
    """
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=params.tau,
        lambda_=params.lambda_,
        theta=params.theta,
        nscales=params.nscales,
        warps=params.warps,
        epsilon=params.epsilon,
        innnerIterations=params.inner_iterations,  # sic: OpenCV's keyword has three n's
        outerIterations=params.outer_iterations,
        scaleStep=params.scale_step,
        gamma=params.gamma,
        medianFiltering=params.median_filtering,
        useInitialFlow=params.use_initial_flow,
    )


def to_gray(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Convert one RGB frame (as decord gives them) to grayscale.

    Args:
        frame: (H, W, 3) uint8 RGB image.

    Returns:
        (H, W) uint8 image, ``cv2.COLOR_RGB2GRAY``.

    Raises:
        ValueError: if ``frame`` is not a (H, W, 3) uint8 array.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"expected an RGB uint8 frame of shape (H, W, 3), got "
                         f"{type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame of shape (H, W, 3), got a {frame.dtype} "
                         f"array of shape {frame.shape}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # (H, W)


def quantize(flow: npt.NDArray[np.floating], bound: float = DEFAULT_BOUND) -> npt.NDArray[np.uint8]:
    """Quantise flow to uint8 exactly like denseflow's ``CAST``.

    ``v > bound → 255``, ``v < -bound → 0``, otherwise
    ``cvRound(255 * (v + bound) / (2 * bound))``. As in denseflow's C++, the flow is float32,
    the arithmetic is done in double and cvRound rounds half to even, so 0 maps to 128.

    Args:
        flow: float array of any shape, usually (H, W, 2), in pixels.
        bound: flow magnitude mapped to the ends of the uint8 range; must be > 0.

    Returns:
        uint8 array of the same shape.

    Raises:
        ValueError: if ``bound`` is not positive or ``flow`` holds NaN.
    """
    if not bound > 0 or not math.isfinite(bound):
        raise ValueError(f"quantize: bound must be a positive finite number, got {bound}")
    v = np.asarray(flow, dtype=np.float32).astype(np.float64)  # float flow, double arithmetic
    if np.isnan(v).any():
        raise ValueError("quantize: flow contains NaN")
    low, high = -float(bound), float(bound)
    scaled = 255 * (v - low) / (high - low)
    q = np.rint(np.clip(scaled, 0, 255))  # the clip only keeps ±inf out of the cast below
    q = np.where(v > high, 255, np.where(v < low, 0, q))
    return q.astype(np.uint8)


def dequantize(q: npt.NDArray[np.integer], bound: float = DEFAULT_BOUND) -> npt.NDArray[np.float32]:
    """Map quantised flow back to pixels: ``q / 255 * 2 * bound - bound``.

    Inside ``[-bound, bound]`` the round trip ``dequantize(quantize(v))`` is off by at most
    ``bound / 255`` (half a quantisation step).

    Args:
        q: uint8 array of any shape, usually (H, W, 2).
        bound: the bound used by :func:`quantize`.

    Returns:
        float32 array of the same shape, in pixels.
    """
    scale = np.float32(2 * bound / 255)
    return np.asarray(q, dtype=np.float32) * scale - np.float32(bound)


def _entry_name(axis: str, index: int, codec: str) -> str:
    return f"{axis}/{index:06d}.{codec}"


def _encode(image: npt.NDArray[np.uint8], codec: str) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if codec == "jpg" else []
    ok, buf = cv2.imencode(f".{codec}", image, params)
    if not ok:
        raise RuntimeError(f"cv2.imencode failed for a {image.shape} image as {codec}")
    return buf.tobytes()


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def write_flow_cache(
    flows_uint8: Iterable[npt.NDArray[np.uint8]],
    out: str | os.PathLike[str],
    *,
    height: int,
    width: int,
    bound: float,
    codec: str,
    params: TVL1Params,
    extra_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write quantised flows to a flow cache archive, atomically.

    Flows are consumed one at a time, so memory does not grow with their number. The archive
    is written to a temporary file beside ``out`` and renamed onto ``out`` only when complete;
    if anything raises (including the iterable), no file is left behind.

    Args:
        flows_uint8: (H, W, 2) uint8 flows, flow ``i`` from frame ``i`` to frame ``i + 1``.
        out: path of the ``.zip`` archive to write.
        height: H of every flow.
        width: W of every flow.
        bound: the bound the flows were quantised with.
        codec: ``"jpg"`` (quality 95, lossy, like denseflow) or ``"png"`` (lossless).
        params: the TV-L1 parameters the flows were computed with (recorded in the meta).
        extra_meta: more JSON-serialisable meta fields (for example ``fps``, ``video``); may set
            ``backend`` (default ``"opencv"``) but none of the reserved keys.

    Returns:
        The meta dict written as ``meta.json``.

    Raises:
        ValueError: on a bad codec, size, bound, reserved or non-JSON extra meta, a flow of the
            wrong shape or dtype, or no flows at all.
    """
    if codec not in CODECS:
        raise ValueError(f"flow cache: codec must be one of {CODECS}, got {codec!r}")
    if height < 1 or width < 1:
        raise ValueError(f"flow cache: height and width must be >= 1, got {height}x{width}")
    if not bound > 0 or not math.isfinite(bound):
        raise ValueError(f"flow cache: bound must be a positive finite number, got {bound}")
    extra = dict(extra_meta or {})
    clash = sorted(RESERVED_META_KEYS & set(extra))
    if clash:
        raise ValueError(f"flow cache: extra_meta may not set reserved key(s) {clash}")
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "n_flows": 0,
        "height": int(height),
        "width": int(width),
        "bound": float(bound),
        "codec": codec,
        "params": params.to_dict(),
        "backend": "opencv",
        **extra,
    }
    try:
        json.dumps(meta)  # fail before computing any flow, not after
    except (TypeError, ValueError) as err:
        raise ValueError(f"flow cache: extra_meta is not JSON-serialisable ({err})") from err

    expected = (height, width, 2)
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        n = 0
        for flow in flows_uint8:
            if not (isinstance(flow, np.ndarray) and flow.dtype == np.uint8
                    and flow.shape == expected):
                desc = (f"{flow.dtype} {flow.shape}" if isinstance(flow, np.ndarray)
                        else type(flow).__name__)
                raise ValueError(f"flow cache: flow {n} must be uint8 {expected}, got {desc}")
            for axis, channel in (("x", 0), ("y", 1)):
                image = np.ascontiguousarray(flow[:, :, channel])  # (H, W)
                zf.writestr(_zip_info(_entry_name(axis, n, codec)), _encode(image, codec))
            n += 1
        if n == 0:
            raise ValueError(f"flow cache: no flows to write to {out}")
        meta["n_flows"] = n
        zf.writestr(_zip_info(META_NAME), json.dumps(meta, indent=2) + "\n")
    return meta


def compute_flow(
    frames: Iterable[npt.NDArray[np.uint8]],
    out: str | os.PathLike[str],
    *,
    params: TVL1Params,
    bound: float = DEFAULT_BOUND,
    codec: str = "jpg",
    extra_meta: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compute OpenCV TV-L1 flow between consecutive frames and write the flow cache.

    Frames are consumed lazily; only the previous grayscale frame is kept, so memory does not
    grow with the video's length. ``N`` frames give ``N - 1`` flows.

    Args:
        frames: RGB uint8 frames, each (H, W, 3), all of the same size.
        out: path of the ``.zip`` archive to write (atomically).
        params: TV-L1 parameters (``use_initial_flow`` must be False).
        bound: quantisation bound in pixels (see :func:`quantize`).
        codec: ``"jpg"`` or ``"png"`` (see :func:`write_flow_cache`).
        extra_meta: more meta fields, passed to :func:`write_flow_cache`.
        progress: show a tqdm bar (one step per flow) on stderr.

    Returns:
        The meta dict written as ``meta.json``.

    Raises:
        ValueError: on fewer than 2 frames, a frame that is not RGB uint8, a frame whose shape
            differs from the first one, or ``params.use_initial_flow``. Whatever the frame
            iterator raises propagates; in every failure no file is left at ``out``.
    """
    if params.use_initial_flow:
        raise ValueError("compute_flow: use_initial_flow=True needs an initial flow; "
                         "the flow stage has none")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("compute_flow: need at least 2 frames to compute flow, got 0")
    first_gray = to_gray(first)  # (H, W)
    frame_shape = first.shape  # (H, W, 3)
    del first  # hold no frame longer than needed
    second = next(it, None)
    if second is None:
        raise ValueError("compute_flow: need at least 2 frames to compute flow, got 1")
    height, width = first_gray.shape
    tvl1 = create_opencv_tvl1(params)

    def flows(
        prev: npt.NDArray[np.uint8], frame: npt.NDArray[np.uint8] | None
    ) -> Iterator[npt.NDArray[np.uint8]]:
        index = 1
        done = ProgressLog(logger, "TV-L1 flow", unit="flows")
        with tqdm(desc="TV-L1 flow", unit="flow", disable=not progress) as bar:
            while frame is not None:
                if not isinstance(frame, np.ndarray) or frame.shape != frame_shape:
                    shape = frame.shape if isinstance(frame, np.ndarray) else type(frame)
                    raise ValueError(
                        f"compute_flow: frame {index} has shape {shape}, but frame 0 has "
                        f"{frame_shape}; all frames of a video must have the same size"
                    )
                cur = to_gray(frame)  # (H, W)
                frame = None  # drop the RGB frame before asking for the next one
                flow = tvl1.calc(prev, cur, None)  # (H, W, 2) float32
                yield quantize(flow, bound)  # (H, W, 2) uint8
                bar.update(1)
                done.update(1)
                prev = cur
                frame = next(it, None)
                index += 1

    pending = flows(first_gray, second)  # the generator now owns the only references
    del first_gray, second
    return write_flow_cache(pending, out, height=height, width=width, bound=bound, codec=codec,
                            params=params, extra_meta=extra_meta)


class FlowCache:
    """Random-access reader of a flow cache archive written by :func:`write_flow_cache`.

    Use as a context manager or call :meth:`close`. A reader opened in one process and used
    after a fork (DataLoader workers) reopens the archive in the child, so workers never share
    a file offset.

    Example::

        with FlowCache("work/thumos14/flow/video_test_0000004.zip") as cache:
            flow = cache.read_float(10)  # (H, W, 2) float32, pixels
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open the archive and check its meta and entries.

        Args:
            path: the ``.zip`` archive.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if it is not a valid flow cache (the message names the path and why).
        """
        self.path = Path(path)
        self._zf: zipfile.ZipFile | None = None
        self._pid = os.getpid()
        self._closed = False
        zf = self._open()
        try:
            self.meta: dict[str, Any] = self._read_meta(zf)
            self._check_entries(zf)
        except BaseException:
            self.close()
            raise
        self._n: int = self.meta["n_flows"]
        self.height: int = self.meta["height"]
        self.width: int = self.meta["width"]
        self.bound: float = float(self.meta["bound"])
        self.codec: str = self.meta["codec"]

    def _open(self) -> zipfile.ZipFile:
        try:
            self._zf = zipfile.ZipFile(self.path, "r")
        except zipfile.BadZipFile as err:
            raise ValueError(f"{self.path}: not a flow cache (not a ZIP archive: {err})") from err
        self._pid = os.getpid()
        return self._zf

    def _zip(self) -> zipfile.ZipFile:
        if self._closed:
            raise ValueError(f"{self.path}: flow cache is closed")
        if self._zf is None or self._pid != os.getpid():
            return self._open()
        return self._zf

    def _read_meta(self, zf: zipfile.ZipFile) -> dict[str, Any]:
        try:
            raw = zf.read(META_NAME)
        except KeyError:
            raise ValueError(f"{self.path}: not a flow cache (no {META_NAME})") from None
        except (zipfile.BadZipFile, OSError) as err:
            raise ValueError(f"{self.path}: corrupt flow cache ({META_NAME}: {err})") from err
        try:
            meta = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.path}: {META_NAME} is not valid JSON ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ValueError(f"{self.path}: not a flow cache ({META_NAME} format is {found!r}, "
                             f"expected {FORMAT_NAME!r})")
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: unsupported flow cache version "
                             f"{meta.get('version')!r} (this code reads {FORMAT_VERSION})")

        def is_int(key: str, low: int) -> bool:
            value = meta.get(key)
            return isinstance(value, int) and not isinstance(value, bool) and value >= low

        problems = [f"{key} must be an integer >= 1" for key in ("n_flows", "height", "width")
                    if not is_int(key, 1)]
        bound = meta.get("bound")
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not bound > 0:
            problems.append("bound must be a positive number")
        if meta.get("codec") not in CODECS:
            problems.append(f"codec must be one of {CODECS}")
        if problems:
            raise ValueError(f"{self.path}: bad {META_NAME}: {'; '.join(problems)} "
                             f"(got {meta!r})")
        return meta

    def _check_entries(self, zf: zipfile.ZipFile) -> None:
        names = set(zf.namelist())
        codec = self.meta["codec"]
        missing = [
            _entry_name(axis, i, codec)
            for i in range(self.meta["n_flows"])
            for axis in ("x", "y")
            if _entry_name(axis, i, codec) not in names
        ]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ValueError(f"{self.path}: corrupt flow cache: {len(missing)} of "
                             f"{2 * self.meta['n_flows']} flow images missing ({shown})")

    def __len__(self) -> int:
        """Number of flows, ``n_frames - 1``."""
        return self._n

    def _index(self, i: int) -> int:
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"flow index must be an integer, got {type(i).__name__}") from None
        j = i + self._n if i < 0 else i
        if not 0 <= j < self._n:
            raise IndexError(f"flow index {i} out of range for {self._n} flows ({self.path})")
        return j

    def _read_image(self, zf: zipfile.ZipFile, name: str) -> npt.NDArray[np.uint8]:
        try:
            data = zf.read(name)
        except (zipfile.BadZipFile, OSError) as err:
            raise ValueError(f"{self.path}: corrupt flow cache entry {name} ({err})") from err
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"{self.path}: corrupt flow cache entry {name} (cannot decode)")
        if image.shape != (self.height, self.width):
            raise ValueError(f"{self.path}: flow cache entry {name} is {image.shape}, meta says "
                             f"{(self.height, self.width)}")
        return image  # (H, W)

    def __getitem__(self, i: int) -> npt.NDArray[np.uint8]:
        """Read quantised flow ``i`` (from frame ``i`` to ``i + 1``); negative ``i`` counts back.

        Args:
            i: flow index, ``-len(self) <= i < len(self)``.

        Returns:
            (H, W, 2) uint8: channel 0 is x (u), channel 1 is y (v).

        Raises:
            IndexError: if ``i`` is out of range.
            ValueError: if the stored images are corrupt.
        """
        j = self._index(i)
        zf = self._zip()
        x = self._read_image(zf, _entry_name("x", j, self.codec))  # (H, W)
        y = self._read_image(zf, _entry_name("y", j, self.codec))  # (H, W)
        return np.stack([x, y], axis=-1)  # (H, W, 2)

    def read_range(self, start: int, stop: int) -> npt.NDArray[np.uint8]:
        """Read quantised flows ``start, ..., stop - 1``.

        Args:
            start: first flow, ``0 <= start <= stop``.
            stop: one past the last flow, ``stop <= len(self)``.

        Returns:
            (stop - start, H, W, 2) uint8.

        Raises:
            IndexError: if the range does not lie within ``[0, len(self)]``.
        """
        start, stop = operator.index(start), operator.index(stop)
        if not 0 <= start <= stop <= self._n:
            raise IndexError(f"flow range [{start}, {stop}) not within [0, {self._n}) "
                             f"({self.path})")
        out = np.empty((stop - start, self.height, self.width, 2), dtype=np.uint8)  # (n, H, W, 2)
        for k, i in enumerate(range(start, stop)):
            out[k] = self[i]
        return out

    def read_float(self, i: int) -> npt.NDArray[np.float32]:
        """Read flow ``i`` dequantised to pixels.

        Args:
            i: flow index, as for ``self[i]``.

        Returns:
            (H, W, 2) float32 flow in pixels, within ``[-bound, bound]``.
        """
        return dequantize(self[i], self.bound)

    def close(self) -> None:
        """Close the archive; later reads raise ValueError."""
        self._closed = True
        if self._zf is not None:
            self._zf.close()
            self._zf = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"FlowCache({str(self.path)!r}, n_flows={self._n}, "
                f"size={self.height}x{self.width}, codec={self.codec!r})")
