"""``cas_baseline``: the plain classification network with a class activation sequence.

Every paper this project implements starts its ablation from this network (KT-MGFN table V
"baseline", CPMN's single classifier, ECM's pre-classification stream, ASSG's "CAS" row):
temporal convolutions over snippet features produce per-snippet class scores, the class
activation sequence (CAS); pooling over time gives video-level scores, trained with a
multi-label loss on video-level labels only.

::

    x (B, T, D) ─ Conv1d(D→H, k) ─ ReLU ─ Dropout ─ Conv1d(H→H, k) ─ ReLU ─ Dropout
                ─ Conv1d(H→C, 1) ─▶ CAS logits (B, T, C) ─ top-k mean / mean over T ─▶ (B, C)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from wtal.models.base import Localizer
from wtal.models.registry import register_model


class CASOutput(NamedTuple):
    """What a CAS model gives for a batch."""

    cas: Tensor  # (B, T, C) per-snippet class logits
    video_logits: Tensor  # (B, C) pooled video-level logits
    mask: Tensor  # (B, T) valid snippets


def temporal_pool(cas: Tensor, mask: Tensor, *, pooling: str, topk_ratio: float) -> Tensor:
    """Pool per-snippet scores over the valid snippets of each video.

    Args:
        cas: (B, T, C) scores.
        mask: (B, T) True where a snippet is real (not padding).
        pooling: ``topk`` (mean of the k = ceil(T_valid * topk_ratio) largest) or ``mean``.
        topk_ratio: fraction of the valid length averaged by top-k pooling.

    Returns:
        (B, C) pooled scores.
    """
    m = mask.unsqueeze(-1).to(cas.dtype)  # (B, T, 1)
    lengths = mask.sum(dim=1).clamp(min=1)  # (B,)
    if pooling == "mean":
        return (cas * m).sum(dim=1) / lengths.unsqueeze(-1).to(cas.dtype)
    if pooling != "topk":
        raise ValueError(f"unknown pooling {pooling!r} (topk or mean)")
    masked = cas.masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, T, C)
    k_max = max(1, math.ceil(cas.shape[1] * topk_ratio))
    top, _ = masked.topk(k_max, dim=1)  # (B, k_max, C), descending
    ks = torch.clamp(torch.ceil(lengths.to(torch.float64) * topk_ratio).long(), min=1)  # (B,)
    ks = torch.minimum(ks, lengths)
    keep = torch.arange(k_max, device=cas.device).unsqueeze(0) < ks.unsqueeze(1)  # (B, k_max)
    top = torch.where(keep.unsqueeze(-1), top, torch.zeros_like(top))
    return top.sum(dim=1) / ks.unsqueeze(-1).to(cas.dtype)


@register_model("cas_baseline")
class CASBaseline(Localizer):
    """Temporal convolutions → CAS → temporal pooling."""

    def __init__(
        self,
        *,
        in_dim: int,  # feature dimension D (2048 for two-stream I3D)
        num_classes: int,  # C
        hidden: int = 512,  # channels of the temporal convolutions
        kernel_size: int = 3,  # temporal kernel of the hidden convolutions
        num_layers: int = 2,  # hidden temporal convolutions
        dropout: float = 0.7,  # dropout after each hidden layer
        pooling: str = "topk",  # temporal pooling: topk or mean
        topk_ratio: float = 0.125,  # k = ceil(T / 8) as in W-TALC / ECM
    ) -> None:
        super().__init__()
        if pooling not in {"topk", "mean"}:
            raise ValueError(f"unknown pooling {pooling!r} (topk or mean)")
        layers: list[nn.Module] = []
        channels = in_dim
        for _ in range(num_layers):
            layers += [
                nn.Conv1d(channels, hidden, kernel_size, padding=kernel_size // 2),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            channels = hidden
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Conv1d(channels, num_classes, 1)
        self.pooling = pooling
        self.topk_ratio = topk_ratio

    def forward(self, x: Tensor, mask: Tensor | None = None) -> CASOutput:
        """Args: x (B, T, D) features; mask (B, T) valid snippets (default: all)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        h = self.body(x.transpose(1, 2))  # (B, H, T)
        cas = self.classifier(h).transpose(1, 2)  # (B, T, C)
        video_logits = temporal_pool(cas, mask, pooling=self.pooling, topk_ratio=self.topk_ratio)
        return CASOutput(cas=cas, video_logits=video_logits, mask=mask)  # (B, T, C), (B, C)

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """The named per-snippet scores a report plots (see :mod:`wtal.report`).

        The baseline has no learned attention: ``cas`` is σ(CAS) (B, T, C) and ``background``
        (B, T) is ``1 − max_c σ(CAS)``, the evidence that no class is present.
        """
        cas = torch.sigmoid(self.forward(x, mask).cas)  # (B, T, C)
        return {"cas": cas, "background": 1.0 - cas.amax(dim=-1)}
