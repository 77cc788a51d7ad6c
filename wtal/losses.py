"""Losses as plain functions."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def multilabel_bce(video_logits: Tensor, labels: Tensor) -> Tensor:
    """Sigmoid cross-entropy on video-level labels.

    Args:
        video_logits: (B, C) pooled logits.
        labels: (B, C) multi-hot video-level labels.
    """
    return F.binary_cross_entropy_with_logits(video_logits, labels.to(video_logits.dtype))


def multilabel_softmax_ce(video_logits: Tensor, labels: Tensor) -> Tensor:
    """W-TALC's multiple-instance loss: softmax over classes against L1-normalised labels.

    Args:
        video_logits: (B, C) pooled logits.
        labels: (B, C) multi-hot video-level labels (each row has at least one 1).
    """
    target = labels.to(video_logits.dtype)
    target = target / target.sum(dim=1, keepdim=True).clamp(min=1e-8)
    return -(target * F.log_softmax(video_logits, dim=1)).sum(dim=1).mean()


def video_loss(video_logits: Tensor, labels: Tensor, *, kind: str) -> Tensor:
    """Dispatch on the loss named in the config: ``bce`` or ``softmax``."""
    if kind == "bce":
        return multilabel_bce(video_logits, labels)
    if kind == "softmax":
        return multilabel_softmax_ce(video_logits, labels)
    raise ValueError(f"unknown video-level loss {kind!r} (bce or softmax)")


