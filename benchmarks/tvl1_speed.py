"""Speed of TV-L1 optical flow at 224×224 with the papers' (OpenCV's default) parameters.

Frame pairs per second of:

- OpenCV's ``DualTVL1OpticalFlow`` on one CPU core (``cv2.setNumThreads(1)``), pair by pair;
- ``extractors.tvl1_torch`` on the CPU (eager; ``--cpu-compiled`` adds the compiled form);
- ``extractors.tvl1_torch`` on a CUDA GPU, eager and compiled (skipped without CUDA).

The frames are consecutive frames of a 224×224 video of the synthetic demo (``wtal.demo``:
textured drifting background, moving distractors and a large moving action object), so the
number of iterations TV-L1 needs is that of the pipeline's own data. Each torch run also prints
its mean end-point error against OpenCV's flow of the same pairs (the issue's bar: <= 0.1 px).
Compilation and CUDA start-up happen in an untimed warm-up run.

Run from the repository root::

    python benchmarks/tvl1_speed.py                      # 8 OpenCV pairs, 8 CPU pairs, 256 GPU
    python benchmarks/tvl1_speed.py --gpu-pairs 512 --batch 128
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch

from extractors.flow import TVL1Params, create_opencv_tvl1, to_gray
from extractors.tvl1_torch import tvl1_sequence
from wtal.demo import SceneRenderer, plan_demo

SIZE = 224


def demo_frames(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` consecutive grey 224×224 frames of demo videos, taken while an action runs."""
    plan = plan_demo(seed=seed, width=SIZE, height=SIZE, n_validation=16, n_test=0,
                     n_trimmed_per_class=0)
    grey: list[np.ndarray] = []
    for video in plan.subset("validation"):
        scene = video.scene
        renderer = SceneRenderer(scene)
        for instance in scene.instances:
            first = int(instance.start * scene.fps) + 1
            last = min(int(instance.end * scene.fps), scene.n_frames)
            for k in range(first, last):
                grey.append(to_gray(renderer.frame(k)))
                if len(grey) == n:
                    return np.stack(grey)  # (n, 224, 224)
    raise ValueError(f"the demo plan has only {len(grey)} action frames; ask for fewer pairs")


def machine() -> str:
    """One line about the CPU, the GPU and the library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"CPU: {cpu}, {cores} cores usable, load average {load:.1f}; GPU: {gpu}; "
            f"torch {torch.__version__}, OpenCV {cv2.__version__}, Python "
            f"{platform.python_version()}")


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_opencv(frames: np.ndarray, params: TVL1Params) -> tuple[float, np.ndarray]:
    cv2.setNumThreads(1)
    tvl1 = create_opencv_tvl1(params)
    return timed(lambda: np.stack([tvl1.calc(frames[i], frames[i + 1], None)
                                   for i in range(len(frames) - 1)]))


def run_torch(frames: np.ndarray, params: TVL1Params, *, device: str, batch: int,
              compiled: bool) -> tuple[float, np.ndarray]:
    """Flows of all consecutive pairs, ``batch`` pairs per call; returns (seconds, flows)."""
    def work() -> np.ndarray:
        out = []
        for lo in range(0, len(frames) - 1, batch):
            chunk = torch.from_numpy(frames[lo:lo + batch + 1]).to(device)
            out.append(tvl1_sequence(chunk, params, compiled=compiled).cpu().numpy())
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return np.concatenate(out)

    warm = frames[:min(len(frames), batch + 1)]
    tvl1_sequence(torch.from_numpy(warm).to(device), params, compiled=compiled)  # untimed
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return timed(work)


def epe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opencv-pairs", type=int, default=8, help="pairs timed for OpenCV")
    parser.add_argument("--cpu-pairs", type=int, default=8, help="pairs timed for torch (CPU)")
    parser.add_argument("--gpu-pairs", type=int, default=256, help="pairs timed for torch (GPU)")
    parser.add_argument("--batch", type=int, default=64, help="pairs per torch call on the GPU")
    parser.add_argument("--cpu-threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--cpu-compiled", action="store_true",
                        help="also time the compiled torch solver on the CPU (slow to compile)")
    parser.add_argument("--skip-cpu", action="store_true", help="do not time torch on the CPU")
    args = parser.parse_args()

    params = TVL1Params()  # tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, eps 0.01, ...
    n = max(args.opencv_pairs, args.cpu_pairs, args.gpu_pairs if torch.cuda.is_available() else 0)
    frames = demo_frames(n + 1)
    print(machine())
    print(f"{SIZE}x{SIZE} grey frames of the synthetic demo; TV-L1 parameters: "
          f"{params.to_dict()}")

    seconds, reference = run_opencv(frames[:args.opencv_pairs + 1], params)
    opencv_rate = args.opencv_pairs / seconds
    rows = [("OpenCV DualTVL1OpticalFlow, 1 CPU core", args.opencv_pairs, opencv_rate, None)]

    def add(label: str, pairs: int, device: str, batch: int, compiled: bool) -> None:
        seconds, flows = run_torch(frames[:pairs + 1], params, device=device, batch=batch,
                                   compiled=compiled)
        common = min(len(flows), len(reference))
        rows.append((label, pairs, pairs / seconds, epe(flows[:common], reference[:common])))

    if not args.skip_cpu and args.cpu_pairs > 0:
        torch.set_num_threads(args.cpu_threads)
        threads = f"{args.cpu_threads} thread{'s' if args.cpu_threads > 1 else ''}"
        add(f"torch CPU eager, {threads}", args.cpu_pairs, "cpu", args.cpu_pairs, False)
        if args.cpu_compiled:
            add(f"torch CPU compiled, {threads}", args.cpu_pairs, "cpu", args.cpu_pairs, True)
    if torch.cuda.is_available() and args.gpu_pairs > 0:
        add(f"torch CUDA eager, batch {args.batch}", args.gpu_pairs, "cuda", args.batch, False)
        add(f"torch CUDA compiled, batch {args.batch}", args.gpu_pairs, "cuda", args.batch,
            True)
    else:
        print("no CUDA GPU: the GPU rows are skipped")

    width = max(len(row[0]) for row in rows)
    print(f"\n{'implementation':<{width}}  pairs  pairs/s  × OpenCV 1 core  EPE vs OpenCV (px)")
    for label, pairs, rate, error in rows:
        shown = "-" if error is None else f"{error:.4f}"
        print(f"{label:<{width}}  {pairs:5d}  {rate:7.2f}  {rate / opencv_rate:15.1f}  {shown}")


if __name__ == "__main__":
    main()
