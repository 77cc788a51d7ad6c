"""Snippets per second of each feature backbone, on the CPU and (when there is one) the GPU.

Times the networks only (the forward passes of every stream of a backbone on random inputs of
the shapes the features stage feeds them, seeded random weights), not decoding or flow, so the
numbers say what the backbone costs. A "snippet" is one row of the feature file: for ``i3d`` an
RGB clip and a flow clip of ``--length`` frames, for ``i3d_r50`` one RGB clip of
``--length / every_nth`` frames, for ``untrimmednet`` and ``tsrnet_frames`` one RGB frame and one
stack of 5 flows (10 channels).

Usage::

    python benchmarks/backbone_speed.py                      # paper sizes: 224 crop, 16 frames
    python benchmarks/backbone_speed.py --crop 112 --batch 2 --repeats 2 --threads 1   # quick
    python benchmarks/backbone_speed.py --devices cuda --batch 32
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractors.backbones import BACKBONES
from extractors.features import Backbone, FeatureSettings


def inputs(settings: FeatureSettings, batch: int, dev: torch.device) -> dict[str, torch.Tensor]:
    """Random network inputs of one batch, per stream."""
    gen = torch.Generator().manual_seed(0)
    c, s = settings.crop, settings
    if s.extractor in ("untrimmednet", "tsrnet_frames"):
        shapes = {"rgb": (batch, 3, c, c), "flow": (batch, 2 * s.flow_stack, c, c)}
    else:
        frames = len(range(0, s.snippet_length, s.every_nth))
        shapes = {"rgb": (batch, 3, frames, c, c)}
        if s.extractor == "i3d":
            shapes["flow"] = (batch, 2, frames, c, c)
    return {k: torch.randn(v, generator=gen).to(dev) for k, v in shapes.items()}


def measure(settings: FeatureSettings, *, batch: int, repeats: int, dev: torch.device) -> float:
    """Snippets per second of ``settings.extractor`` (best of ``repeats`` timed batches)."""
    backbone = Backbone(settings, dev)
    x = inputs(settings, batch, dev)

    def run() -> None:
        with torch.inference_mode():
            for name, stream in backbone.streams.items():
                stream.features(x[name])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    run()  # warm-up (allocations, cuDNN autotuning)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return batch / best


def machine(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        name = models[0] if models else name
    return f"{name}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--devices", nargs="+", default=None,
                        help="cpu and/or cuda (default: cpu, plus cuda when available)")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--length", type=int, default=16, help="frames per 3D snippet")
    parser.add_argument("--every-nth", type=int, default=2,
                        help="i3d_r50 frame step (2: 8 of 16 frames, pytorchvideo's 8-frame input)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}; crop {args.crop}, {args.length}-frame 3D snippets, "
          f"batch {args.batch}, best of {args.repeats}; networks only (no decoding, no flow)")
    print("| backbone | device | snippets/s |\n|---|---|---|")
    for name in devices:
        dev = torch.device(name)
        for backbone in args.backbones:
            settings = FeatureSettings(
                extractor=backbone, crop=args.crop, snippet_length=args.length,
                snippet_stride=args.length,
                every_nth=args.every_nth if backbone == "i3d_r50" else 1,
                resnet_depth=101,
            )
            rate = measure(settings, batch=args.batch, repeats=args.repeats, dev=dev)
            print(f"| {backbone} | {machine(dev)} | {rate:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
