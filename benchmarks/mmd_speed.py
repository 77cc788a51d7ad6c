"""Seconds per training step of the knowledge-transfer loss (KT-MGFN's KTM, Eq. 3; TSRNet's
L_FC1/L_FC2), forward and backward, at the sizes of real trimmed-clip sets.

One step is what :meth:`wtal.models.kt_mgfn.KTMGFN.knowledge_transfer` does for a batch: for
each class of the batch's untrimmed videos, MMD² (median bandwidth) between that class's
trimmed-clip representations (constants) and the batch's representations of the class. The
trimmed set is split evenly over the classes, as UCF101's clips of THUMOS14's 20 classes are.
``--reference`` also times the kernel written as the (N, M, R) tensor of differences, which the
KTM used before (12 s a step at UCF101's size on one core).

Usage::

    python benchmarks/mmd_speed.py                              # 1,115 / 3,000 / 13,320 clips
    python benchmarks/mmd_speed.py --clips 13320 --dim 512 --threads 1 --reference
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wtal.models.kt_mgfn import median_bandwidth, mmd2


def mmd2_by_differences(t: Tensor, u: Tensor) -> Tensor:
    """MMD² with the kernel computed from the (N, M, R) differences (the earlier form)."""
    s = median_bandwidth(t, u)

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-(a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1) / (2.0 * s**2))

    return k(t, t).mean() + k(u, u).mean() - 2.0 * k(t, u).mean()


def step_seconds(fn, *, clips: int, dim: int, batch: int, classes: int, repeats: int) -> float:
    """Mean seconds of one step (forward + backward) over ``repeats``."""
    g = torch.Generator().manual_seed(0)
    t = torch.randn(clips, dim, generator=g)
    t_lab = torch.arange(clips) % classes
    u_lab = torch.randint(0, classes, (batch,), generator=g)
    start = time.perf_counter()
    for _ in range(repeats):
        u = torch.randn(batch, dim, generator=g).requires_grad_(True)
        terms = [fn(t[t_lab == c], u[u_lab == c]) for c in u_lab.unique()]
        torch.stack(terms).mean().backward()
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, nargs="+", default=[1115, 3000, 13320],
                   help="trimmed clips (UCF101: 13,320; thumos_like --trimmed-groups 10: 1,115)")
    p.add_argument("--dim", type=int, default=512, help="representation width R (hidden)")
    p.add_argument("--batch", type=int, default=16, help="untrimmed videos per step")
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reference", action="store_true",
                   help="also time the (N, M, R) differences (slow: 12 s a step at 13,320 clips)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), R = {args.dim}, batch {args.batch}")
    for clips in args.clips:
        sizes = dict(clips=clips, dim=args.dim, batch=args.batch, classes=args.classes,
                     repeats=args.repeats)
        line = f"{clips:>6} clips: {step_seconds(mmd2, **sizes):.3f} s/step"
        if args.reference:
            line += f" (differences: {step_seconds(mmd2_by_differences, **sizes):.3f} s/step)"
        print(line)


if __name__ == "__main__":
    main()
