"""Seconds per training epoch of the full KT-MGFN on THUMOS14-sized inputs, on the CPU.

THUMOS14 training as the paper runs it (§IV.A): 200 validation videos, each sparsely sampled to
750 snippets of 2048-d features (RGB + flow), 20 classes, batch 16, Adam, the objective of
Eq. (4) with every module (MDCM, CCM, KTM, BRM) and the settings of
``pipeline/config/models/kt_mgfn.yaml`` for thumos14. An epoch is ``ceil(videos / batch)``
steps (forward, loss, backward, Adam step). The two phases of the schedule are timed apart:
epochs before ``brm_start_epoch`` (classification + β·MMD², the BRM idle) and after (+ α·OIC).
No real data is needed: features and labels are random (the cost does not depend on the
values), and the KTM compares against random trimmed representations (20 classes × 100 clips)
as the trimmed branch would give them.

Run from the repository root::

    python benchmarks/kt_mgfn_epoch.py                       # 200 videos, threads 1 and 2
    python benchmarks/kt_mgfn_epoch.py --videos 32 --threads 1

With ``--videos`` below 200 the measured epoch is extrapolated to 200 videos by its steps
(every step has the same shape), printed in the last column.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from wtal.models import build_model
from wtal.models.kt_mgfn import TrimmedReps

CONFIG = Path(__file__).resolve().parents[1] / "pipeline" / "config" / "models" / "kt_mgfn.yaml"
FULL_VIDEOS = 200


def thumos14_settings() -> tuple[dict, dict]:
    """The model's builder args and train settings for thumos14, from its settings file."""
    cfg = yaml.safe_load(CONFIG.read_text())
    block = cfg.get("datasets", {}).get("thumos14", {})
    return ({**cfg["args"], **(block.get("args") or {})},
            {**cfg["train"], **(block.get("train") or {})})


def time_epoch(
    *, videos: int, snippets: int, dim: int, classes: int, batch: int, threads: int,
    brm_phase: bool, seed: int = 0,
) -> tuple[float, int]:
    """Wall seconds of one epoch (``ceil(videos / batch)`` steps) and its number of steps."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    args, train = thumos14_settings()
    net = build_model("kt_mgfn", in_dim=dim, num_classes=classes, **args).train()
    opt = torch.optim.Adam(net.parameters(), lr=float(train["lr"]),
                           weight_decay=float(train["weight_decay"]))
    gen = torch.Generator().manual_seed(seed)
    clips_per_class = 100
    reference = net.check_reference(TrimmedReps(
        torch.rand(classes * clips_per_class, net.embedding_dim, generator=gen),
        torch.eye(classes).repeat_interleave(clips_per_class, dim=0)))
    # one batch of inputs reused by every step: the work per step depends on shapes only
    x = torch.randn(batch, snippets, dim, generator=gen)  # (B, T, D)
    mask = torch.ones(batch, snippets, dtype=torch.bool)  # (B, T) sparse sampling: all valid
    labels = torch.zeros(batch, classes)
    labels[torch.arange(batch), torch.randint(classes, (batch,), generator=gen)] = 1.0
    epoch = int(args["brm_start_epoch"]) if brm_phase else 0
    steps = math.ceil(videos / batch)
    sizes = [batch] * (steps - 1) + [videos - batch * (steps - 1)]

    def step(n: int) -> None:
        out = net(x[:n], mask[:n])
        loss, _ = net.loss(out, labels[:n], mask[:n], epoch=epoch, reference=reference)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(min(batch, videos))  # warm-up (allocations, Adam state)
    t0 = time.perf_counter()
    for n in sizes:
        step(n)
    return time.perf_counter() - t0, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=FULL_VIDEOS)
    parser.add_argument("--snippets", type=int, default=750)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=str, default="1,2",
                        help="comma-separated torch CPU thread counts to time")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    print(f"KT-MGFN training epoch, CPU ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores), torch {torch.__version__}")
    print(f"{args.videos} videos x {args.snippets} snippets x {args.dim}-d, {args.classes} "
          f"classes, batch {args.batch}; thumos14 settings of {CONFIG.name}")
    print()
    print(f"| threads | phase | steps | s/step | s/epoch | s/epoch at {FULL_VIDEOS} videos |")
    print("|---|---|---|---|---|---|")
    full_steps = math.ceil(FULL_VIDEOS / args.batch)
    for t in threads:
        for brm_phase in (False, True):
            seconds, steps = time_epoch(videos=args.videos, snippets=args.snippets,
                                        dim=args.dim, classes=args.classes, batch=args.batch,
                                        threads=t, brm_phase=brm_phase)
            phase = "with BRM (epochs >= 30)" if brm_phase else "cls + KT (epochs < 30)"
            print(f"| {t} | {phase} | {steps} | {seconds / steps:.2f} | {seconds:.1f} | "
                  f"{seconds / steps * full_steps:.1f} |", flush=True)


if __name__ == "__main__":
    main()
