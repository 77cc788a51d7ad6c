"""``ecm``: Equivalent Classification Mapping (Zhao, Han, Yang, Zhang; IEEE TPAMI).

One classifier Φ (three temporal convolutions, kernels 3, 3, 1) is learned by two streams:

* the *pre-classification* stream classifies every snippet (the class activation sequence,
  CAS) and pools the CAS with a top-k mean (k = T/8) into the video score s^e;
* the *post-classification* stream first aggregates the snippet features with category-specific
  weights, then classifies the aggregated features with the same Φ into s^o (action weights
  W^a) and s̃^o (background weights W^b = 1 − W^a).

The *equivalent weight-transition module* turns the CAS into W^a (a k=1 convolution over the
CAS, then a sigmoid). Section 3.1's *three-fold interleaved split* makes the aggregated input
three long, so that Φ's kernel-3 layers see the same structure as on snippets: snippets
t ≡ j (mod 3) form fold j, each fold gives one weighted feature per class, and class c's three
features form a length-3 sequence fed to Φ whose output channel c is Φ_c.

::

    x (B, T, D) ── Φ ──▶ CAS (B, T, C) ── top-k mean (k = ⌈T/8⌉) ──▶ s^e logits (B, C)
                          │
                          └─ Conv1d(C→C, 1) ─ sigmoid ─▶ W^a (B, T, C),  W^b = 1 − W^a
                                                          │
    x (B, T, D) ── three-fold weighted sums per class ◀───┘  f^a, f^b (B, C, 3, D)
               ── Φ (same weights) per class c: channel c, mean of 3 ─▶ s^o, s̃^o logits (B, C)

    L = L_cls,e + L_cls,o + α L_c2c + β L_a2c                                      (Eq. 5)

Readings of what the paper leaves open (each a builder argument):

* Classification scores are softmax probabilities over the C classes: L_cls,e and L_cls,o are
  the cross-entropy against the L1-normalised labels (Sec. 3.5); Eq. 3 and the τ = 0.25 class
  rejection read the same softmax scores (``scores="softmax"``; ``"sigmoid"`` swaps in the
  per-class binary cross-entropy, which is not the paper's).
* Eq. 4 is a binary cross-entropy over k positive and k negative entries, each the output of
  one sub-classifier Φ_c on one feature: by default its probabilities are sigmoids
  (``a2c_activation="sigmoid"``). With softmax scores (``"softmax"``), lowering s̃^o_k raises
  the absent classes' scores on background-weighted features; on the demo that flattened the
  CAS.
* The weighted sums of Eq. 1 / Eq. 2 are divided by the fold's snippet count
  (``aggregation="length"``): still linear in the features, with a scale that does not grow
  with T. ``"weights"`` divides by the weight sum, ``"none"`` keeps Eq. 1's raw sum.
* What Eq. 4's absence term log(1 − s̃^o) trains (``a2c_absence_trains``). Sec. 3.4 motivates
  L_a2c by the aggregation weights: W^b = 1 − W^a must "exclude all action snippets", and it
  "assists the learning of the attention weights". By default (``"weights"``) the absence term
  reaches the weights only (W^a, hence the weight-transition module and, through it, the
  CAS): Φ enters it with its parameters as constants. The presence term log s^o trains
  everything. With ``"all"`` the absence term also trains Φ, pushing Φ_c down on the
  background aggregate, an average of many snippets; on the demo (three training seeds,
  mAP@0.5 on the *training* videos, sigmoid scores) that corrupted the shared classifier:
  0.56 / 0.76 / 0.42 against 0.95 / 0.87 / 0.94 with ``"weights"``, whose CAS is as crisp
  as without L_a2c.
* Φ_c's score of a class's length-3 sequence is the mean of its three outputs.
* The video score used at inference is the softmax of the mean of the two streams' logits
  (c2c makes them agree); the weight-transition input is the CAS logits.

Inference (Sec. 3.5, :meth:`ECM.candidates`): classes whose video score is under τ = 0.25 are
discarded (``class_threshold`` of the infer settings; the best class is kept if none passes),
the remaining CAS are min-max normalised along time, and temporal actionness grouping (TAG of
SSN, ECM's [23]) turns each into proposals: at every threshold τ of ``cas_thresholds`` the runs
of snippets above it are the "basins"; from every basin the following basins are absorbed one
by one while the basins still cover at least a fraction γ of the merged span, for every γ of
``tag_gammas`` (:func:`actionness_groups`). ECM gives no values; SSN's multi-threshold scheme
samples τ and γ on an even grid of step 0.05 in (0, 1), which is the default
(:data:`SSN_GRID`; γ = 1 alone is plain thresholding). ECM does not say how a proposal is
scored either: its inference follows BaSNet [33] (the τ rejection), which scores a proposal by
its outer-inner contrast on the CAS (AutoLoc's, band ``inflation``); that contrast alone is
the default. The ``video_score_weight`` × video score term some implementations add (0.2) is
in neither paper; it is kept as a setting (``infer.video_score_weight``, 0 in ecm.yaml) and an
ablation row. The pipeline's NMS then removes duplicates. Table 6's frame accuracy is
:func:`wtal.frame_metrics.frame_accuracy`.

Table 5 (model ensemble): with ``independent_streams=True`` (two classifiers, no L_c2c /
L_a2c, the post stream's weights transited from its own classifier's CAS) the two streams
share no parameter, which is training the pre- and post-classification networks
independently; ``ECMInferOptions.cas_source`` then localises from Φ_pre's CAS (``pre``), from
Φ_post's (``post``), from both with the proposals merged (``merge``), or from the fused
λ·CAS_pre + (1 − λ)·CAS_post (``weighted``, λ = ``fusion_lambda``).

The features are the concatenated RGB and flow I3D features (Sec. 4.1): ECM learns one network
on both, so it has no per-stream sub-networks.

Padded snippets (``mask`` False) influence nothing: they are zeroed before every temporal
convolution (so a padded batch equals the unpadded videos with the convolutions' own zero
padding), left out of the top-k mean, and get zero aggregation weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wtal.losses import multilabel_bce, multilabel_softmax_ce
from wtal.models.base import Localizer
from wtal.models.cas_baseline import temporal_pool
from wtal.models.registry import register_model
from wtal.postprocess import chosen_classes, masked_minmax, outer_inner_score, runs_above


class ECMOutput(NamedTuple):
    """What ECM gives for a batch (stream outputs are None when the stream is switched off)."""

    cas: Tensor  # (B, T, C) snippet class logits of Φ (Φ_pre when not shared)
    video_logits: Tensor  # (B, C) mean of the enabled streams' video logits (s^e, s^o)
    pre_logits: Tensor | None  # (B, C) s^e logits: top-k mean of the CAS
    post_logits: Tensor | None  # (B, C) s^o logits: Φ_c on the action-weighted features
    post_bg_logits: Tensor | None  # (B, C) s̃^o logits: Φ_c on the background-weighted features
    action_weights: Tensor | None  # (B, T, C) W^a in [0, 1], 0 at padding
    mask: Tensor  # (B, T) valid snippets
    post_cas: Tensor | None = None  # (B, T, C) snippet logits of Φ_post (two classifiers only)


# ---- building blocks --------------------------------------------------------------------------


class TemporalClassifier(nn.Module):
    """Φ: Conv1d(D→H, 3) ─ ReLU ─ Dropout ─ Conv1d(H→H, 3) ─ ReLU ─ Dropout ─ Conv1d(H→C, 1)."""

    def __init__(self, *, in_dim: int, num_classes: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.head = nn.Conv1d(hidden, num_classes, 1)
        self.drop = nn.Dropout(dropout)

    def embed(self, x: Tensor, mask: Tensor | None = None, *, frozen: bool = False) -> Tensor:
        """The two kernel-3 layers: x (N, D, L), mask (N, L) → (N, H, L), zero at padding.

        ``frozen``: Φ's parameters enter as constants (no gradient reaches them; the input
        still gets its gradient).
        """
        m = None if mask is None else mask.unsqueeze(1).to(x.dtype)  # (N, 1, L)
        if m is not None:
            x = x * m
        h = self.drop(F.relu(_conv(self.conv1, x, frozen=frozen)))  # (N, H, L)
        if m is not None:
            h = h * m
        h = self.drop(F.relu(_conv(self.conv2, h, frozen=frozen)))  # (N, H, L)
        if m is not None:
            h = h * m
        return h

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-position class logits: x (N, D, L) → (N, C, L)."""
        return self.head(self.embed(x, mask))

    def per_class(self, feats: Tensor, *, frozen: bool = False) -> Tensor:
        """Sub-classifier Φ_c on class c's own sequence: feats (B, C, L, D) → (B, C, L) logits.

        Equals running Φ on each class's (L, D) sequence and keeping output channel c, without
        computing the C − 1 unused channels. ``frozen``: as in :meth:`embed`.
        """
        b, c, length, d = feats.shape
        h = self.embed(feats.reshape(b * c, length, d).transpose(1, 2), frozen=frozen)
        h = h.reshape(b, c, -1, length)  # (B, C, H, L)
        w, bias = self.head.weight[:, :, 0], self.head.bias  # (C, H), (C,)
        if frozen:
            w, bias = w.detach(), bias.detach()
        return torch.einsum("bchl,ch->bcl", h, w) + bias[None, :, None]  # (B, C, L)


def _conv(layer: nn.Conv1d, x: Tensor, *, frozen: bool) -> Tensor:
    """``layer(x)``, with the layer's parameters as constants when ``frozen``."""
    if not frozen:
        return layer(x)
    bias = None if layer.bias is None else layer.bias.detach()
    return F.conv1d(x, layer.weight.detach(), bias, stride=layer.stride, padding=layer.padding,
                    dilation=layer.dilation, groups=layer.groups)


def three_fold_aggregate(
    x: Tensor,
    weights: Tensor,
    mask: Tensor,
    *,
    folds: int = 3,
    normalize: str = "length",
    eps: float = 1e-6,
) -> Tensor:
    """Category-specific aggregated features with the interleaved split of Sec. 3.1 (Fig. 3).

    Snippet t goes to fold t mod ``folds`` ("sampling every three snippets"); within fold j,
    class c's feature is the weighted sum of Eq. 1 / Eq. 2, Σ_{t ∈ j} w_{c,t} f_t, divided by

    * ``length`` (default): the fold's number of valid snippets, a constant, so the feature is
      still Eq. 1's linear weighted sum, only with a scale that does not grow with T;
    * ``weights``: Σ_{t ∈ j} w_{c,t}, a convex combination of the fold's snippets; a fold
      without weight gives a zero feature;
    * ``none``: nothing (Eq. 1 literally; its scale grows with T).

    Args:
        x: (B, T, D) snippet features.
        weights: (B, T, C) aggregation weights (W^a or W^b).
        mask: (B, T) valid snippets; padded ones get zero weight.
        folds: number of interleaved folds (3 in the paper, to fit Φ's kernel 3).
        normalize: ``weights``, ``length`` or ``none`` (see above).
        eps: added to the denominators.

    Returns:
        (B, C, folds, D): for each class, its ``folds`` features in fold order.
    """
    t = torch.arange(x.shape[1], device=x.device)
    onehot = F.one_hot(t % folds, folds).to(x.dtype)  # (T, F)
    w = weights * mask.unsqueeze(-1).to(weights.dtype)  # (B, T, C)
    wf = w.unsqueeze(-1) * onehot[None, :, None, :]  # (B, T, C, F)
    x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    num = torch.einsum("btcf,btd->bcfd", wf, x)  # (B, C, F, D)
    if normalize == "weights":
        den = wf.sum(dim=1)  # (B, C, F)
    elif normalize == "length":
        den = (mask.to(x.dtype).unsqueeze(-1) * onehot).sum(dim=1).unsqueeze(1)  # (B, 1, F)
    elif normalize == "none":
        return num
    else:
        raise ValueError(f"unknown normalize {normalize!r} (weights, length or none)")
    return num / (den.unsqueeze(-1) + eps)


def class_scores(video_logits: Tensor, *, scores: str = "softmax") -> Tensor:
    """Video logits (B, C) → classification scores: ``softmax`` over the classes (the paper's
    reading) or an independent ``sigmoid`` per class."""
    if scores == "softmax":
        return F.softmax(video_logits, dim=1)
    if scores == "sigmoid":
        return torch.sigmoid(video_logits)
    raise ValueError(f"unknown scores {scores!r} (softmax or sigmoid)")


def classification_loss(video_logits: Tensor, labels: Tensor, *, scores: str = "softmax") -> Tensor:
    """L_cls,e / L_cls,o (Sec. 3.5), averaged over the batch: with ``softmax`` scores (the
    paper), the cross-entropy between the softmax and the L1-normalised multi-hot labels; with
    ``sigmoid`` scores (not the paper), the per-class binary cross-entropy on the labels."""
    if scores == "softmax":
        return multilabel_softmax_ce(video_logits, labels)
    if scores == "sigmoid":
        return multilabel_bce(video_logits, labels)
    raise ValueError(f"unknown scores {scores!r} (softmax or sigmoid)")


def c2c_loss(pre_logits: Tensor, post_logits: Tensor, *, scores: str = "softmax") -> Tensor:
    """L_c2c (Eq. 3): (1/C) Σ_i (s^e_i − s^o_i)² on the classification scores, averaged over
    videos."""
    s_e = class_scores(pre_logits, scores=scores)  # (B, C)
    s_o = class_scores(post_logits, scores=scores)  # (B, C)
    return ((s_e - s_o) ** 2).mean(dim=1).mean()


def a2c_loss(
    post_logits: Tensor, post_bg_logits: Tensor, labels: Tensor, *, activation: str = "sigmoid"
) -> Tensor:
    """L_a2c (Eq. 4): −1/(2k) [Σ_i log s^o_{k_i} + Σ_i log(1 − s̃^o_{k_i})] over the k labelled
    classes of each video, averaged over the videos with at least one label.

    Eq. 4 is a binary cross-entropy over k positive (s^o) and k negative (s̃^o) entries, each
    the output of one sub-classifier Φ_c on one feature; ``activation`` says how a logit
    becomes that probability:

    * ``sigmoid`` (default): s = σ(z), each entry an independent presence probability; only
      the labelled classes' sub-classifiers are trained.
    * ``softmax``: s = softmax over the C classes (the scores of L_cls). log(1 − s̃_c) is then
      logsumexp over the other classes minus logsumexp over all; note that lowering s̃_k this
      way *raises* the other classes' scores on the background-weighted features.
    """
    pos = labels > 0  # (B, C)
    if activation == "sigmoid":
        log_s = F.logsigmoid(post_logits)  # log s^o, (B, C)
        log_not = F.logsigmoid(-post_bg_logits)  # log(1 − s̃^o), (B, C)
    elif activation == "softmax":
        log_s = F.log_softmax(post_logits, dim=1)  # (B, C)
        z = post_bg_logits
        eye = torch.eye(z.shape[1], dtype=torch.bool, device=z.device)  # (C, C)
        others = z.unsqueeze(1).masked_fill(eye, float("-inf"))  # (B, C, C): row c without c
        log_not = torch.logsumexp(others, dim=2) - torch.logsumexp(z, dim=1, keepdim=True)
    else:
        raise ValueError(f"unknown a2c activation {activation!r} (sigmoid or softmax)")
    k = pos.sum(dim=1)  # (B,)
    terms = torch.where(pos, log_s + log_not, torch.zeros_like(log_s)).sum(dim=1)  # (B,)
    has = k > 0
    if not bool(has.any()):
        return post_logits.sum() * 0.0
    return (-terms[has] / (2 * k[has].to(terms.dtype))).mean()


# ---- inference (Sec. 3.5) ---------------------------------------------------------------------


def actionness_groups(seq: np.ndarray, threshold: float, gamma: float) -> list[tuple[int, int]]:
    """Temporal actionness grouping (SSN's TAG) of one (T,) sequence at one (threshold, γ).

    The maximal runs of snippets with ``seq >= threshold`` are the basins. From every basin,
    the following basins are merged in one by one while the basins still cover at least ``γ``
    of the merged span; every basin and every merged group is a proposal ``(first, last)``
    (inclusive snippet indices). γ = 1 gives the basins alone.
    """
    basins = runs_above(seq, threshold)
    found: set[tuple[int, int]] = set(basins)
    for i, (first, last) in enumerate(basins):
        covered = last - first + 1
        for lo, hi in basins[i + 1 :]:
            covered += hi - lo + 1
            if covered < gamma * (hi - first + 1):
                break
            found.add((first, hi))
    return sorted(found)


# ---- the model --------------------------------------------------------------------------------


#: SSN's TAG grid (ECM's [23]): τ and γ sampled in (0, 1) with an even step of 0.05.
SSN_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))

CAS_SOURCES = ("pre", "post", "merge", "weighted")


@dataclass(frozen=True)
class ECMInferOptions:
    """ECM's own inference knobs (``infer.model`` in its settings).

    ``tag_gammas``: TAG's γ (basins merged while they cover ≥ γ of the span), SSN's grid by
    default; ``cas_source`` / ``fusion_lambda``: which CAS is localised (table 5; ``pre`` is Φ's
    CAS, the only one with a shared classifier).
    """

    tag_gammas: tuple[float, ...] = SSN_GRID
    cas_source: str = "pre"  # pre, post, merge (both, proposals pooled) or weighted (λ-fused)
    fusion_lambda: float = 0.8  # λ of table 5's weighted sum λ·CAS_pre + (1 − λ)·CAS_post

    def __post_init__(self) -> None:
        gammas = tuple(float(g) for g in self.tag_gammas)
        if not gammas or not all(0.0 < g <= 1.0 for g in gammas):
            raise ValueError(f"tag_gammas must be values in (0, 1], got {self.tag_gammas!r}")
        object.__setattr__(self, "tag_gammas", gammas)
        if self.cas_source not in CAS_SOURCES:
            raise ValueError(f"unknown cas_source {self.cas_source!r} ({', '.join(CAS_SOURCES)})")
        if not 0.0 <= float(self.fusion_lambda) <= 1.0:
            raise ValueError(f"fusion_lambda must be in [0, 1], got {self.fusion_lambda!r}")


@register_model("ecm")
class ECM(Localizer):
    """Pre- and post-classification streams sharing one classifier (Fig. 2).

    pre only: ``post_stream=False, a2c=False, c2c=False``; post only: ``pre_stream=False,
    a2c=False, c2c=False``; shared: ``a2c=False, c2c=False``; +L_a2c: ``c2c=False``;
    not shared: ``shared_classifier=False``; full ECM: the defaults.
    """

    InferOptions = ECMInferOptions

    def __init__(
        self,
        *,
        in_dim: int,  # feature dimension D (2048 for two-stream I3D)
        num_classes: int,  # C (at least 2 with softmax scores)
        hidden: int = 512,  # channels of Φ's two kernel-3 layers (not given in the paper)
        dropout: float = 0.7,  # dropout after Φ's kernel-3 layers (not given in the paper)
        topk_ratio: float = 0.125,  # k = ⌈T/8⌉ of the top-k mean (Sec. 4.1)
        pre_stream: bool = True,  # table 4 "Pre-Cls"
        post_stream: bool = True,  # table 4 "Post-Cls"
        shared_classifier: bool = True,  # table 4: one Φ for both streams (ECM) or two
        a2c: bool = True,  # table 4 "+L_a2c" (needs the post stream)
        c2c: bool = True,  # table 4 "+L_c2c" (needs both streams)
        alpha: float = 0.05,  # weight of L_c2c (Eq. 5)
        beta: float = 5.0,  # weight of L_a2c (Eq. 5)
        class_specific_weights: bool = True,  # False: one class-agnostic W^a (Sec. 4.3 variant)
        folds: int = 3,  # interleaved folds of the post stream (Sec. 3.1)
        a2c_activation: str = "sigmoid",  # probabilities of Eq. 4: sigmoid or softmax
        aggregation: str = "length",  # what Eq. 1 / 2 sums are divided by: length, weights, none
        scores: str = "softmax",  # class scores of L_cls, Eq. 3 and τ: softmax (paper) or sigmoid
        a2c_absence_trains: str = "weights",  # what log(1 − s̃^o) of Eq. 4 trains: weights | all
        independent_streams: bool = False,  # table 5: Φ_post's weights from its own CAS
    ) -> None:
        super().__init__()
        if scores not in {"softmax", "sigmoid"}:
            raise ValueError(f"unknown scores {scores!r} (softmax or sigmoid)")
        if num_classes < 2 and (scores == "softmax" or a2c_activation == "softmax"):
            raise ValueError("softmax scores need at least 2 classes")
        if not (pre_stream or post_stream):
            raise ValueError("ECM needs at least one of pre_stream and post_stream")
        if c2c and not (pre_stream and post_stream):
            raise ValueError("c2c (Eq. 3) compares the two streams: it needs both")
        if a2c and not post_stream:
            raise ValueError("a2c (Eq. 4) is a loss of the post-classification stream")
        if not shared_classifier and not (pre_stream and post_stream):
            raise ValueError("shared_classifier=False only makes sense with both streams")
        if independent_streams and (shared_classifier or a2c or c2c):
            raise ValueError("independent_streams (table 5) needs shared_classifier=False, "
                             "a2c=False and c2c=False: the two networks share nothing")
        if folds < 1:
            raise ValueError("folds must be at least 1")
        if aggregation not in {"weights", "length", "none"}:
            raise ValueError(f"unknown aggregation {aggregation!r} (weights, length or none)")
        if a2c_absence_trains not in {"weights", "all"}:
            raise ValueError(
                f"unknown a2c_absence_trains {a2c_absence_trains!r} (weights or all)")
        if a2c_activation not in {"sigmoid", "softmax"}:
            raise ValueError(f"unknown a2c_activation {a2c_activation!r} (sigmoid or softmax)")
        self.num_classes = num_classes
        self.topk_ratio = topk_ratio
        self.pre_stream = pre_stream
        self.post_stream = post_stream
        self.shared_classifier = shared_classifier
        self.use_a2c = a2c
        self.use_c2c = c2c
        self.alpha = alpha
        self.beta = beta
        self.folds = folds
        self.a2c_activation = a2c_activation
        self.a2c_absence_trains = a2c_absence_trains
        self.aggregation = aggregation
        self.scores = scores
        self.independent_streams = independent_streams
        self.classifier = TemporalClassifier(
            in_dim=in_dim, num_classes=num_classes, hidden=hidden, dropout=dropout
        )
        self.post_classifier: TemporalClassifier | None = None
        self.transition: nn.Conv1d | None = None
        if post_stream:
            if not shared_classifier:
                self.post_classifier = TemporalClassifier(
                    in_dim=in_dim, num_classes=num_classes, hidden=hidden, dropout=dropout
                )
            out_channels = num_classes if class_specific_weights else 1
            self.transition = nn.Conv1d(num_classes, out_channels, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> ECMOutput:
        """Args: x (B, T, D) features; mask (B, T) valid snippets (default: all)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        mask = mask.bool()
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)  # (B, T, D)
        cas = self.classifier(x.transpose(1, 2), mask).transpose(1, 2)  # (B, T, C)
        pre_logits = post_logits = post_bg_logits = action_weights = post_cas = None
        stream_logits = []
        if self.pre_stream:
            pre_logits = temporal_pool(cas, mask, pooling="topk", topk_ratio=self.topk_ratio)
            stream_logits.append(pre_logits)  # (B, C)
        if self.post_stream:
            assert self.transition is not None
            m = mask.unsqueeze(-1).to(cas.dtype)  # (B, T, 1)
            phi = self.post_classifier if self.post_classifier is not None else self.classifier
            if self.post_classifier is not None:
                post_cas = phi(x.transpose(1, 2), mask).transpose(1, 2)  # (B, T, C)
            # weight transition from Φ's CAS (ECM) or, table 5, from Φ_post's own CAS
            source = post_cas if self.independent_streams else cas
            wa = torch.sigmoid(self.transition(source.transpose(1, 2))).transpose(1, 2)
            action_weights = wa.expand(-1, -1, self.num_classes) * m  # (B, T, C)
            agg = {"folds": self.folds, "normalize": self.aggregation}
            f_a = three_fold_aggregate(x, action_weights, mask, **agg)  # (B, C, 3, D)
            post_logits = phi.per_class(f_a).mean(dim=2)  # (B, C)
            if self.use_a2c:
                background_weights = (1.0 - action_weights) * m  # W^b = 1 − W^a, (B, T, C)
                f_b = three_fold_aggregate(x, background_weights, mask, **agg)  # (B, C, 3, D)
                frozen = self.a2c_absence_trains == "weights"
                post_bg_logits = phi.per_class(f_b, frozen=frozen).mean(dim=2)  # (B, C)
            stream_logits.append(post_logits)
        video_logits = torch.stack(stream_logits).mean(dim=0)  # (B, C)
        return ECMOutput(cas=cas, video_logits=video_logits, pre_logits=pre_logits,
                         post_logits=post_logits, post_bg_logits=post_bg_logits,
                         action_weights=action_weights, mask=mask, post_cas=post_cas)

    def loss(
        self, out: ECMOutput, labels: Tensor, mask: Tensor, *, epoch: int, step: int = 0,
        reference: Any = None, video_loss: str = "bce",
    ) -> tuple[Tensor, dict[str, float]]:
        """Eq. 5: L_cls,e + L_cls,o + α L_c2c + β L_a2c (terms of switched-off parts left out).

        ``mask`` is already applied in ``forward``; ``epoch``, ``step``, ``reference`` and
        ``video_loss`` are unused (no schedule, no pretraining).
        """
        del mask, epoch, step, reference, video_loss
        total = out.video_logits.new_zeros(())
        parts: dict[str, float] = {}
        if out.pre_logits is not None:
            term = classification_loss(out.pre_logits, labels, scores=self.scores)
            total = total + term
            parts["cls_e"] = term.item()
        if out.post_logits is not None:
            term = classification_loss(out.post_logits, labels, scores=self.scores)
            total = total + term
            parts["cls_o"] = term.item()
        if self.use_c2c and out.pre_logits is not None and out.post_logits is not None:
            term = c2c_loss(out.pre_logits, out.post_logits, scores=self.scores)
            total = total + self.alpha * term
            parts["c2c"] = term.item()
        if self.use_a2c and out.post_logits is not None and out.post_bg_logits is not None:
            term = a2c_loss(out.post_logits, out.post_bg_logits, labels,
                            activation=self.a2c_activation)
            total = total + self.beta * term
            parts["a2c"] = term.item()
        return total, parts

    def probabilities(self, out: ECMOutput) -> tuple[Tensor, Tensor]:
        """Inference scores (Sec. 3.5): the CAS min-max normalised along time over the valid
        snippets, (B, T, C) in [0, 1], and the video scores (B, C) that τ rejects."""
        return masked_minmax(out.cas, out.mask), class_scores(out.video_logits, scores=self.scores)

    def candidates(
        self, out: ECMOutput, *, settings: Any, options: Any = None
    ) -> list[tuple[int, float, float, float]]:
        """Proposals of one video (batch 1), Sec. 3.5: (class, start, end, score), snippet units.

        Classes with a video score under τ (``settings.class_threshold``) are dropped (the best
        is kept if none passes); each kept class's min-max normalised CAS (the one
        ``options.cas_source`` names, :meth:`localised_cas`) goes through
        :func:`actionness_groups` at every level τ of ``settings.cas_thresholds`` and every γ of
        ``options.tag_gammas``; a proposal [first, last + 1) is scored by its outer-inner
        contrast on that CAS (band ``settings.inflation``), plus ``settings.video_score_weight``
        × the video score (0 in ecm.yaml: not in the paper).
        """
        if out.cas.shape[0] != 1:
            raise ValueError(f"candidates: one video, got a batch of {out.cas.shape[0]}")
        options = options if options is not None else ECMInferOptions()
        scores = class_scores(out.video_logits, scores=self.scores)[0].detach().cpu().double()
        scores_np = scores.numpy()  # (C,)
        kept = chosen_classes(scores_np, settings.class_threshold)
        found: list[tuple[int, float, float, float]] = []
        for cas in self.localised_cas(out, options):
            for c in kept:
                best: dict[tuple[int, int], float] = {}
                for level in settings.cas_thresholds:
                    for gamma in options.tag_gammas:
                        for first, last in actionness_groups(cas[:, c], level, gamma):
                            if (first, last) in best:
                                continue
                            best[(first, last)] = (
                                outer_inner_score(cas[:, c], first, last,
                                                  inflation=settings.inflation)
                                + settings.video_score_weight * float(scores_np[c]))
                found.extend((c, float(f), float(la + 1), sc) for (f, la), sc in best.items())
        return found

    def localised_cas(self, out: ECMOutput, options: ECMInferOptions) -> list[np.ndarray]:
        """The min-max normalised CAS (T, C) that :meth:`candidates` groups, one video:

        * ``pre``: Φ's CAS (Φ_pre with two classifiers; the shared Φ in ECM);
        * ``post``: Φ_post's CAS on the snippets (Φ's when shared);
        * ``merge``: both, each grouped on its own, proposals pooled (table 5 "Merge");
        * ``weighted``: λ·CAS_pre + (1 − λ)·CAS_post of the two normalised CAS, normalised
          again (table 5 "Weighted sum λ").
        """
        m = out.mask[:1]
        pre = masked_minmax(out.cas[:1], m)
        post = pre if out.post_cas is None else masked_minmax(out.post_cas[:1], m)
        if options.cas_source == "pre":
            seqs = [pre]
        elif options.cas_source == "post":
            seqs = [post]
        elif options.cas_source == "merge":
            seqs = [pre, post]
        else:
            lam = float(options.fusion_lambda)
            seqs = [masked_minmax(lam * pre + (1.0 - lam) * post, m)]
        return [s[0].detach().cpu().double().numpy() for s in seqs]

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """The named per-snippet scores a report plots (see :mod:`wtal.report`):

        * ``cas``: the CAS of Φ min-max normalised along time (B, T, C), what the localiser
          reads (Sec. 3.5);
        * ``action_weights``: W^a (B, T, C) of the weight-transition module (post stream only);
        * ``background_weights``: W^b = 1 − W^a (B, T, C) (post stream only).
        """
        out = self.forward(x, mask)
        seqs = {"cas": masked_minmax(out.cas, out.mask)}
        if out.action_weights is not None:
            m = out.mask.unsqueeze(-1).to(out.action_weights.dtype)
            seqs["action_weights"] = out.action_weights
            seqs["background_weights"] = (1.0 - out.action_weights) * m
        return seqs
