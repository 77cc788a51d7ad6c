"""Train stage: fit a localizer on snippet features with video-level labels only.

The only supervision read is ``index.json``'s per-video ``labels``; segment times never reach
this module. Training is seeded and runs for a fixed number of epochs: the saved model is the
last one, never one picked on the test subset.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wtal
from extractors.features import load_features, resolve_device
from wtal.datasets import load_index
from wtal.io import save_torch, write_json
from wtal.losses import video_loss
from wtal.models import build_model, builder_parameters
from wtal.progress import progress_bar
from wtal.sampling import Sampling, pad_batch, rescale, sample, shot_boundaries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by the localizers."""

    epochs: int = 100  # passes over the training videos
    batch_size: int = 16  # videos per step
    lr: float = 1e-4  # Adam learning rate
    lr_milestones: tuple[int, ...] = ()  # epochs at which the lr is multiplied by lr_gamma
    lr_gamma: float = 0.1  # factor of each lr step
    weight_decay: float = 5e-4  # Adam weight decay
    max_seqlen: int = 750  # longer sequences are randomly cropped to this many snippets
    loss: str = "bce"  # video-level loss: bce or softmax
    feature_norm: str = "standardize"  # standardize (train-set mean/std) or none
    seed: int = 0  # seeds the initialisation, shuffling and cropping
    sampling: str = "all"  # all (random crops of max_seqlen) | uniform | sparse | shot
    num_segments: int = 750  # K units per sampled training sequence (wtal.sampling)
    feature_length: int | None = None  # rescale every sequence to this length (train and test)
    optimizer: str = "adam"  # adam or sgd
    momentum: float = 0.9  # sgd only


def video_name(feature_path: str | os.PathLike[str]) -> str:
    """Video name of a feature file (its stem)."""
    return Path(feature_path).stem


def load_split(
    feature_paths: Sequence[str | os.PathLike[str]],
    index: dict[str, Any],
    *,
    split: str | None = None,
) -> tuple[list[str], list[np.ndarray], np.ndarray, list[dict[str, Any]]]:
    """Features, multi-hot labels and sidecars of the given videos (all of ``split`` if set).

    Returns:
        names, features (each (T, D)), labels (N, C), sidecars.
    """
    classes = index["classes"]
    names, feats, labels, sidecars = [], [], [], []
    for path in feature_paths:
        name = video_name(path)
        if name not in index["videos"]:
            raise ValueError(f"{path}: video {name!r} is not in the dataset index")
        if split is not None and index["videos"][name].get("split") != split:
            raise ValueError(f"{path}: video {name!r} is in split "
                             f"{index['videos'][name].get('split')!r} of the index, not {split!r}")
        x, sidecar = load_features(path)
        if feats and x.shape[1] != feats[0].shape[1]:
            raise ValueError(f"{path}: feature dimension {x.shape[1]} differs from the others")
        y = np.zeros(len(classes), dtype=np.float32)
        for label in index["videos"][name]["labels"]:
            y[classes.index(label)] = 1.0
        names.append(name)
        feats.append(x)
        labels.append(y)
        sidecars.append(sidecar)
    if not names:
        raise ValueError("no training videos")
    return names, feats, np.stack(labels), sidecars


def feature_streams(
    feature_paths: Sequence[str | os.PathLike[str]], sidecars: Sequence[dict[str, Any]]
) -> dict[str, list[int]] | None:
    """The column range of every stream (``{"rgb": [0, 1024], ...}``) the sidecars agree on.

    None when the features record none (bring-your-own features without ``streams``).
    """
    streams = sidecars[0].get("streams")
    for path, sidecar in zip(feature_paths, sidecars, strict=True):
        if sidecar.get("streams") != streams:
            raise ValueError(f"{path}: stream columns {sidecar.get('streams')} differ from "
                             f"{feature_paths[0]}'s {streams}")
    return streams


def model_loss(
    net: torch.nn.Module,
    out: Any,
    labels: torch.Tensor,
    mask: torch.Tensor,
    *,
    kind: str,
    epoch: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch.

    A model with its own objective defines ``loss(out, labels, mask, *, epoch)`` returning the
    total loss and a dict of named parts (floats, logged per epoch in ``train.json``); every
    other model is trained with the video-level loss ``kind`` on ``out.video_logits``.

    Args:
        net: the model.
        out: what ``net(x, mask)`` returned.
        labels: (B, C) multi-hot video-level labels.
        mask: (B, T) valid snippets.
        kind: video-level loss of the settings (bce or softmax).
        epoch: 0-based epoch, for schedules that switch objectives.
    """
    custom = getattr(net, "loss", None)
    if callable(custom):
        return custom(out, labels, mask, epoch=epoch)
    loss = video_loss(out.video_logits, labels, kind=kind)
    return loss, {kind: loss.item()}


def feature_statistics(feats: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale (D,) for standardising features, from the training videos.

    Columns (nearly) constant over the training set — dead ReLU units of the backbone, common
    in I3D features — carry nothing a model can learn from: their scale is infinite, so they
    standardise to 0 in training and at test time alike. A column counts as constant when its
    standard deviation is under 1% of the median column's. Dividing by their tiny deviation
    instead would blow a test video's small values up by orders of magnitude (1e5 on the demo),
    making its scores as unstable as the last bits of the arithmetic; keeping them at their raw
    scale would feed test-time values to weights that never saw any.
    """
    allx = np.concatenate(feats).astype(np.float64)
    mean = allx.mean(axis=0)
    std = allx.std(axis=0)
    positive = std[std > 0]
    floor = 0.01 * float(np.median(positive)) if positive.size else 0.0
    std = np.where(std > floor, std, np.inf)
    return mean.astype(np.float32), std.astype(np.float32)


def make_optimizer(net: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """Adam or SGD over the model's parameter groups.

    A model with per-part learning rates (TSRNet's RGB and flow streams) defines
    ``param_groups(lr)`` returning torch parameter groups; otherwise all parameters share
    ``settings.lr``.
    """
    groups_of = getattr(net, "param_groups", None)
    groups = groups_of(settings.lr) if callable(groups_of) else [{"params": net.parameters()}]
    if settings.optimizer == "adam":
        return torch.optim.Adam(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    raise ValueError(f"unknown optimizer {settings.optimizer!r} (adam or sgd)")


def train(
    index_path: str | os.PathLike[str],
    feature_paths: Sequence[str | os.PathLike[str]],
    model_out: str | os.PathLike[str],
    log_out: str | os.PathLike[str],
    *,
    model: str,
    model_args: dict[str, Any],
    settings: TrainSettings,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = False,
    trimmed_paths: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """Train stage: write ``model.pt`` and ``train.json``.

    Hooks a model may define (all optional; see the module docs of the models that use them):

    * ``pretrain(feats, labels, *, trimmed, settings, rng, device) -> dict`` runs once before
      the main loop, on the standardised training sequences and, when the dataset has trimmed
      clips (``trimmed_paths``), on theirs: ``trimmed`` is ``(sequences, (M, C) labels)`` or
      None. Knowledge-transfer models train their trimmed branch here; ASSG its seed network.
      What it returns is recorded in ``train.json`` under ``pretrain``.
    * ``param_groups(lr)``: optimiser parameter groups (:func:`make_optimizer`).
    * ``loss(out, labels, mask, *, epoch)``: the model's own objective (:func:`model_loss`).

    Args:
        index_path: the index stage's ``index.json`` (labels only are used).
        feature_paths: one feature file per training video.
        model_out: where to save the checkpoint.
        log_out: where to write ``train.json`` (loss curve, timing, settings).
        model: registered model name.
        model_args: keyword arguments of the model builder (besides in_dim and num_classes).
        settings: optimisation settings.
        device: ``auto``, ``cpu`` or ``cuda``.
        threads: torch CPU threads.
        progress: show a progress bar over epochs.
        trimmed_paths: feature files of the dataset's trimmed clips (index split ``trimmed``),
            for the models with a ``pretrain`` hook that learn from them.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.time()
    index = load_index(index_path)
    names, feats, labels, sidecars = load_split(feature_paths, index)
    if settings.feature_length is not None:  # e.g. KT-MGFN on ActivityNet: 256
        feats = [rescale(x, settings.feature_length) for x in feats]
    dim = feats[0].shape[1]
    if settings.feature_norm == "standardize":
        mean, std = feature_statistics(feats)
    elif settings.feature_norm == "none":
        mean, std = np.zeros(dim, np.float32), np.ones(dim, np.float32)
    else:
        raise ValueError(f"unknown feature_norm {settings.feature_norm!r}")
    feats = [((x - mean) / std).astype(np.float32) for x in feats]
    trimmed = None
    if trimmed_paths:
        _, trimmed_feats, trimmed_labels, _ = load_split(trimmed_paths, index, split="trimmed")
        if trimmed_feats[0].shape[1] != dim:
            raise ValueError(f"{trimmed_paths[0]}: trimmed clips' features are "
                             f"{trimmed_feats[0].shape[1]}-d, the videos' {dim}-d")
        trimmed = ([((x - mean) / std).astype(np.float32) for x in trimmed_feats],
                   trimmed_labels)
    sampler = Sampling(strategy=settings.sampling, num_segments=settings.num_segments)
    boundaries = ([shot_boundaries(x, z=sampler.shot_z, min_shot=sampler.min_shot)
                   for x in feats] if sampler.strategy == "shot" else None)

    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    dev = resolve_device(device)
    streams = feature_streams(feature_paths, sidecars)
    if "streams" in builder_parameters(model):  # models that treat RGB and flow apart
        model_args = {**model_args, "streams": streams}
        if streams is None and model_args.get("stream", "both") != "both":
            logger.warning("%s: the features record no stream column ranges (set `streams` in "
                           "the dataset config), so stream %r is not defined: one stream of all "
                           "%d columns is used", model, model_args["stream"], dim)
            model_args["stream"] = "both"
    net = build_model(model, in_dim=dim, num_classes=len(index["classes"]), **model_args).to(dev)
    pretrain = getattr(net, "pretrain", None)
    pretrain_log: dict[str, Any] | str = "none: the model has no pretrain stage"
    if callable(pretrain):
        pretrain_log = pretrain(feats, labels, trimmed=trimmed, settings=settings, rng=rng,
                                device=dev)
    elif trimmed is not None:
        logger.warning("%s does not learn from trimmed clips: the %d given are not used",
                       model, len(trimmed[0]))
    opt = make_optimizer(net, settings)
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=list(settings.lr_milestones), gamma=settings.lr_gamma
    )
    y_all = torch.from_numpy(labels)
    curve: list[float] = []
    epochs = range(settings.epochs)
    epochs = progress_bar(epochs, desc=f"train {model}", unit="epoch", show=progress)
    net.train()
    parts_curve: dict[str, list[float]] = {}
    lrs: list[float] = []  # the first parameter group's
    group_lrs: list[list[float]] = []  # every group's (per-stream rates)
    epoch_seconds: list[float] = []
    for epoch in epochs:
        t_epoch = time.time()
        order = rng.permutation(len(names))
        losses = []
        part_sums: dict[str, float] = {}
        for lo in range(0, len(order), settings.batch_size):
            idx = order[lo : lo + settings.batch_size]
            seqs = []
            for i in idx:
                x = feats[i]
                if sampler.strategy != "all":
                    x = sample(x, sampler, rng, boundaries[i] if boundaries else None)
                elif len(x) > settings.max_seqlen:
                    start = int(rng.integers(0, len(x) - settings.max_seqlen + 1))
                    x = x[start : start + settings.max_seqlen]
                seqs.append(x)
            x, mask = pad_batch(seqs)
            out = net(x.to(dev), mask.to(dev))
            loss, parts = model_loss(net, out, y_all[idx].to(dev), mask.to(dev),
                                     kind=settings.loss, epoch=epoch)
            for name, value in parts.items():
                part_sums[name] = part_sums.get(name, 0.0) + value
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{model}: training loss became {loss.item()}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curve.append(float(np.mean(losses)))
        epoch_seconds.append(time.time() - t_epoch)
        lrs.append(opt.param_groups[0]["lr"])
        group_lrs.append([group["lr"] for group in opt.param_groups])
        schedule.step()
        for name, total in part_sums.items():
            parts_curve.setdefault(name, []).append(total / len(losses))
    checkpoint = {
        "model": model,
        "model_args": model_args,
        "in_dim": dim,
        "classes": index["classes"],
        "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
        "feature_norm": {"mean": torch.from_numpy(mean), "std": torch.from_numpy(std)},
        "train_settings": asdict(settings),
        "feature_settings": {
            k: sidecars[0].get(k) for k in ("extractor", "settings", "flow", "frames")
        },
        "dataset": index["dataset"],
        "code_version": wtal.__version__,
    }
    save_torch(model_out, checkpoint)
    log = {
        "model": model,
        "dataset": index["dataset"],
        "n_videos": len(names),
        "videos": names,
        "feature_dim": dim,
        "streams": streams if streams is not None else "none recorded: one stream",
        "settings": asdict(settings),
        "model_args": model_args,
        "loss": curve,
        "loss_parts": parts_curve,
        "lr": lrs,
        "lr_groups": group_lrs,
        "epoch_seconds": epoch_seconds,
        "pretrain": pretrain_log,
        "n_trimmed": 0 if trimmed is None else len(trimmed[0]),
        "seconds": time.time() - t0,
        "device": str(dev),
        "code_version": wtal.__version__,
    }
    write_json(log_out, log)
    return log
