"""Shared fixtures: RNG hygiene, GPU marker handling, tiny videos made with PyAV."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without CUDA, unless WTAL_REQUIRE_GPU=1 makes that a failure."""
    if torch.cuda.is_available() or os.environ.get("WTAL_REQUIRE_GPU") == "1":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (set WTAL_REQUIRE_GPU=1 to fail instead)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def prevent_leaking_rng() -> Iterator[None]:
    """Restore the torch, numpy and random RNG states after every test."""
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()  # noqa: NPY002 - restoring the legacy global RNG
    py_state = random.getstate()
    yield
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)  # noqa: NPY002
    random.setstate(py_state)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for the test: tiny tensors run fastest so, and robust on a busy
    machine (modules use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_video(
    path: Path,
    frames: np.ndarray,
    *,
    fps: float = 30.0,
    timestamps: list[float] | None = None,
) -> Path:
    """Encode RGB uint8 frames (N, H, W, 3) to an H.264 mp4.

    With ``timestamps`` (seconds per frame) the frames get those presentation times, which
    makes a variable-frame-rate file.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        if timestamps is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            if timestamps is not None:
                vf.pts = round(timestamps[i] * 1000)
                vf.time_base = Fraction(1, 1000)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def counter_frames(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames whose mean brightness encodes their index (frame i has value 20 + 2*i mod 220)."""
    values = (20 + 2 * np.arange(n)) % 220
    return np.broadcast_to(values[:, None, None, None], (n, height, width, 3)).astype(np.uint8)


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_video(name, frames, fps=..., timestamps=...)`` → path in tmp_path."""

    def factory(name: str, frames: np.ndarray, **kwargs: object) -> Path:
        return write_video(tmp_path / name, frames, **kwargs)  # type: ignore[arg-type]

    return factory
