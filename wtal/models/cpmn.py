"""``cpmn``: Cascaded Pyramid Mining Network (Su, Zhao & Lin, ACCV 2018).

The paper trains one network on the RGB features and one on the flow features and fuses them
only at localisation (Eq. 4, 5, 7). :class:`CPMN` holds one independent sub-network
(:class:`CPMNStream`) per stream, each on its own column range of the features (``streams``,
from the feature sidecars: ``{"rgb": [0, 1024], "flow": [1024, 2048]}``), and its loss is the
sum of the per-stream losses. The streams share no parameter and no activation, so the gradient
of one stream's parameters does not depend on the other stream's input or parameters; with
Adam (a per-parameter update) and no weight decay across streams this gives exactly the
updates of training the two networks separately on the same batches (tested). Without recorded
stream ranges there is one sub-network on all columns.

Each sub-network has three parts:

* **Cascaded classification module (CCM)**, two classifiers of the same structure, each two
  temporal convolutions (k=3, 512 filters, ReLU) → global average pooling → FC → sigmoid. The
  T-CAS of a classifier is its FC weights applied per snippet, M_t^c = Σ_k w^c(k) Z_t(k)
  (Eq. 2); classifier A sees the features, classifier B the same features with the snippets
  where A's min-max normalised T-CAS exceeds ζ (0.4) set to zero, for the target classes
  (online adversarial erasing, Algorithm 1). M(Cas) = max(M(A), M(B)).
* **Pyramid attention module (PAM)**, four levels of length T, T/2, T/4, T/8: the input and the
  outputs of three stacked max poolings of scale 2 ("we stack three 1-D max pooling layers", T_l
  = T/2^(l-1), §3.3); per level a k=1 convolution (512 filters, ReLU), top-down lateral
  connections (the coarser level's features repeated ×2 and added), a k=1 prediction convolution
  with C filters giving the label map K_l (T_l, C); the video prediction is the average over
  levels of each level's global average pool. The input is cut into consecutive windows of T_ω =
  64 snippets (the last one, and a video shorter than a window, padded to a whole window;
  padding is masked), every window goes through the pyramid alone and the windows' label maps
  are concatenated (§3.4–3.5). The heatmap H sums the label maps upsampled by repetition
  (×2^(l-1)) and min-max normalises every class over the video (Eq. 3).
* **Temporal action localisation**: Φ = sigmoid(M(Cas)) · H per stream (Eq. 4, 5).

::

    x (B, T, D) ─ stream s's columns ─▶ f (B, T, D_s)            (one sub-network per stream)
      f ─ [Conv1d(k3,512)─ReLU]×2 ─▶ Z_A (B,T,K) ─ W_A ─▶ M(A) (B,T,C);  GAP(Z_A)─FC─▶ s_A (B,C)
      M(A) ─ min-max per class, > ζ on target classes ─▶ erased (B, T)
      f ⊙ ¬erased ─ classifier B ─▶ M(B) (B,T,C), s_B (B,C)
      M(Cas) = max(M(A), M(B))                                            ─▶ (B, T, C)
      f ─ windows of T_ω ─ maxpool×2 (×3) ─▶ levels ─ Conv1d(k1,512)─ReLU ─ top-down + ─
        ─ Conv1d(k1,C) ─▶ K_l ─ concatenate windows ─ GAP, mean over l ─▶ s_PAM (B,C)
        ─ repeat ×2^(l-1), Σ_l, min-max over T (Eq. 3)                   ─▶ heatmap H (B,T,C)
      Φ_s = sigmoid(M(Cas)) · H                                   (Eq. 4 / 5)  (B, T, C)
    fused: Φ = mean_s Φ_s (Eq. 7's average), p_class = mean_s sigmoid(mean(s_A, s_PAM))

Training (Eq. 6), per stream: sigmoid cross-entropy summed over classes and averaged over the
batch, for each active classifier and the PAM, plus λ·L2 (λ = 0.0025, ``tf.nn.l2_loss``
convention Σw²/2) on the weights of the CCM. In training, classifier B's erasing follows the
video's labels (Algorithm 1: M^c(A) for c ∈ ψ_v); ``forward`` has no labels and erases after the
classes A predicts (probability ≥ 0.5, at least the top one), which is also the rule at test
time, and the loss re-runs classifier B when the label-guided erasure differs.

Localisation (§3.5, :meth:`CPMN.candidates`): for the ``top_classes`` (2; 1 on ActivityNet)
classes of highest p_class, every maximal run of snippets where a stream's Φ_s^c reaches θ_TCAS
= 20 % of its maximum is a proposal (from each modality separately); its p_act is the mean over
the run of the two streams' Φ (Eq. 7, with the sigmoid of Eq. 4/5: Eq. 7 as printed drops it)
and its confidence p_conf = p_act · p_class (Eq. 8). The pipeline's NMS (hard, θ_NMS = 0.3 on
THUMOS14, 0.5 on ActivityNet) removes the duplicates of the two modalities.

Video scores (p_class of Eq. 8; the paper does not say which classifier gives them): per
stream the sigmoid of the mean of the logits of classifier A and the PAM, the two branches that
see the whole video, averaged over the streams. Classifier B is trained to classify videos
whose most discriminative snippets were erased after the labels, and at test time sees an
erasure guided by A's guesses, so its video logits are a poor class score (on the demo it
confidently names absent classes); ``score_mining=True`` adds them. ``video_logits`` of the
output averages all active branches (A, B, PAM) and streams: the project's generic contract
(every parameter reaches it); the model's own loss, ``probabilities`` and ``candidates`` do not use
it.

Choices the paper leaves open, made here: the erasing threshold ζ is applied to the min-max
normalised T-CAS (the paper sweeps ζ in 0.3-0.7, a [0, 1] scale); erased snippets are set to
zero (the standardised mean) and stay in B's average pool; the erasure of a multi-label video
is the union over its target classes; the PAM's first level is the input itself (T_l =
T/2^(l-1), so the three poolings give four levels; ``levels: 3``, two poolings, was this
project's earlier reading and is an ablation row) and pools with ``ceil_mode``; ``window`` must be a
multiple of 2^(levels-1) so that the windows' poolings stay aligned, and then the windowed
label maps equal one pass over the whole video (tested); the level predictions are averaged as
logits, the PAM's video logits are the GAP over all the video's windows. Padding snippets
(``mask`` False) are zeroed at the input, left out of every average pool, the max pooling and
the min-max normalisations.

What each module sees (§3.4, §3.5). The training loop hands over whole videos (the model's
``train.max_seqlen`` is larger than any video: no crops). The CCM classifies the whole video
from its units, sampled when the video is longer than ``ccm_segments`` = P units (P equal
segments; in training one random unit of each, anew at every step: the paper's sparse
sampling, its best in Fig. 5 left; at prediction the segments' centres: its uniform sampling,
§3.5), and M(Cas) is brought back to every unit of the video by its segment
(:meth:`CPMNStream.ccm_units`). The PAM sees every unit, in consecutive windows of T_ω. P is
not in the paper (750, the sequence length of KT-MGFN's and ECM's THUMOS14 settings). An
earlier version trained both modules on random 64-snippet crops, each carrying the video's
labels even when it held none of its actions; it is kept only as an ablation row
(``ccm_sampling: all`` with ``train.max_seqlen: 64``), to measure what those mislabelled
crops cost.

Table 3's ablation: ``mining=False, pam=False`` is the original T-CAS (a CAM classifier),
``mining=True, pam=False`` adds the mining T-CAS, ``mining=True, pam=True`` is CPMN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wtal.models.base import Localizer
from wtal.models.registry import register_model
from wtal.postprocess import masked_minmax, runs_above
from wtal.sampling import sparse_indices, uniform_indices

STREAMS = ("both", "rgb", "flow", "concat")
CCM_SAMPLING = ("sparse", "uniform", "all")


class StreamOutput(NamedTuple):
    """What one stream's sub-network gives for a batch.

    ``cas``, ``video_logits`` and ``heatmap`` are on the input's time axis; the other fields are
    on the classifiers' time axis (the same unless ``resize`` is set or the video is longer than
    ``ccm_segments``, see :meth:`CPMNStream.ccm_units`) and serve the loss and the tests.
    """

    cas: Tensor  # (B, T, C) cascaded T-CAS M(Cas) = max(M(A), M(B)) (M(A) without mining)
    video_logits: Tensor  # (B, C) mean of the active branches' video logits
    heatmap: Tensor  # (B, T, C) pyramidal attention map H in [0, 1] (ones without the PAM)
    logits_a: Tensor  # (B, C) classifier A's video logits
    logits_b: Tensor | None  # (B, C) classifier B's video logits (None without mining)
    logits_pam: Tensor | None  # (B, C) PAM video logits, mean over levels (None without PAM)
    tcas_a: Tensor  # (B, T', C) original T-CAS M(A), Eq. (2)
    tcas_b: Tensor | None  # (B, T', C) mining T-CAS M(B)
    erased: Tensor  # (B, T') bool, snippets erased from classifier B's input
    features: Tensor  # (B, T', D_s) the stream's features the classifiers saw (padding zeroed)
    mask: Tensor  # (B, T') bool valid snippets on the classifiers' time axis
    back: Tensor | None = None  # (B, T_in) long: the classifiers' position of every unit


class CPMNOutput(NamedTuple):
    """What CPMN gives for a batch: the streams fused, and every stream's own output."""

    cas: Tensor  # (B, T, C) mean over streams of M(Cas) (logits)
    video_logits: Tensor  # (B, C) mean over streams of their video logits
    heatmap: Tensor  # (B, T, C) mean over streams of H
    streams: dict[str, StreamOutput]  # per stream, in the order of ``CPMN.columns``
    mask: Tensor | None = None  # (B, T) valid snippets of the input (set by forward)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Average (B, T, K) over the valid snippets of (B, T) ``mask`` → (B, K)."""
    m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def erasing_mask(tcas: Tensor, mask: Tensor, targets: Tensor, *, zeta: float) -> Tensor:
    """Online adversarial erasing: snippets where a target class's normalised T-CAS exceeds ζ.

    Args:
        tcas: (B, T, C) T-CAS of the first classifier (raw, Eq. 2).
        mask: (B, T) valid snippets.
        targets: (B, C) bool, classes whose discriminative regions are erased.
        zeta: threshold on the T-CAS min-max normalised over the valid snippets.

    Returns:
        (B, T) bool, True where the snippet is erased (never on padding).
    """
    norm = masked_minmax(tcas.detach(), mask)  # (B, T, C)
    hit = (norm > zeta) & targets.unsqueeze(1) & mask.unsqueeze(-1)  # (B, T, C)
    return hit.any(dim=-1)


def upsample_repeat(x: Tensor, factor: int, length: int) -> Tensor:
    """Repeat every step of (B, T_l, C) ``factor`` times along time, cut to ``length``."""
    return x.repeat_interleave(factor, dim=1)[:, :length]


def resample(x: Tensor, length: int) -> Tensor:
    """Linear interpolation of (T, K) to (length, K)."""
    if x.shape[0] == length:
        return x
    y = F.interpolate(x.t().unsqueeze(0), size=length, mode="linear", align_corners=False)
    return y[0].t()


class Classifier(nn.Module):
    """One CCM classifier: two temporal convolutions → GAP → FC, with its T-CAS (Eq. 2)."""

    def __init__(self, *, in_dim: int, num_classes: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.convs = nn.ModuleList([
            nn.Conv1d(in_dim, hidden, kernel_size, padding=pad),
            nn.Conv1d(hidden, hidden, kernel_size, padding=pad),
        ])
        self.fc = nn.Linear(hidden, num_classes)

    def embed(self, x: Tensor, mask: Tensor) -> Tensor:
        """Last convolutional features Z: (B, T, D) → (B, T, K), zero on padding.

        Padding is zeroed before every convolution, so a padded video's valid snippets see
        exactly what the video alone sees (the convolutions' own zero padding).
        """
        m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = x.transpose(1, 2) * m  # (B, D, T)
        for conv in self.convs:
            h = torch.relu(conv(h)) * m  # (B, K, T)
        return h.transpose(1, 2)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, D), (B, T) → T-CAS (B, T, C) and video logits (B, C)."""
        z = self.embed(x, mask)  # (B, T, K)
        tcas = z @ self.fc.weight.t()  # (B, T, C): M_t^c = Σ_k w^c(k) Z_t(k), Eq. (2)
        logits = self.fc(masked_mean(z, mask))  # (B, C) = mean_t M_t^c + b^c
        return tcas, logits


class Pyramid(nn.Module):
    """The pyramid attention module: label maps at T, T/2, T/4, … per window; heatmap (Eq. 3)."""

    def __init__(
        self, *, in_dim: int, num_classes: int, hidden: int, levels: int, window: int
    ) -> None:
        super().__init__()
        if window < 1 or window % 2 ** (levels - 1):
            raise ValueError(f"window {window} must be a positive multiple of 2^(levels-1) = "
                             f"{2 ** (levels - 1)} (aligned poolings)")
        self.levels = levels
        self.window = window
        self.lateral = nn.ModuleList(nn.Conv1d(in_dim, hidden, 1) for _ in range(levels))
        self.predict = nn.ModuleList(nn.Conv1d(hidden, num_classes, 1) for _ in range(levels))

    def label_maps(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Label maps K_l (B, T_l, C) and level masks (B, T_l), l = 1 … levels, of one pass.

        T_1 = T and T_(l+1) = ceil(T_l / 2).
        """
        feats = [x.transpose(1, 2)]  # (B, D, T)
        masks = [mask]
        for _ in range(1, self.levels):
            prev, m = feats[-1], masks[-1]
            hidden = prev.masked_fill(~m.unsqueeze(1), float("-inf"))
            pooled = F.max_pool1d(hidden, 2, 2, ceil_mode=True)  # (B, D, ceil(T_l / 2))
            m2 = F.max_pool1d(m.unsqueeze(1).float(), 2, 2, ceil_mode=True)[:, 0] > 0
            feats.append(pooled.masked_fill(~m2.unsqueeze(1), 0.0))
            masks.append(m2)
        h = [torch.relu(conv(f)) for conv, f in zip(self.lateral, feats, strict=True)]
        for level in range(self.levels - 2, -1, -1):  # top-down lateral connections
            finer = h[level].shape[-1]
            h[level] = h[level] + h[level + 1].repeat_interleave(2, dim=-1)[..., :finer]
        maps = [pred(hl).transpose(1, 2) for pred, hl in zip(self.predict, h, strict=True)]
        return maps, masks

    def windowed_maps(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Label maps of consecutive windows of ``window`` snippets, concatenated along time.

        The input is padded (masked) to n whole windows, n = max(1, ⌈T / T_ω⌉) (§3.5: a video
        shorter than T_ω is padded to one window); every window is one pyramid pass. Returns
        K_l (B, n·T_ω / 2^(l-1), C) and their masks.
        """
        b, t, d = x.shape
        n = max(1, -(-t // self.window))
        pad = n * self.window - t
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        maps, masks = self.label_maps(x.reshape(b * n, self.window, d),
                                      mask.reshape(b * n, self.window))  # (B·n, T_ω/2^l, C)
        maps = [k.reshape(b, -1, k.shape[-1]) for k in maps]  # (B, n·T_ω/2^(l-1), C)
        masks = [m.reshape(b, -1) for m in masks]
        return maps, masks

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, T, D), (B, T) → video logits (B, C), summed maps (B, T, C), heatmap H (B, T, C)."""
        t = x.shape[1]
        maps, masks = self.windowed_maps(x, mask)
        logits = torch.stack([masked_mean(k, m) for k, m in zip(maps, masks, strict=True)])
        logits = logits.mean(dim=0)  # (B, C): average of the levels' GAP predictions
        full = maps[0].shape[1]
        summed = sum(upsample_repeat(k, 2**i, full) for i, k in enumerate(maps))
        summed = summed[:, :t]  # (B, T, C)
        heat = masked_minmax(summed, mask, flat=1.0)  # Eq. (3); flat → no attention
        return logits, summed, heat


class CPMNStream(nn.Module):
    """One stream's network: CCM + PAM on feature columns ``columns``; Φ = sigmoid(M(Cas)) · H."""

    def __init__(
        self,
        *,
        columns: tuple[int, int],  # [lo, hi) feature columns of this stream
        num_classes: int,  # C
        hidden: int,  # filters of the CCM convolutions and the PAM's k=1 convolutions
        kernel_size: int,  # temporal kernel of the CCM convolutions
        mining: bool,  # second classifier on erased features (mining T-CAS)
        pam: bool,  # pyramid attention module (H; ones when off)
        zeta: float,  # erasing threshold ζ on the normalised T-CAS
        erase_guide: str,  # training erasure after the labels or the predictions
        levels: int,  # pyramid levels (lengths T, T/2, T/4, T/8: the input + 3 poolings)
        window: int,  # T_ω of the PAM's windows
        l2_weight: float,  # λ of Eq. (6), on the CCM's weights
        resize: int | None,  # resample every video to this many snippets (ActivityNet)
        score_mining: bool,  # classifier B's logits in the video scores too
        ccm_sampling: str = "sparse",  # the CCM's units of a long video: sparse | uniform | all
        ccm_segments: int = 750,  # P: segments of a long video the CCM samples
    ) -> None:
        super().__init__()
        if ccm_sampling not in CCM_SAMPLING:
            raise ValueError(f"unknown ccm_sampling {ccm_sampling!r} ({', '.join(CCM_SAMPLING)})")
        if ccm_segments < 1:
            raise ValueError(f"ccm_segments must be >= 1, got {ccm_segments}")
        self.ccm_sampling = ccm_sampling
        self.ccm_segments = ccm_segments
        self.columns = (int(columns[0]), int(columns[1]))
        dim = self.columns[1] - self.columns[0]
        if dim < 1:
            raise ValueError(f"empty column range {columns}")
        self.mining = mining
        self.use_pam = pam
        self.zeta = zeta
        self.erase_guide = erase_guide
        self.l2_weight = l2_weight
        self.resize = resize
        self.score_mining = score_mining
        self.classifier_a = Classifier(in_dim=dim, num_classes=num_classes, hidden=hidden,
                                       kernel_size=kernel_size)
        self.classifier_b = (
            Classifier(in_dim=dim, num_classes=num_classes, hidden=hidden,
                       kernel_size=kernel_size)
            if mining else None
        )
        self.pam = (
            Pyramid(in_dim=dim, num_classes=num_classes, hidden=hidden, levels=levels,
                    window=window)
            if pam else None
        )

    # -- helpers ---------------------------------------------------------------------------

    def _select(self, x: Tensor, mask: Tensor) -> Tensor:
        lo, hi = self.columns
        return x[..., lo:hi] * mask.unsqueeze(-1).to(x.dtype)  # (B, T, D_s), padding zeroed

    def _resize_in(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Every video's valid part resampled to ``resize`` snippets (paper: ActivityNet)."""
        assert self.resize is not None
        lengths = mask.sum(dim=1).tolist()
        out = [resample(x[i, : max(n, 1)], self.resize) for i, n in enumerate(lengths)]
        new_mask = torch.tensor([[n > 0] * self.resize for n in lengths], device=x.device)
        return torch.stack(out), new_mask.reshape(len(lengths), self.resize)

    def _resize_out(self, y: Tensor, mask: Tensor) -> Tensor:
        """(B, resize, C) back to each video's valid length, padded to the input's T."""
        out = torch.zeros(y.shape[0], mask.shape[1], y.shape[2], dtype=y.dtype, device=y.device)
        for i, n in enumerate(mask.sum(dim=1).tolist()):
            if n:
                out[i, :n] = resample(y[i], n)
        return out

    def on_input_axis(self, y: Tensor, mask: Tensor) -> Tensor:
        """(B, T', K) on the classifiers' axis → (B, T, K) on the input's (``mask`` (B, T))."""
        return self._resize_out(y, mask) if self.resize is not None else y

    def predicted_targets(self, logits_a: Tensor) -> Tensor:
        """Classes erased without labels: probability ≥ 0.5, and always the top one. (B, C)."""
        top = F.one_hot(logits_a.argmax(dim=1), logits_a.shape[1]).bool()
        return (logits_a.detach() >= 0.0) | top

    def erase(self, features: Tensor, erased: Tensor) -> Tensor:
        """Zero the erased snippets of (B, T, D_s) features."""
        return features.masked_fill(erased.unsqueeze(-1), 0.0)

    # -- the network -------------------------------------------------------------------------

    def ccm_units(self, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The units the cascaded classifiers see (§3.4 training, §3.5 prediction).

        A video of n valid units with n > ``ccm_segments`` (P) is cut into P equal segments
        [k·n/P, (k+1)·n/P); in training one random unit of each segment is taken, anew at every
        step (sparse sampling, :func:`wtal.sampling.sparse_indices`, the paper's choice, Fig. 5
        left), at prediction the segments' centres (uniform sampling,
        :func:`wtal.sampling.uniform_indices`, §3.5). ``ccm_sampling="uniform"`` takes the
        centres in training too; ``"all"`` never samples. A video of at most P units is used
        whole. The randomness comes from torch's generator (seeded by the training loop).

        Args:
            mask: (B, T) valid units of the sub-network's input.

        Returns:
            index (B, T_c) long: the input unit of every CCM position (0 on padding);
            ccm_mask (B, T_c) bool: valid CCM positions;
            back (B, T) long: for every input unit, the CCM position of its segment (itself
            when the video is not sampled; padding: its own position, clamped), so that
            M(Cas) is brought back to the input's units by repetition.
        """
        lengths = [int(n) for n in mask.sum(dim=1).tolist()]
        p = self.ccm_segments
        picks: list[np.ndarray] = []
        backs: list[np.ndarray] = []
        for n in lengths:
            if self.ccm_sampling == "all" or n <= p:
                picks.append(np.arange(n, dtype=np.int64))
                backs.append(np.arange(n, dtype=np.int64))
                continue
            if self.training and self.ccm_sampling == "sparse":
                seed = int(torch.randint(0, 2**62, (1,)).item())  # torch's seeded generator
                picks.append(sparse_indices(n, p, np.random.default_rng(seed)))
            else:
                picks.append(uniform_indices(n, length=p))
            backs.append(np.arange(n, dtype=np.int64) * p // n)  # segment k of unit t
        t_c = max(1, max(len(i) for i in picks))
        index = torch.zeros(len(lengths), t_c, dtype=torch.long)
        ccm_mask = torch.zeros(len(lengths), t_c, dtype=torch.bool)
        back = torch.arange(mask.shape[1]).clamp(max=t_c - 1).repeat(len(lengths), 1)
        for b, (i, k) in enumerate(zip(picks, backs, strict=True)):
            index[b, : len(i)] = torch.from_numpy(i)
            ccm_mask[b, : len(i)] = True
            back[b, : len(k)] = torch.from_numpy(k)
        dev = mask.device
        return index.to(dev), ccm_mask.to(dev), back.to(dev)

    def to_units(self, y: Tensor, back: Tensor) -> Tensor:
        """(B, T_c, K) on the CCM's positions → (B, T, K) on the sub-network's input units."""
        return torch.gather(y, 1, back.unsqueeze(-1).expand(-1, -1, y.shape[-1]))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> StreamOutput:
        """Args: x (B, T, D) all feature columns; mask (B, T) valid snippets (default: all)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        f = self._select(x, mask)  # (B, T, D_s)
        m = mask
        if self.resize is not None:
            f, m = self._resize_in(f, mask)  # (B, R, D_s), (B, R)
        index, mc, back = self.ccm_units(m)  # the CCM's units (sampled when long)
        fc = torch.gather(f, 1, index.unsqueeze(-1).expand(-1, -1, f.shape[-1]))
        fc = fc * mc.unsqueeze(-1).to(fc.dtype)  # (B, T_c, D_s), padding zeroed
        tcas_a, logits_a = self.classifier_a(fc, mc)  # (B, T_c, C), (B, C)
        branches = [logits_a]
        cas, tcas_b, logits_b = tcas_a, None, None
        erased = torch.zeros_like(mc)
        if self.classifier_b is not None:
            erased = erasing_mask(tcas_a, mc, self.predicted_targets(logits_a), zeta=self.zeta)
            tcas_b, logits_b = self.classifier_b(self.erase(fc, erased), mc)
            cas = torch.maximum(tcas_a, tcas_b)  # M(Cas), (B, T_c, C)
            branches.append(logits_b)
        cas = self.to_units(cas, back)  # (B, T', C): each unit takes its segment's value
        logits_pam = None
        heat = torch.ones_like(cas)
        if self.pam is not None:
            logits_pam, _, heat = self.pam(f, m)  # (B, C), _, (B, T', C): the whole video
            branches.append(logits_pam)
        video_logits = torch.stack(branches).mean(dim=0)  # (B, C)
        return StreamOutput(cas=self.on_input_axis(cas, mask), video_logits=video_logits,
                            heatmap=self.on_input_axis(heat, mask), logits_a=logits_a,
                            logits_b=logits_b, logits_pam=logits_pam, tcas_a=tcas_a,
                            tcas_b=tcas_b, erased=erased, features=fc, mask=mc, back=back)

    def video_scores(self, out: StreamOutput) -> Tensor:
        """p_class (B, C): sigmoid of the mean logits of A and the PAM (and B if asked)."""
        branches = [out.logits_a]
        if self.score_mining and out.logits_b is not None:
            branches.append(out.logits_b)
        if out.logits_pam is not None:
            branches.append(out.logits_pam)
        return torch.sigmoid(torch.stack(branches).mean(dim=0))

    def localisation(self, out: StreamOutput) -> Tensor:
        """Φ = sigmoid(M(Cas)) · H (Eq. 4 / 5), (B, T, C) in [0, 1]."""
        return torch.sigmoid(out.cas) * out.heatmap

    def ccm_l2(self) -> Tensor:
        """Σ w² / 2 over the weights (not biases) of the cascaded classifiers."""
        total = self.classifier_a.fc.weight.new_zeros(())
        for clf in (self.classifier_a, self.classifier_b):
            if clf is None:
                continue
            for name, p in clf.named_parameters():
                if name.endswith("weight"):
                    total = total + p.pow(2).sum() / 2
        return total

    def loss(self, out: StreamOutput, labels: Tensor) -> dict[str, Tensor]:
        """Eq. (6) for each classifier, the PAM's cross-entropy, and λ·L2 on the CCM (terms)."""
        y = labels.to(out.logits_a.dtype)

        def xent(logits: Tensor) -> Tensor:  # summed over classes, mean over videos
            return F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(1).mean()

        parts: dict[str, Tensor] = {"cls_a": xent(out.logits_a)}
        if self.classifier_b is not None and out.logits_b is not None:
            logits_b = out.logits_b
            if self.erase_guide == "labels":  # Algorithm 1: erase the labelled classes' regions
                erased = erasing_mask(out.tcas_a, out.mask, y > 0.5, zeta=self.zeta)
                if not torch.equal(erased, out.erased):
                    _, logits_b = self.classifier_b(self.erase(out.features, erased), out.mask)
            parts["cls_b"] = xent(logits_b)
        if out.logits_pam is not None:
            parts["pam"] = xent(out.logits_pam)
        if self.l2_weight:
            parts["l2"] = self.l2_weight * self.ccm_l2()
        return parts


def stream_columns(
    stream: str, in_dim: int, streams: dict[str, list[int]] | None
) -> dict[str, tuple[int, int]]:
    """The sub-networks' column ranges: ``{name: (lo, hi)}``.

    * ``both`` (the paper): one sub-network per recorded stream; without recorded ranges one
      sub-network ``all`` on every column;
    * ``rgb`` / ``flow``: that stream only (the recorded range, else the first / last half);
    * ``concat``: one sub-network ``all`` on every column (not the paper: early fusion).
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r} ({', '.join(STREAMS)})")
    if stream == "concat" or (stream == "both" and streams is None):
        return {"all": (0, in_dim)}
    if stream == "both":
        assert streams is not None
        cols = {name: (int(r[0]), int(r[1])) for name, r in streams.items()}
        for name, (lo, hi) in cols.items():
            if not 0 <= lo < hi <= in_dim or "." in name or not name:
                raise ValueError(f"stream {name!r}: bad column range [{lo}, {hi}) of {in_dim}")
        return cols
    if streams is not None:
        if stream not in streams:
            raise ValueError(f"stream {stream!r}: the features have streams {sorted(streams)}")
        return {stream: (int(streams[stream][0]), int(streams[stream][1]))}
    if in_dim % 2:
        raise ValueError(f"stream {stream!r} needs an even feature dimension, got {in_dim}")
    half = in_dim // 2
    return {stream: (0, half) if stream == "rgb" else (half, in_dim)}


@dataclass(frozen=True)
class CPMNInferOptions:
    """CPMN's own inference knobs (``infer.model`` in its settings)."""

    theta: float = 0.2  # θ_TCAS, fraction of the max of Φ (§3.5)
    top_classes: int = 2  # classes localised per video (2 THUMOS14, 1 ActivityNet)

    def __post_init__(self) -> None:
        if not 0.0 <= self.theta <= 1.0:
            raise ValueError(f"theta must be in [0, 1], got {self.theta}")
        if self.top_classes < 1:
            raise ValueError("top_classes must be at least 1")


@register_model("cpmn")
class CPMN(Localizer):
    """One CPMN sub-network per stream, fused at localisation (Eq. 4, 5, 7, 8).

    Args:
        in_dim: feature dimension of the files.
        num_classes: C.
        stream: ``both`` (the paper): one independent sub-network per stream of ``streams``,
            fused at localisation (one on all columns when no ranges are recorded); ``rgb`` or
            ``flow``: that stream only; ``concat``: one sub-network on the concatenated columns
            (early fusion, not the paper).
        hidden: filters of every hidden convolution (512).
        kernel_size: temporal kernel of the CCM convolutions (3).
        mining: add classifier B on erased features (table 3, "mining T-CAS").
        pam: add the pyramid attention module (table 3, "PAM").
        zeta: erasing threshold ζ (0.4).
        erase_guide: in training, erase after the video's labels (Algorithm 1) or after A's
            predictions (the test-time rule).
        levels: pyramid levels (4: the input and three stacked max poolings, §3.3).
        window: T_ω (64), a multiple of 2^(levels-1); the PAM runs on windows of this length.
        l2_weight: λ of Eq. (6) (0.0025).
        resize: resample each video to this many snippets before the network and the outputs
            back to its length (64 on ActivityNet in the paper); None keeps the length.
        score_mining: also average classifier B's logits into the video scores.
        streams: the features' column range per stream (``{"rgb": [0, 1024], ...}``, passed by
            the training loop from the feature sidecars); None = no recorded ranges (``rgb`` /
            ``flow`` then take the first / last half of the columns).
        ccm_sampling: how the cascaded classifiers see a video longer than ``ccm_segments``
            units: ``sparse`` (the paper: one random unit per segment in training, the
            segments' centres at prediction), ``uniform`` (the centres always), ``all`` (every
            unit, no sampling). See :meth:`CPMNStream.ccm_units`.
        ccm_segments: P, the segments of a sampled video (not in the paper; 750).

    Inference knobs (``infer.model``, :class:`CPMNInferOptions`): ``theta`` θ_TCAS, the
    proposal threshold as a fraction of the max of Φ (0.2); ``top_classes``, classes localised
    per video (2 on THUMOS14, 1 on ActivityNet).
    """

    InferOptions = CPMNInferOptions

    def __init__(
        self,
        *,
        in_dim: int,  # feature dimension D of the files (2048: RGB | flow)
        num_classes: int,  # C
        stream: str = "both",  # both (one sub-network per stream), rgb, flow, or concat
        hidden: int = 512,  # filters of the CCM convolutions and the PAM's k=1 convolutions
        kernel_size: int = 3,  # temporal kernel of the CCM convolutions
        mining: bool = True,  # second classifier on erased features (mining T-CAS)
        pam: bool = True,  # pyramid attention module (H; ones when off)
        zeta: float = 0.4,  # erasing threshold ζ on the normalised T-CAS
        erase_guide: str = "labels",  # training erasure after the labels or the predictions
        levels: int = 4,  # pyramid levels: the input and three max poolings (T ... T/8)
        window: int = 64,  # T_ω of the PAM's windows
        l2_weight: float = 0.0025,  # λ of Eq. (6), on the CCM's weights
        resize: int | None = None,  # resample every video to this many snippets (ActivityNet)
        score_mining: bool = False,  # classifier B's logits in the video scores too
        streams: dict[str, list[int]] | None = None,  # column ranges per stream (sidecars)
        ccm_sampling: str = "sparse",  # the CCM's units of a long video (§3.4, Fig. 5 left)
        ccm_segments: int = 750,  # P segments (not in the paper)
    ) -> None:
        super().__init__()
        if erase_guide not in {"labels", "predictions"}:
            raise ValueError(f"unknown erase_guide {erase_guide!r} (labels or predictions)")
        if levels < 1:
            raise ValueError("levels must be at least 1")
        if resize is not None and resize < 1:
            raise ValueError("resize must be a positive length")
        self.columns = stream_columns(stream, in_dim, streams)
        self.stream = stream
        self.mining = mining
        self.use_pam = pam
        self.nets = nn.ModuleDict({
            name: CPMNStream(columns=cols, num_classes=num_classes, hidden=hidden,
                             kernel_size=kernel_size, mining=mining, pam=pam, zeta=zeta,
                             erase_guide=erase_guide, levels=levels, window=window,
                             l2_weight=l2_weight, resize=resize, score_mining=score_mining,
                             ccm_sampling=ccm_sampling, ccm_segments=ccm_segments)
            for name, cols in self.columns.items()
        })

    def forward(self, x: Tensor, mask: Tensor | None = None) -> CPMNOutput:
        """Args: x (B, T, D) features; mask (B, T) valid snippets (default: all)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        mask = mask.bool()
        outs = {name: net(x, mask) for name, net in self.nets.items()}

        def mean(field: str) -> Tensor:
            return torch.stack([getattr(o, field) for o in outs.values()]).mean(dim=0)

        return CPMNOutput(cas=mean("cas"), video_logits=mean("video_logits"),
                          heatmap=mean("heatmap"), streams=outs, mask=mask)

    def stream_localisation(self, out: CPMNOutput) -> dict[str, Tensor]:
        """Φ_s = sigmoid(M_s(Cas)) · H_s of every stream (Eq. 4, 5), (B, T, C) each."""
        return {name: self.nets[name].localisation(o) for name, o in out.streams.items()}

    def probabilities(self, out: CPMNOutput) -> tuple[Tensor, Tensor]:
        """The fused Φ = mean over streams of Φ_s (B, T, C) (the average of Eq. 7) and the video
        scores p_class (B, C), the mean over streams of each stream's."""
        phi = torch.stack(list(self.stream_localisation(out).values())).mean(dim=0)
        scores = torch.stack([self.nets[name].video_scores(o)
                              for name, o in out.streams.items()]).mean(dim=0)
        return phi, scores

    def candidates(
        self, out: CPMNOutput, *, settings: Any, options: Any = None
    ) -> list[tuple[int, float, float, float]]:
        """Proposals of one video (batch 1), §3.5: (class, start, end, p_conf), snippet units.

        For each of the ``options.top_classes`` classes of highest p_class and each stream s,
        every maximal run of snippets where Φ_s^c ≥ θ_TCAS · max_t Φ_s^c (``options.theta``) is
        a proposal [first, last + 1); p_act is the mean over the run of the fused Φ^c (Eq. 7)
        and p_conf = p_act · p_class^c (Eq. 8). ``settings`` (the pipeline's NMS) is not read
        here.
        """
        del settings
        options = options if options is not None else CPMNInferOptions()
        if out.cas.shape[0] != 1:
            raise ValueError(f"candidates: takes one video, got a batch of {out.cas.shape[0]}")
        phis = {n: p[0].detach().cpu().double().numpy()
                for n, p in self.stream_localisation(out).items()}  # (T, C) each
        fused_t, scores_t = self.probabilities(out)
        fused = fused_t[0].detach().cpu().double().numpy()  # (T, C)
        scores = scores_t[0].detach().cpu().double().numpy()  # (C,)
        top = sorted(range(len(scores)), key=lambda c: -scores[c])[: options.top_classes]
        found: list[tuple[int, float, float, float]] = []
        for c in top:
            for phi in phis.values():
                peak = float(phi[:, c].max())
                if not peak > 0.0:
                    continue
                for first, last in runs_above(phi[:, c], options.theta * peak):
                    p_act = float(fused[first : last + 1, c].mean())
                    found.append((int(c), float(first), float(last + 1), p_act * scores[c]))
        return found

    def unread_infer_settings(self) -> frozenset[str]:
        """CPMN localises the top classes by θ_TCAS (``infer.model``), scored by Eq. 8."""
        return frozenset({"class_threshold", "cas_thresholds", "inflation",
                          "video_score_weight"})

    def loss(
        self, out: CPMNOutput, labels: Tensor, mask: Tensor, *, epoch: int, step: int = 0,
        reference: Any = None, video_loss: str = "bce",
    ) -> tuple[Tensor, dict[str, float]]:
        """The sum over streams of each stream's Eq. (6) terms (classifiers, PAM, λ·L2).

        Parts are named ``cls_a``, ``cls_b``, ``pam``, ``l2``, prefixed with ``<stream>.`` when
        there is more than one stream. ``mask`` is the loop's; each stream uses its own
        (``out.streams[s].mask``), which differs only with ``resize``. ``epoch``, ``step``,
        ``reference`` and ``video_loss`` are unused.
        """
        del mask, epoch, step, reference, video_loss
        terms: dict[str, Tensor] = {}
        many = len(out.streams) > 1
        for name, o in out.streams.items():
            for part, value in self.nets[name].loss(o, labels).items():
                terms[f"{name}.{part}" if many else part] = value
        total = torch.stack(list(terms.values())).sum()
        return total, {name: float(v.detach()) for name, v in terms.items()}

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """The named per-snippet scores a report plots (see :mod:`wtal.report`), on the input's
        time axis, per stream (names prefixed ``<stream>.`` with more than one stream):

        * ``original_tcas``: σ(M(A)) (B, T, C), classifier A's T-CAS;
        * ``mining_tcas``: σ(M(B)) (B, T, C), classifier B's T-CAS on the erased input (mining);
        * ``cascaded_tcas``: σ(M(Cas)) = σ(max(M(A), M(B))) (B, T, C);
        * ``attention``: the PAM's heatmap H in [0, 1] (B, T, C) (PAM only);
        * ``erased`` (B, T): 1 where classifier B saw erased snippets (mining only);

        and ``localisation``: the fused Φ (B, T, C), what the localiser reads.
        """
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        out = self.forward(x, mask)
        seqs: dict[str, Tensor] = {}
        many = len(out.streams) > 1
        for name, o in out.streams.items():
            net = self.nets[name]
            def units(y: Tensor, o: StreamOutput = o, net: CPMNStream = net) -> Tensor:
                back = o.back if o.back is not None else torch.arange(
                    y.shape[1], device=y.device).expand(y.shape[0], -1)
                return net.on_input_axis(net.to_units(y, back), mask)

            own = {"original_tcas": torch.sigmoid(units(o.tcas_a))}
            if o.tcas_b is not None:
                own["mining_tcas"] = torch.sigmoid(units(o.tcas_b))
                own["cascaded_tcas"] = torch.sigmoid(o.cas)
            if net.pam is not None:
                own["attention"] = o.heatmap
            if o.tcas_b is not None:
                erased = units(o.erased.unsqueeze(-1).to(x.dtype))
                own["erased"] = erased[..., 0]  # (B, T)
            seqs.update({f"{name}.{k}" if many else k: v for k, v in own.items()})
        seqs["localisation"] = self.probabilities(out)[0]
        return seqs
