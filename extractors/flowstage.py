"""Flow stage: TV-L1 flow of a video's planned frames into a compact random-access cache."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from extractors.decode import FramePlan, iter_single_frames


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
    progress: bool = False,
) -> dict[str, Any]:
    """Compute the flow of the frames planned in ``plan_path`` and write the cache ``out``.

    Frames are resized to ``short_side`` exactly as the features stage resizes them, so flow
    and RGB share one geometry. Returns the cache's metadata.
    """
    import cv2

    from extractors.flow import TVL1Params, compute_flow

    if algorithm != "tvl1":
        raise ValueError(f"unknown flow algorithm {algorithm!r} (tvl1)")
    if backend != "opencv":
        raise ValueError(f"unknown TV-L1 backend {backend!r} (opencv)")
    if threads is not None:
        cv2.setNumThreads(threads)
    plan = FramePlan.load(plan_path)
    if plan.n_frames < 2:
        raise ValueError(f"{plan.video}: {plan.n_frames} frame(s) at {plan.fps} fps; flow needs 2")
    return compute_flow(
        iter_single_frames(plan, short_side=short_side),
        out,
        params=TVL1Params.from_dict(dict(params or {})),
        bound=bound,
        codec=codec,
        extra_meta={
            "video": plan.video,
            "fps": plan.fps,
            "n_frames": plan.n_frames,
            "short_side": short_side,
            "algorithm": algorithm,
            "backend": backend,
        },
        progress=progress,
    )
