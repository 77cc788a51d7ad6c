"""``assg``: Adversarial Seeded Sequence Growing (Zhang, Xu, Cheng et al., ACM MM 2019).

Two modules share one feature map and are trained adversarially (Algorithm 1):

* **SSG** (seeded sequence growing, §3.2): two temporal convolutions (512 filters, k = 1, ReLU)
  give the shared feature map ``F``; a k = 1 convolution gives the class heatmaps
  ``H`` (C + 1 channels, channel 0 = background, a softmax over the channels). The initial
  seeds grow by the rule of Eq. 1 (:func:`grow_seeds`) and ``H`` is trained on the grown
  labels only with the seeding loss of Eq. 4 (:func:`seeding_loss`).
* **Self-adaptive classifier** (§3.3): per class ``c``, the snippets where ``H_c > θ_a``
  (0.4) are erased from ``F`` (set to zero, ``F̂``); the erased heatmap ``Ĥ`` is pooled over
  time by self-adaptive pooling (Eq. 2–3, :func:`self_adaptive_pool`), whose attention is the
  softmax over time of the summed foreground activations ``ReLU(F̂)``: no parameter of its
  own. Classification loss Eq. 5 (:func:`classification_loss`).

::

    x (B, T, D) ─ seed net (cas_baseline, frozen) ─▶ CAS ─ peaks ≥ fg_seed_threshold ─┐
                └ shot changes of the features ───────────────────────── background ──┤ S
    x[:, :, stream] ─ Conv1d(D_s→512, 1) ─ ReLU ─ Conv1d(512→512, 1) ─▶ F (B, T, 512)   │
        F ─ [ReLU(F); ReLU(−F)] ─ Conv1d(1024→C+1, 1) ─ softmax ─▶ H (B, T, C+1)  ◀─ grow (Eq. 1)
        │                                                    │                   L_seed (Eq. 4)
        └─ erase t where H_c > θ_a ─▶ F̂_c ─ same head ─▶ Ĥ_c ─ SAP (Eq. 2–3) ─▶ L_class (Eq. 5)
    streams (RGB, flow): independent sub-networks; H fused λ·H_rgb + (1 − λ)·H_flow  (Eq. 6)

Readings of what the paper leaves open (each documented where it is implemented):

* **Seeds** (§3.2.1). Foreground: the project's ``cas_baseline`` (:class:`CASBaseline`) is
  the CAS-based network (the paper uses STPN or STAR); it is trained in :meth:`ASSG.pretrain`
  on the training videos, kept as the registered submodule ``seed_net`` (saved with the
  model) and frozen afterwards (evaluation mode, outside :meth:`ASSG.param_groups`, its
  outputs detached in the losses). Seeds of a labelled class are the snippets whose CAS,
  min-max normalised over the video, reaches ``fg_seed_threshold`` (the paper: "peaks ... by
  a relatively high threshold", value not given). Background: the paper takes shot changes
  found by saliency detection (UntrimmedNet's shot detector); we use the project's shot
  detector on feature differences (:func:`wtal.sampling.shot_boundaries`): the two snippets
  around each shot change are background seeds (``bg_seeds="shots"``, the paper's).
  ``bg_seeds="shots+cas"`` adds the snippets where the seed CAS of every labelled class is at
  most ``bg_seed_threshold`` (not in the paper). Seeds are recomputed on every batch.
* **Growing** (Eq. 1, Algorithm 1 lines 4–12): every step the initial seeds are grown anew
  to convergence (as the deep seeded region growing the paper follows): in one dimension, a
  location is labelled ``c`` when it is connected to a seed of ``c`` through locations that
  are seeds of ``c`` or satisfy ``H_c ≥ θ_g^c`` and ``c = argmax H``; class by class, so a
  location may carry two labels.
* **Opposite ReLUs** (§3.3): the ReLU after the second convolution is the pair
  ``[ReLU(F); ReLU(−F)]``, so that foreground classes can grow on the positive part of ``F`` and
  the background on the negative part; the classifier reads the foreground part ``ReLU(F̂)``.
* **Erasing** zeroes ``F`` at the erased snippets, so ``Ĥ_c`` there is the head's bias alone
  and ``A_c`` sees a zero activation sum.
* **Ĥ and Eq. 5**: Eq. 5 is a cross-entropy "over multiple categories" c = 1..C, the video's
  action classes, so ``Ĥ`` is the softmax of the eroded heatmap logits over the C foreground
  channels (the background is no category of the labels). With the (C + 1)-way softmax of
  ``H`` instead, the classifier pushed the background snippets left after erasing towards
  the video's class, against the background seeds, and on the demo the SSG never settled
  (mAP@0.5 0.66 against 0.875, same seed and proposal level).
* **Alternation** (Algorithm 1, lines 13 and 17): by the main loop's step count (``step`` of
  :meth:`ASSG.loss`, from 0): the 1st, 3rd, … minimise ``L_seed`` (all SSG parameters), the
  others ``L_class``, which updates the feature map's parameters (``F``, line 17) only: the
  head is applied with detached weights. The training loop zeroes gradients with
  ``set_to_none``, so what a step's loss does not involve is not updated by Adam. Both losses
  are logged at every step.
* **Streams**: RGB and flow are trained separately in the paper; here one sub-network per
  column range of ``streams`` (``None``: one stream of all columns), on the same batches,
  with the loss the sum of the streams' losses. The streams share no parameter, and Adam's
  update of a parameter depends on its own gradient only, so this equals training them
  separately on the same batches (tested: one stream's gradients do not depend on the
  other's features). One seed network on all columns gives both streams their seeds.
* **Prediction** (§3.5, Eq. 6): the streams' heatmaps are fused with λ (RGB) and 1 − λ (flow)
  (equal weights for other stream names); :meth:`ASSG.candidates` thresholds the fused heatmap of
  each selected class at the levels ``cas_thresholds`` and scores a run by its mean fused
  heatmap (Eq. 6), plus ``video_score_weight`` times the video score (0 in the paper's
  settings); the generic loop then applies NMS. The proposal level is not in the paper. The
  fused heatmap is a probability over the background and the C classes (§3.2.2, a convex
  combination of the streams' in Eq. 6), so the config's default is one level, 0.5: class c
  where it is more probable than not, hence the argmax (Eq. 1's labelling condition without
  θ_g). A dataset's own level is chosen on its training videos only, by cross-validation
  (:func:`choose_proposal_level`). One level: with several, a run's high-scoring inner
  fragments outrank it under Eq. 6's mean, which fragments the detections.
* **Video-level scores**, which choose the classes to localise: the paper defines none of its
  own; for its comparisons it "follow[s] their prediction operations" (§4.4), those of the
  CAS network that gave the seeds (STPN keeps the classes its video-level classification
  scores). So by default (``video_scores="seed"``) they are the seed network's
  classification. ``"max"`` takes the larger of that and the SAP of the fused heatmap
  without erasing (the classifier's view at test time); on the demo the SAP then kept
  classes the seed network rejects and ranked their runs above the true class's (test
  videos 3 and 5: mAP@0.5 0.85 against 0.875 with ``"seed"``).

Ablation switches: ``pooling`` ``sap`` / ``gap`` / ``gmp`` (table 1) and ``modules``
``cas`` (the seed network alone) / ``ssg`` (SSG with L_seed only) / ``assg`` (table 2).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wtal.fitting import fit, make_optimizer
from wtal.losses import multilabel_bce
from wtal.models.base import Localizer, Pretrained, PretrainInputs
from wtal.models.cas_baseline import CASBaseline
from wtal.models.registry import register_model
from wtal.postprocess import chosen_classes, masked_minmax, runs_above
from wtal.sampling import shot_boundaries

if TYPE_CHECKING:
    from wtal.settings import InferSettings

logger = logging.getLogger(__name__)

POOLINGS = ("sap", "gap", "gmp")
MODULES = ("cas", "ssg", "assg")
BG_SEEDS = ("shots", "shots+cas")
VIDEO_SCORES = ("seed", "max")


class ASSGStreamOutput(NamedTuple):
    """One stream's sub-network outputs."""

    features: Tensor  # (B, T, H) F, the shared feature map before the opposite ReLUs
    heat_logits: Tensor  # (B, T, C+1) heatmap logits, channel 0 = background


class ASSGOutput(NamedTuple):
    """What ASSG gives for a batch."""

    cas: Tensor  # (B, T, C) logit of the fused foreground heatmap (seed CAS when modules=cas)
    video_logits: Tensor  # (B, C) video-level logits
    streams: tuple[ASSGStreamOutput, ...]  # one per stream (empty when modules=cas)
    seed_cas: Tensor  # (B, T, C) the seed network's CAS logits
    shots: Tensor | None  # (B, T) bool snippets around shot changes (training only)
    mask: Tensor  # (B, T) valid snippets


# ---- building blocks --------------------------------------------------------------------------


def grow_seeds(heat: Tensor, seeds: Tensor, thresholds: Tensor, mask: Tensor) -> Tensor:
    """The growing rule of Eq. 1 applied to convergence, class by class.

    A location is labelled ``c`` when it is connected to a seed of ``c`` by locations that are
    seeds of ``c`` or satisfy ``G``: ``H_{c,t} ≥ θ_g^c`` and ``c = argmax_{c'} H_{c',t}``.

    Args:
        heat: (B, K, T) heatmaps (K = C + 1 classes incl. background at 0).
        seeds: (B, K, T) bool initial seeds S_c.
        thresholds: (K,) growing thresholds θ_g^c.
        mask: (B, T) valid snippets.

    Returns:
        (B, K, T) bool labelled locations T_c (the seeds included).
    """
    b, k, t = heat.shape
    valid = mask.unsqueeze(1)  # (B, 1, T)
    classes = torch.arange(k, device=heat.device).view(1, k, 1)
    is_max = heat.argmax(dim=1, keepdim=True) == classes  # (B, K, T)
    cond = (heat >= thresholds.to(heat.dtype).view(1, k, 1)) & is_max & valid
    seeds = seeds & valid
    allowed = seeds | cond  # (B, K, T)
    prev = F.pad(allowed[..., :-1], (1, 0), value=False)  # (B, K, T) allowed at t - 1
    starts = allowed & ~prev
    run_id = torch.cumsum(starts.long(), dim=-1) * allowed.long()  # (B, K, T), 0 = not allowed
    seeded = torch.zeros(b, k, t + 1, dtype=torch.long, device=heat.device)
    seeded.scatter_add_(2, run_id, seeds.long())  # seeds per run
    seeded[..., 0] = 0
    return allowed & (seeded.gather(2, run_id) > 0)


def seeding_loss(heat: Tensor, labelled: Tensor) -> Tensor:
    """Eq. 4: the mean of ``−log H_{c,t}`` over the labelled (c, t) of the batch.

    Unlabelled locations do not enter; with no labelled location the loss is 0 (still a
    function of ``heat``, so that it can be back-propagated).

    Args:
        heat: (B, K, T) heatmap probabilities.
        labelled: (B, K, T) bool grown labels T_c.
    """
    n = labelled.sum()
    logp = torch.log(heat.clamp(min=1e-8))
    total = -(logp * labelled.to(heat.dtype)).sum()
    return total / n.clamp(min=1).to(heat.dtype)


def sap_weights(activation: Tensor, mask: Tensor) -> Tensor:
    """Eq. 3: attention over time, a softmax of the summed foreground features.

    Args:
        activation: (B, C, T) ``Σ_i f^i_{c,t}(X)`` per class and location.
        mask: (B, T) valid snippets (padding gets weight 0).

    Returns:
        (B, C, T) weights, summing to 1 over the valid snippets of each (video, class).
    """
    logits = activation.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(logits, dim=-1)


def self_adaptive_pool(heat: Tensor, activation: Tensor, mask: Tensor, *, pooling: str) -> Tensor:
    """Video-level class probabilities from the (erased) heatmap: SAP (Eq. 2), GAP or GMP.

    Args:
        heat: (B, C, T) class probabilities Ĥ of the foreground classes.
        activation: (B, C, T) summed foreground activations (SAP only).
        mask: (B, T) valid snippets.
        pooling: ``sap``, ``gap`` (mean over the valid snippets) or ``gmp`` (max).

    Returns:
        (B, C) pooled probabilities.
    """
    valid = mask.unsqueeze(1)  # (B, 1, T)
    if pooling == "sap":
        return (sap_weights(activation, mask) * heat).sum(dim=-1)
    if pooling == "gap":
        m = valid.to(heat.dtype)
        return (heat * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1)
    if pooling == "gmp":
        return heat.masked_fill(~valid, float("-inf")).amax(dim=-1)
    raise ValueError(f"unknown pooling {pooling!r} ({', '.join(POOLINGS)})")


def classification_loss(pooled: Tensor, labels: Tensor) -> Tensor:
    """Eq. 5: ``−Σ_c ŷ_c log SAP_c``, summed over the video's classes, mean over the batch.

    Args:
        pooled: (B, C) pooled class probabilities.
        labels: (B, C) multi-hot video labels.
    """
    logp = torch.log(pooled.clamp(min=1e-8))
    return -(labels.to(pooled.dtype) * logp).sum(dim=1).mean()


def shot_change_seeds(x: Tensor, mask: Tensor) -> Tensor:
    """Background seeds from shot changes (§3.2.1): the two snippets around each boundary.

    Boundaries come from :func:`wtal.sampling.shot_boundaries` on the valid snippets.

    Args:
        x: (B, T, D) features.
        mask: (B, T) valid snippets.

    Returns:
        (B, T) bool.
    """
    out = torch.zeros(mask.shape, dtype=torch.bool)
    xs = x.detach().float().cpu().numpy()
    lengths = mask.sum(dim=1).tolist()
    for i, n in enumerate(lengths):
        starts = shot_boundaries(xs[i, : int(n)])
        if len(starts):
            idx = torch.from_numpy(np.concatenate([starts - 1, starts]))
            out[i, idx] = True
    return out.to(mask.device)


class SSGStream(nn.Module):
    """One stream's SSG: Conv1d(D→H, 1) ─ ReLU ─ Conv1d(H→H, 1) ─▶ F; [ReLU F; ReLU −F] ─ head."""

    def __init__(self, *, in_dim: int, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, hidden, 1)
        self.conv2 = nn.Conv1d(hidden, hidden, 1)
        self.head = nn.Conv1d(2 * hidden, num_classes + 1, 1)  # C + 1 heatmaps (0 = background)

    def features(self, x: Tensor) -> Tensor:
        """The shared feature map F: x (B, T, D) → (B, T, H), before the opposite ReLUs."""
        return self.conv2(F.relu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)

    def heat_logits(self, feats: Tensor, *, detach_head: bool = False) -> Tensor:
        """Heatmap logits (B, T, C+1) of F (B, T, H); ``detach_head`` stops the head's grads."""
        pair = torch.cat([F.relu(feats), F.relu(-feats)], dim=-1).transpose(1, 2)  # (B, 2H, T)
        w, b = self.head.weight, self.head.bias
        if detach_head:
            w, b = w.detach(), b.detach()
        return F.conv1d(pair, w, b).transpose(1, 2)  # (B, T, C+1)

    def forward(self, x: Tensor) -> ASSGStreamOutput:
        feats = self.features(x)  # (B, T, H)
        return ASSGStreamOutput(features=feats, heat_logits=self.heat_logits(feats))


# ---- the model --------------------------------------------------------------------------------


@register_model("assg")
class ASSG(Localizer):
    """Seed network → per-stream SSG + self-adaptive classifier, trained adversarially.

    ``streams`` (the features' column ranges) is passed by the training stage.
    """

    def __init__(
        self,
        *,
        in_dim: int,  # feature dimension D (2048 for two-stream I3D)
        num_classes: int,  # C
        hidden: int = 512,  # filters of SSG's two temporal convolutions (§3.2.2)
        theta_g_fg: float = 0.99,  # θ_g of the action classes (§4.2, Fig. 4a)
        theta_g_bg: float = 0.99,  # θ_g of the background (§4.2, Fig. 4a)
        theta_a: float = 0.4,  # erasing threshold θ_a (§4.2, Fig. 4b)
        fusion_lambda: float = 0.3,  # λ of Eq. 6, the RGB stream's weight
        pooling: str = "sap",  # table 1: sap | gap | gmp
        modules: str = "assg",  # table 2: cas | ssg | assg
        fg_seed_threshold: float = 0.8,  # seeds: min-max CAS ≥ this (not in the paper)
        bg_seeds: str = "shots",  # shots (§3.2.1) | shots+cas (adds low-CAS snippets)
        bg_seed_threshold: float = 0.1,  # shots+cas: min-max CAS of every label ≤ this
        seed_hidden: int = 512,  # seed network (cas_baseline) settings
        seed_kernel_size: int = 3,
        seed_dropout: float = 0.7,
        seed_topk_ratio: float = 0.125,
        seed_epochs: int = 100,  # seed network training in pretrain
        seed_batch_size: int = 16,
        seed_lr: float = 1e-4,
        video_scores: str = "seed",  # classes to localise: seed network's scores | max with SAP
        streams: dict[str, list[int]] | None = None,  # column ranges per stream (sidecars)
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} ({', '.join(POOLINGS)})")
        if modules not in MODULES:
            raise ValueError(f"unknown modules {modules!r} ({', '.join(MODULES)})")
        if bg_seeds not in BG_SEEDS:
            raise ValueError(f"unknown bg_seeds {bg_seeds!r} ({', '.join(BG_SEEDS)})")
        if video_scores not in VIDEO_SCORES:
            raise ValueError(f"unknown video_scores {video_scores!r} ({', '.join(VIDEO_SCORES)})")
        if not 0.0 <= fusion_lambda <= 1.0:
            raise ValueError(f"fusion_lambda must be in [0, 1], got {fusion_lambda}")
        if streams is None:
            columns = {"all": (0, in_dim)}
        else:
            columns = {}
            for name, (lo, hi) in streams.items():
                if not 0 <= int(lo) < int(hi) <= in_dim:
                    raise ValueError(f"stream {name!r}: columns [{lo}, {hi}) not in [0, {in_dim})")
                columns[name] = (int(lo), int(hi))
            if not columns:
                raise ValueError("streams is empty")
        self.columns = columns
        if set(columns) == {"rgb", "flow"}:
            self.fusion = {"rgb": fusion_lambda, "flow": 1.0 - fusion_lambda}
        else:
            self.fusion = {name: 1.0 / len(columns) for name in columns}
        self.num_classes = num_classes
        self.seed_net = CASBaseline(in_dim=in_dim, num_classes=num_classes, hidden=seed_hidden,
                                    kernel_size=seed_kernel_size, dropout=seed_dropout,
                                    pooling="topk", topk_ratio=seed_topk_ratio)
        self.ssg = nn.ModuleDict({
            name: SSGStream(in_dim=hi - lo, num_classes=num_classes, hidden=hidden)
            for name, (lo, hi) in columns.items()
        })
        self.register_buffer(
            "theta_g",
            torch.tensor([theta_g_bg] + [theta_g_fg] * num_classes, dtype=torch.float32),
            persistent=False,
        )
        self.theta_a = theta_a
        self.pooling = pooling
        self.modules_on = modules
        self.fg_seed_threshold = fg_seed_threshold
        self.bg_seeds = bg_seeds
        self.bg_seed_threshold = bg_seed_threshold
        self.seed_epochs = seed_epochs
        self.seed_batch_size = seed_batch_size
        self.seed_lr = seed_lr
        self.video_scores = video_scores
        self.seed_net.eval()  # trained by pretrain only

    def frozen_modules(self) -> Sequence[nn.Module]:
        """The seed network: trained by :meth:`pretrain`, then frozen (evaluation mode, not in
        the optimiser) while the SSG streams train."""
        return (self.seed_net,)

    # -- forward --------------------------------------------------------------------------------

    def forward(self, x: Tensor, mask: Tensor | None = None) -> ASSGOutput:
        """Args: x (B, T, D) features; mask (B, T) valid snippets (default: all)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        x = x * mask.unsqueeze(-1).to(x.dtype)  # padding cannot leak into shot changes
        seed_out = self.seed_net(x, mask)  # cas (B, T, C), video_logits (B, C)
        shots = shot_change_seeds(x, mask) if self.training else None  # (B, T)
        if self.modules_on == "cas":
            return ASSGOutput(cas=seed_out.cas, video_logits=seed_out.video_logits, streams=(),
                              seed_cas=seed_out.cas.detach(), shots=shots, mask=mask)
        outs = tuple(self.ssg[name](x[..., lo:hi]) for name, (lo, hi) in self.columns.items())
        heat = self._fused_heat(outs)  # (B, T, C+1)
        fg = heat[..., 1:].clamp(1e-6, 1 - 1e-6)  # (B, T, C)
        video_logits = seed_out.video_logits  # (B, C) the seed network's classification
        if self.video_scores == "max":  # or the classifier's SAP without erasing, if larger
            pooled = self._fused_video_probs(outs, mask).clamp(1e-6, 1 - 1e-6)  # (B, C)
            video_logits = torch.maximum(video_logits, torch.logit(pooled))
        return ASSGOutput(cas=torch.logit(fg), video_logits=video_logits, streams=outs,
                          seed_cas=seed_out.cas.detach(), shots=shots, mask=mask)

    def _fused_heat(self, outs: Sequence[ASSGStreamOutput]) -> Tensor:
        """Eq. 6's fusion of the streams' heatmap probabilities: (B, T, C+1)."""
        return sum(w * torch.softmax(o.heat_logits, dim=-1)
                   for w, o in zip(self.fusion.values(), outs, strict=True))

    def _fused_video_probs(self, outs: Sequence[ASSGStreamOutput], mask: Tensor) -> Tensor:
        """The classifier's pooled probabilities without erasing, fused as Eq. 6: (B, C)."""
        total = 0.0
        for w, o in zip(self.fusion.values(), outs, strict=True):
            heat = torch.softmax(o.heat_logits, dim=-1)[..., 1:].transpose(1, 2)  # (B, C, T)
            act = F.relu(o.features).sum(dim=-1).unsqueeze(1).expand_as(heat)  # (B, C, T)
            total = total + w * self_adaptive_pool(heat, act, mask, pooling=self.pooling)
        return total

    # -- training -------------------------------------------------------------------------------

    def stream_losses(
        self, ssg: SSGStream, out: ASSGStreamOutput, labelled: Tensor, labels: Tensor,
        mask: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """L_seed (Eq. 4) and L_class (Eq. 5) of one stream.

        L_class involves the feature map's parameters only (the head's weights detached,
        Algorithm 1 line 17).

        Args:
            ssg: the stream's sub-network.
            out: its outputs.
            labelled: (B, C+1, T) grown labels.
            labels: (B, C) video labels.
            mask: (B, T) valid snippets.
        """
        heat = torch.softmax(out.heat_logits, dim=-1).transpose(1, 2)  # (B, C+1, T)
        l_seed = seeding_loss(heat, labelled)
        keep = heat[:, 1:].detach() <= self.theta_a  # (B, C, T): not in U_c (line 14)
        # Ĥ_c (line 15): F̂_c = F ⊙ keep_c; the head reads [ReLU F̂; ReLU −F̂], zero where erased,
        # so there class c's heatmap is the softmax of the head's bias alone
        # Eq. 5 classifies among the C action categories: Ĥ is the softmax over the foreground
        # channels (the background is no category of the video labels)
        logits = ssg.heat_logits(out.features, detach_head=True)[..., 1:]  # (B, T, C)
        kept = torch.softmax(logits, dim=-1).transpose(1, 2)  # (B, C, T)
        erased = torch.softmax(ssg.head.bias.detach()[1:], dim=-1)  # (C,)
        eroded = torch.where(keep, kept, erased.view(1, -1, 1))  # (B, C, T) Ĥ_{c,t}
        act = F.relu(out.features).sum(dim=-1).unsqueeze(1) * keep  # (B, C, T) Σ_i f̂^i_{c,t}
        pooled = self_adaptive_pool(eroded, act, mask, pooling=self.pooling)  # (B, C), line 16
        return l_seed, classification_loss(pooled, labels)

    def seeds_of(self, out: ASSGOutput, labels: Tensor) -> Tensor:
        """Initial seeds S (§3.2.1) of a training batch: (B, C+1, T) bool, 0 = background.

        Foreground: snippets whose seed CAS, min-max normalised over the video, reaches
        ``fg_seed_threshold``, for the video's labelled classes only. Background: the shot
        changes (and with ``bg_seeds="shots+cas"`` the snippets where every labelled class's
        normalised CAS is at most ``bg_seed_threshold``), minus the foreground seeds.
        """
        if out.shots is None:
            raise RuntimeError("ASSG.loss needs a forward pass in training mode (shots)")
        mask = out.mask
        norm = masked_minmax(out.seed_cas, mask).transpose(1, 2)  # (B, C, T)
        present = (labels > 0).unsqueeze(-1)  # (B, C, 1)
        fg = (norm >= self.fg_seed_threshold) & present & mask.unsqueeze(1)  # (B, C, T)
        bg = out.shots.clone()  # (B, T)
        if self.bg_seeds == "shots+cas":
            low = (norm <= self.bg_seed_threshold) | ~present  # (B, C, T)
            bg |= low.all(dim=1)
        bg &= ~fg.any(dim=1) & mask
        return torch.cat([bg.unsqueeze(1), fg], dim=1)

    def loss(
        self, out: ASSGOutput, labels: Tensor, mask: Tensor, *, epoch: int, step: int = 0,
        reference: Any = None, video_loss: str = "bce",
    ) -> tuple[Tensor, dict[str, float]]:
        """Algorithm 1 through the main loop: alternate L_seed (even ``step``) and L_class
        (odd ``step``) steps; ``epoch``, ``reference`` and ``video_loss`` are not used.

        Returns the loss of this step (the sum over the streams) and the parts: both losses at
        every step (``seed``, ``class``), ``seed_step`` (1 on L_seed steps), and the fraction
        of valid (class, snippet) pairs labelled before growing (``seeded``) and after
        (``grown``, mean over the streams).
        """
        del epoch, reference, video_loss
        if self.modules_on == "cas":  # table 2 "CAS": the seed network alone, nothing to fit
            return torch.zeros((), device=labels.device, requires_grad=True), {"cas_only": 1.0}
        seeds = self.seeds_of(out, labels)  # (B, C+1, T)
        seed_step = self.modules_on == "ssg" or step % 2 == 0
        pairs = max(1, int(mask.sum().item()) * seeds.shape[1])
        l_seed_total = labels.new_zeros(())
        l_class_total = labels.new_zeros(())
        grown = 0.0
        for ssg, o in zip(self.ssg.values(), out.streams, strict=True):
            with torch.no_grad():
                heat = torch.softmax(o.heat_logits, dim=-1).transpose(1, 2)  # (B, C+1, T)
                labelled = grow_seeds(heat, seeds, self.theta_g, mask)  # lines 4-12
            l_seed, l_class = self.stream_losses(ssg, o, labelled, labels, mask)
            l_seed_total = l_seed_total + l_seed
            l_class_total = l_class_total + l_class
            grown += labelled.sum().item() / pairs
        parts = {
            "seed": l_seed_total.item(),
            "class": l_class_total.item(),
            "seed_step": float(seed_step),
            "seeded": seeds.sum().item() / pairs,
            "grown": grown / len(out.streams),
        }
        return (l_seed_total if seed_step else l_class_total), parts

    def pretrain(self, inputs: PretrainInputs) -> Pretrained:
        """Train the seed network (``cas_baseline``) on the training videos; it is then frozen
        (:meth:`frozen_modules`). Its weights are this model's: the returned
        :class:`Pretrained` carries the log only.

        Whole videos, cropped at random to ``settings.max_seqlen``, multi-label BCE, Adam with
        ``seed_lr`` and the settings' weight decay, ``seed_epochs`` epochs of
        ``seed_batch_size`` videos. Trimmed clips are not used by ASSG.
        """
        videos, labels, settings = inputs.videos, inputs.labels, inputs.settings
        rng, device = inputs.rng, inputs.device
        t0 = time.time()
        net = self.seed_net
        opt = make_optimizer(net.parameters(), optimizer="adam", lr=self.seed_lr,
                             weight_decay=settings.weight_decay)
        try:
            curve = [round(v, 6) for v in fit(
                net, videos, labels,
                loss_of=lambda out, y, mask, epoch, step: (
                    multilabel_bce(out.video_logits, y), {}),
                opt=opt, epochs=self.seed_epochs, batch_size=self.seed_batch_size,
                max_seqlen=settings.max_seqlen, rng=rng, device=device,
                name="assg seed network").loss]
        finally:
            net.eval()
        report: dict[str, Any] = {
            "seed_net": {"model": "cas_baseline", "epochs": self.seed_epochs, "loss": curve,
                         "seconds": round(time.time() - t0, 3)},
            "trimmed": "not used by ASSG",
        }
        logger.info("assg: seed network trained for %d epochs (final loss %.4f)",
                    self.seed_epochs, curve[-1] if curve else float("nan"))
        return Pretrained(log=report)

    # -- inference ------------------------------------------------------------------------------

    def probabilities(self, out: ASSGOutput) -> tuple[Tensor, Tensor]:
        """Fused foreground heatmaps (B, T, C) (Eq. 6's fusion; σ(seed CAS) when
        ``modules="cas"``) and video scores σ(video_logits) (B, C), in [0, 1]."""
        if self.modules_on == "cas":
            return torch.sigmoid(out.cas), torch.sigmoid(out.video_logits)
        heat = self._fused_heat(out.streams)[..., 1:]  # (B, T, C)
        return heat * out.mask.unsqueeze(-1).to(heat.dtype), torch.sigmoid(out.video_logits)

    @torch.no_grad()
    def candidates(
        self, out: ASSGOutput, *, settings: InferSettings, options: Any = None
    ) -> list[tuple[int, float, float, float]]:
        """Candidate segments of one video (batch 1) from the fused heatmap (§3.5).

        Classes whose video score reaches ``settings.class_threshold`` (the top one if none)
        are localised: every maximal run of snippets whose fused heatmap reaches a level of
        ``settings.cas_thresholds`` is a proposal scored by Eq. 6 (its mean fused heatmap)
        plus ``settings.video_score_weight`` times the video score.

        Returns:
            ``(class, start, end, score)`` in snippet coordinates (snippet t is [t, t + 1)).
        """
        del options
        heat_t, scores_t = self.probabilities(out)
        heat = heat_t[0].float().cpu().numpy()  # (T, C)
        scores = scores_t[0].float().cpu().numpy()  # (C,)
        n = int(out.mask[0].sum().item())
        heat = heat[:n]
        chosen = chosen_classes(scores, settings.class_threshold)
        found: list[tuple[int, float, float, float]] = []
        for c in chosen:
            cands: dict[tuple[int, int], float] = {}
            for level in settings.cas_thresholds:
                for first, last in runs_above(heat[:, c], level):
                    score = float(heat[first : last + 1, c].mean())  # Eq. 6
                    cands[(first, last)] = score + settings.video_score_weight * float(scores[c])
            found += [(c, float(f), float(la + 1), s) for (f, la), s in cands.items()]
        return found

    def unread_infer_settings(self) -> frozenset[str]:
        """Runs are scored by their mean heatmap (Eq. 6), not an outer-inner contrast."""
        return frozenset({"inflation"})

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """The named per-snippet scores a report plots (see :mod:`wtal.report`):
        ``seed_cas`` σ of the seed network's CAS (B, T, C), and unless ``modules="cas"``
        ``heatmap`` the fused foreground heatmaps (B, T, C) and ``background`` (B, T)."""
        out = self.forward(x, mask)
        seqs = {"seed_cas": torch.sigmoid(out.seed_cas)}
        if out.streams:
            heat = self._fused_heat(out.streams)  # (B, T, C+1)
            seqs["heatmap"] = heat[..., 1:]
            seqs["background"] = heat[..., 0]
        return seqs


# -- choosing the proposal level on the training videos ---------------------------------------

#: The proposal levels :func:`choose_proposal_level` chooses from by default.
PROPOSAL_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def choose_proposal_level(
    index_path: str | os.PathLike[str],
    feature_paths: Sequence[str | os.PathLike[str]],
    gt_path: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any],
    levels: Sequence[float] = PROPOSAL_LEVELS,
    folds: int = 2,
    seeds: Sequence[int] = (0,),
    tious: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
    device: str = "cpu",
) -> dict[str, Any]:
    """The proposal level (``infer.cas_thresholds``) chosen by cross-validation on the
    training videos only.

    The paper gives no proposal level (§3.5), so the default (0.5, see ``assg.yaml``) is a
    reading, and a dataset may choose its own here, never on its test subset: the training
    videos ``feature_paths`` (every one must be of the index's ``train`` split, else
    ``ValueError``) are dealt into ``folds`` folds in name order; for every fold and seed ASSG
    is trained (``settings``: the model's resolved ``args`` / ``train`` / ``infer``, e.g.
    :func:`wtal.settings.resolve_model_settings`) on the other folds and localises the
    held-out fold at every level of ``levels``; the held-out detections are scored against
    the training videos' own annotations in ``gt_path`` (ActivityNet protocol, mean mAP over
    ``tious``: the paper's Ave-mAP 0.1:0.5 of its ablations). The level of highest mean
    wins (ties: the lower level): :func:`wtal.crossval.cross_validate`, with one candidate
    per level sharing one training per fold and seed.

    Returns:
        ``{"best": level, "mean": {level: mAP}, "runs": [{"fold", "seed", "mAP": {level:
        mAP}}], "folds", "seeds", "tious", "videos"}``; ``workdir`` keeps every run's files.
    """
    from wtal.crossval import cross_validate

    if not levels:
        raise ValueError("no proposal levels to choose from")
    names = {f"{level:g}": level for level in sorted(float(lv) for lv in levels)}
    out = cross_validate(index_path, feature_paths, gt_path, workdir, model="assg",
                         settings=settings, folds=folds, seeds=seeds, tious=tious, device=device,
                         candidates={n: {"infer": {"cas_thresholds": [lv]}}
                                     for n, lv in names.items()})
    return {"best": names[out["best"]],
            "mean": {names[n]: v for n, v in out["mean"].items()},
            "runs": [{**r, "mAP": {names[n]: v for n, v in r["mAP"].items()}}
                     for r in out["runs"]],
            "folds": folds, "seeds": list(seeds), "tious": list(tious), "videos": out["videos"]}
