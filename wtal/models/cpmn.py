"""``cpmn``: Cascaded Pyramid Mining Network (Su, Zhao & Lin, ACCV 2018).

Three sub-modules on the snippet features of one stream (the paper trains one CPMN on the RGB
features and one on the flow features; ``stream`` picks the columns):

* **Cascaded classification module (CCM)**, two classifiers of the same structure, each two
  temporal convolutions (k=3, 512 filters, ReLU) → global average pooling → FC → sigmoid. The
  T-CAS of a classifier is its FC weights applied per snippet, M_t^c = Σ_k w^c(k) Z_t(k)
  (Eq. 2); classifier A sees the features, classifier B the same features with the snippets
  where A's min-max normalised T-CAS exceeds ζ (0.4) set to zero, for the target classes
  (online adversarial erasing, Algorithm 1). M(Cas) = max(M(A), M(B)).
* **Pyramid attention module (PAM)**, three levels of length T, T/2, T/4 (stacked max pooling,
  scale 2); per level a k=1 convolution (512 filters, ReLU), top-down lateral connections
  (the coarser level's features repeated ×2 and added), a k=1 prediction convolution with C
  filters giving the label map K_l (T_l, C); the video prediction is the average over levels of
  each level's global average pool. The heatmap H sums the label maps upsampled by repetition
  (×2^(l-1)) and min-max normalises every class over the video (Eq. 3).
* **Temporal action localisation**: Φ = sigmoid(M(Cas)) · H (Eq. 4/5), given by
  :meth:`CPMN.probabilities` to the generic localiser of :mod:`wtal.infer`.

::

    x (B, T, D) ─ stream columns ─▶ f (B, T, D')
      f ─ [Conv1d(k3,512)─ReLU]×2 ─▶ Z_A (B,T,K) ─ W_A ─▶ M(A) (B,T,C);  GAP(Z_A)─FC─▶ s_A (B,C)
      M(A) ─ min-max per class, > ζ on target classes ─▶ erased (B, T)
      f ⊙ ¬erased ─ classifier B ─▶ M(B) (B,T,C), s_B (B,C)
      M(Cas) = max(M(A), M(B))                                            ─▶ cas (B, T, C)
      f ─ maxpool×2 ─ maxpool×2 ─▶ levels (B,D',T_l) ─ Conv1d(k1,512)─ReLU ─ top-down + ─
        ─ Conv1d(k1,C) ─▶ K_l (B,T_l,C) ─ GAP, mean over l ─▶ s_PAM (B,C)
        ─ repeat ×2^(l-1), Σ_l, min-max over T (Eq. 3)                   ─▶ heatmap H (B,T,C)
      video_logits = mean(s_A, s_B, s_PAM)                                ─▶ (B, C)
      probabilities: Φ = sigmoid(cas) · H (Eq. 4); video scores sigmoid(mean(s_A, s_PAM))

Training (Eq. 6): sigmoid cross-entropy summed over classes and averaged over the batch, for
each active classifier and the PAM, plus λ·L2 (λ = 0.0025, ``tf.nn.l2_loss`` convention
Σw²/2) on the weights of the CCM. In training, classifier B's erasing follows the video's
labels (Algorithm 1: M^c(A) for c ∈ ψ_v); ``forward`` has no labels and erases after the
classes A predicts (probability ≥ 0.5, at least the top one), which is also the rule at test
time, and :meth:`CPMN.loss` re-runs classifier B when the label-guided erasure differs.

Video scores (p_class of Eq. 8; the paper does not say which classifier gives them): the
mean of the logits of classifier A and the PAM, the two branches that see the whole video.
Classifier B is trained to classify videos whose most discriminative snippets were erased
after the labels, and at test time sees an erasure guided by A's guesses, so its video logits
are a poor class score (on the demo it confidently names absent classes); ``score_mining=True``
adds them. ``video_logits`` of the output averages all active branches (A, B, PAM): the
project's generic contract (every parameter reaches it); the model's own loss and
``probabilities`` do not use it.

Choices the paper leaves open, made here: the erasing threshold ζ is applied to the min-max
normalised T-CAS (the paper sweeps ζ in 0.3-0.7, a [0, 1] scale); erased snippets are set to
zero (the standardised mean) and stay in B's average pool; the erasure of a multi-label video
is the union over its target classes; the PAM's first level is the input itself (T_l =
T/2^(l-1), so three levels need two poolings) and pools with ``ceil_mode`` (odd lengths keep
their last snippet); the level predictions are averaged as logits. The PAM consists of k=1
convolutions and aligned poolings, so running it on a whole video equals running it on
consecutive windows of ``window`` snippets and concatenating (the paper's sliding windows at
test time) whenever ``window`` is a multiple of 2^(levels-1); a video shorter than a window is
padded to one (masked, so this changes no output). Padding snippets (``mask`` False) are zeroed
at the input, left out of every average pool, the max pooling and the min-max normalisations.

Table 3's ablation: ``mining=False, pam=False`` is the original T-CAS (a CAM classifier),
``mining=True, pam=False`` adds the mining T-CAS, ``mining=True, pam=True`` is CPMN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wtal.models.registry import register_model

STREAMS = ("rgb", "flow", "both")


class CPMNOutput(NamedTuple):
    """What CPMN gives for a batch.

    ``cas``, ``video_logits`` and ``heatmap`` are on the input's time axis; the other fields are
    on the classifiers' time axis (the same unless ``resize`` is set) and serve the loss and the
    tests.
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
    features: Tensor  # (B, T', D') the stream's features the classifiers saw (padding zeroed)
    mask: Tensor  # (B, T') bool valid snippets on the classifiers' time axis


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Average (B, T, K) over the valid snippets of (B, T) ``mask`` → (B, K)."""
    m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def masked_minmax(x: Tensor, mask: Tensor, *, flat: float = 0.0) -> Tensor:
    """Min-max normalise (B, T, C) over the valid snippets of each video, per class (Eq. 3).

    A class that is constant over the video maps to ``flat``; padding maps to zeros.
    """
    valid = mask.unsqueeze(-1)  # (B, T, 1)
    lo = x.masked_fill(~valid, float("inf")).amin(dim=1, keepdim=True)  # (B, 1, C)
    hi = x.masked_fill(~valid, float("-inf")).amax(dim=1, keepdim=True)  # (B, 1, C)
    span = hi - lo
    ok = torch.isfinite(span) & (span > 1e-12)
    out = torch.where(ok, (x - lo) / torch.where(ok, span, torch.ones_like(span)),
                      torch.full_like(x, flat))
    return out.masked_fill(~valid, 0.0)


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
    """The pyramid attention module: label maps at T, T/2, T/4, …; heatmap (Eq. 3)."""

    def __init__(
        self, *, in_dim: int, num_classes: int, hidden: int, levels: int, window: int
    ) -> None:
        super().__init__()
        self.levels = levels
        self.window = window
        self.lateral = nn.ModuleList(nn.Conv1d(in_dim, hidden, 1) for _ in range(levels))
        self.predict = nn.ModuleList(nn.Conv1d(hidden, num_classes, 1) for _ in range(levels))

    def label_maps(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Label maps K_l (B, T_l, C) and level masks (B, T_l), l = 1 … levels.

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

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, T, D), (B, T) → video logits (B, C), summed maps (B, T, C), heatmap H (B, T, C)."""
        t = x.shape[1]
        if t < self.window:  # a video shorter than a window is padded to one (§3.5)
            x = F.pad(x, (0, 0, 0, self.window - t))
            mask = F.pad(mask, (0, self.window - t), value=False)
        maps, masks = self.label_maps(x, mask)
        logits = torch.stack([masked_mean(k, m) for k, m in zip(maps, masks, strict=True)])
        logits = logits.mean(dim=0)  # (B, C): average of the levels' GAP predictions
        summed = sum(upsample_repeat(k, 2**i, x.shape[1]) for i, k in enumerate(maps))
        summed = summed[:, :t]  # (B, T, C)
        heat = masked_minmax(summed, mask[:, :t], flat=1.0)  # Eq. (3); flat → no attention
        return logits, summed, heat


class CPMN(nn.Module):
    """Cascaded classification module + pyramid attention module; Φ = sigmoid(M(Cas)) · H."""

    def __init__(
        self,
        *,
        in_dim: int,  # feature dimension D of the files (2048: RGB | flow)
        num_classes: int,  # C
        stream: str = "both",  # rgb (first D/2 columns), flow (last D/2) or both
        hidden: int = 512,  # filters of the CCM convolutions and the PAM's k=1 convolutions
        kernel_size: int = 3,  # temporal kernel of the CCM convolutions
        mining: bool = True,  # second classifier on erased features (mining T-CAS)
        pam: bool = True,  # pyramid attention module (H; ones when off)
        zeta: float = 0.4,  # erasing threshold ζ on the normalised T-CAS
        erase_guide: str = "labels",  # training erasure after the labels or the predictions
        levels: int = 3,  # pyramid levels (lengths T, T/2, T/4)
        window: int = 64,  # T_ω: shorter inputs are padded to it inside the PAM
        l2_weight: float = 0.0025,  # λ of Eq. (6), on the CCM's weights
        resize: int | None = None,  # resample every video to this many snippets (ActivityNet)
        score_mining: bool = False,  # classifier B's logits in the video scores too
        streams: dict[str, list[int]] | None = None,  # column ranges per stream (sidecars)
    ) -> None:
        super().__init__()
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r} (rgb, flow or both)")
        if streams is not None and stream != "both" and stream not in streams:
            raise ValueError(f"stream {stream!r}: the features have streams {sorted(streams)}")
        if streams is None and stream != "both" and in_dim % 2:
            raise ValueError(f"stream {stream!r} needs an even feature dimension, got {in_dim}")
        if erase_guide not in {"labels", "predictions"}:
            raise ValueError(f"unknown erase_guide {erase_guide!r} (labels or predictions)")
        if levels < 1:
            raise ValueError("levels must be at least 1")
        if resize is not None and resize < 1:
            raise ValueError("resize must be a positive length")
        half = in_dim // 2
        self.columns = {"rgb": (0, half), "flow": (half, in_dim), "both": (0, in_dim)}[stream]
        if streams is not None and stream != "both":
            self.columns = (int(streams[stream][0]), int(streams[stream][1]))
        dim = self.columns[1] - self.columns[0]
        self.stream = stream
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
        return x[..., lo:hi] * mask.unsqueeze(-1).to(x.dtype)  # (B, T, D'), padding zeroed

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

    def predicted_targets(self, logits_a: Tensor) -> Tensor:
        """Classes erased without labels: probability ≥ 0.5, and always the top one. (B, C)."""
        top = F.one_hot(logits_a.argmax(dim=1), logits_a.shape[1]).bool()
        return (logits_a.detach() >= 0.0) | top

    def erase(self, features: Tensor, erased: Tensor) -> Tensor:
        """Zero the erased snippets of (B, T, D') features."""
        return features.masked_fill(erased.unsqueeze(-1), 0.0)

    # -- the model ---------------------------------------------------------------------------

    def forward(self, x: Tensor, mask: Tensor | None = None) -> CPMNOutput:
        """Args: x (B, T, D) features; mask (B, T) valid snippets (default: all)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        f = self._select(x, mask)  # (B, T, D')
        m = mask
        if self.resize is not None:
            f, m = self._resize_in(f, mask)  # (B, R, D'), (B, R)
        tcas_a, logits_a = self.classifier_a(f, m)  # (B, T', C), (B, C)
        branches = [logits_a]
        cas, tcas_b, logits_b = tcas_a, None, None
        erased = torch.zeros_like(m)
        if self.classifier_b is not None:
            erased = erasing_mask(tcas_a, m, self.predicted_targets(logits_a), zeta=self.zeta)
            tcas_b, logits_b = self.classifier_b(self.erase(f, erased), m)
            cas = torch.maximum(tcas_a, tcas_b)  # M(Cas), (B, T', C)
            branches.append(logits_b)
        logits_pam = None
        heat = torch.ones_like(cas)
        if self.pam is not None:
            logits_pam, _, heat = self.pam(f, m)  # (B, C), _, (B, T', C)
            branches.append(logits_pam)
        video_logits = torch.stack(branches).mean(dim=0)  # (B, C)
        cas_out, heat_out = cas, heat
        if self.resize is not None:
            cas_out = self._resize_out(cas, mask)  # (B, T, C)
            heat_out = self._resize_out(heat, mask)
        return CPMNOutput(cas=cas_out, video_logits=video_logits, heatmap=heat_out,
                          logits_a=logits_a, logits_b=logits_b, logits_pam=logits_pam,
                          tcas_a=tcas_a, tcas_b=tcas_b, erased=erased, features=f, mask=m)

    def video_scores(self, out: CPMNOutput) -> Tensor:
        """p_class (B, C): sigmoid of the mean logits of A and the PAM (and B if asked)."""
        branches = [out.logits_a]
        if self.score_mining and out.logits_b is not None:
            branches.append(out.logits_b)
        if out.logits_pam is not None:
            branches.append(out.logits_pam)
        return torch.sigmoid(torch.stack(branches).mean(dim=0))

    def probabilities(self, out: CPMNOutput) -> tuple[Tensor, Tensor]:
        """Φ = sigmoid(M(Cas)) · H (Eq. 4/5), (B, T, C), and video scores p_class (B, C)."""
        return torch.sigmoid(out.cas) * out.heatmap, self.video_scores(out)

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """The named per-snippet scores a report plots (see :mod:`wtal.report`), on the input's
        time axis:

        * ``original_tcas``: σ(M(A)) (B, T, C), classifier A's T-CAS;
        * ``mining_tcas``: σ(M(B)) (B, T, C), classifier B's T-CAS on the erased input (mining);
        * ``cascaded_tcas``: σ(M(Cas)) = σ(max(M(A), M(B))) (B, T, C);
        * ``attention``: the PAM's heatmap H in [0, 1] (B, T, C) (PAM only);
        * ``localisation``: Φ = σ(M(Cas)) · H (B, T, C), what the localiser reads;
        * ``erased`` (B, T): 1 where classifier B saw erased snippets (mining only).
        """
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        out = self.forward(x, mask)

        def on_input_axis(y: Tensor) -> Tensor:  # (B, T', K) → (B, T, K)
            return self._resize_out(y, mask) if self.resize is not None else y

        seqs = {"original_tcas": torch.sigmoid(on_input_axis(out.tcas_a))}
        if out.tcas_b is not None:
            seqs["mining_tcas"] = torch.sigmoid(on_input_axis(out.tcas_b))
            seqs["cascaded_tcas"] = torch.sigmoid(out.cas)
        if self.pam is not None:
            seqs["attention"] = out.heatmap
        seqs["localisation"] = self.probabilities(out)[0]
        if out.tcas_b is not None:
            erased = on_input_axis(out.erased.unsqueeze(-1).to(x.dtype))  # (B, T, 1)
            seqs["erased"] = erased[..., 0]
        return seqs

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

    def loss(
        self, out: CPMNOutput, labels: Tensor, mask: Tensor, *, epoch: int
    ) -> tuple[Tensor, dict[str, float]]:
        """Eq. (6) for each classifier, the PAM's cross-entropy, and λ·L2 on the CCM.

        ``mask`` is the loop's; the model's own (``out.mask``) is used, which differs only with
        ``resize``. ``epoch`` is unused (no schedule).
        """
        del mask, epoch
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
        total = torch.stack(list(parts.values())).sum()
        return total, {name: float(v.detach()) for name, v in parts.items()}


@register_model("cpmn")
def cpmn(
    *,
    in_dim: int,
    num_classes: int,
    stream: str = "both",
    hidden: int = 512,
    kernel_size: int = 3,
    mining: bool = True,
    pam: bool = True,
    zeta: float = 0.4,
    erase_guide: str = "labels",
    levels: int = 3,
    window: int = 64,
    l2_weight: float = 0.0025,
    resize: int | None = None,
    score_mining: bool = False,
    streams: dict[str, list[int]] | None = None,
) -> CPMN:
    """Build CPMN.

    Args:
        in_dim: feature dimension of the files; columns [0, D/2) are RGB, [D/2, D) flow.
        num_classes: C.
        stream: ``rgb`` or ``flow`` trains one of the paper's two separate streams; ``both``
            feeds the concatenated features to one network (not the paper's late fusion of two
            streams, Eq. 7, which needs two models and is left to the pipeline).
        hidden: filters of every hidden convolution (512).
        kernel_size: temporal kernel of the CCM convolutions (3).
        mining: add classifier B on erased features (table 3, "mining T-CAS").
        pam: add the pyramid attention module (table 3, "PAM").
        zeta: erasing threshold ζ (0.4).
        erase_guide: in training, erase after the video's labels (Algorithm 1) or after A's
            predictions (the test-time rule).
        levels: pyramid levels (3).
        window: T_ω (64); the PAM pads shorter inputs to it.
        l2_weight: λ of Eq. (6) (0.0025).
        resize: resample each video to this many snippets before the network and the outputs
            back to its length (64 on ActivityNet in the paper); None keeps the length.
        score_mining: also average classifier B's logits into the video scores.
        streams: the features' column range per stream (``{"rgb": [0, 1024], ...}``, passed by
            the training loop from the feature sidecars); None = the halves convention above.
    """
    return CPMN(in_dim=in_dim, num_classes=num_classes, stream=stream, hidden=hidden,
                kernel_size=kernel_size, mining=mining, pam=pam, zeta=zeta,
                erase_guide=erase_guide, levels=levels, window=window, l2_weight=l2_weight,
                resize=resize, score_mining=score_mining, streams=streams)
