"""Report stage: see what a trained model sees, and how well it detects.

For one model on one dataset, :func:`make_report` writes into a folder:

``timelines/<video>.png``
    for a few test videos: the ground truth, every per-snippet score sequence the model exposes
    (its CAS, attention, heatmap … one panel per module, see :func:`named_scores`) and the final
    detections, on one time axis in seconds (:func:`timeline_figure`);
``ap_per_class.png``
    per-class AP under every evaluated protocol (ActivityNet code and THUMOS14 kit), averaged
    over the tIoU thresholds, with AP at 0.5 marked (:func:`ap_bars_figure`);
``pr_curves.png``
    per-class precision-recall curves at one tIoU under both protocols
    (:func:`wtal.evaluate.precision_recall`, the evaluator's matching; :func:`pr_figure`);
``loss.png``
    the training loss curve, its named parts and the learning rate (:func:`loss_figure`);
``report.json``
    what was drawn: the chosen videos, the sequences of each, AP per class, the PR curves' AP.

Figures are drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot, no
display, no global backend state). Time comes from the feature sidecars' snippet grid
(:class:`extractors.grid.SnippetGrid`), as in the infer stage.

Models expose their per-module scores through their contract's ``score_sequences(x, mask=None)``
(:class:`wtal.models.base.Localizer`), named ``(B, T, C)`` or ``(B, T)`` tensors in [0, 1]; by
default the CAS its ``probabilities`` give the infer stage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from extractors.features import load_features, resolve_device
from extractors.grid import SnippetGrid
from wtal.evaluate import PRCurve, precision_recall
from wtal.models.base import Localizer
from wtalio import atomic_path, read_json, write_json

logger = logging.getLogger(__name__)

#: Protocol names as figures and tables show them.
PROTOCOL_NAMES: Mapping[str, str] = {"anet": "ActivityNet code", "thumos14": "THUMOS14 kit"}


@dataclass(frozen=True)
class Segment:
    """A labelled time span of one video, seconds (ground truth or a detection)."""

    label: str
    start: float
    end: float
    score: float | None = None  # detections only


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def ground_truth_of(gt: Mapping[str, Any], video: str) -> list[Segment]:
    """Ground-truth segments of ``video`` in a ``gt.json`` dict (empty if it has none)."""
    entry = gt.get("database", {}).get(video) or {}
    return [Segment(str(a["label"]), float(a["segment"][0]), float(a["segment"][1]))
            for a in entry.get("annotations", [])]


def detections_of(submission: Mapping[str, Any], video: str) -> list[Segment]:
    """Detections of ``video`` in a ``detections.json`` dict, best first."""
    dets = [Segment(str(d["label"]), float(d["segment"][0]), float(d["segment"][1]),
                    float(d["score"]))
            for d in submission.get("results", {}).get(video, [])]
    return sorted(dets, key=lambda d: -(d.score or 0.0))


def choose_videos(
    gt: Mapping[str, Any],
    subset: str,
    available: Sequence[str],
    *,
    videos: Sequence[str] | None = None,
    n_videos: int = 3,
) -> list[str]:
    """The test videos a report draws.

    Args:
        gt: the ``gt.json`` dict.
        subset: the evaluated subset.
        available: videos with features.
        videos: an explicit list (each must be available); otherwise the first ``n_videos``
            of the subset in name order, annotated videos first.
        n_videos: how many to pick without a list.

    Raises:
        ValueError: an explicitly listed video has no features.
    """
    have = set(available)
    if videos:
        missing = [v for v in videos if v not in have]
        if missing:
            raise ValueError(f"report: videos without test features: {missing}")
        return list(videos)
    database = gt.get("database", {})
    in_subset = sorted(v for v in have if database.get(v, {}).get("subset") == subset)
    if not in_subset:
        in_subset = sorted(have)
    annotated = [v for v in in_subset if database.get(v, {}).get("annotations")]
    rest = [v for v in in_subset if v not in annotated]
    return (annotated + rest)[: max(0, n_videos)]


def named_scores(
    net: Localizer, ckpt: Mapping[str, Any], features: np.ndarray, device: torch.device,
    options: Any = None,
) -> dict[str, np.ndarray]:
    """The model's named per-snippet score sequences of one video
    (:meth:`wtal.models.base.Localizer.score_sequences`).

    The model reads the video as the infer stage feeds it (:func:`wtal.infer.predict_video`):
    features normalised with the checkpoint's training statistics; rescaled to
    ``feature_length`` for a model trained on sequences of that length; or, for a model that
    samples its test videos (``Localizer.test_indices`` with the inference ``options``, the
    model's defaults if None: KT-MGFN trained on sampled sequences), the units it picks. Either
    way its sequences are mapped back to the video's own snippets, as the infer stage maps the
    CAS it saves.

    Returns:
        name → float32 array, (T, C) or (T,).

    Raises:
        ValueError: a sequence is not (T,) or (T, C) on the video's snippets.
    """
    from wtal.infer import model_input
    from wtal.sampling import rescale

    length = ckpt.get("train_settings", {}).get("feature_length")
    if length is not None:
        seen = rescale(features, length)  # as in training
        ckpt = {**ckpt, "train_settings": {}}
    else:
        picked = net.test_indices(
            len(features), train_settings=ckpt.get("train_settings", {}),
            options=options if options is not None else type(net).InferOptions())
        seen = features if picked is None else features[picked]
    with torch.inference_mode():
        seqs = net.score_sequences(model_input(dict(ckpt), seen, device))
    out: dict[str, np.ndarray] = {}
    for name, value in seqs.items():
        arr = value[0].detach().float().cpu().numpy()
        if len(seen) != len(features) and arr.ndim in (1, 2) and arr.shape[0] == len(seen):
            # back to the video's own snippets
            arr = (rescale(arr, len(features)) if arr.ndim == 2
                   else rescale(arr[:, None], len(features))[:, 0])
        if arr.ndim not in (1, 2) or arr.shape[0] != len(features):
            raise ValueError(f"{type(net).__name__}.score_sequences: {name!r} has shape "
                             f"{arr.shape}, expected ({len(features)},) or ({len(features)}, C)")
        out[name] = arr.astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Precision-recall curves (the two protocols' matching, per class)
# ---------------------------------------------------------------------------------------------


def precision_recall_anet(
    gt: Mapping[str, Any], submission: Mapping[str, Any], *, subset: str, tiou: float
) -> dict[str, PRCurve]:
    """Per-class PR curves with the ActivityNet matching at ``tiou``
    (:func:`wtal.evaluate.precision_recall`, the evaluator's own matching).

    Returns:
        label → curve, for the labels of the subset's ground truth (first-seen order).
    """
    return precision_recall(gt, submission, subset=subset, tiou=tiou, protocol="anet")


def precision_recall_thumos14(
    gt: Mapping[str, Any], submission: Mapping[str, Any], *, subset: str, tiou: float
) -> dict[str, PRCurve]:
    """Per-class PR curves with the THUMOS14 kit's matching at ``tiou``
    (:func:`wtal.evaluate.precision_recall`, the evaluator's own matching).

    Returns:
        label → curve, for the classes with ground truth in the subset (class-list order).
    """
    return precision_recall(gt, submission, subset=subset, tiou=tiou, protocol="thumos14")


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _class_colour(index: int) -> str:
    return f"C{index % 10}"


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG, atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
        os.chmod(tmp, 0o644)  # a temporary file is private; a figure is for everyone


def timeline_figure(
    *,
    times: np.ndarray,
    classes: Sequence[str],
    sequences: Mapping[str, np.ndarray],
    ground_truth: Sequence[Segment] | None = (),
    detections: Sequence[Segment] = (),
    duration: float | None = None,
    show_classes: Sequence[str] | None = None,
    max_detections: int = 20,
    title: str = "",
) -> Figure:
    """Ground truth, per-module score sequences and detections of one video on one time axis.

    Axes, top to bottom: the ground truth (one row per shown class; no axis when
    ``ground_truth`` is None, as for a new video), one axis per entry of
    ``sequences`` (a ``(T, C)`` sequence draws one line per shown class, in the class's colour;
    a ``(T,)`` sequence one black line), and the ``max_detections`` best detections (one row
    per shown class, opacity by score). Lines are drawn at the snippet centres ``times``.

    Args:
        times: (T,) snippet centre times, seconds.
        classes: the model's class names (columns of the (T, C) sequences).
        sequences: name → (T, C) or (T,) scores.
        ground_truth: the video's GT segments, or None for a video without annotations.
        detections: the video's detections (scored).
        duration: x-axis end (default: the last snippet's end or segment end).
        show_classes: classes to draw (default: those in the GT or the shown detections, else
            the class with the highest score in the first sequence).
        max_detections: detections drawn, best first.
        title: figure title.

    Returns:
        The figure; ``fig.axes`` has ``len(sequences) + 2`` axes (``+ 1`` without ground
        truth).
    """
    times = np.asarray(times, dtype=np.float64)
    with_gt = ground_truth is not None
    ground_truth = list(ground_truth or ())
    dets = sorted(detections, key=lambda d: -(d.score or 0.0))[:max_detections]
    if show_classes is None:
        wanted = {s.label for s in ground_truth} | {d.label for d in dets}
        shown = [c for c in classes if c in wanted]
        if not shown and sequences:
            first = np.asarray(next(iter(sequences.values())))
            if first.ndim == 2 and len(first):
                shown = [classes[int(np.argmax(first.max(axis=0)))]]
    else:
        shown = list(show_classes)
    colour = {c: _class_colour(classes.index(c) if c in classes else i)
              for i, c in enumerate(shown)}
    n_axes = len(sequences) + 1 + with_gt
    rows_height = max(1.0, 0.35 * len(shown) + 0.4)
    heights = [rows_height] * with_gt + [1.6] * len(sequences) + [rows_height]
    fig = _new_figure(10.0, sum(heights) * 0.9 + 0.8)
    axes = fig.subplots(n_axes, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    axes = np.atleast_1d(axes)
    end = duration
    if end is None:
        spans = [times[-1] if len(times) else 0.0] + [s.end for s in (*ground_truth, *dets)]
        end = max(spans) if spans else 1.0
    rows = {c: i for i, c in enumerate(shown)}

    def segment_rows(ax: Any, segs: Sequence[Segment], name: str, scored: bool) -> None:
        top = max((s.score or 0.0 for s in segs), default=1.0) or 1.0
        for s in reversed(segs):  # the best detection is drawn last, on top
            if s.label not in rows:
                continue
            alpha = 0.25 + 0.75 * (s.score or 0.0) / top if scored else 0.9
            ax.broken_barh([(s.start, s.end - s.start)], (rows[s.label] - 0.4, 0.8),
                           facecolors=colour[s.label], alpha=alpha, edgecolor="black",
                           linewidth=0.5)
        ax.set_yticks(range(len(shown)), shown, fontsize=8)
        ax.set_ylim(-0.6, max(len(shown), 1) - 0.4)
        ax.invert_yaxis()
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)

    if with_gt:
        segment_rows(axes[0], ground_truth, "ground truth", scored=False)
    for ax, (name, seq) in zip(axes[int(with_gt):-1], sequences.items(), strict=True):
        arr = np.asarray(seq)
        if arr.ndim == 1:
            ax.plot(times, arr, color="black", linewidth=1.2, label=name)
        else:
            for c in shown:
                if c in classes:
                    ax.plot(times, arr[:, classes.index(c)], color=colour[c], linewidth=1.2,
                            label=c)
        if arr.size and arr.min() >= 0 and arr.max() <= 1:
            ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(name.replace("_", " "), rotation=0, ha="right", va="center", fontsize=9)
        ax.grid(alpha=0.3)
    segment_rows(axes[-1], dets, f"detections\n(top {len(dets)})", scored=True)
    axes[-1].set_xlim(0.0, end)
    axes[-1].set_xlabel("time (s)")
    if shown:
        handles = [Patch(facecolor=colour[c], label=c) for c in shown]
        fig.legend(handles=handles, loc="outside upper right", fontsize=8,
                   ncols=min(len(shown), 6))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _class_order(labels: Sequence[str], classes: Sequence[str] | None) -> list[str]:
    """``labels`` in the order of ``classes`` (unknown labels last, in their order)."""
    if not classes:
        return list(labels)
    return ([c for c in classes if c in labels]
            + [label for label in labels if label not in classes])


def ap_bars_figure(
    result: Mapping[str, Any],
    *,
    tiou_mark: float = 0.5,
    classes: Sequence[str] | None = None,
) -> Figure:
    """Per-class AP under each protocol of a ``map.json`` dict: one axis per protocol.

    Bars are each class's AP averaged over the protocol's tIoU thresholds (``bar`` heights);
    a black mark (a line of markers) gives the AP at ``tiou_mark`` when that threshold was
    evaluated. With ``classes`` (the model's class order), every panel lists and colours the
    classes in that order.
    """
    blocks = dict(result.get("protocols") or {result.get("protocol", "anet"): result})
    fig = _new_figure(max(6.0, 0.5 * max(len(b["per_class"]) for b in blocks.values()) + 2),
                      2.6 * len(blocks) + 0.4)
    axes = np.atleast_1d(fig.subplots(len(blocks), 1))
    for ax, (name, block) in zip(axes, blocks.items(), strict=True):
        labels = _class_order(list(block["per_class"]), classes)
        aps = np.asarray([block["per_class"][c] for c in labels], dtype=np.float64)  # (C, K)
        colours = [_class_colour(list(classes).index(c) if classes and c in classes else i)
                   for i, c in enumerate(labels)]
        tious = [float(t) for t in block["tiou"]]
        mean = aps.mean(axis=1) if aps.size else np.zeros(len(labels))
        x = np.arange(len(labels))
        ax.bar(x, mean, color=colours, label=f"mean over tIoU {min(tious):g}–{max(tious):g}")
        marks = [i for i, t in enumerate(tious) if abs(t - tiou_mark) < 1e-9]
        if marks:
            ax.plot(x, aps[:, marks[0]], "k_", markersize=14, markeredgewidth=2,
                    linestyle="none", label=f"AP@{tiou_mark:g}")
        ax.set_xticks(x, labels, rotation=30 if len(labels) > 6 else 0, ha="right"
                      if len(labels) > 6 else "center", fontsize=8)
        ax.set_ylim(0, 1.18)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("AP")
        ax.set_title(f"{PROTOCOL_NAMES.get(name, name)}: average mAP "
                     f"{float(block['average_mAP']) * 100:.1f}%", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", ncols=2)
    return fig


def pr_figure(
    curves: Mapping[str, Mapping[str, PRCurve]],
    *,
    tiou: float,
    classes: Sequence[str] | None = None,
) -> Figure:
    """Precision-recall curves: one axis per protocol, one line per class (recall on x,
    precision on y, AP in the legend); classes ordered and coloured as in ``classes``."""
    fig = _new_figure(5.0 * max(1, len(curves)), 4.2)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(curves)), squeeze=False)[0])
    for ax, (name, per_class) in zip(axes, curves.items(), strict=False):
        for i, label in enumerate(_class_order(list(per_class), classes)):
            curve = per_class[label]
            colour = _class_colour(list(classes).index(label) if classes and label in classes
                                   else i)
            ax.plot(curve.recall, curve.precision, color=colour, linewidth=1.3,
                    label=f"{label} (AP {curve.ap:.2f})")
        ax.set_xlim(0, 1.0)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{PROTOCOL_NAMES.get(name, name)}, tIoU {tiou:g}", fontsize=10)
        ax.grid(alpha=0.3)
        if per_class:
            ax.legend(fontsize=7, loc="lower left")
    return fig


def loss_figure(train_log: Mapping[str, Any]) -> Figure:
    """The training curves of a ``train.json`` dict.

    First axis: the loss per epoch (solid) and its named parts (dashed, from ``loss_parts``);
    second axis (when ``lr`` is logged): the learning rate per epoch.
    """
    loss = np.asarray(train_log.get("loss", []), dtype=np.float64)
    parts = train_log.get("loss_parts") or {}
    lrs = train_log.get("lr") or []
    fig = _new_figure(7.0, 4.8 if lrs else 3.4)
    axes = np.atleast_1d(fig.subplots(2 if lrs else 1, 1, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]} if lrs else None))
    epochs = np.arange(1, len(loss) + 1)
    ax = axes[0]
    ax.plot(epochs, loss, color="black", linewidth=1.6, label="loss")
    for i, (name, values) in enumerate(parts.items()):
        vals = np.asarray(values, dtype=np.float64)
        if len(vals) == len(loss) and name not in {"total"}:
            ax.plot(epochs, vals, linestyle="--", linewidth=1.0, color=_class_colour(i),
                    label=name)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right", ncols=2)
    ax.set_title(f"{train_log.get('model', '')} on {train_log.get('dataset', '')}: "
                 f"{len(loss)} epochs, {train_log.get('n_videos', '?')} videos", fontsize=10)
    if lrs:
        axes[1].plot(epochs[: len(lrs)], lrs, color="C3", linewidth=1.2)
        axes[1].set_yscale("log")
        axes[1].set_ylabel("lr")
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel("epoch")
    return fig


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------


def make_report(
    *,
    model_path: str | os.PathLike[str],
    train_log_path: str | os.PathLike[str],
    detections_path: str | os.PathLike[str],
    map_path: str | os.PathLike[str],
    gt_path: str | os.PathLike[str],
    feature_paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    subset: str,
    videos: Sequence[str] | None = None,
    n_videos: int = 3,
    pr_tiou: float = 0.5,
    device: str = "cpu",
    threads: int | None = None,
) -> dict[str, Any]:
    """Report stage: write the figures described in the module docstring and ``report.json``.

    Args:
        model_path: ``model.pt`` of the train stage.
        train_log_path: ``train.json`` of the train stage.
        detections_path: ``detections.json`` of the infer stage.
        map_path: ``map.json`` of the evaluate stage.
        gt_path: ``gt.json`` of the index stage.
        feature_paths: the test videos' feature files (the chosen videos' are read).
        out_dir: the report folder.
        subset: the evaluated subset (PR curves, the default choice of videos).
        videos: videos to draw (default: see :func:`choose_videos`).
        n_videos: how many to draw without a list.
        pr_tiou: tIoU of the PR curves.
        device: where the model runs.
        threads: torch CPU threads.

    Returns:
        The ``report.json`` dict.
    """
    from wtal.infer import infer_options, load_model

    if threads is not None:
        torch.set_num_threads(threads)
    out = Path(out_dir)
    (out / "timelines").mkdir(parents=True, exist_ok=True)
    gt = read_json(gt_path)
    submission = read_json(detections_path)
    result = read_json(map_path)
    train_log = read_json(train_log_path)
    by_name = {Path(p).stem: Path(p) for p in feature_paths}
    chosen = choose_videos(gt, subset, list(by_name), videos=videos, n_videos=n_videos)
    dev = resolve_device(device)
    net, ckpt = load_model(model_path, dev)
    classes = list(ckpt["classes"])
    transfer = str(result.get("knowledge_transfer") or "")
    # the model's own inference knobs the detections were made with (KT-MGFN's test sampling)
    options = infer_options(net, (submission.get("settings") or {}).get("model"),
                            source=str(detections_path))
    drawn: dict[str, Any] = {}
    for video in chosen:
        features, sidecar = load_features(by_name[video])
        grid = SnippetGrid.from_dict(sidecar["grid"])
        seqs = named_scores(net, ckpt, features, dev, options)
        duration = gt.get("database", {}).get(video, {}).get("duration")
        fig = timeline_figure(
            times=grid.centers(), classes=classes, sequences=seqs,
            ground_truth=ground_truth_of(gt, video), detections=detections_of(submission, video),
            duration=float(duration) if duration else float(grid.ends()[-1]),
            title=f"{video}: {ckpt['model']} on {ckpt.get('dataset', '?')}" + (
                " (knowledge transfer off)" if transfer.startswith("off") else ""))
        save_figure(fig, out / "timelines" / f"{video}.png")
        drawn[video] = {"sequences": {k: list(v.shape) for k, v in seqs.items()},
                        "figure": f"timelines/{video}.png"}
    save_figure(ap_bars_figure(result, classes=classes), out / "ap_per_class.png")
    protocols = list(result.get("protocols") or {result.get("protocol", "anet"): None})
    curves: dict[str, dict[str, PRCurve]] = {}
    for name in protocols:
        if name == "anet":
            curves[name] = precision_recall_anet(gt, submission, subset=subset, tiou=pr_tiou)
        elif name == "thumos14":
            curves[name] = precision_recall_thumos14(gt, submission, subset=subset,
                                                     tiou=pr_tiou)
    save_figure(pr_figure(curves, tiou=pr_tiou, classes=classes), out / "pr_curves.png")
    save_figure(loss_figure(train_log), out / "loss.png")
    manifest = {
        "model": ckpt["model"],
        "dataset": ckpt.get("dataset"),
        "subset": subset,
        **({"knowledge_transfer": transfer} if transfer else {}),
        "videos": drawn,
        "ap_per_class": {name: block["per_class"]
                         for name, block in (result.get("protocols") or {}).items()},
        "pr_tiou": pr_tiou,
        "pr_ap": {name: {label: c.ap for label, c in per.items()}
                  for name, per in curves.items()},
        "figures": ["ap_per_class.png", "pr_curves.png", "loss.png",
                    *(d["figure"] for d in drawn.values())],
    }
    write_json(out / "report.json", manifest)
    return manifest


# ---------------------------------------------------------------------------------------------
# Summary across models and datasets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary: this project's result under one protocol, or a paper's."""

    dataset: str
    model: str
    source: str  # "ours" or "paper"
    protocol: str  # ours: anet / thumos14; paper: the benchmark's usual evaluation
    mAP: Mapping[float, float | None]  # tIoU → percent
    average: float | None = None  # percent
    average_over: str = ""
    classification: float | None = None  # percent, video-level classification mAP
    reference: str = ""  # ours: the map.json; paper: table and row
    features: str = ""
    note: str = ""
    knowledge_transfer: str = ""  # ours: map.json's, for a model that learns from trimmed clips
    compared_with: str = ""  # ours: the dataset whose model settings it used (map.json), if other

    @property
    def transfer_off(self) -> bool:
        """A model whose paper transfers knowledge from trimmed clips, trained without it."""
        return self.knowledge_transfer.startswith("off")

    @property
    def label(self) -> str:
        """The model as the table shows it, marked when its knowledge transfer was off."""
        return f"{self.model} (knowledge transfer off)" if self.transfer_off else self.model


def _fmt(value: float | None, digits: int | None = 1) -> str:
    """A percentage: ``digits`` decimals, or as printed (``None``: shortest form)."""
    if value is None:
        return "–"
    if digits is None:  # 17.0 → "17.0", 5.59 → "5.59": the tables print 1 or 2 decimals
        text = f"{value:.2f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return f"{value:.{digits}f}"


def our_rows(map_paths: Sequence[str | os.PathLike[str]]) -> list[SummaryRow]:
    """One row per protocol of every ``map.json`` (results/<dataset>/<model>/map.json)."""
    rows: list[SummaryRow] = []
    for path in sorted(Path(p) for p in map_paths):
        result = read_json(path)
        dataset = result.get("dataset") or path.parent.parent.name
        model = result.get("model") or path.parent.name
        blocks = result.get("protocols") or {result.get("protocol", "anet"): result}
        cls = (result.get("classification") or {}).get("mAP")
        transfer = str(result.get("knowledge_transfer") or "")
        for protocol, block in blocks.items():
            tious = [float(t) for t in block["tiou"]]
            rows.append(SummaryRow(
                dataset=dataset, model=model, source="ours", protocol=protocol,
                mAP={t: float(m) * 100 for t, m in zip(tious, block["mAP"], strict=True)},
                average=float(block["average_mAP"]) * 100,
                average_over=f"{min(tious):g}:{max(tious):g}" if tious else "",
                classification=None if cls is None else float(cls) * 100,
                reference=str(path),
                features=str(result.get("features", "")),
                note=f"knowledge transfer {transfer}" if transfer.startswith("off") else "",
                knowledge_transfer=transfer,
                compared_with=str(result.get("model_settings_of") or ""),
            ))
    return rows


def paper_rows(dataset: str, models: Sequence[str] | None = None, *,
               like: str = "") -> list[SummaryRow]:
    """The published rows of ``dataset``'s benchmark (all papers, or those of ``models``); for
    a dataset of none, those of the benchmark of ``like`` (the dataset whose model settings it
    ran with, e.g. ``thumos14`` for a THUMOS14-structured benchmark or one's own features)."""
    from wtal.papers import BENCHMARK_OF_DATASET, PAPER_OF_MODEL, UNAVAILABLE, published

    benchmark = BENCHMARK_OF_DATASET.get(dataset) or BENCHMARK_OF_DATASET.get(like)
    if benchmark is None:
        return []
    wanted = list(PAPER_OF_MODEL) if models is None else [m for m in models
                                                          if m in PAPER_OF_MODEL]
    rows = []
    for model in wanted:
        entries = published(model, benchmark)
        for p in entries:
            rows.append(SummaryRow(
                dataset=dataset, model=model, source="paper",
                protocol="published", mAP=dict(zip(p.tious, p.mAP, strict=True)),
                average=p.average, average_over=p.average_over or "",
                reference=f"{p.paper} {p.source}; {p.features} features", features=p.features,
                note=p.note))
        if not entries and (model, benchmark) in UNAVAILABLE:
            rows.append(SummaryRow(dataset=dataset, model=model, source="paper",
                                   protocol="published", mAP={},
                                   reference=PAPER_OF_MODEL[model],
                                   note=UNAVAILABLE[(model, benchmark)]))
    return rows


def summary_tables(map_paths: Sequence[str | os.PathLike[str]]) -> tuple[str, list[dict[str, Any]]]:
    """The comparison across models and datasets, as Markdown and as CSV records.

    Every ``map.json`` gives one row per evaluated protocol (mAP in percent); for datasets of a
    published benchmark (THUMOS14, ActivityNet-1.3, see :mod:`wtal.papers`) the papers'
    reported numbers of the same models follow each of ours, and a last section lists every
    published number this project knows, with its table.
    """
    from wtal.papers import BENCHMARK_NAMES, BENCHMARK_OF_DATASET, PAPER_OF_MODEL

    ours = our_rows(map_paths)
    datasets = sorted({r.dataset for r in ours})
    sections: list[str] = ["# Results summary", "",
                           "mAP (%) of every `results/<dataset>/<model>/map.json`, under each "
                           "evaluated protocol (`anet`: the ActivityNet code; `thumos14`: the "
                           "THUMOS14 kit). Papers' numbers (`paper` rows) are as printed in "
                           "their tables, on their own features and evaluation code: context, "
                           "not a like-for-like comparison. A model marked `(knowledge "
                           "transfer off)` learns from trimmed clips in its paper but was "
                           "trained without any (the dataset's `trimmed` setting is null): it "
                           "is not the paper's full method.", ""]
    records: list[dict[str, Any]] = []

    def table(rows: Sequence[SummaryRow]) -> list[str]:
        tious = sorted({t for r in rows for t in r.mAP})
        head = ["model", "source", "protocol", *(f"@{t:g}" for t in tious), "avg",
                "avg over", "cls mAP", "reference"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            digits = None if r.source == "paper" else 1
            cells = [r.label, r.source, r.protocol,
                     *(_fmt(r.mAP.get(t), digits) for t in tious),
                     _fmt(r.average, digits), r.average_over or "–", _fmt(r.classification),
                     r.reference + (f" ({r.note})" if r.note else "")]
            lines.append("| " + " | ".join(cells) + " |")
        return lines

    for dataset in datasets:
        mine = [r for r in ours if r.dataset == dataset]
        rows: list[SummaryRow] = []
        like = next((r.compared_with for r in mine if r.compared_with), "")
        for model in sorted({r.model for r in mine}):
            rows += [r for r in mine if r.model == model]
            rows += paper_rows(dataset, [model], like=like)
        bench = BENCHMARK_OF_DATASET.get(dataset)
        title = f"## {dataset}" + (f" ({BENCHMARK_NAMES[bench]})" if bench else "")
        if bench is None and BENCHMARK_OF_DATASET.get(like):
            title += (f" (models with their {like} settings; the `paper` rows are the papers' "
                      f"{BENCHMARK_NAMES[BENCHMARK_OF_DATASET[like]]} numbers, another dataset)")
        sections += [title, "", *table(rows), ""]
        records += [_record(r) for r in rows]
    sections += ["## Published numbers", ""]
    for bench, name in BENCHMARK_NAMES.items():
        dataset = next(d for d, b in BENCHMARK_OF_DATASET.items() if b == bench)
        rows = paper_rows(dataset, list(PAPER_OF_MODEL))
        rows = [SummaryRow(**{**r.__dict__, "dataset": bench}) for r in rows]
        sections += [f"### {name}", "", *table(rows), ""]
        records += [_record(r) for r in rows if not any(
            rec["dataset"] == bench and rec["reference"] == r.reference for rec in records)]
    return "\n".join(sections), records


def _record(row: SummaryRow) -> dict[str, Any]:
    return {"dataset": row.dataset, "model": row.model, "source": row.source,
            "protocol": row.protocol, "mAP": dict(row.mAP), "average": row.average,
            "average_over": row.average_over, "classification": row.classification,
            "reference": row.reference, "features": row.features, "note": row.note,
            "knowledge_transfer": row.knowledge_transfer}


def write_summary(
    map_paths: Sequence[str | os.PathLike[str]],
    md_out: str | os.PathLike[str],
    csv_out: str | os.PathLike[str],
) -> list[dict[str, Any]]:
    """Write ``summary.md`` and ``summary.csv`` (see :func:`summary_tables`); returns the
    records. CSV: one line per row, mAP in percent in one column per tIoU (``mAP@0.5``)."""
    import csv

    from wtalio import atomic_open

    text, records = summary_tables(map_paths)
    with atomic_open(md_out) as handle:
        handle.write(text)
    tious = sorted({t for rec in records for t in rec["mAP"]})
    columns = ["dataset", "model", "source", "protocol",
               *(f"mAP@{t:g}" for t in tious), "average_mAP", "average_over",
               "classification_mAP", "reference", "features", "note"]
    with atomic_open(csv_out) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for rec in records:
            writer.writerow([
                rec["dataset"], rec["model"], rec["source"], rec["protocol"],
                *("" if rec["mAP"].get(t) is None else f"{rec['mAP'][t]:.2f}" for t in tious),
                "" if rec["average"] is None else f"{rec['average']:.2f}",
                rec["average_over"],
                "" if rec["classification"] is None else f"{rec['classification']:.2f}",
                rec["reference"], rec["features"], rec["note"],
            ])
    return records
