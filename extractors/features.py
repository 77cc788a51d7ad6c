"""Features stage: snippet features from decoded frames (and cached flow) with a chosen backbone.

Backbones (:mod:`extractors.backbones`), chosen by ``FeatureSettings.extractor``:

* ``i3d``: for each snippet of the grid (:class:`extractors.grid.SnippetGrid`) the RGB stream
  sees the snippet's ``length`` frames and the flow stream the ``length`` flows that start at
  those frames (flow ``i`` goes from frame ``i`` to ``i + 1``; the last snippet repeats the
  last flow where the video has no further frame). RGB is scaled to [-1, 1], flow (clipped at
  ±bound when it was quantised) is divided by the bound. ``(T, 2048)``, RGB columns first.
* ``i3d_r50``: the snippet's frames through pytorchvideo's ResNet-50 I3D, RGB only, normalised
  with pytorchvideo's Kinetics mean and std. ``(T, 2048)``.
* ``untrimmednet``: each snippet is a *unit* of ``length`` frames (KT-MGFN / CPMN ``n_u``);
  its centre frame (``start + length // 2``) goes through a torchvision ResNet and the
  ``flow_stack`` flows centred on it (x1, y1, ..., x5, y5: 10 channels) through BN-Inception.
  ``(T, 2048 + 1024)``, RGB first.
* ``tsrnet_frames``: as ``untrimmednet`` with ResNet-101 for both streams; with
  ``snippet_length = snippet_stride = 1`` one feature per frame, as TSRNet. ``(T, 4096)``.

``every_nth`` feeds every n-th frame of a snippet to the 3D networks (pytorchvideo's "8x8" is 8
frames with a step of 8 at 30 fps). Every stream sees the frames resized so that the short
side is ``short_side`` (the resize the flow was computed at), then the ``crop`` centre crop or,
with ``ten_crop``, the four corner and the centre crops and their horizontal mirrors (the flow's
x component changes sign in a mirror image), the features being the mean over the ten views.

Frames are read in bounded chunks (one batch of snippets at a time), so a two-hour video needs
no more memory than a two-minute one. The output ``.npy`` is float32 and a JSON sidecar records
every setting that changes the numbers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import extractors
from extractors.backbones import (
    BACKBONES,
    FLOW_STACK,
    IMAGENET_MEAN,
    IMAGENET_STD,
    KINETICS_MEAN,
    KINETICS_STD,
    RANDOM_WEIGHTS,
    RESNET_FLOW_MEAN,
    RESNET_FLOW_STD,
    TSN_FLOW_MEAN,
    Stream,
    build_bninception_flow,
    build_i3d,
    build_i3d_r50,
    build_resnet,
)
from extractors.catalog import RGB_ONLY
from extractors.decode import FramePlan, VideoError, iter_frames, resized_size
from extractors.flow import FlowCache
from extractors.grid import SnippetGrid
from extractors.progresslog import ProgressLog
from extractors.versions import FEATURES_VERSION, provenance
from wtalio import atomic_path, write_json

logger = logging.getLogger(__name__)

__all__ = [
    "RANDOM_WEIGHTS",
    "FeatureSettings",
    "crop_views",
    "extract_features",
    "load_features",
    "resolve_device",
]

TWO_D = frozenset({"untrimmednet", "tsrnet_frames"})
TEN_CROP = "ten_crop"


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that changes the numbers of the features."""

    extractor: str = "i3d"  # i3d | i3d_r50 | untrimmednet | tsrnet_frames
    snippet_length: int = 16  # frames per snippet (the unit n_u of the 2D backbones)
    snippet_stride: int = 16  # frames between snippet starts
    short_side: int = 256  # frames resized so the short side has this length (flow too)
    crop: int = 224  # crop fed to the networks
    ten_crop: bool = False  # mean of the 4 corner + centre crops and their mirrors
    every_nth: int = 1  # 3D backbones: every n-th frame of the snippet goes in
    flow_stack: int = FLOW_STACK  # 2D backbones: flows stacked around the centre frame
    resnet_depth: int = 101  # untrimmednet: ResNet-50 or -101 for RGB (tsrnet_frames: 101)
    rgb_weights: str = RANDOM_WEIGHTS  # path or URL of the RGB network's checkpoint, or "none"
    rgb_sha256: str | None = None
    flow_weights: str = RANDOM_WEIGHTS  # path or URL of the flow network's checkpoint, or "none"
    flow_sha256: str | None = None
    seed: int = 0  # seed of the random initialisation when weights are "none"
    batch_size: int = 8  # snippets per forward pass

    def __post_init__(self) -> None:
        if self.extractor not in BACKBONES:
            raise ValueError(f"extractor must be one of {BACKBONES}, got {self.extractor!r}")
        if self.every_nth < 1 or self.every_nth > self.snippet_length:
            raise ValueError(f"every_nth must be in 1..snippet_length, got {self.every_nth}")
        if self.flow_stack < 1:
            raise ValueError(f"flow_stack must be >= 1, got {self.flow_stack}")
        if self.extractor in RGB_ONLY and self.flow_weights != RANDOM_WEIGHTS:
            raise ValueError(f"{self.extractor} has no flow stream; flow_weights must be 'none'")

    @property
    def uses_flow(self) -> bool:
        return self.extractor not in RGB_ONLY




def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def crop_views(
    frames: np.ndarray, crop: int, *, ten_crop: bool, flow: bool, source: str
) -> Iterator[np.ndarray]:
    """The crops of (n, H, W, C) uint8 frames, each (n, crop, crop, C).

    Centre crop only, or (``ten_crop``) torchvision's TenCrop order: top-left, top-right,
    bottom-left, bottom-right, centre, then the same five mirrored horizontally. A mirrored
    flow image has its x component negated: quantised pixels ``p -> 255 - p`` (exact for the
    symmetric quantisation of :func:`extractors.flow.quantize`).
    """
    h, w = frames.shape[1:3]
    if h < crop or w < crop:
        raise ValueError(f"{source}: frames of {w}x{h} are smaller than the {crop} crop")
    top, left = (h - crop) // 2, (w - crop) // 2
    if not ten_crop:
        yield frames[:, top : top + crop, left : left + crop]
        return
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (top, left)]
    for mirror in (False, True):
        for y, x in corners:
            view = frames[:, y : y + crop, x : x + crop]
            if mirror:
                view = view[:, :, ::-1]
                if flow:
                    view = view.copy()
                    view[..., 0] = 255 - view[..., 0]
            yield np.ascontiguousarray(view)


def _snippet_batches(grid: SnippetGrid, batch_size: int) -> Iterator[list[int]]:
    for lo in range(0, grid.n_snippets, batch_size):
        yield list(range(lo, min(lo + batch_size, grid.n_snippets)))


def _centre(grid: SnippetGrid, i: int) -> int:
    """The centre frame of snippet (unit) ``i``: ``start + length // 2``."""
    start, _ = grid.frame_range(i)
    return start + grid.length // 2


def _flow_stack_indices(centre: int, stack: int, n_flows: int) -> np.ndarray:
    """``stack`` consecutive flows centred on frame ``centre``, shifted to stay in the video.

    Flows ``centre - stack // 2 .. centre - stack // 2 + stack - 1``; at the ends the window
    is moved inside ``[0, n_flows)`` and, for a video with fewer flows, the last is repeated.
    """
    first = min(max(centre - stack // 2, 0), max(n_flows - stack, 0))
    return np.minimum(first + np.arange(stack), n_flows - 1)


class Backbone:
    """The networks of one extractor and how a batch of snippets is turned into their inputs."""

    def __init__(self, settings: FeatureSettings, dev: torch.device) -> None:
        s = settings
        self.settings = s
        self.dev = dev
        self.streams: dict[str, Stream] = {}
        if s.extractor == "i3d":
            self.streams["rgb"] = build_i3d(in_channels=3, weights=s.rgb_weights,
                                            sha256=s.rgb_sha256, seed=s.seed)
            self.streams["flow"] = build_i3d(in_channels=2, weights=s.flow_weights,
                                             sha256=s.flow_sha256, seed=s.seed + 1)
        elif s.extractor == "i3d_r50":
            self.streams["rgb"] = build_i3d_r50(weights=s.rgb_weights, sha256=s.rgb_sha256,
                                                seed=s.seed)
        else:
            depth = s.resnet_depth if s.extractor == "untrimmednet" else 101
            self.streams["rgb"] = build_resnet(depth=depth, in_channels=3,
                                               weights=s.rgb_weights, sha256=s.rgb_sha256,
                                               seed=s.seed)
            if s.extractor == "untrimmednet":
                self.streams["flow"] = build_bninception_flow(
                    in_channels=2 * s.flow_stack, weights=s.flow_weights,
                    sha256=s.flow_sha256, seed=s.seed + 1)
            else:
                self.streams["flow"] = build_resnet(
                    depth=101, in_channels=2 * s.flow_stack, weights=s.flow_weights,
                    sha256=s.flow_sha256, seed=s.seed + 1)
        for stream in self.streams.values():
            stream.net.to(dev)

    @property
    def columns(self) -> dict[str, list[int]]:
        out, lo = {}, 0
        for name, stream in self.streams.items():
            out[name] = [lo, lo + stream.dim]
            lo += stream.dim
        return out

    def _tensor(self, clips: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(clips)).to(self.dev).float()

    def rgb_input(self, frames: np.ndarray, first: int, grid: SnippetGrid,
                  batch: list[int]) -> torch.Tensor:
        """Network input of the RGB stream for ``batch`` from frames ``first..`` (n, h, w, 3)."""
        s = self.settings
        if s.extractor in TWO_D:
            x = self._tensor([frames[_centre(grid, i) - first] for i in batch])  # (B, h, w, 3)
            x = x.permute(0, 3, 1, 2) / 255.0  # (B, 3, h, w)
            mean = torch.tensor(IMAGENET_MEAN, device=self.dev)[:, None, None]
            std = torch.tensor(IMAGENET_STD, device=self.dev)[:, None, None]
            return (x - mean) / std
        clips = []
        for i in batch:
            start, stop = grid.frame_range(i)
            clips.append(frames[start - first : stop - first : s.every_nth])
        x = self._tensor(clips).permute(0, 4, 1, 2, 3) / 255.0  # (B, 3, L, h, w)
        if s.extractor == "i3d":
            return x * 2.0 - 1.0
        mean = torch.tensor(KINETICS_MEAN, device=self.dev)[:, None, None, None]
        std = torch.tensor(KINETICS_STD, device=self.dev)[:, None, None, None]
        return (x - mean) / std

    def flow_input(self, flows: np.ndarray, first: int, grid: SnippetGrid, batch: list[int],
                   n_flows: int) -> torch.Tensor:
        """Network input of the flow stream; ``flows[k]`` is flow ``first + k`` (n, h, w, 2)."""
        s = self.settings
        if s.extractor in TWO_D:
            stacks = []
            for i in batch:
                idx = _flow_stack_indices(_centre(grid, i), s.flow_stack, n_flows) - first
                stack = flows[idx]  # (stack, h, w, 2)
                stacks.append(stack.transpose(0, 3, 1, 2).reshape(-1, *stack.shape[1:3]))
            x = self._tensor(stacks)  # (B, 2*stack, h, w): x1, y1, x2, y2, ...
            if s.extractor == "untrimmednet":
                return x - TSN_FLOW_MEAN
            return (x / 255.0 - RESNET_FLOW_MEAN) / RESNET_FLOW_STD
        clips = []
        for i in batch:
            start, stop = grid.frame_range(i)
            clips.append(flows[start - first : stop - first : s.every_nth])
        x = self._tensor(clips).permute(0, 4, 1, 2, 3)  # (B, 2, L, h, w)
        return x / 255.0 * 2.0 - 1.0

    def flow_span(self, grid: SnippetGrid, batch: list[int], n_flows: int) -> tuple[int, int]:
        """Flows ``[lo, hi)`` that ``batch`` needs."""
        if self.settings.extractor in TWO_D:
            idx = np.concatenate([
                _flow_stack_indices(_centre(grid, i), self.settings.flow_stack, n_flows)
                for i in batch
            ])
            return int(idx.min()), int(idx.max()) + 1
        first, _ = grid.frame_range(batch[0])
        _, last = grid.frame_range(batch[-1])
        return first, last

    def frame_span(self, grid: SnippetGrid, batch: list[int]) -> tuple[int, int]:
        """Frames ``[lo, hi)`` that ``batch`` needs."""
        if self.settings.extractor in TWO_D:
            return _centre(grid, batch[0]), _centre(grid, batch[-1]) + 1
        first, _ = grid.frame_range(batch[0])
        _, last = grid.frame_range(batch[-1])
        return first, last


def _batch_features(
    backbone: Backbone, plan: FramePlan, flow: FlowCache | None, grid: SnippetGrid,
    batch: list[int], flow_source: str,
) -> np.ndarray:
    """Features ``# (B, D)`` of the snippets ``batch``: every stream, averaged over the views."""
    s = backbone.settings
    f_lo, f_hi = backbone.frame_span(grid, batch)
    frames = np.concatenate(
        list(iter_frames(plan, short_side=s.short_side, start=f_lo, stop=f_hi))
    )  # (f_hi - f_lo, H, W, 3) uint8
    rgb_views = crop_views(frames, s.crop, ten_crop=s.ten_crop, flow=False, source=plan.video)
    flow_views: Iterator[np.ndarray | None]
    g_lo, n_flows = 0, 0
    if flow is not None:
        n_flows = len(flow)
        g_lo, g_hi = backbone.flow_span(grid, batch, n_flows)
        flows = _read_flows(flow, g_lo, g_hi)  # (g_hi - g_lo, H, W, 2) uint8
        flow_views = crop_views(flows, s.crop, ten_crop=s.ten_crop, flow=True,
                                source=flow_source)
    else:
        flow_views = iter(lambda: None, 0)  # endless Nones
    total: torch.Tensor | None = None
    n_views = 0
    for rgb_view, flow_view in zip(rgb_views, flow_views, strict=False):
        with torch.inference_mode():
            x = backbone.rgb_input(rgb_view, f_lo, grid, batch)
            parts = [backbone.streams["rgb"].features(x)]
            if flow_view is not None:
                y = backbone.flow_input(flow_view, g_lo, grid, batch, n_flows)
                parts.append(backbone.streams["flow"].features(y))
            view = torch.cat(parts, dim=1).double()  # (B, D)
        total = view if total is None else total + view
        n_views += 1
    assert total is not None
    return (total / n_views).float().cpu().numpy()


def _read_flows(flow: FlowCache, lo: int, hi: int) -> np.ndarray:
    """Flows ``lo..hi-1`` (n, H, W, 2) uint8, the last one repeated past the end of the video."""
    idx = np.minimum(np.arange(lo, hi), len(flow) - 1)
    return np.stack([flow[int(i)] for i in idx])


def _describe(settings: FeatureSettings) -> dict[str, Any]:
    """What each stream sees, in words, for the sidecar."""
    s = settings
    if s.extractor in TWO_D:
        return {
            "rgb": "the centre frame of each unit (start + length // 2)",
            "flow": (f"{s.flow_stack} consecutive flows centred on that frame (shifted inside "
                     f"the video at its ends), stacked x1, y1, ..., x{s.flow_stack}, "
                     f"y{s.flow_stack}"),
        }
    frames = len(range(0, s.snippet_length, s.every_nth))
    steps = ", ".join(str(k * s.every_nth) for k in range(min(frames, 3)))
    out = {"rgb": f"{frames} frames: the snippet's frames {steps}{', ...' if frames > 3 else ''}"}
    if s.uses_flow:
        out["flow"] = (f"{frames} flows starting at those frames (the last flow repeated past "
                       "the end of the video)")
    return out


def extract_features(
    plan_path: str | os.PathLike[str],
    flow_path: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    settings: FeatureSettings,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Features stage: write ``out`` (.npy, (T, D) float32) and its ``.json`` sidecar.

    Args:
        plan_path: the decode stage's frame plan.
        flow_path: the flow stage's cache for the same video (None for an RGB-only backbone).
        out: the ``.npy`` to write; the sidecar goes to the same name with ``.json``.
        settings: backbone, snippet grid, geometry and weights.
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        threads: torch CPU threads (None: torch's default).
        progress: show a progress bar.

    Returns:
        The sidecar dict.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    s = settings
    plan = FramePlan.load(plan_path)
    grid = SnippetGrid(fps=plan.fps, n_frames=plan.n_frames, length=s.snippet_length,
                       stride=s.snippet_stride)
    if grid.n_snippets == 0:
        raise VideoError(
            f"{plan.video}: {plan.n_frames} frames at {plan.fps} fps is shorter than one "
            f"snippet of {s.snippet_length} frames"
        )
    if not flow_path:  # Snakemake passes an empty input list when there is no flow stage
        flow_path = None
    if s.uses_flow and flow_path is None:
        raise ValueError(f"{s.extractor} needs the flow cache of {plan.video}")
    dev = resolve_device(device)
    backbone = Backbone(s, dev)
    width, height = resized_size(plan.width, plan.height, s.short_side)
    flow = FlowCache(flow_path) if s.uses_flow and flow_path is not None else None
    try:
        meta: dict[str, Any] | None = None
        if flow is not None:
            meta = flow.meta
            if (int(meta["width"]), int(meta["height"])) != (width, height):
                raise ValueError(
                    f"{flow_path}: flow is {meta['width']}x{meta['height']} but {plan.video} "
                    f"resized to short side {s.short_side} is {width}x{height}; "
                    "flow and features must use the same short_side"
                )
            if len(flow) != plan.n_frames - 1:
                raise ValueError(
                    f"{flow_path}: has {len(flow)} flows, expected {plan.n_frames - 1} for "
                    f"{plan.n_frames} frames of {plan.video}; rerun the flow stage"
                )
        batches: Any = list(_snippet_batches(grid, s.batch_size))
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"features {Path(plan.video).name}", unit="batch")
        done = ProgressLog(logger, f"features {Path(plan.video).name}", unit="snippets",
                           total=grid.n_snippets)
        width_d = sum(st.dim for st in backbone.streams.values())
        # rows go straight to a memory-mapped .npy beside ``out``, renamed into place when
        # complete: memory stays one batch whatever the video's length (and its output's size)
        with atomic_path(out, suffix=".npy") as tmp:
            features = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float32, shape=(grid.n_snippets, width_d)
            )  # (T, D)
            for batch in batches:
                rows = _batch_features(backbone, plan, flow, grid, batch, str(flow_path))
                if not np.all(np.isfinite(rows)):
                    raise ValueError(
                        f"{plan.video}: non-finite features in snippets {batch[0]}..{batch[-1]} "
                        "(check the weights)"
                    )
                features[batch[0] : batch[-1] + 1] = rows
                done.update(len(batch))
            features.flush()
            shape = list(features.shape)
            del features
    finally:
        if flow is not None:
            flow.close()
    streams = backbone.streams
    sidecar = {
        "video": plan.video,
        "extractor": s.extractor,
        "backbone": {name: type(st.net).__name__ for name, st in streams.items()},
        "shape": shape,
        "streams": backbone.columns,
        "grid": grid.to_dict(),
        "settings": asdict(s),
        "frames": {
            "fps": plan.fps,
            "source_fps": plan.source_fps,
            "frame_count": plan.n_frames,
            "short_side": s.short_side,
            "size": [width, height],
            "crop": s.crop,
            "crops": (
                "ten_crop: 4 corners + centre and their horizontal mirrors (flow x negated), "
                "features averaged" if s.ten_crop else "centre"
            ),
            "rgb_scale": "[-1, 1]" if s.extractor == "i3d" else streams["rgb"].normalisation,
            "resize": "bilinear",
        },
        "inputs": {
            name: {"frames": words, "normalisation": streams[name].normalisation}
            for name, words in _describe(s).items()
        },
        "flow": (
            {k: meta[k] for k in meta if k not in {"video"}} if meta is not None else None
        ),
        "weights": {name: st.record for name, st in streams.items()},
        "code_version": extractors.__version__,
        "provenance": provenance(FEATURES_VERSION),
        "device": str(dev),
    }
    write_json(Path(out).with_suffix(".json"), sidecar)
    return sidecar


def load_features(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a feature file and its sidecar, checking they agree and every value is finite.

    Raises:
        FileNotFoundError: the sidecar is missing.
        ValueError: shapes disagree, or NaN / inf values (the message names the file).
    """
    from wtalio import read_json

    path = Path(path)
    sidecar_path = path.with_suffix(".json")
    if not sidecar_path.exists():
        raise FileNotFoundError(f"{path}: its sidecar {sidecar_path.name} is missing")
    features = np.load(path)
    sidecar = read_json(sidecar_path)
    if features.ndim != 2 or list(features.shape) != list(sidecar["shape"]):
        raise ValueError(
            f"{path}: shape {features.shape} does not match its sidecar's {sidecar['shape']}"
        )
    if not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"{path}: features must be floating point, not {features.dtype}")
    finite = np.isfinite(features)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        n_nan, n_inf = int(np.isnan(features).sum()), int(np.isinf(features).sum())
        raise ValueError(
            f"{path}: {n_nan + n_inf} non-finite feature values (NaN {n_nan}, inf {n_inf}) "
            f"in {len(rows)} of {len(features)} snippets, "
            f"first at snippet {int(rows[0])}; recompute or repair this file"
        )
    return features.astype(np.float32, copy=False), sidecar
