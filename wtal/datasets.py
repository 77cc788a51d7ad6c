"""Index stage: videos, subsets, durations and video-level labels of a dataset.

Reads annotations in the THUMOS14 official text format (one file per class and subset,
``<Class>_<suffix>.txt`` with lines ``video start end``, any whitespace; ``Ambiguous_<suffix>.txt``
for segments that are taken out of evaluation) and writes:

* ``index.json`` — per video: file path, subset, split (``train``/``test``), duration and
  video-level labels. Only this file reaches training: it has no segment times.
* ``gt.json`` — the ground truth normalised to the ActivityNet JSON schema
  (``database`` → ``subset``, ``duration``, ``annotations``), plus an ``ambiguous`` map.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wtal.io import read_json, write_json

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg")
AMBIGUOUS = "Ambiguous"


@dataclass(frozen=True)
class SubsetSpec:
    """One subset of a THUMOS14-format dataset."""

    name: str  # subset name in gt.json, e.g. "validation" or "test"
    split: str  # "train" or "test": what the pipeline uses it for
    videos: str  # folder holding the video files
    annotations: str  # folder holding <Class>_<suffix>.txt
    suffix: str  # annotation file suffix, e.g. "val" or "test"


@dataclass(frozen=True)
class Segment:
    """One annotated segment."""

    video: str
    start: float
    end: float
    label: str


def parse_annotation_file(path: Path, label: str) -> list[Segment]:
    """Read one THUMOS14 annotation file (``video start end`` per line, any whitespace).

    Raises:
        ValueError: a line that is not ``video start end`` with numbers and start < end,
            naming the file and the line.
    """
    segments = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(
                f"{path}:{lineno}: expected 'video start end', got {line.strip()!r}"
            )
        try:
            start, end = float(fields[1]), float(fields[2])
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: start and end must be numbers, got {line.strip()!r}"
            ) from None
        if not end > start:
            raise ValueError(f"{path}:{lineno}: end {end} is not after start {start}")
        segments.append(Segment(video=fields[0], start=start, end=end, label=label))
    return segments


def read_thumos_subset(
    folder: Path, suffix: str, classes: Sequence[str]
) -> tuple[list[Segment], list[Segment]]:
    """All class segments and Ambiguous segments of one subset.

    Every class must have its file (an empty file is fine); a missing Ambiguous file means no
    ambiguous segments.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: annotation folder does not exist")
    segments: list[Segment] = []
    for label in classes:
        path = folder / f"{label}_{suffix}.txt"
        if not path.exists():
            raise FileNotFoundError(f"{path}: annotation file for class {label!r} is missing")
        segments.extend(parse_annotation_file(path, label))
    amb_path = folder / f"{AMBIGUOUS}_{suffix}.txt"
    ambiguous = parse_annotation_file(amb_path, AMBIGUOUS) if amb_path.exists() else []
    return segments, ambiguous


def find_video(folder: Path, video: str) -> Path:
    """The file of ``video`` in ``folder`` (any common extension)."""
    for ext in VIDEO_EXTENSIONS:
        path = folder / f"{video}{ext}"
        if path.exists():
            return path
    raise FileNotFoundError(
        f"{folder}: no video file for {video!r} (looked for {', '.join(VIDEO_EXTENSIONS)})"
    )


def probe_duration(path: Path) -> float:
    """Duration in seconds from the container (frames / average fps), via decord."""
    from extractors.decode import _open

    reader = _open(path)
    fps = float(reader.get_avg_fps())
    if len(reader) == 0 or not fps > 0:
        raise ValueError(f"{path}: no frames or no frame rate")
    return len(reader) / fps


def build_index(
    *,
    dataset: str,
    classes: Sequence[str],
    subsets: Sequence[SubsetSpec],
    fps: float,
    root: str | os.PathLike[str] = ".",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Index a THUMOS14-format dataset.

    Args:
        dataset: dataset name.
        classes: class names, in the order of the class indices.
        subsets: the subsets to index (folders relative to ``root`` unless absolute).
        fps: frame rate the pipeline resamples to (recorded for later stages).
        root: base folder for relative subset folders.

    Returns:
        ``(index, gt)`` dicts as described in the module docstring.
    """
    if len(set(classes)) != len(classes):
        raise ValueError(f"{dataset}: duplicate class names in {list(classes)}")
    base = Path(root)
    videos: dict[str, dict[str, Any]] = {}
    database: dict[str, dict[str, Any]] = {}
    ambiguous: dict[str, list[list[float]]] = {}
    for spec in subsets:
        segments, amb = read_thumos_subset(base / spec.annotations, spec.suffix, classes)
        names = sorted({s.video for s in segments} | {s.video for s in amb})
        for name in names:
            if name in videos:
                raise ValueError(f"{dataset}: video {name} appears in two subsets")
            path = find_video(base / spec.videos, name)
            duration = probe_duration(path)
            own = [s for s in segments if s.video == name]
            videos[name] = {
                "path": str(path),
                "subset": spec.name,
                "split": spec.split,
                "duration": duration,
                "labels": sorted({s.label for s in own}, key=list(classes).index),
            }
            database[name] = {
                "subset": spec.name,
                "duration": duration,
                "annotations": [
                    {"segment": [s.start, s.end], "label": s.label} for s in own
                ],
            }
            amb_own = [[s.start, s.end] for s in amb if s.video == name]
            if amb_own:
                ambiguous[name] = amb_own
    if not videos:
        raise ValueError(f"{dataset}: no annotated videos found")
    index = {
        "dataset": dataset,
        "fps": fps,
        "classes": list(classes),
        "videos": videos,
    }
    gt = {
        "version": f"{dataset} (THUMOS14 text format, normalised)",
        "taxonomy": [{"nodeName": c, "nodeId": i} for i, c in enumerate(classes)],
        "database": database,
        "ambiguous": ambiguous,
    }
    return index, gt


def index_dataset(
    index_out: str | os.PathLike[str],
    gt_out: str | os.PathLike[str],
    *,
    dataset: str,
    classes: Sequence[str],
    subsets: Sequence[Mapping[str, str]],
    fps: float,
    root: str | os.PathLike[str] = ".",
) -> dict[str, Any]:
    """Index stage: build and write ``index.json`` and ``gt.json``; returns the index."""
    specs = [SubsetSpec(**dict(s)) for s in subsets]
    index, gt = build_index(dataset=dataset, classes=classes, subsets=specs, fps=fps, root=root)
    write_json(gt_out, gt)
    write_json(index_out, index)
    return index


def load_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``index.json``."""
    index = read_json(path)
    for key in ("dataset", "classes", "videos"):
        if key not in index:
            raise ValueError(f"{path}: not an index file (no {key!r})")
    return index


def videos_of_split(index: Mapping[str, Any], split: str) -> list[str]:
    """Names of the videos used for ``split`` (``train`` or ``test``), sorted."""
    return sorted(v for v, rec in index["videos"].items() if rec["split"] == split)


def subset_of_split(index: Mapping[str, Any], split: str) -> str:
    """The gt.json subset name of ``split`` (``train`` → ``validation`` on THUMOS14)."""
    names = {rec["subset"] for rec in index["videos"].values() if rec["split"] == split}
    if len(names) != 1:
        raise ValueError(f"split {split!r} maps to subsets {sorted(names)}, expected one")
    return names.pop()
