"""Flow stage: TV-L1 flow of a video's planned frames into a compact random-access cache.

Two TV-L1 implementations write the same cache (same grey conversion, quantisation and codec):

- ``opencv``: OpenCV's CPU ``DualTVL1OpticalFlow`` (:func:`extractors.flow.compute_flow`);
- ``torch``: the batched PyTorch port (:func:`extractors.tvl1_torch.compute_flow_torch`), on
  CUDA or on the CPU;
- ``auto``: ``torch`` when a CUDA GPU is usable, ``opencv`` otherwise.

The cache's meta (and so the feature sidecar, which copies it) records the backend that ran.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from extractors.decode import FramePlan, iter_single_frames, resized_size

BACKENDS = ("opencv", "torch", "auto")


def resolve_backend(backend: str, device: str | None = None) -> tuple[str, str | None]:
    """Decide which TV-L1 implementation runs, and where.

    Args:
        backend: ``"opencv"``, ``"torch"`` or ``"auto"`` (torch on a GPU, OpenCV on a CPU).
        device: ``None`` or ``"auto"`` (a GPU if there is one), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``. OpenCV runs on the CPU only.

    Returns:
        ``("opencv", None)`` or ``("torch", torch_device)``.

    Raises:
        ValueError: on an unknown backend or device, a GPU device for OpenCV, or a CUDA device
            without CUDA.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown TV-L1 backend {backend!r} ({', '.join(BACKENDS)})")
    if device is not None and device not in ("auto", "cpu") and not (
        device == "cuda" or device.startswith("cuda:")
    ):
        raise ValueError(f"unknown flow device {device!r} (auto, cpu, cuda, cuda:N)")
    want_gpu = device is not None and device.startswith("cuda")
    if backend == "opencv":
        if want_gpu:
            raise ValueError(f"the opencv TV-L1 backend runs on the CPU, not on {device!r}; "
                             f"use backend torch or auto for a GPU")
        return "opencv", None
    if backend == "auto" and device == "cpu":
        return "opencv", None

    import torch

    has_cuda = torch.cuda.is_available()
    if want_gpu:
        if not has_cuda:
            raise ValueError(f"flow device {device!r} requested but CUDA is not available")
        return "torch", device
    if backend == "auto":
        return ("torch", "cuda") if has_cuda else ("opencv", None)
    return "torch", "cuda" if has_cuda and device != "cpu" else "cpu"


def flow_stage(
    plan_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    algorithm: str = "tvl1",
    backend: str = "opencv",
    bound: float = 20.0,
    codec: str = "jpg",
    params: Mapping[str, Any] | None = None,
    short_side: int | None = None,
    threads: int | None = None,
    device: str | None = None,
    batch_pairs: int | None = None,
    memory_budget_mb: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compute the flow of the frames planned in ``plan_path`` and write the cache ``out``.

    Frames are resized so that their short side is ``short_side``, exactly as the features
    stage resizes them, so flow and RGB share one geometry: smaller videos are upsampled (a
    176×144 video becomes 313×256), as DeepMind's I3D recipe does; pixels are used as stored
    (the plan's sample aspect ratio is not applied).

    Args:
        plan_path: the decode stage's frame plan (JSON).
        out: the flow cache (``.zip``) to write, atomically.
        algorithm: ``"tvl1"``.
        backend: ``"opencv"``, ``"torch"`` or ``"auto"`` (see :func:`resolve_backend`).
        bound: quantisation bound in pixels.
        codec: ``"jpg"`` or ``"png"``.
        params: TV-L1 parameters under their config keys (OpenCV's defaults for missing keys).
        short_side: resize frames to this short side (up or down), or None to keep their size.
        threads: CPU threads (OpenCV's, or torch's when torch runs on the CPU).
        device: where the torch backend runs (see :func:`resolve_backend`).
        batch_pairs: frame pairs the torch backend solves at once (bounds memory; None: from
            ``memory_budget_mb`` if given, else the library's default, 32).
        memory_budget_mb: choose ``batch_pairs`` so that the torch backend's solver fits in this
            many megabytes (:func:`extractors.tvl1_torch.pairs_for_memory`, measured per
            pixel); not together with ``batch_pairs``.
        progress: show a progress bar.

    Returns:
        The cache's metadata; ``backend`` is the implementation that ran, ``device`` where
        (torch only).

    Raises:
        ValueError: on an unknown algorithm, backend or device, bad parameters, both
            ``batch_pairs`` and ``memory_budget_mb``, or fewer than two planned frames.
    """
    from extractors.flow import TVL1Params, compute_flow

    if algorithm != "tvl1":
        raise ValueError(f"unknown flow algorithm {algorithm!r} (tvl1)")
    if batch_pairs is not None and memory_budget_mb is not None:
        raise ValueError("give batch_pairs or memory_budget_mb for the torch TV-L1, not both")
    chosen, torch_device = resolve_backend(backend, device)
    tvl1_params = TVL1Params.from_dict(dict(params or {}))
    plan = FramePlan.load(plan_path)
    if plan.n_frames < 2:
        raise ValueError(f"{plan.video}: {plan.n_frames} frame(s) at {plan.fps} fps; flow needs 2")
    extra_meta = {
        "video": plan.video,
        "fps": plan.fps,
        "n_frames": plan.n_frames,
        "short_side": short_side,
        "algorithm": algorithm,
        "backend": chosen,
    }
    frames = iter_single_frames(plan, short_side=short_side)
    if chosen == "opencv":
        import cv2

        if threads is not None:
            cv2.setNumThreads(threads)
        return compute_flow(frames, out, params=tvl1_params, bound=bound, codec=codec,
                            extra_meta=extra_meta, progress=progress)

    import torch

    from extractors.tvl1_torch import DEFAULT_BATCH_PAIRS, compute_flow_torch, pairs_for_memory

    if threads is not None and torch_device == "cpu":
        torch.set_num_threads(threads)
    pairs = DEFAULT_BATCH_PAIRS if batch_pairs is None else batch_pairs
    if memory_budget_mb is not None:
        width, height = resized_size(plan.width, plan.height, short_side)
        pairs = pairs_for_memory(memory_budget_mb, height, width)
    return compute_flow_torch(frames, out, params=tvl1_params, bound=bound, codec=codec,
                              device=torch_device, batch_pairs=pairs, extra_meta=extra_meta,
                              progress=progress)
