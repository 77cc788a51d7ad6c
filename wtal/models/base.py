"""The localizer contract: what every model provides and all the stages call.

A localizer is an :class:`torch.nn.Module` subclassing :class:`Localizer`. The stages (train,
infer, report, ablation, ``wtal detect``) call the methods below and nothing else; a model
overrides the ones it needs, the others keep the defaults written here. This docstring is the
single list of what a model provides:

``forward(x, mask=None) -> LocalizerOutput``  (required)
    ``x`` (B, T, D) standardised snippet features, ``mask`` (B, T) valid snippets. Returns a
    named tuple or dataclass with at least ``cas`` (B, T, C) per-snippet class logits,
    ``video_logits`` (B, C) and ``mask`` (B, T); anything else the model's own methods read.

``loss(out, labels, mask, *, epoch, step, reference, video_loss) -> (Tensor, parts)``
    The training objective of one batch: the total and a dict of named float parts (logged per
    epoch in ``train.json``). ``epoch`` is 0-based, ``step`` counts the optimiser steps of the
    main loop from 0, ``reference`` is what :meth:`Localizer.pretrain` returned in
    :attr:`Pretrained.reference` (None without one), ``video_loss`` the training settings'
    video-level loss. Default: ``video_loss`` on ``out.video_logits``.

``pretrain(inputs: PretrainInputs) -> Pretrained``
    Runs once before the main loop, on :class:`PretrainInputs`: the standardised training
    sequences and their labels, the dataset's trimmed clips (``(sequences, (M, C) labels)`` or
    None), the loop's settings, generator and device. It may train the model's own
    parameters (ASSG's seed network, then listed by :meth:`frozen_modules`); everything else the
    main loop needs it returns explicitly in :class:`Pretrained` (``reference``, handed to every
    :meth:`loss` call); nothing is left in hidden attributes. Default: nothing to do.

``frozen_modules() -> sequence of modules``
    Sub-modules that the main loop keeps in evaluation mode and does not optimise (trained, if
    at all, by ``pretrain``). Default: none.

``param_groups(lr) -> list of torch parameter groups``
    What the optimiser updates, with per-group learning rates if the model has several
    (TSRNet's streams). Default: every parameter outside the frozen modules at ``lr``.

``probabilities(out) -> (cas (B, T, C), video scores (B, C))``
    Both in [0, 1], what localisation reads. Default: sigmoids of ``cas`` and ``video_logits``.

``candidates(out, *, settings, options) -> list[Candidate] | None``
    The model's own candidate segments of one video (batch of 1): ``(class, start, end,
    score)`` in continuous snippet coordinates (snippet t covers ``[t, t + 1)``). ``settings``
    are the infer stage's :class:`wtal.settings.InferSettings`, ``options`` an instance of the
    model's :attr:`Localizer.InferOptions` (its own inference knobs, the ``infer.model``
    settings). None (the default) lets the infer stage threshold the CAS of
    :meth:`probabilities` (:func:`wtal.infer.cas_candidates`).

``test_indices(n_snippets, *, train_settings, options) -> index array | None``
    The snippets of a test video of ``n_snippets`` the model reads, in order (e.g. KT-MGFN's
    uniform test-time sampling to its training length), given the checkpoint's training
    settings (a dict) and the model's inference knobs; the infer stage maps the CAS and the
    candidates back to the video's own snippets. Default: None, every snippet.

``unread_infer_settings() -> frozenset of InferSettings names``
    The generic localisation settings (``class_threshold``, ``cas_thresholds``, ``inflation``,
    ``video_score_weight``) that this model's :meth:`candidates` does not read; the infer
    stage says so when one is set, instead of ignoring it silently. Default: none.

``InferOptions``  (class attribute)
    A frozen dataclass of the model's inference-only knobs (default: none). They are settings
    of the infer stage, not of the builder: changing one reruns inference, never training.

``score_sequences(x, mask=None) -> dict[str, Tensor]``
    Named per-snippet sequences in [0, 1], (B, T, C) or (B, T), that a report draws. Default:
    ``{"cas": probabilities(...)[0]}``.

A model is registered with :func:`wtal.models.register_model` under a name; its builder takes
keyword arguments ``in_dim``, ``num_classes`` and the model's ``args`` (what trains).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from wtal.losses import video_loss as video_level_loss

if TYPE_CHECKING:
    from wtal.settings import InferSettings, TrainSettings

#: A candidate segment: (class index, start, end, score), continuous snippet coordinates.
Candidate = tuple[int, float, float, float]

#: Trimmed clips handed to pretraining: (standardised sequences (T_j, D), (M, C) labels).
Trimmed = tuple[Sequence[np.ndarray], np.ndarray]


class LocalizerOutput(Protocol):
    """What every forward pass gives (models add their own fields)."""

    @property
    def cas(self) -> Tensor: ...  # (B, T, C) per-snippet class logits

    @property
    def video_logits(self) -> Tensor: ...  # (B, C)

    @property
    def mask(self) -> Tensor: ...  # (B, T) valid snippets


@dataclass(frozen=True)
class NoInferOptions:
    """A model without inference knobs of its own."""


@dataclass(frozen=True)
class PretrainInputs:
    """What the training loop hands :meth:`Localizer.pretrain`, once, before the main loop."""

    videos: Sequence[np.ndarray]  # the training videos' standardised features, each (T_i, D)
    labels: np.ndarray  # (N, C) their multi-hot video-level labels
    trimmed: Trimmed | None  # the trimmed clips standardised alike, or None (see ``Trimmed``)
    settings: TrainSettings  # the loop's settings (lr, batch size, epochs, ...)
    rng: np.random.Generator  # the loop's generator (shuffling, cropping)
    device: torch.device  # where the loop trains


@dataclass(frozen=True)
class Pretrained:
    """What :meth:`Localizer.pretrain` hands the main loop."""

    log: dict[str, Any] | str  # recorded in train.json under "pretrain"
    reference: Any = None  # given to every loss() call as ``reference`` (e.g. trimmed reps)
    used_trimmed: bool = False  # whether the trimmed clips were learnt from
    #: why the knowledge transfer that the model's arguments ask for could not run (no trimmed
    #: clips, none sharing a class), or None: it ran, or the arguments switch it off. Recorded
    #: in ``train.json`` (``transfer_missing``); ablation tables mark such rows.
    transfer_missing: str | None = None


def full_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """``mask`` as a bool (B, T) tensor, all valid when None."""
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return mask.bool()


class Localizer(nn.Module):
    """Base class of every model: the contract of the module docstring, with its defaults."""

    InferOptions: ClassVar[type] = NoInferOptions

    def forward(self, x: Tensor, mask: Tensor | None = None) -> LocalizerOutput:
        raise NotImplementedError(f"{type(self).__name__} defines no forward")

    # -- training ------------------------------------------------------------------------------

    def frozen_modules(self) -> Sequence[nn.Module]:
        """Sub-modules kept in evaluation mode and out of the optimiser in the main loop."""
        return ()

    def train(self, mode: bool = True) -> Localizer:
        """Set the mode; :meth:`frozen_modules` always stay in evaluation mode."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Every parameter outside the frozen modules, in one group at ``lr``."""
        frozen = {id(p) for m in self.frozen_modules() for p in m.parameters()}
        return [{"params": [p for p in self.parameters() if id(p) not in frozen], "lr": lr}]

    def pretrain(self, inputs: PretrainInputs) -> Pretrained:
        """Nothing to pretrain (see the module docstring for what an override does)."""
        del inputs
        return Pretrained(log="none: the model has no pretrain stage")

    def loss(
        self,
        out: Any,
        labels: Tensor,
        mask: Tensor,
        *,
        epoch: int,
        step: int = 0,
        reference: Any = None,
        video_loss: str = "bce",
    ) -> tuple[Tensor, dict[str, float]]:
        """The video-level loss ``video_loss`` (bce or softmax) on ``out.video_logits``."""
        del mask, epoch, step, reference
        total = video_level_loss(out.video_logits, labels, kind=video_loss)
        return total, {video_loss: total.item()}

    # -- inference -----------------------------------------------------------------------------

    def probabilities(self, out: Any) -> tuple[Tensor, Tensor]:
        """σ(cas) (B, T, C) and σ(video_logits) (B, C)."""
        return torch.sigmoid(out.cas), torch.sigmoid(out.video_logits)

    def candidates(
        self, out: Any, *, settings: InferSettings, options: Any = None
    ) -> list[Candidate] | None:
        """None: the infer stage thresholds the CAS (:func:`wtal.infer.cas_candidates`)."""
        del out, settings, options
        return None

    def test_indices(
        self, n_snippets: int, *, train_settings: Mapping[str, Any], options: Any = None
    ) -> np.ndarray | None:
        """Every snippet of a test video is read (None)."""
        del n_snippets, train_settings, options
        return None

    def unread_infer_settings(self) -> frozenset[str]:
        """Generic localisation settings :meth:`candidates` does not read: none."""
        return frozenset()

    @torch.no_grad()
    def score_sequences(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """``cas``: the CAS of :meth:`probabilities` (B, T, C)."""
        return {"cas": self.probabilities(self.forward(x, mask))[0]}
