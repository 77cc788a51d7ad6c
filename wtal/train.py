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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wtal
from extractors.features import load_features, resolve_device
from wtal.byof import split_files
from wtal.datasets import load_index
from wtal.fitting import fit, random_crop, step_schedule
from wtal.fitting import make_optimizer as optimizer_of
from wtal.models import build_model, builder_parameters
from wtal.models.base import Localizer, PretrainInputs
from wtal.sampling import Sampling, rescale, sample, shot_boundaries
from wtal.settings import TrainSettings
from wtal.versions import provenance
from wtalio import save_torch, write_json

__all__ = ["TrainSettings", "feature_statistics", "load_split", "make_optimizer", "train"]

logger = logging.getLogger(__name__)


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


def make_optimizer(net: Localizer, settings: TrainSettings) -> torch.optim.Optimizer:
    """The settings' optimiser over the model's parameter groups
    (:meth:`Localizer.param_groups`, :func:`wtal.fitting.make_optimizer`)."""
    return optimizer_of(net.param_groups(settings.lr), optimizer=settings.optimizer,
                        lr=settings.lr, weight_decay=settings.weight_decay,
                        momentum=settings.momentum)


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

    The model is driven through its :class:`wtal.models.base.Localizer` contract: ``pretrain``
    once (on the standardised training sequences and, when the dataset has trimmed clips
    (``trimmed_paths``), on theirs; its log is recorded in ``train.json`` under ``pretrain``
    and its ``reference`` handed to every ``loss`` call), then ``param_groups`` for the
    optimiser and ``loss`` at every step.

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
            for the models whose ``pretrain`` learns from them; a folder stands for the
            import of every trimmed clip (:func:`wtal.byof.split_files`).
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
    trimmed_paths = split_files(trimmed_paths, index, "trimmed")
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
    pretrained = net.pretrain(PretrainInputs(videos=feats, labels=labels, trimmed=trimmed,
                                             settings=settings, rng=rng, device=dev))
    if trimmed is not None and not pretrained.used_trimmed:
        logger.warning("%s does not learn from trimmed clips: the %d given are not used",
                       model, len(trimmed[0]))
    opt = make_optimizer(net, settings)

    def take(i: int, x: np.ndarray) -> np.ndarray:
        if sampler.strategy != "all":
            return sample(x, sampler, rng, boundaries[i] if boundaries else None)
        return random_crop(x, settings.max_seqlen, rng)

    def loss_of(out: Any, y: torch.Tensor, mask: torch.Tensor, epoch: int,
                step: int) -> tuple[torch.Tensor, dict[str, float]]:
        return net.loss(out, y, mask, epoch=epoch, step=step, reference=pretrained.reference,
                        video_loss=settings.loss)

    fitted = fit(net, feats, labels, loss_of=loss_of, opt=opt, epochs=settings.epochs,
                 batch_size=settings.batch_size, rng=rng, device=dev, take=take,
                 schedule=step_schedule(opt, settings.lr_milestones, settings.lr_gamma),
                 name=f"train {model}", progress=progress)
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
        "provenance": provenance("train"),
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
        "loss": fitted.loss,
        "loss_parts": fitted.parts,
        "lr": fitted.lr,
        "lr_groups": fitted.lr_groups,
        "epoch_seconds": fitted.epoch_seconds,
        "pretrain": pretrained.log,
        "n_trimmed": 0 if trimmed is None else len(trimmed[0]),
        "used_trimmed": pretrained.used_trimmed,
        "transfer_missing": pretrained.transfer_missing,
        "seconds": time.time() - t0,
        "device": str(dev),
        "code_version": wtal.__version__,
        "provenance": provenance("train"),
    }
    write_json(log_out, log)
    return log
