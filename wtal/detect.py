"""Detection on a new raw video: decode → flow → features → model → post-processing.

:func:`detect` runs every stage of the workflow on one video with the settings the model was
trained with, so nothing has to be repeated by hand:

* frame rate, TV-L1 flow settings (backend, bound, codec, parameters, short side) and feature
  settings (backbone, snippet grid, geometry, weights and their sha256, seed) come from the
  checkpoint's ``feature_settings``, which the train stage copies from the training features'
  sidecars (or from a feature sidecar given explicitly, for a checkpoint without them); every
  backbone of :mod:`extractors.backbones` works, and an RGB-only one (``i3d_r50``) skips the
  flow stage;
* class names and feature normalisation come from the checkpoint;
* post-processing settings come from the ``detections.json`` the infer stage wrote beside the
  model (its ``settings``), else the defaults of :class:`wtal.infer.InferSettings`; either may
  be overridden.

The result is a submission in the ActivityNet format (``results`` and ``video_scores`` of one
video, readable by ``wtal eval``) with a ``detect`` block recording the settings used; a
timeline figure (:func:`wtal.report.timeline_figure`) can show the model's score sequences and
the detections.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

import wtal
from wtal.infer import InferSettings
from wtal.progress import is_terminal
from wtal.settings import infer_settings as resolve_infer
from wtalio import read_json, write_json

logger = logging.getLogger(__name__)

#: Sidecar keys ``feature_settings`` needs (``flow`` too, unless the backbone is RGB-only).
FEATURE_KEYS = ("extractor", "settings")


def feature_settings(
    ckpt: Mapping[str, Any], sidecar: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """How the model's training features were made: ``fps``, ``flow`` and ``features``.

    Args:
        ckpt: a checkpoint of the train stage.
        sidecar: a feature sidecar (``.json`` beside a training ``.npy``) to read instead of the
            checkpoint's ``feature_settings`` (for checkpoints that lack them).

    Returns:
        ``{"extractor", "fps", "flow": keyword arguments of
        :func:`extractors.flowstage.flow_stage` (None for an RGB-only backbone), "features":
        keyword arguments of :class:`extractors.features.FeatureSettings`}``.

    Raises:
        ValueError: the checkpoint has no feature settings and no sidecar is given, or the
            settings are incomplete or invalid.
    """
    if sidecar is not None:
        side = read_json(sidecar)
        source = str(sidecar)
        recorded = {k: side.get(k) for k in (*FEATURE_KEYS, "flow", "frames")}
        grid_fps = (side.get("grid") or {}).get("fps")
    else:
        recorded = dict(ckpt.get("feature_settings") or {})
        source = "the checkpoint's feature_settings"
        grid_fps = None
    missing = [k for k in FEATURE_KEYS if not recorded.get(k)]
    if missing:
        raise ValueError(f"{source}: no {', '.join(missing)} recorded; pass the sidecar .json of "
                         f"one of the model's training features (--features-sidecar)")
    from extractors.features import FeatureSettings

    known = {f.name for f in fields(FeatureSettings)}
    # the i3d-only stage's sidecars recorded no extractor among their settings
    feats = {"extractor": recorded["extractor"],
             **{k: v for k, v in recorded["settings"].items() if k in known}}
    if feats["extractor"] != recorded["extractor"]:
        raise ValueError(f"{source}: extractor {recorded['extractor']!r}, but its settings say "
                         f"{feats['extractor']!r}")
    try:
        uses_flow = FeatureSettings(**feats).uses_flow
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: invalid feature settings: {err}") from err
    flow = recorded.get("flow") or None
    if uses_flow and flow is None:
        raise ValueError(f"{source}: {feats['extractor']} features need flow, but no flow "
                         f"settings are recorded; pass the sidecar .json of one of the model's "
                         f"training features (--features-sidecar)")
    fps = (flow or {}).get("fps") or (recorded.get("frames") or {}).get("fps") or grid_fps
    if fps is None:
        raise ValueError(f"{source}: no frame rate recorded (flow or frames 'fps')")
    flow_args = None
    if flow is not None and uses_flow:
        flow_args = {
            "algorithm": flow.get("algorithm", "tvl1"),
            "backend": flow.get("backend", "opencv"),
            "bound": float(flow["bound"]),
            "codec": flow.get("codec", "jpg"),
            "params": dict(flow.get("params") or {}),
            "short_side": flow.get("short_side", feats.get("short_side")),
        }
    return {"extractor": feats["extractor"], "fps": float(fps), "flow": flow_args,
            "features": feats}


def _recorded_infer(model_path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The infer settings recorded in ``detections.json`` beside the model, and that file."""
    beside = Path(model_path).parent / "detections.json"
    if beside.exists():
        recorded = read_json(beside).get("settings")
        if isinstance(recorded, Mapping):
            return dict(recorded), str(beside)
    return {}, "defaults"


def infer_settings(
    model_path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> tuple[InferSettings, str]:
    """Post-processing settings for a model: those its infer stage used, then ``overrides``
    (the model's own knobs, ``model``, are :func:`infer_model_options`).

    Returns:
        ``(settings, source)``; source names where the base settings came from.

    Raises:
        ValueError: an unknown setting.
    """
    recorded, source = _recorded_infer(model_path)
    names = {f.name for f in fields(InferSettings)}
    base = {k: v for k, v in recorded.items() if k in names}
    settings, _ = resolve_infer({**base, **dict(overrides or {})})
    return settings, source


def infer_model_options(
    model_path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The model's own inference knobs its infer stage used (``settings.model`` of
    ``detections.json`` beside it), updated by ``overrides["model"]``."""
    recorded, _ = _recorded_infer(model_path)
    return {**dict(recorded.get("model") or {}), **dict((overrides or {}).get("model") or {})}


def detect(
    video: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    figure: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    features_sidecar: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flow_backend: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Detect the model's action classes in one raw video.

    Args:
        video: the video file (anything decord reads).
        model_path: ``model.pt`` of the train stage.
        out: where to write the result JSON (optional).
        figure: where to write the timeline PNG (optional).
        work_dir: keep the frame plan, flow cache and features here (default: a temporary
            folder, removed afterwards).
        features_sidecar: read the feature settings from this sidecar instead of the
            checkpoint (see :func:`feature_settings`).
        overrides: post-processing settings replacing the model's (see :func:`infer_settings`).
        flow_backend: run TV-L1 with this backend instead of the recorded one (``opencv``,
            ``torch``, ``auto``; the implementations agree to 0.015 px mean end-point error).
        device: ``auto``, ``cpu`` or ``cuda`` for the features and the model.
        threads: CPU threads.
        progress: progress bars (default: when stderr is a terminal).

    Returns:
        ``{"version", "results": {name: detections}, "video_scores": {name: {class: score}},
        "external_data", "detect": {...}}``, detections best first.
    """
    from extractors.decode import decode
    from extractors.features import (
        FeatureSettings,
        extract_features,
        load_features,
        resolve_device,
    )
    from extractors.flowstage import flow_stage
    from extractors.grid import SnippetGrid
    from wtal.infer import infer_options, load_model, localize, predict_video

    if threads is not None:
        torch.set_num_threads(threads)
    show = is_terminal() if progress is None else progress
    video = Path(video)
    dev = resolve_device(device)
    net, ckpt = load_model(model_path, dev)
    made = feature_settings(ckpt, features_sidecar)
    flow_args = None if made["flow"] is None else dict(made["flow"])
    if flow_args is not None and flow_backend is not None:
        flow_args["backend"] = flow_backend
    settings, settings_source = infer_settings(model_path, overrides)
    options = infer_options(net, infer_model_options(model_path, overrides), str(model_path))
    name = video.stem
    with tempfile.TemporaryDirectory(prefix="wtal-detect-") as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        plan = decode(video, folder / f"{name}.plan.json", fps=made["fps"],
                      min_frames=int(made["features"].get("snippet_length", 1)))
        logger.info("%s: %d frames at %g fps", video, plan.n_frames, plan.fps)
        flow_path = None
        if flow_args is not None:  # an RGB-only backbone has no flow stage
            flow_path = folder / f"{name}.flow.zip"
            flow_device = (None if flow_args["backend"] == "opencv"
                           else "cpu" if dev.type == "cpu" else str(dev))
            flow_stage(folder / f"{name}.plan.json", flow_path, threads=threads,
                       device=flow_device, progress=show, **flow_args)
        extract_features(folder / f"{name}.plan.json", flow_path, folder / f"{name}.npy",
                         settings=FeatureSettings(**made["features"]), device=str(dev),
                         threads=threads, progress=show)
        features, sidecar = load_features(folder / f"{name}.npy")
    if features.shape[1] != ckpt["in_dim"]:
        raise ValueError(f"{video}: features are {features.shape[1]}-d, the model expects "
                         f"{ckpt['in_dim']}")
    grid = SnippetGrid.from_dict(sidecar["grid"])
    classes = list(ckpt["classes"])
    cas, scores, candidates = predict_video(net, ckpt, features, dev, settings, options)
    detections = localize(cas, scores, grid, classes, settings, candidates)
    result = {
        "version": "VERSION 1.3",
        "results": {name: detections},
        "video_scores": {name: {c: float(s) for c, s in zip(classes, scores, strict=True)}},
        "external_data": {"used": False,
                          "details": f"wtal {wtal.__version__} detect: {ckpt['model']} trained "
                                     f"on {ckpt.get('dataset')}"},
        "detect": {
            "video": str(video),
            "model": str(model_path),
            "model_name": ckpt["model"],
            "dataset": ckpt.get("dataset"),
            "classes": classes,
            "duration": plan.duration,
            "n_frames": plan.n_frames,
            "fps": plan.fps,
            "n_snippets": grid.n_snippets,
            "feature_settings": made,
            "settings": {**asdict(settings), "model": asdict(options)},
            "settings_source": settings_source,
        },
    }
    if out is not None:
        write_json(out, result)
    if figure is not None:
        from wtal.report import Segment, named_scores, save_figure, timeline_figure

        seqs = named_scores(net, ckpt, features, dev, options)
        dets = [Segment(d["label"], d["segment"][0], d["segment"][1], d["score"])
                for d in detections]
        fig = timeline_figure(times=grid.centers(), classes=classes, sequences=seqs,
                              ground_truth=None, detections=dets, duration=plan.duration,
                              title=f"{video.name}: {ckpt['model']} ({ckpt.get('dataset')})")
        save_figure(fig, figure)
    return result


def detection_table(result: Mapping[str, Any], *, top: int | None = 20) -> str:
    """The detections of a :func:`detect` result as a text table (best first)."""
    info = result["detect"]
    (name, dets), = result["results"].items()
    scores = result["video_scores"][name]
    lines = [
        f"{info['video']}: {info['duration']:.2f} s, {info['n_frames']} frames at "
        f"{info['fps']:g} fps, {info['n_snippets']} snippets; model {info['model_name']} "
        f"trained on {info['dataset']}",
        "video-level scores: " + ", ".join(
            f"{c} {s:.3f}" for c, s in sorted(scores.items(), key=lambda kv: -kv[1])),
    ]
    if not dets:
        lines.append("no detections")
        return "\n".join(lines)
    shown = dets if top is None else dets[:top]
    width = max(5, *(len(d["label"]) for d in shown))
    lines += ["", f"{'#':>3}  {'class':<{width}}  {'start (s)':>9}  {'end (s)':>9}  {'score':>7}"]
    for i, d in enumerate(shown, 1):
        start, end = d["segment"]
        lines.append(f"{i:>3}  {d['label']:<{width}}  {start:9.2f}  {end:9.2f}  "
                     f"{d['score']:7.3f}")
    if len(shown) < len(dets):
        lines.append(f"... {len(dets) - len(shown)} more (see --out)")
    return "\n".join(lines)
