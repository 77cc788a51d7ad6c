"""The one training loop and the one optimiser factory, for the main training
(:func:`wtal.train.train`) and every pretraining stage (KT-MGFN's and TSRNet's trimmed
branches, ASSG's seed network).

Every epoch visits the sequences in a new random order, in batches of ``batch_size``; each
sequence is prepared for the batch by ``take`` (default: a random crop to ``max_seqlen``);
batches are zero-padded with a validity mask; ``loss_of`` gives the loss of ``net(x, mask)``
and its named parts. After every epoch one line goes to the ``wtal.fitting`` logger (losses,
seconds per epoch, ETA), so a job's log file can be followed with ``tail -f``; a terminal
also gets a progress bar.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from extractors.progresslog import eta
from wtal.progress import progress_bar
from wtal.sampling import pad_batch

logger = logging.getLogger(__name__)

#: ``loss_of(out, labels (B, C), mask (B, T), epoch, step) -> (loss, named float parts)``.
LossOf = Callable[[Any, Tensor, Tensor, int, int], tuple[Tensor, dict[str, float]]]


def make_optimizer(
    groups: Iterable[Any],
    *,
    optimizer: str = "adam",
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Adam or SGD (with ``momentum``) over torch parameter groups (or parameters)."""
    if optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {optimizer!r} (adam or sgd)")


def step_schedule(
    opt: torch.optim.Optimizer, milestones: Sequence[int], gamma: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate multiplied by ``gamma`` at each epoch of ``milestones``."""
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)


def random_crop(x: np.ndarray, max_seqlen: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` (T, D), or a random window of ``max_seqlen`` rows of it when longer."""
    if len(x) <= max_seqlen:
        return x
    start = int(rng.integers(0, len(x) - max_seqlen + 1))
    return x[start : start + max_seqlen]


@dataclass
class FitLog:
    """Per-epoch record of a :func:`fit` run."""

    loss: list[float] = field(default_factory=list)  # mean loss of every epoch
    parts: dict[str, list[float]] = field(default_factory=dict)  # mean of each named part
    lr: list[float] = field(default_factory=list)  # the first parameter group's rate
    lr_groups: list[list[float]] = field(default_factory=list)  # every group's
    epoch_seconds: list[float] = field(default_factory=list)
    steps: int = 0  # optimiser steps taken


def fit(
    net: nn.Module,
    seqs: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    loss_of: LossOf,
    opt: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    device: torch.device,
    max_seqlen: int | None = None,
    take: Callable[[int, np.ndarray], np.ndarray] | None = None,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
    name: str = "fit",
    progress: bool = False,
) -> FitLog:
    """Train ``net`` (put in training mode) on ``seqs`` (each (T_i, D)) with ``labels`` (N, C).

    Args:
        net: the module trained.
        seqs: the training sequences.
        labels: (N, C) multi-hot labels.
        loss_of: the loss of a batch and its named float parts (see :data:`LossOf`); ``step``
            counts the optimiser steps of this run from 0.
        opt: the optimiser (:func:`make_optimizer`).
        epochs: passes over ``seqs``.
        batch_size: sequences per step.
        rng: shuffling and cropping.
        device: where ``net`` is.
        max_seqlen: the crop of the default ``take`` (None: whole sequences).
        take: ``take(i, seqs[i])`` the sequence a batch gets (e.g. wtal.sampling's units).
        schedule: stepped after every epoch.
        name: what the per-epoch log lines and the bar are called.
        progress: show a bar (on a terminal only).

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    if take is None:
        def take(i: int, x: np.ndarray) -> np.ndarray:
            return x if max_seqlen is None else random_crop(x, max_seqlen, rng)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    log = FitLog()
    net.train()
    t_start = time.time()
    for epoch in progress_bar(range(epochs), desc=name, unit="epoch", show=progress):
        t_epoch = time.time()
        order = rng.permutation(len(seqs))
        losses: list[float] = []
        part_sums: dict[str, float] = {}
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            x, mask = pad_batch([take(int(i), seqs[i]) for i in idx])
            x, mask = x.to(device), mask.to(device)
            loss, parts = loss_of(net(x, mask), y_all[idx].to(device), mask, epoch, log.steps)
            for part, value in parts.items():
                part_sums[part] = part_sums.get(part, 0.0) + value
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name}: training loss became {loss.item()} "
                                         f"(epoch {epoch + 1}, step {log.steps + 1})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.steps += 1
            losses.append(loss.item())
        log.loss.append(float(np.mean(losses)))
        log.epoch_seconds.append(time.time() - t_epoch)
        log.lr.append(opt.param_groups[0]["lr"])
        log.lr_groups.append([group["lr"] for group in opt.param_groups])
        if schedule is not None:
            schedule.step()
        for part, total in part_sums.items():
            log.parts.setdefault(part, []).append(total / len(losses))
        per_epoch = (time.time() - t_start) / (epoch + 1)
        shown = " ".join(f"{k}={v[-1]:.4g}" for k, v in log.parts.items()
                         if math.isfinite(v[-1]))
        logger.info("%s: epoch %d/%d loss %.4f%s | %.2f s/epoch, ETA %s", name, epoch + 1,
                    epochs, log.loss[-1], f" ({shown})" if shown else "",
                    log.epoch_seconds[-1], eta(per_epoch * (epochs - epoch - 1)))
    return log
