"""Infer stage: CAS → thresholded segments → Soft-NMS → ``detections.json``.

For each test video the trained model gives a class activation sequence (sigmoid of the CAS
logits, (T, C)) and video-level scores. Classes whose video score reaches
``class_threshold`` (the top class if none does) are localised: the class's CAS is min-max
normalised, thresholded at several levels, and every maximal run of snippets above a level
becomes a candidate. A candidate's confidence is its outer-inner contrast plus
``video_score_weight`` times the video score. Candidates of a class go through Gaussian
Soft-NMS (KT-MGFN Eq. (7)). Snippet indices become seconds only through the snippet grid in the
feature sidecar (:class:`extractors.grid.SnippetGrid`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

import wtal
from extractors.features import load_features, resolve_device
from extractors.grid import SnippetGrid
from wtal.evaluate import write_thumos14_detections
from wtal.models import build_model
from wtal.models.base import Candidate, Localizer
from wtal.postprocess import (
    chosen_classes,
    hard_nms,
    minmax,
    outer_inner_score,
    runs_above,
    soft_nms,
)
from wtal.sampling import rescale
from wtal.settings import InferSettings
from wtal.versions import provenance
from wtalio import save_npy, write_json

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "InferSettings", "cas_candidates", "finish_detections", "infer",
           "infer_options", "load_model", "localize", "model_input", "predict_video"]


def load_model(
    path: str | os.PathLike[str], device: torch.device
) -> tuple[Localizer, dict[str, Any]]:
    """Load a checkpoint written by the train stage; returns (model in eval mode, checkpoint)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("model", "model_args", "in_dim", "classes", "state_dict"):
        if key not in ckpt:
            raise ValueError(f"{path}: not a model checkpoint of this project (no {key!r})")
    net = build_model(
        ckpt["model"], in_dim=ckpt["in_dim"], num_classes=len(ckpt["classes"]), **ckpt["model_args"]
    )
    net.load_state_dict(ckpt["state_dict"])
    return net.to(device).eval(), ckpt


def model_input(ckpt: dict[str, Any], features: np.ndarray, device: torch.device) -> torch.Tensor:
    """One video's features (T, D), standardised with the checkpoint's statistics: (1, T, D)."""
    norm = ckpt.get("feature_norm")
    x = features
    if norm is not None:
        x = (x - norm["mean"].numpy()) / norm["std"].numpy()
    return torch.from_numpy(x.astype(np.float32)).unsqueeze(0).to(device)


def infer_options(net: Localizer, values: Mapping[str, Any] | None, source: str = "") -> Any:
    """The model's own inference knobs (``infer.model``) as its ``InferOptions``.

    Raises:
        ValueError: a knob the model does not have, or a bad value (``source`` is named).
    """
    cls = type(net).InferOptions
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source or 'infer settings'}: {type(net).__name__} has no inference "
                         f"knobs {unknown} (infer.model); it has {sorted(known) or 'none'}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source or 'infer settings'}: infer.model: {err}") from err


def predict_video(
    net: Localizer, ckpt: dict[str, Any], features: np.ndarray, device: torch.device,
    settings: InferSettings | None = None, options: Any = None,
) -> tuple[np.ndarray, np.ndarray, list[Candidate] | None]:
    """CAS probabilities (T, C), video scores (C,) and the model's own candidates of one video.

    Through the model's contract (:class:`wtal.models.base.Localizer`): ``probabilities(out)``
    gives ``(cas (B, T, C), video_scores (B, C))`` in [0, 1]; ``candidates(out, settings=…)``
    the model's own ``(class, start, end, score)`` in continuous snippet coordinates (snippet t
    covers [t, t + 1)), or None when the model leaves localisation to
    :func:`cas_candidates` (and always None when ``settings`` is None); ``options`` are the
    model's own inference knobs (:func:`infer_options`; None: its defaults).

    A model trained on sequences rescaled to a fixed length (``feature_length``) sees the video
    rescaled the same way, and a model that samples its test videos
    (``Localizer.test_indices``) sees the units it picks (unit j of K standing for the video's
    snippets ``[j·T/K, (j+1)·T/K)``); either way its CAS and candidates are mapped back to the
    video's own snippets.
    """
    length = ckpt.get("train_settings", {}).get("feature_length")
    if length is not None:
        cas, scores, cands = predict_video(
            net, {**ckpt, "train_settings": {}}, rescale(features, length), device, settings,
            options)
        f = len(features) / length
        if cands is not None:
            cands = [(c, s * f, e * f, sc) for c, s, e, sc in cands]
        return rescale(cas, len(features)), scores, cands
    if options is None:
        options = type(net).InferOptions()
    picked = net.test_indices(len(features), train_settings=ckpt.get("train_settings", {}),
                              options=options)
    if picked is not None:  # e.g. KT-MGFN's uniform test-time sampling
        cas, scores, cands = predict_video(
            net, {**ckpt, "train_settings": {}}, features[picked], device, settings, options)
        f = len(features) / len(picked)
        if cands is not None:
            cands = [(c, s * f, e * f, sc) for c, s, e, sc in cands]
        return rescale(cas, len(features)), scores, cands
    with torch.inference_mode():
        out = net(model_input(ckpt, features, device))
        cas_t, scores_t = net.probabilities(out)  # (1, T, C), (1, C)
        candidates = None
        if options is None:
            options = type(net).InferOptions()
        found = (None if settings is None
                 else net.candidates(out, settings=settings, options=options))
        if found is not None:
            candidates = [(int(c), float(s), float(e), float(sc)) for c, s, e, sc in found]
    return cas_t[0].cpu().numpy(), scores_t[0].cpu().numpy(), candidates  # (T, C), (C,)


def cas_candidates(
    cas: np.ndarray, video_scores: np.ndarray, settings: InferSettings
) -> list[Candidate]:
    """The generic localisation: candidates from thresholding each chosen class's CAS.

    Classes whose video score reaches ``class_threshold`` (the top class if none does) are
    localised: the class's CAS is min-max normalised, thresholded at every level of
    ``cas_thresholds``, and every maximal run of snippets above a level is a candidate scored by
    its outer-inner contrast plus ``video_score_weight`` times the video score.

    Args:
        cas: (T, C) per-snippet class probabilities.
        video_scores: (C,) video-level probabilities.
        settings: post-processing settings.
    """
    chosen = chosen_classes(video_scores, settings.class_threshold)
    out: list[Candidate] = []
    for c in chosen:
        seq = minmax(cas[:, c])
        cands: dict[tuple[int, int], float] = {}
        for level in settings.cas_thresholds:
            for first, last in runs_above(seq, level):
                score = outer_inner_score(cas[:, c], first, last, inflation=settings.inflation)
                score += settings.video_score_weight * float(video_scores[c])
                cands[(first, last)] = max(score, cands.get((first, last), -np.inf))
        out.extend((c, float(first), float(last + 1), sc) for (first, last), sc in cands.items())
    return out


def finish_detections(
    candidates: Sequence[Candidate],
    grid: SnippetGrid,
    classes: Sequence[str],
    settings: InferSettings,
) -> list[dict[str, Any]]:
    """Candidates → seconds (through the snippet grid) → per-class NMS → best ``max_per_video``.

    Candidates are clipped to the video's snippets ``[0, n_snippets]`` first; empty ones after
    clipping are dropped (a regressed boundary may reach past either end).

    Returns:
        ActivityNet-format detections ``{"label", "score", "segment"}``, best first.
    """
    detections: list[dict[str, Any]] = []
    by_class: dict[int, list[tuple[float, float, float]]] = {}
    for c, start, end, score in candidates:
        if not 0 <= c < len(classes):
            raise ValueError(f"candidate of class index {c}, but there are {len(classes)} classes")
        start, end = max(start, 0.0), min(end, float(grid.n_snippets))
        if end > start:
            by_class.setdefault(c, []).append((start, end, score))
    for c in sorted(by_class):
        spans = np.array([(s, e) for s, e, _ in by_class[c]], dtype=np.float64)
        segs = torch.from_numpy(grid.index_to_seconds(spans))
        scores = torch.tensor([sc for *_, sc in by_class[c]], dtype=torch.float64)
        if settings.nms == "soft":
            segs, scores = soft_nms(segs, scores, iou_threshold=settings.nms_iou,
                                    epsilon=settings.soft_nms_epsilon)
        elif settings.nms == "hard":
            segs, scores = hard_nms(segs, scores, iou_threshold=settings.nms_iou)
        elif settings.nms != "none":
            raise ValueError(f"unknown nms {settings.nms!r} (soft, hard or none)")
        for (s, e), sc in zip(segs.tolist(), scores.tolist(), strict=True):
            detections.append({"label": classes[c], "score": float(sc),
                               "segment": [round(s, 3), round(e, 3)]})
    detections.sort(key=lambda d: -d["score"])
    return detections[: settings.max_per_video]


def localize(
    cas: np.ndarray,
    video_scores: np.ndarray,
    grid: SnippetGrid,
    classes: Sequence[str],
    settings: InferSettings,
    candidates: Sequence[Candidate] | None = None,
) -> list[dict[str, Any]]:
    """Detections of one video: the model's candidates, or the CAS's (:func:`cas_candidates`).

    Args:
        cas: (T, C) per-snippet class probabilities.
        video_scores: (C,) video-level probabilities.
        grid: the video's snippet grid (maps snippet coordinates to seconds).
        classes: class names.
        settings: post-processing settings.
        candidates: the model's own candidates (``Localizer.candidates``), if it has them.

    Returns:
        ActivityNet-format detections ``{"label", "score", "segment"}``, best first.
    """
    if cas.shape[0] != grid.n_snippets:
        raise ValueError(f"CAS has {cas.shape[0]} snippets but the grid {grid.n_snippets}")
    if candidates is None:
        candidates = cas_candidates(cas, video_scores, settings)
    return finish_detections(candidates, grid, classes, settings)


def infer(
    model_path: str | os.PathLike[str],
    feature_paths: Sequence[str | os.PathLike[str]],
    detections_out: str | os.PathLike[str],
    cas_dir: str | os.PathLike[str],
    *,
    settings: InferSettings,
    model_options: Mapping[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    thumos14_out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Infer stage: write ``detections.json`` and one CAS ``.npy`` (T, C) per video.

    ``settings`` are the generic post-processing, ``model_options`` the model's own inference
    knobs (``infer.model``: the fields of its ``Localizer.InferOptions``); both are recorded
    in ``detections.json`` under ``settings``.

    With ``thumos14_out``, the detections are also written in the official THUMOS14 text
    format (``video t1 t2 classid conf``), with class ids 1, 2, … in the model's class order
    (the dataset's), listed in ``detclasslist.txt`` in the same folder
    (:func:`wtal.evaluate.write_thumos14_detections`).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    net, ckpt = load_model(model_path, dev)
    options = infer_options(net, model_options, str(model_path))
    unread = sorted(net.unread_infer_settings())
    given, defaults = asdict(settings), asdict(InferSettings())
    changed = [k for k in unread if given[k] != defaults[k]]
    if changed:
        logger.warning("%s does not read the infer settings %s: they change nothing here",
                       ckpt["model"], changed)
    classes = ckpt["classes"]
    results: dict[str, list[dict[str, Any]]] = {}
    video_scores: dict[str, dict[str, float]] = {}
    cas_dir = Path(cas_dir)
    cas_dir.mkdir(parents=True, exist_ok=True)
    for path in feature_paths:
        name = Path(path).stem
        features, sidecar = load_features(path)
        if features.shape[1] != ckpt["in_dim"]:
            raise ValueError(
                f"{path}: features are {features.shape[1]}-d, the model expects {ckpt['in_dim']}"
            )
        grid = SnippetGrid.from_dict(sidecar["grid"])
        cas, scores, cands = predict_video(net, ckpt, features, dev, settings, options)
        save_npy(cas_dir / f"{name}.npy", cas.astype(np.float32))
        results[name] = localize(cas, scores, grid, classes, settings, cands)
        video_scores[name] = {c: float(s) for c, s in zip(classes, scores, strict=True)}
    submission = {
        "version": "VERSION 1.3",
        "results": results,
        "external_data": {
            "used": False,
            "details": f"wtal {wtal.__version__}: {ckpt['model']} on {ckpt.get('dataset')}",
        },
        "video_scores": video_scores,
        "settings": {**asdict(settings), "model": asdict(options)},
        "unread_settings": unread,  # generic settings this model's localisation ignores
        "provenance": provenance("infer"),
    }
    write_json(detections_out, submission)
    if thumos14_out is not None:
        write_thumos14_detections(thumos14_out, results, classes)
    return submission
