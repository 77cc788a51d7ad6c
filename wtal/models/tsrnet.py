"""``tsrnet``: Transferable Self-Attentive Representations (Zhang et al., AAAI 2019).

One independent network per feature stream (RGB, optical flow; one stream of all columns when
the features record no stream ranges), each:

* **self-attention** (Eq. 1): ``a_k = σ(w2_k · tanh(W1 X))`` per snippet for ``hops`` sets of
  weights (the paper's "attention weight vector extended to a matrix"), ``ā`` their mean over
  the hops, and the self-attentive representation ``m = X āᵀ / n`` (d,), the input of the
  first FC layer. Eq. 1 writes a softmax over the frames, but then ``‖a‖₁ = 1`` whatever the
  weights and Eq. 5 would train nothing, while the paper says Eq. 5 "forces the attention
  weights to have values close to either 0 or 1" and Eq. 10 thresholds ``a_i · σ(·)`` at 0.2,
  which weights summing to one over hundreds of frames never reach. Per-snippet weights in
  [0, 1] are the reading under which Eq. 5, its stated effect and Eq. 10-12 all hold, so they
  are the default (``attention_activation="sigmoid"``; the constant ``1/n`` keeps ``m`` from
  growing with the video's length, linear in ā as Eq. 1's sum is). ``"softmax"`` is Eq. 1
  literally (an ablation row);
* **classification**: dropout (0.8), ``FC1`` (d → ``fc_hidden``), ``FC2`` (→ C), softmax over
  the classes, trained with the multi-label cross-entropy against the normalised labels
  (``L_class`` of Eq. 2). The two FC layers are linear by default (``fc_activation="none"``),
  so the classifier is one linear map ``v_c`` per class, which is what Eq. (10) applies to each
  frame: the frame score ``v_cᵀ x_i`` is ``FC2(FC1(x_i))_c`` and the video logit is exactly
  ``Σ_i p_i v_cᵀ x_i`` (plus bias), p the pooling weights (ā / n, or ā with softmax);
* **regularisation** (Eq. 3-5): ``R_SA = α Σ_i (a_i − a_{i+1})² + β ‖a‖₁`` per hop, over the
  valid snippets (:func:`smoothness`, :func:`sparsity`), each divided by the video's number n
  of valid snippets (``regularizer_norm="length"``: the classification's pull on one snippet's
  weight is of order 1/n through ``m``, so α and β then weigh the same against it in a short
  and a long video; ``"none"``: the paper's plain sums). With sigmoid weights ``‖a‖₁`` pulls
  every weight towards 0 and only snippets that carry the class keep a high weight: the
  sparsity the paper describes (with softmax weights it is a constant without gradient);
* **knowledge transfer** (Eq. 6-8): a trimmed network with the same settings is trained first
  on the trimmed clips with ``L_class`` alone (:meth:`TSRNet.pretrain`); its self-attentive
  representations of the clips are kept (not saved), and each training step adds, per stream,
  ``L_KT = L_FC1 + L_FC2`` with ``L_FC1 = MMD²(T, U)`` on the FC1 inputs and
  ``L_FC2 = MMD²(FC1(T), FC1(U))`` on the FC2 inputs, between the trimmed clips and the
  batch's untrimmed videos of the same class (mean over the classes present on both sides;
  Gaussian kernel, median bandwidth, :func:`wtal.models.kt_mgfn.mmd2`). ``FC1`` in Eq. (8) is
  the untrimmed network's own layer applied to both sides. Overall loss Eq. (9), summed over
  the streams (their parameters are disjoint: separate training on the same batches). L_FC1
  pulls the attention-pooled untrimmed features towards the (action-only) trimmed ones, so it
  is what makes the attention pick the actions: on planted data and on the demo, training
  without trimmed clips sometimes left a stream's attention on the background.

Detection (Eq. 10-12): ``w_i^c = a_i · sigmoid(v_cᵀ x_i)`` per stream (a_i the hop-mean
attention, in [0, 1], as is: the paper rescales nothing), fused ``w̄ = θ w_RGB + (1 − θ) w_FLOW``
(θ = 0.5), and the runs of snippets with ``w̄^c ≥ 0.2`` are the class's segments
(:meth:`TSRNet.candidates`, in snippet coordinates; the snippet grid does Eq. 12's frame →
seconds mapping), each scored by its mean w̄^c (the paper gives no score; see
:meth:`TSRNet.candidates`). ``attention_norm`` (``minmax`` / ``max``) rescales a_i over the
video first: needed with softmax weights (of order 1/n), kept as an ablation row of the earlier
softmax version.

::

    x (B, T, D) ─┬─ columns of stream s (B, T, d_s) ─ tanh(W1 ·) ─ w2 ─ sigmoid ─▶ a (B, H, T)
                 │      m = Σ_t ā_t x_t / n (B, d_s) ─ Dropout ─ FC1 ─ FC2 ─▶ logits_s (B, C)
                 │      frame logits_s = FC2(FC1(x_t)) (B, T, C);  w_s = ā · σ(frame logits_s)
                 └─ … one network per stream;  fused: Σ_s θ_s · (logits_s, frame logits_s, w_s)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from wtal.fitting import fit, make_optimizer, step_schedule
from wtal.losses import multilabel_softmax_ce
from wtal.models.base import Localizer, Pretrained, PretrainInputs
from wtal.models.kt_mgfn import mmd2
from wtal.models.registry import register_model
from wtal.postprocess import chosen_classes, outer_inner_score, runs_above
from wtal.settings import TrainSettings

logger = logging.getLogger(__name__)

PAPER_LR_SCALES = {"rgb": 1.0, "flow": 5.0}  # 1e-4 (RGB) and 5e-4 (flow) relative to 1e-4


#: The trimmed clips' representations L_KT compares with: (per stream (M, d_s), (M, C) labels).
TransferReference = tuple[tuple[Tensor, ...], Tensor]


class TSRNetOutput(NamedTuple):
    """What :class:`TSRNet` gives for a batch (S streams, H hops)."""

    cas: Tensor  # (B, T, C) fused frame logits Σ_s θ_s v_cᵀ x_i
    video_logits: Tensor  # (B, C) fused video logits Σ_s θ_s logits_s
    stream_logits: Tensor  # (B, S, C) video logits of every stream
    frame_logits: Tensor  # (B, S, T, C) v_cᵀ x_i of every stream
    attention: Tensor  # (B, S, H, T) attention weights, 0 at padding (sigmoid: each in [0, 1])
    pooled: tuple[Tensor, ...]  # per stream (B, d_s): m = X āᵀ, the FC1 input (before dropout)
    hidden: tuple[Tensor, ...]  # per stream (B, F): FC1(m), the FC2 input (before dropout)
    mask: Tensor  # (B, T) bool, valid snippets


# --------------------------------------------------------------------------------------------
# Pure functions (tested on hand numbers)
# --------------------------------------------------------------------------------------------


def smoothness(attention: Tensor, mask: Tensor) -> Tensor:
    """``R_smooth = Σ_{i=1}^{n-1} (a_i − a_{i+1})²`` of Eq. (4), summed over the hops.

    Args:
        attention: (B, H, T) attention weights.
        mask: (B, T) valid snippets; pairs with a padded snippet are left out.

    Returns:
        (B,) per video.
    """
    pairs = (mask[:, :-1] & mask[:, 1:]).unsqueeze(1).to(attention.dtype)  # (B, 1, T - 1)
    diff = attention[..., :-1] - attention[..., 1:]  # (B, H, T - 1)
    return (diff.pow(2) * pairs).sum(dim=(1, 2))


def sparsity(attention: Tensor, mask: Tensor) -> Tensor:
    """``R_sparsity = ‖a‖₁`` of Eq. (5), summed over the hops: (B, H, T) → (B,)."""
    return (attention.abs() * mask.unsqueeze(1).to(attention.dtype)).sum(dim=(1, 2))


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last (time) axis restricted to valid snippets; (B, H, T), mask (B, T)."""
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    out = torch.softmax(scores, dim=-1)
    return torch.nan_to_num(out, nan=0.0)  # a video without valid snippets: all zeros


ATTENTION_ACTIVATIONS = ("sigmoid", "softmax")


def pooling_weights(attention: Tensor, mask: Tensor, activation: str) -> Tensor:
    """The weights of ``m = Σ_i p_i x_i`` from the attention (B, H, T): the hop mean ā, divided
    by the number n of valid snippets for sigmoid weights (a fixed scale, so that m does not
    grow with the video's length while staying linear in ā, as Eq. 1's sum is), as is for
    softmax weights (which already sum to one). (B, T)."""
    a = attention.mean(dim=1)  # (B, T)
    if activation == "softmax":
        return a
    n = mask.sum(dim=1, keepdim=True).clamp(min=1).to(a.dtype)  # (B, 1)
    return a / n


def normalise_attention(attention: Tensor, mask: Tensor, *, how: str) -> Tensor:
    """The ``a_i`` of Eq. (10) from the hop-mean attention (B, T) over the valid snippets:
    ``minmax`` rescales it to [0, 1] over the video (a constant attention becomes ones),
    ``max`` divides by the video's maximum, ``none`` keeps them as they are (the default with
    sigmoid weights)."""
    valid = mask.to(attention.dtype)
    a = attention * valid
    if how == "none":
        return a
    hi = a.amax(dim=-1, keepdim=True)
    if how == "max":
        return a / hi.clamp(min=1e-12)
    if how != "minmax":
        raise ValueError(f"unknown attention_norm {how!r} (minmax, max or none)")
    lo = attention.masked_fill(~mask, float("inf")).amin(dim=-1, keepdim=True)
    span = hi - lo
    flat = span <= 1e-6 * hi.clamp(min=1e-12)
    scaled = (a - lo) / torch.where(flat, torch.ones_like(span), span)
    return torch.where(flat, valid, scaled.clamp(0.0, 1.0) * valid)


def class_mmd(
    trimmed: Tensor, trimmed_labels: Tensor, untrimmed: Tensor, labels: Tensor,
    *, sigma: float | None,
) -> tuple[Tensor, int]:
    """Mean over the classes present on both sides of ``MMD²(T_c, U_c)`` (Eq. 7).

    Args:
        trimmed: (N_T, R) trimmed-clip features; trimmed_labels: (N_T, C) multi-hot.
        untrimmed: (B, R) untrimmed-video features; labels: (B, C) multi-hot.
        sigma: Gaussian bandwidth; None: median heuristic.

    Returns:
        ``(loss, number of classes compared)``; zero when no class is shared.
    """
    t_lab = trimmed_labels > 0.5
    u_lab = labels > 0.5
    terms = []
    for c in range(labels.shape[1]):
        tc, uc = trimmed[t_lab[:, c]], untrimmed[u_lab[:, c]]
        if len(tc) and len(uc):
            terms.append(mmd2(tc, uc, sigma=sigma))
    if not terms:
        return untrimmed.new_zeros(()), 0
    return torch.stack(terms).mean(), len(terms)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class StreamNet(nn.Module):
    """The self-attentive classification network of one stream (Eq. 1-2)."""

    def __init__(
        self,
        *,
        in_dim: int,  # d, this stream's feature dimension
        num_classes: int,  # C
        hops: int,  # sets of attention weights
        attention_hidden: int,  # b, rows of W1
        fc_hidden: int,  # outputs of FC1
        dropout: float,  # on the self-attentive representation (FC1 input)
        fc_activation: str,  # none (linear FC1 → FC2) or relu
        attention: bool,  # False: uniform weights over the valid snippets (no SA)
        activation: str = "sigmoid",  # a_i = σ(·) per snippet, or softmax over the snippets
    ) -> None:
        super().__init__()
        if fc_activation not in {"none", "relu"}:
            raise ValueError(f"unknown fc_activation {fc_activation!r} (none or relu)")
        if activation not in ATTENTION_ACTIVATIONS:
            raise ValueError(f"unknown attention_activation {activation!r} (sigmoid or softmax)")
        self.use_attention = attention
        self.activation = activation
        self.w1 = nn.Linear(in_dim, attention_hidden, bias=False)  # W1 (b × d)
        self.w2 = nn.Linear(attention_hidden, hops, bias=False)  # w2 (one row per hop)
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(in_dim, fc_hidden)
        self.act = nn.ReLU() if fc_activation == "relu" else nn.Identity()
        self.fc2 = nn.Linear(fc_hidden, num_classes)
        self.hops = hops

    def attend(self, x: Tensor, mask: Tensor) -> Tensor:
        """Attention weights (B, H, T), Eq. (1), 0 at padding: ``σ(w2 · tanh(W1 x_i))`` per
        snippet (``sigmoid``) or their softmax over the snippets (``softmax``); without
        self-attention uniform (H = 1): ones (sigmoid) or 1/n (softmax)."""
        if not self.use_attention:
            scores = torch.zeros_like(x[..., :1]).transpose(1, 2)  # (B, 1, T)
        else:
            scores = self.w2(torch.tanh(self.w1(x))).transpose(1, 2)  # (B, H, T)
        if self.activation == "softmax":
            return masked_softmax(scores, mask)
        if not self.use_attention:
            return torch.ones_like(scores) * mask.unsqueeze(1).to(scores.dtype)
        return torch.sigmoid(scores) * mask.unsqueeze(1).to(scores.dtype)

    def pool(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(a (B, H, T), m (B, d))``: ``m = X āᵀ`` (softmax weights, summing to one) or
        ``m = X āᵀ / n`` (sigmoid weights; n valid snippets, see :func:`pooling_weights`)."""
        a = self.attend(x, mask)
        m = torch.einsum("bt,btd->bd", pooling_weights(a, mask, self.activation), x)  # (B, d)
        return a, m

    def head(self, m: Tensor) -> tuple[Tensor, Tensor]:
        """FC1 → FC2 of representations (..., d): ``(FC2 input (..., F), logits (..., C))``."""
        h = self.fc1(m)
        return h, self.fc2(self.act(h))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """x (B, T, d) → a (B, H, T), m (B, d), FC1(m) (B, F), logits (B, C), frame logits
        (B, T, C)."""
        a, m = self.pool(x, mask)
        h = self.fc1(self.drop(m))  # (B, F)
        logits = self.fc2(self.act(h))  # (B, C)
        return a, m, self.fc1(m), logits, self.frame_logits(x)

    def frame_logits(self, x: Tensor) -> Tensor:
        """``v_cᵀ x_i`` of Eq. (10) for every snippet: (B, T, d) → (B, T, C). With linear FC
        layers the two are composed first (``v_c`` = row c of W_FC2 · W_FC1; same result,
        without the (B, T, F) hidden layer)."""
        if isinstance(self.act, nn.Identity):
            v = self.fc2.weight @ self.fc1.weight  # (C, d)
            bias = self.fc2.weight @ self.fc1.bias + self.fc2.bias  # (C,)
            return x @ v.T + bias
        return self.head(x)[1]


@dataclass(frozen=True)
class TSRNetInferOptions:
    """TSRNet's own inference knobs (``infer.model`` in its settings)."""

    detect_threshold: float = 0.2  # on the fused w̄ (Eq. 10-11)
    segment_score: str = "mean"  # mean w̄ over the segment, or oic (contrast + video score)

    def __post_init__(self) -> None:
        if self.segment_score not in {"mean", "oic"}:
            raise ValueError(f"unknown segment_score {self.segment_score!r} (mean or oic)")


@register_model("tsrnet")
class TSRNet(Localizer):
    """Independent self-attentive networks per stream, fused with θ (Eq. 11).

    Paper settings: dropout 0.8, θ = 0.5, detection threshold 0.2, RGB / flow learning rates
    1e-4 / 5e-4 (``lr_scales`` None: ×1 RGB, ×5 flow of the loop's lr; the optimizer, SGD with
    momentum 0.9, and the schedule are the loop's). Choices the paper leaves open: ``hops``,
    ``attention_hidden`` (b), ``fc_hidden``, α and β, ``kt_sigma`` (median heuristic),
    ``attention_norm`` (none), linear FC layers (``fc_activation``) and the trimmed network's
    epochs, ``attention_activation`` (sigmoid: see the module docstring) and
    ``regularizer_norm``. Ablation switches (Fig. 3, tables 1 and 3): ``streams`` / ``stream``
    (two-stream, RGB, flow), ``attention`` (+SA), ``knowledge_transfer`` (+KT), ``kt_fc2``
    (w/o L_FC2), ``overlap_pretrain`` (table 4: TSRNet first trained on the classes the
    trimmed clips share, then on all).
    """

    InferOptions = TSRNetInferOptions

    def __init__(
        self,
        *,
        in_dim: int,  # D, all feature columns
        num_classes: int,  # C
        streams: dict[str, list[int]] | None = None,  # column ranges; None: one stream
        stream: str = "both",  # both, or one stream name (table 1's RGB / flow columns)
        hops: int = 4,  # attention hops (not in the paper)
        attention_hidden: int = 256,  # b (not in the paper)
        fc_hidden: int = 512,  # FC1 outputs (not in the paper)
        dropout: float = 0.8,
        fc_activation: str = "none",
        attention: bool = True,  # + SA (Fig. 3)
        attention_activation: str = "sigmoid",  # a_i: sigmoid per snippet or softmax (Eq. 1)
        alpha: float = 1.0,  # α, smoothness weight (not in the paper)
        beta: float = 0.1,  # β, sparsity weight (not in the paper)
        regularizer_norm: str = "length",  # R_smooth, R_sparsity divided by n (length) or not
        knowledge_transfer: bool = True,  # + KT (Fig. 3)
        kt_fc2: bool = True,  # False: TSRNet (w/o L_FC2), table 3
        kt_weight: float = 1.0,  # weight of L_KT in Eq. (9) (1 in the paper)
        kt_sigma: float | None = None,  # Gaussian bandwidth; None: median heuristic
        trimmed_epochs: int | None = None,  # trimmed network's epochs; None: the main loop's
                                            # iterations (trimmed_schedule)
        overlap_pretrain: bool = False,  # table 4: first train on the overlapping classes only
        overlap_epochs: int | None = None,  # its epochs; None: settings.epochs
        theta: float = 0.5,  # θ of Eq. (11), weight of the RGB (first) stream
        attention_norm: str = "none",  # a_i of Eq. (10) as is (none), or minmax / max rescaled
        lr_scales: dict[str, float] | None = None,  # per-stream lr factors; None: paper's
    ) -> None:
        super().__init__()
        if streams is None:
            columns = {"all": (0, in_dim)}
        else:
            columns = {name: (int(lo), int(hi)) for name, (lo, hi) in streams.items()}
            for name, (lo, hi) in columns.items():
                if not 0 <= lo < hi <= in_dim:
                    raise ValueError(f"stream {name!r}: columns [{lo}, {hi}) outside 0..{in_dim}")
        if stream != "both":
            if stream not in columns:
                raise ValueError(f"stream {stream!r}: the features have streams {sorted(columns)}")
            columns = {stream: columns[stream]}
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta must be in [0, 1], got {theta}")
        if attention_norm not in {"minmax", "max", "none"}:
            raise ValueError(f"unknown attention_norm {attention_norm!r} (minmax, max or none)")
        if attention_activation not in ATTENTION_ACTIVATIONS:
            raise ValueError(
                f"unknown attention_activation {attention_activation!r} (sigmoid or softmax)")
        if overlap_pretrain and not knowledge_transfer:
            raise ValueError("overlap_pretrain (table 4) pretrains TSRNet with its knowledge "
                             "transfer: it needs knowledge_transfer=True")
        if regularizer_norm not in {"length", "none"}:
            raise ValueError(f"unknown regularizer_norm {regularizer_norm!r} (length or none)")
        self.columns = columns
        self.stream_names = list(columns)
        self.nets = nn.ModuleDict({
            name: StreamNet(in_dim=hi - lo, num_classes=num_classes, hops=hops,
                            attention_hidden=attention_hidden, fc_hidden=fc_hidden,
                            dropout=dropout, fc_activation=fc_activation, attention=attention,
                            activation=attention_activation)
            for name, (lo, hi) in columns.items()
        })
        n = len(columns)
        if n == 1:
            weights = [1.0]
        elif n == 2:
            names = self.stream_names
            weights = [1.0 - theta, theta] if names == ["flow", "rgb"] else [theta, 1.0 - theta]
        else:
            weights = [1.0 / n] * n
        self.register_buffer("fusion", torch.tensor(weights), persistent=False)  # (S,)
        self.num_classes = num_classes
        self.attention = attention
        self.attention_activation = attention_activation
        self.regularizer_norm = regularizer_norm
        self.alpha, self.beta = alpha, beta
        self.knowledge_transfer = knowledge_transfer
        self.kt_fc2, self.kt_weight, self.kt_sigma = kt_fc2, kt_weight, kt_sigma
        self.trimmed_epochs = trimmed_epochs
        self.overlap_pretrain, self.overlap_epochs = overlap_pretrain, overlap_epochs
        self.attention_norm = attention_norm
        self.lr_scales = dict(PAPER_LR_SCALES if lr_scales is None else lr_scales)
        self._config: dict[str, Any] = dict(
            in_dim=in_dim, num_classes=num_classes, streams=streams, stream=stream, hops=hops,
            attention_hidden=attention_hidden, fc_hidden=fc_hidden, dropout=dropout,
            fc_activation=fc_activation, attention=attention, theta=theta,
            attention_activation=attention_activation,
        )

    # ---------------------------------------------------------------- forward

    def forward(self, x: Tensor, mask: Tensor | None = None) -> TSRNetOutput:
        """Args: x (B, T, D) features; mask (B, T) valid snippets (default: all)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        atts, pooled, hidden, logits, frames = [], [], [], [], []
        for name, net in self.nets.items():
            lo, hi = self.columns[name]
            a, m, h, lg, fr = net(x[..., lo:hi], mask)
            atts.append(a)
            pooled.append(m)
            hidden.append(h)
            logits.append(lg)
            frames.append(fr)
        stream_logits = torch.stack(logits, dim=1)  # (B, S, C)
        frame_logits = torch.stack(frames, dim=1)  # (B, S, T, C)
        w = self.fusion.to(x.dtype)
        return TSRNetOutput(
            cas=torch.einsum("s,bstc->btc", w, frame_logits),
            video_logits=torch.einsum("s,bsc->bc", w, stream_logits),
            stream_logits=stream_logits,
            frame_logits=frame_logits,
            attention=torch.stack(atts, dim=1),  # (B, S, H, T)
            pooled=tuple(pooled),
            hidden=tuple(hidden),
            mask=mask,
        )

    # ---------------------------------------------------------------- inference

    def weighted_scores(self, out: TSRNetOutput) -> Tensor:
        """Fused ``w̄_i^c = Σ_s θ_s a_{i,s} σ(v_{c,s}ᵀ x_i)`` (Eq. 10-11): (B, T, C) in [0, 1]."""
        a = normalise_attention(out.attention.mean(dim=2), out.mask.unsqueeze(1),
                                how=self.attention_norm)  # (B, S, T)
        w = a.unsqueeze(-1) * torch.sigmoid(out.frame_logits)  # (B, S, T, C)
        return torch.einsum("s,bstc->btc", self.fusion.to(w.dtype), w)

    def probabilities(self, out: TSRNetOutput) -> tuple[Tensor, Tensor]:
        """``(w̄ (B, T, C), softmax of the fused video logits (B, C))``."""
        return self.weighted_scores(out), torch.softmax(out.video_logits, dim=-1)

    @torch.no_grad()
    def candidates(
        self, out: TSRNetOutput, *, settings: Any, options: Any = None
    ) -> list[tuple[int, float, float, float]]:
        """Segments of the single video in ``out`` (§Temporal Action Detection, Eq. 10-12).

        For every class whose video score reaches ``settings.class_threshold`` (the top class
        if none does), each maximal run of snippets with ``w̄^c ≥ options.detect_threshold`` is a
        segment ``[first, last + 1)`` in snippet coordinates. The paper gives no segment score;
        by default (``options.segment_score="mean"``) it is the mean of w̄^c over the segment,
        the quantity the paper detects with ("w̄ provides class-specific information for
        temporal video detection"; the attention-weighted, stream-fused class score averaged
        over the proposal, as in STPN, which Eq. 10-11 follow). ``"oic"``: the outer-inner
        contrast of w̄^c (band ``settings.inflation``) plus ``settings.video_score_weight`` × the
        class's video score (earlier versions; not in the paper).

        Returns:
            ``(class, start, end, score)`` tuples.
        """
        if out.cas.shape[0] != 1:
            raise ValueError(f"candidates: one video, got a batch of {out.cas.shape[0]}")
        options = options if options is not None else TSRNetInferOptions()
        n = int(out.mask[0].sum())
        w_all, scores = self.probabilities(out)
        w = w_all[0, :n].double().cpu().numpy()  # (n, C)
        video = scores[0].double().cpu().numpy()  # (C,)
        chosen = chosen_classes(video, settings.class_threshold)
        found = []
        for c in chosen:
            for first, last in runs_above(w[:, c], options.detect_threshold):
                if options.segment_score == "mean":
                    score = float(w[first : last + 1, c].mean())
                else:
                    score = outer_inner_score(w[:, c], first, last, inflation=settings.inflation)
                    score += settings.video_score_weight * float(video[c])
                found.append((c, float(first), float(last + 1), score))
        return found

    def unread_infer_settings(self) -> frozenset[str]:
        """One threshold, ``infer.model.detect_threshold``, instead of the CAS levels."""
        return frozenset({"cas_thresholds"})

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Named per-snippet sequences for reports: ``cas`` (the fused w̄, (B, T, C)) and each
        stream's hop-mean attention rescaled as for Eq. (10) (B, T)."""
        out = self.forward(x, mask)
        seqs = {"cas": self.weighted_scores(out)}
        a = normalise_attention(out.attention.mean(dim=2), out.mask.unsqueeze(1),
                                how=self.attention_norm)
        for s, name in enumerate(self.stream_names):
            seqs[f"attention_{name}"] = a[:, s]
        return seqs

    # ---------------------------------------------------------------- optimisation

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """One optimizer group per stream, ``lr × lr_scales[stream]`` (1 for unnamed ones)."""
        return [{"params": list(net.parameters()), "lr": lr * self.lr_scales.get(name, 1.0)}
                for name, net in self.nets.items()]

    def classification_loss(self, out: TSRNetOutput, labels: Tensor) -> list[Tensor]:
        """``L_class`` of every stream: softmax cross-entropy on its video logits."""
        return [multilabel_softmax_ce(out.stream_logits[:, s], labels)
                for s in range(out.stream_logits.shape[1])]

    def transfer_loss(
        self, out: TSRNetOutput, labels: Tensor, reference: TransferReference | None
    ) -> tuple[list[Tensor], list[Tensor], int]:
        """``L_FC1`` and ``L_FC2`` of every stream (Eq. 7-8) against the trimmed
        representations ``reference`` (:meth:`trimmed_reference`); zeros (and 0 classes)
        without them (the transfer off)."""
        zero = out.video_logits.new_zeros(())
        n_streams = len(self.stream_names)
        if reference is None:
            return [zero] * n_streams, [zero] * n_streams, 0
        reps, t_labels = reference
        fc1, fc2, n_cls = [], [], 0
        for s, name in enumerate(self.stream_names):
            t = reps[s].to(out.pooled[s])
            lab = t_labels.to(labels.device)
            l1, n_cls = class_mmd(t, lab, out.pooled[s], labels, sigma=self.kt_sigma)
            fc1.append(l1)
            if self.kt_fc2:
                net = self.nets[name]
                l2, _ = class_mmd(net.fc1(t), lab, out.hidden[s], labels, sigma=self.kt_sigma)
                fc2.append(l2)
            else:
                fc2.append(zero)
        return fc1, fc2, n_cls

    def loss(
        self, out: TSRNetOutput, labels: Tensor, mask: Tensor, *, epoch: int, step: int = 0,
        reference: TransferReference | None = None, video_loss: str = "bce",
    ) -> tuple[Tensor, dict[str, float]]:
        """Eq. (9) summed over the streams: ``L_class + α R_smooth + β R_sparsity + L_FC1 +
        L_FC2`` (the regularisers only with self-attention, ``L_KT`` only with the trimmed
        representations ``reference`` that :meth:`pretrain` returns; ``L_FC2`` switched by
        ``kt_fc2``). ``epoch``, ``step`` and ``video_loss`` are not used.

        Returns:
            total and float parts per stream ``cls_<s>``, ``smooth_<s>``, ``sparsity_<s>``,
            ``kt_fc1_<s>``, ``kt_fc2_<s>``, plus ``kt_on``, ``kt_classes`` and ``total``.
        """
        del epoch, step, video_loss  # one objective throughout
        y = labels.to(out.video_logits.dtype)
        parts: dict[str, float] = {}
        total = out.video_logits.new_zeros(())
        cls = self.classification_loss(out, y)
        fc1, fc2, n_cls = self.transfer_loss(out, y, reference)
        for s, name in enumerate(self.stream_names):
            term = cls[s]
            parts[f"cls_{name}"] = cls[s].item()
            if self.attention:
                a = out.attention[:, s]  # (B, H, T)
                scale = 1.0
                if self.regularizer_norm == "length":  # per snippet: α, β free of the length
                    scale = 1.0 / mask.sum(dim=1).clamp(min=1).to(a.dtype)  # (B,)
                smooth = (smoothness(a, mask) * scale).mean()
                sparse = (sparsity(a, mask) * scale).mean()
                term = term + self.alpha * smooth + self.beta * sparse
                parts[f"smooth_{name}"] = smooth.item()
                parts[f"sparsity_{name}"] = sparse.item()
            if reference is not None:
                term = term + self.kt_weight * (fc1[s] + fc2[s])
                parts[f"kt_fc1_{name}"] = fc1[s].item()
                parts[f"kt_fc2_{name}"] = fc2[s].item()
            total = total + term
        parts["kt_on"] = float(reference is not None)
        parts["kt_classes"] = float(n_cls)
        parts["total"] = total.item()
        return total, parts

    # ---------------------------------------------------------------- knowledge transfer

    def trimmed_reference(self, reps: Sequence[Tensor], labels: Tensor) -> TransferReference:
        """The checked reference of :meth:`transfer_loss` (what :meth:`pretrain` returns after
        training the trimmed network).

        Args:
            reps: per stream (M, d_s) FC1 inputs ``m`` of the trimmed clips.
            labels: (M, C) their multi-hot labels in this model's class order.
        """
        if len(reps) != len(self.stream_names):
            raise ValueError(f"trimmed_reference needs one tensor per stream "
                             f"({self.stream_names})")
        for s, name in enumerate(self.stream_names):
            lo, hi = self.columns[name]
            if reps[s].shape != (len(labels), hi - lo):
                raise ValueError(f"stream {name!r}: trimmed representations are "
                                 f"{tuple(reps[s].shape)}, expected ({len(labels)}, {hi - lo})")
        return (tuple(reps), labels)

    def pretrain(self, inputs: PretrainInputs) -> Pretrained:
        """Train the trimmed network and return its representations of the clips (before the
        main loop).

        The trimmed network has this model's settings and is trained with ``L_class`` alone
        (no regularisers: the clips are trimmed) with the loop's optimizer, learning rates,
        schedule and batch size for ``trimmed_epochs`` (default ``settings.epochs``). Its
        self-attentive representations ``m`` of every clip, per stream, are the returned
        ``reference`` that the main loop hands :meth:`loss`; nothing of it enters the state
        dict.

        Args:
            videos: the untrimmed training videos (T_i, D), standardised (used for the log only).
            labels: (N, C) their multi-hot labels.
            trimmed: ``(clips (T_j, D), labels (M, C))`` standardised alike, or None.
            settings: the loop's ``TrainSettings``; rng: its generator; device: its device.

        With ``overlap_pretrain`` (table 4), this network is then trained on the videos of the
        classes with trimmed clips (:meth:`_pretrain_on_overlap`) before the main loop.

        Returns:
            the log (``train.json``'s ``pretrain``) and the reference (None: transfer off).
        """
        videos, labels, trimmed = inputs.videos, inputs.labels, inputs.trimmed
        settings, rng, device = inputs.settings, inputs.rng, inputs.device
        if not self.knowledge_transfer:
            return Pretrained(log={"kt": "off: switched off (knowledge_transfer: false)"})
        if trimmed is None or len(trimmed[0]) == 0:
            logger.warning("tsrnet: the dataset has no trimmed clips, so the knowledge transfer "
                           "(L_KT, Eq. 6-8)%s is off; training with L_SA alone",
                           " and the overlap pretraining (table 4)" if self.overlap_pretrain
                           else "")
            reason = "the dataset has no trimmed clips"
            return Pretrained(log={"kt": f"off: {reason}"}, transfer_missing=reason)
        clips, clip_labels = trimmed
        clip_labels = np.asarray(clip_labels, dtype=np.float32)
        shared = (clip_labels.sum(axis=0) > 0) & (np.asarray(labels).sum(axis=0) > 0)
        if not shared.any():
            logger.warning("tsrnet: no trimmed clip shares a class with the training videos, so "
                           "the knowledge transfer (L_KT) is off")
            reason = "no trimmed clip shares a class with the training videos"
            return Pretrained(log={"kt": f"off: {reason}"}, transfer_missing=reason)
        clip_settings = trimmed_schedule(settings, n_videos=len(videos), n_clips=len(clips),
                                         epochs=self.trimmed_epochs)
        epochs = clip_settings.epochs
        teacher = TSRNet(**self._config, knowledge_transfer=False,
                         lr_scales=self.lr_scales).to(device)
        curve = _fit_classifier(teacher, list(clips), clip_labels, settings=clip_settings,
                                rng=rng, device=device, epochs=epochs)
        teacher.eval()
        reps: list[list[Tensor]] = [[] for _ in self.stream_names]
        with torch.no_grad():
            for clip in clips:
                out = teacher(torch.from_numpy(np.asarray(clip, np.float32)).unsqueeze(0)
                              .to(device))
                for s in range(len(self.stream_names)):
                    reps[s].append(out.pooled[s][0])
        reference = self.trimmed_reference([torch.stack(r) for r in reps],
                                           torch.from_numpy(clip_labels).to(device))
        log: dict[str, Any] = {
            "kt": "on",
            "trimmed_clips": len(clips),
            "kt_classes": int(shared.sum()),
            "untrimmed_videos": len(videos),
            "trimmed_epochs": epochs,
            "trimmed_lr_milestones": list(clip_settings.lr_milestones),
            "trimmed_loss": curve,
        }
        if self.overlap_pretrain:
            log["overlap_pretrain"] = self._pretrain_on_overlap(inputs, shared, reference)
        return Pretrained(log=log, reference=reference, used_trimmed=True)

    def _pretrain_on_overlap(
        self, inputs: PretrainInputs, shared: np.ndarray, reference: TransferReference
    ) -> dict[str, Any]:
        """Table 4's "pretrain: [TSRNet@overlap30]": train this network (Eq. 9, with L_KT) on
        the untrimmed videos whose classes all have trimmed clips (the classes the trimmed and
        untrimmed sets share: 30 between UCF101 and ActivityNet1.3) for ``overlap_epochs``
        (default ``settings.epochs``), before the main loop refines it on every class."""
        labels = np.asarray(inputs.labels)
        keep = np.flatnonzero((labels > 0.5).any(axis=1) & ~((labels > 0.5) & ~shared).any(axis=1))
        if len(keep) == 0:
            logger.warning("tsrnet: no training video has only classes with trimmed clips, so "
                           "the overlap pretraining (table 4) is skipped")
            return {"videos": 0, "epochs": 0}
        settings = inputs.settings
        epochs = settings.epochs if self.overlap_epochs is None else self.overlap_epochs
        opt = make_optimizer(self.param_groups(settings.lr), optimizer=settings.optimizer,
                             lr=settings.lr, weight_decay=settings.weight_decay,
                             momentum=settings.momentum)
        curve = fit(
            self, [inputs.videos[i] for i in keep], labels[keep],
            loss_of=lambda out, y, mask, epoch, step: self.loss(
                out, y, mask, epoch=epoch, step=step, reference=reference),
            opt=opt, epochs=epochs, batch_size=settings.batch_size,
            max_seqlen=settings.max_seqlen, rng=inputs.rng, device=inputs.device,
            name="tsrnet overlap pretraining",
            schedule=step_schedule(opt, settings.lr_milestones, settings.lr_gamma)).loss
        return {"videos": len(keep), "classes": int(shared.sum()), "epochs": epochs,
                "loss": curve}


def trimmed_schedule(settings: TrainSettings, *, n_videos: int, n_clips: int,
                     epochs: int | None = None) -> TrainSettings:
    """The trimmed network's training settings: "identical settings to the untrimmed one"
    (TSRNet §"Knowledge transfer"), whose schedule the paper gives in iterations (batch 16, the
    learning rates divided by 10 every 5,000 iterations).

    With ``epochs`` None, the trimmed network makes as many iterations as the main loop and
    takes its learning-rate steps at the same iterations: the epochs and milestones of
    ``settings`` (counted in passes over ``n_videos`` untrimmed videos) are rescaled to passes
    over ``n_clips`` clips. (The same number of epochs would be n_clips / n_videos times as many
    iterations, 14 times as many for THUMOS14's 200 videos and the 2,766 UCF101 clips of its
    classes, with every learning-rate step that much later.) An explicit ``epochs`` is used as
    is, with the milestones of ``settings``.
    """
    if epochs is not None:
        return replace(settings, epochs=int(epochs))
    per_video = math.ceil(n_videos / settings.batch_size)  # iterations per epoch, main loop
    per_clip = math.ceil(n_clips / settings.batch_size)  # ... trimmed network

    def to_clip_epochs(e: int) -> int:
        return max(1, round(e * per_video / per_clip))

    return replace(settings, epochs=to_clip_epochs(settings.epochs),
                   lr_milestones=tuple(to_clip_epochs(m) for m in settings.lr_milestones))


def _fit_classifier(
    net: TSRNet,
    seqs: list[np.ndarray],
    labels: np.ndarray,
    *,
    settings: TrainSettings,
    rng: np.random.Generator,
    device: torch.device,
    epochs: int,
) -> list[float]:
    """Train ``net`` with ``L_class`` alone (the trimmed network); returns the loss per epoch.

    Uses the loop's optimizer (``settings.optimizer``: adam or sgd with ``momentum``), weight
    decay, per-stream learning rates (:meth:`TSRNet.param_groups`) and step schedule.
    """
    opt = make_optimizer(net.param_groups(settings.lr), optimizer=settings.optimizer,
                         lr=settings.lr, weight_decay=settings.weight_decay,
                         momentum=settings.momentum)
    return fit(
        net, seqs, labels,
        loss_of=lambda out, y, mask, epoch, step: (
            torch.stack(net.classification_loss(out, y)).sum(), {}),
        opt=opt, epochs=epochs, batch_size=settings.batch_size, max_seqlen=settings.max_seqlen,
        rng=rng, device=device, name="tsrnet trimmed network",
        schedule=step_schedule(opt, settings.lr_milestones, settings.lr_gamma)).loss
