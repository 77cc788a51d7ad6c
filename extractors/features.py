"""Features stage: two-stream Inception-I3D snippet features from decoded frames and cached flow.

For each snippet of the grid (:class:`extractors.grid.SnippetGrid`) the RGB stream sees the
snippet's ``length`` frames and the flow stream the ``length`` flows that start at those frames
(flow ``i`` goes from frame ``i`` to ``i + 1``; the last snippet repeats the last flow where the
video has no further frame). Both streams see the frames resized so that the short side is
``short_side`` (the resize the flow was computed at) and centre-cropped to ``crop``; RGB is
scaled to [-1, 1], flow (clipped at ±bound when it was quantised) is divided by the bound.

Output: ``(T, 2048)`` float32, RGB columns first, and a JSON sidecar recording every setting
that changes the numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import extractors
from extractors.decode import FramePlan, VideoError, iter_frames, resized_size
from extractors.flow import FlowCache
from extractors.grid import SnippetGrid
from extractors.i3d import InceptionI3d, init_random_
from extractors.weights import build_weights_record, load_state_dict, load_strict, resolve_weights
from wtal.io import save_npy, write_json

RANDOM_WEIGHTS = "none"


@dataclass(frozen=True)
class I3DSettings:
    """Everything that changes the numbers of two-stream I3D features."""

    snippet_length: int = 16  # frames per snippet
    snippet_stride: int = 16  # frames between snippet starts
    short_side: int = 256  # frames resized so the short side has this length (flow too)
    crop: int = 224  # centre crop fed to the networks
    rgb_weights: str = RANDOM_WEIGHTS  # path or URL of rgb_imagenet.pt, or "none"
    rgb_sha256: str | None = None
    flow_weights: str = RANDOM_WEIGHTS  # path or URL of flow_imagenet.pt, or "none"
    flow_sha256: str | None = None
    seed: int = 0  # seed of the random initialisation when weights are "none"
    batch_size: int = 8  # snippets per forward pass


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_stream(
    *, in_channels: int, weights: str, sha256: str | None, seed: int
) -> tuple[InceptionI3d, dict[str, Any]]:
    """An Inception-I3D stream with real or seeded random weights, and its provenance record."""
    model = InceptionI3d(num_classes=400, in_channels=in_channels)
    if weights == RANDOM_WEIGHTS:
        init_random_(model, seed=seed)
        record: dict[str, Any] = {"source": RANDOM_WEIGHTS, "seed": seed}
    else:
        path = resolve_weights(weights, sha256=sha256)
        load_strict(model, load_state_dict(path), source=str(weights))
        record = build_weights_record(weights, path)
    return model.eval(), record


def _center_crop(frames: np.ndarray, crop: int, source: str) -> np.ndarray:
    """Centre crop (n, H, W, C) frames to (n, crop, crop, C)."""
    h, w = frames.shape[1:3]
    if h < crop or w < crop:
        raise ValueError(f"{source}: frames of {w}x{h} are smaller than the {crop} crop")
    top, left = (h - crop) // 2, (w - crop) // 2
    return frames[:, top : top + crop, left : left + crop]


def _snippet_batches(grid: SnippetGrid, batch_size: int) -> Iterator[list[int]]:
    for lo in range(0, grid.n_snippets, batch_size):
        yield list(range(lo, min(lo + batch_size, grid.n_snippets)))


def extract_i3d(
    plan_path: str | os.PathLike[str],
    flow_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    settings: I3DSettings,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Features stage: write ``out`` (.npy, (T, 2048) float32) and ``out`` with ``.json``.

    Args:
        plan_path: the decode stage's frame plan.
        flow_path: the flow stage's cache for the same video.
        out: the ``.npy`` to write; the sidecar goes to the same name with ``.json``.
        settings: snippet grid, geometry and weights.
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        threads: torch CPU threads (None: torch's default).
        progress: show a progress bar.

    Returns:
        The sidecar dict.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    plan = FramePlan.load(plan_path)
    grid = SnippetGrid(
        fps=plan.fps,
        n_frames=plan.n_frames,
        length=settings.snippet_length,
        stride=settings.snippet_stride,
    )
    if grid.n_snippets == 0:
        raise VideoError(
            f"{plan.video}: {plan.n_frames} frames at {plan.fps} fps is shorter than one "
            f"snippet of {settings.snippet_length} frames"
        )
    dev = resolve_device(device)
    rgb_net, rgb_record = build_stream(
        in_channels=3, weights=settings.rgb_weights, sha256=settings.rgb_sha256, seed=settings.seed
    )
    flow_net, flow_record = build_stream(
        in_channels=2,
        weights=settings.flow_weights,
        sha256=settings.flow_sha256,
        seed=settings.seed + 1,
    )
    rgb_net.to(dev)
    flow_net.to(dev)
    width, height = resized_size(plan.width, plan.height, settings.short_side)
    with FlowCache(flow_path) as flow:
        meta = flow.meta
        if (int(meta["width"]), int(meta["height"])) != (width, height):
            raise ValueError(
                f"{flow_path}: flow is {meta['width']}x{meta['height']} but {plan.video} "
                f"resized to short side {settings.short_side} is {width}x{height}; "
                "flow and features must use the same short_side"
            )
        if len(flow) != plan.n_frames - 1:
            raise ValueError(
                f"{flow_path}: has {len(flow)} flows, expected {plan.n_frames - 1} for "
                f"{plan.n_frames} frames of {plan.video}; rerun the flow stage"
            )
        float(meta["bound"])
        feats: list[np.ndarray] = []
        batches = list(_snippet_batches(grid, settings.batch_size))
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"features {Path(plan.video).name}", unit="batch")
        for batch in batches:
            first, _ = grid.frame_range(batch[0])
            _, last = grid.frame_range(batch[-1])
            frames = np.concatenate(
                list(
                    iter_frames(plan, short_side=settings.short_side, start=first, stop=last)
                )
            )  # (last - first, H, W, 3)
            frames = _center_crop(frames, settings.crop, plan.video)
            flow_idx = np.minimum(np.arange(first, last), len(flow) - 1)
            flows = np.stack([flow[int(i)] for i in flow_idx])  # (n, H, W, 2) uint8
            flows = _center_crop(flows, settings.crop, str(flow_path))
            rgb_clips, flow_clips = [], []
            for i in batch:
                s, e = grid.frame_range(i)
                rgb_clips.append(frames[s - first : e - first])
                flow_clips.append(flows[s - first : e - first])
            rgb = torch.from_numpy(np.stack(rgb_clips)).to(dev)  # (B, L, h, w, 3) uint8
            rgb = rgb.permute(0, 4, 1, 2, 3).float() / 255.0 * 2.0 - 1.0  # (B, 3, L, h, w)
            flo = torch.from_numpy(np.stack(flow_clips)).to(dev)  # (B, L, h, w, 2) uint8
            flo = flo.permute(0, 4, 1, 2, 3).float() / 255.0 * 2.0 - 1.0  # (B, 2, L, h, w)
            with torch.inference_mode():
                f_rgb = rgb_net.extract_features(rgb)  # (B, 1024)
                f_flow = flow_net.extract_features(flo)  # (B, 1024)
            feats.append(torch.cat([f_rgb, f_flow], dim=1).cpu().numpy())
    features = np.concatenate(feats).astype(np.float32)  # (T, 2048)
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{plan.video}: non-finite features (check the weights)")
    sidecar = {
        "video": plan.video,
        "extractor": "i3d",
        "shape": list(features.shape),
        "streams": {"rgb": [0, 1024], "flow": [1024, 2048]},
        "grid": grid.to_dict(),
        "settings": asdict(settings),
        "frames": {
            "fps": plan.fps,
            "source_fps": plan.source_fps,
            "short_side": settings.short_side,
            "size": [width, height],
            "crop": settings.crop,
            "rgb_scale": "[-1, 1]",
            "resize": "bilinear",
        },
        "flow": {k: meta[k] for k in meta if k not in {"video"}},
        "weights": {"rgb": rgb_record, "flow": flow_record},
        "code_version": extractors.__version__,
        "device": str(dev),
    }
    out = Path(out)
    sidecar_path = out.with_suffix(".json")
    save_npy(out, features)
    write_json(sidecar_path, sidecar)
    return sidecar


def load_features(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a feature file and its sidecar, checking they agree and every value is finite.

    Raises:
        FileNotFoundError: the sidecar is missing.
        ValueError: shapes disagree, or NaN / inf values (the message names the file).
    """
    from wtal.io import read_json

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
