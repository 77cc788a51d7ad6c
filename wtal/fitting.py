"""A plain mini-batch fitting loop over whole feature sequences, for the models' own pretraining
stages (KT-MGFN's and TSRNet's trimmed branches, ASSG's seed network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from wtal.sampling import pad_batch


def fit_on_sequences(
    net: nn.Module,
    seqs: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    loss_of: Callable[[Any, Tensor, Tensor, int], Tensor],
    opt: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    max_seqlen: int,
    rng: np.random.Generator,
    device: torch.device,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> list[float]:
    """Train ``net`` on ``seqs`` (each (T_i, D)) with their (N, C) ``labels``.

    Every epoch visits the sequences in a new random order, in batches of ``batch_size``;
    a sequence longer than ``max_seqlen`` is randomly cropped to it; batches are zero-padded
    with a validity mask. ``loss_of(out, labels (B, C), mask (B, T), epoch)`` gives the loss of
    ``net(x, mask)``.

    Returns:
        The mean loss of every epoch.
    """
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    curve: list[float] = []
    for epoch in range(epochs):
        order = rng.permutation(len(seqs))
        losses = []
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            batch = []
            for i in idx:
                x = seqs[i]
                if len(x) > max_seqlen:
                    start = int(rng.integers(0, len(x) - max_seqlen + 1))
                    x = x[start : start + max_seqlen]
                batch.append(x)
            x, mask = pad_batch(batch)
            x, mask = x.to(device), mask.to(device)
            loss = loss_of(net(x, mask), y_all[idx].to(device), mask, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curve.append(float(np.mean(losses)))
        if schedule is not None:
            schedule.step()
    return curve
