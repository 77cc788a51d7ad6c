"""Index stage: videos, subsets, durations and video-level labels of a dataset.

Three annotation formats are read, chosen by the dataset config's ``format``:

* ``thumos14`` — the official per-class text files (``<Class>_<suffix>.txt`` with lines
  ``video start end``, any whitespace; ``Ambiguous_<suffix>.txt`` for segments taken out of
  evaluation) next to folders of video files. The known-bad videos follow :class:`KnownBad`.
* ``activitynet`` — the official ActivityNet-1.3 JSON (``database`` → ``subset``, ``duration``,
  ``annotations``) with video files named ``v_<id>.*``; videos that are not on disk (many are
  gone from YouTube) are listed in the index under ``missing`` and skipped.
* ``features`` — bring-your-own precomputed features (:mod:`wtal.byof`): no videos at all.

Optionally the UCF101 trimmed clips of the dataset's classes (:mod:`wtal.ucf101`) are indexed
too, under split ``trimmed``, for the models that transfer knowledge from them.

Written files:

* ``index.json`` — per video: file path, subset, split (``train``/``test``/``trimmed``),
  duration and video-level labels (and, for ``features`` datasets, where its features are).
  Only this file reaches training: it has no segment times. It also lists every video that was
  left out (``excluded``, ``missing``) and every annotation that was changed (``adjusted``),
  each with the reason: nothing is dropped silently.
* ``gt.json`` — the ground truth of the train and test subsets in the ActivityNet JSON schema
  (``database`` → ``subset``, ``duration``, ``annotations``), plus an ``ambiguous`` map.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wtalio import read_json, read_text, write_json

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".flv")
AMBIGUOUS = "Ambiguous"
FORMATS = ("thumos14", "activitynet", "features")

#: The 20 THUMOS14 detection classes in the usual order (index 0..19 in BaSNet, CoLA, W-TALC)
#: with their 1-based UCF101 class ids (THUMOS14 readme; ``classInd.txt`` of UCF101).
THUMOS14_UCF101_IDS: dict[str, int] = {
    "BaseballPitch": 7, "BasketballDunk": 9, "Billiards": 12, "CleanAndJerk": 21,
    "CliffDiving": 22, "CricketBowling": 23, "CricketShot": 24, "Diving": 26,
    "FrisbeeCatch": 31, "GolfSwing": 33, "HammerThrow": 36, "HighJump": 40,
    "JavelinThrow": 45, "LongJump": 51, "PoleVault": 68, "Shotput": 79,
    "SoccerPenalty": 85, "TennisSwing": 92, "ThrowDiscus": 93, "VolleyballSpiking": 97,
}

#: THUMOS14 test videos that the WTAL literature leaves out (BaSNet: "We excluded three test
#: videos (270, 1292, 1496) as previous work did"): 270 has most annotations beyond the end of
#: the video, 1292 has only Ambiguous annotations, 1496 is wrongly annotated.
THUMOS14_KNOWN_BAD = ("video_test_0000270", "video_test_0001292", "video_test_0001496")


@dataclass(frozen=True)
class SubsetSpec:
    """One subset of a dataset.

    ``videos`` is the folder of the video files; ``annotations`` and ``suffix`` are only used by
    the THUMOS14 text format (folder of ``<Class>_<suffix>.txt``).
    """

    name: str  # subset name in gt.json, e.g. "validation" or "test"
    split: str  # "train" or "test": what the pipeline uses it for
    videos: str | None = None  # folder holding the video files
    annotations: str | None = None  # folder holding <Class>_<suffix>.txt (thumos14)
    suffix: str | None = None  # annotation file suffix, e.g. "val" or "test" (thumos14)

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise ValueError(f"subset {self.name}: split must be train or test, not {self.split!r}")


@dataclass(frozen=True)
class KnownBad:
    """What to do with known-bad videos and annotations beyond the end of a video.

    ``exclude`` videos are left out of the index and of gt.json (recorded under ``excluded``).
    ``out_of_range`` applies to a segment that ends after the video's duration:

    * ``keep`` — leave it as annotated (what the papers' evaluation code does);
    * ``clip`` — end it at the duration; a segment that starts at or after the end is removed;
    * ``drop`` — remove the segment;
    * ``error`` — stop with an error naming the video and the segment.

    Every change is recorded under ``adjusted`` in index.json, and a kept out-of-range segment is
    recorded too.
    """

    exclude: tuple[str, ...] = ()
    out_of_range: str = "keep"

    def __post_init__(self) -> None:
        if self.out_of_range not in ("keep", "clip", "drop", "error"):
            raise ValueError(
                f"known_bad.out_of_range must be keep, clip, drop or error, "
                f"not {self.out_of_range!r}"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> KnownBad:
        cfg = cfg or {}
        return cls(exclude=tuple(cfg.get("exclude", ())),
                   out_of_range=cfg.get("out_of_range", "keep"))


@dataclass(frozen=True)
class Segment:
    """One annotated segment."""

    video: str
    start: float
    end: float
    label: str


@dataclass
class IndexBuilder:
    """Collects videos, ground truth and the record of what was left out or changed."""

    dataset: str
    classes: list[str]
    fps: float
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    database: dict[str, dict[str, Any]] = field(default_factory=dict)
    ambiguous: dict[str, list[list[float]]] = field(default_factory=dict)
    excluded: list[dict[str, str]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)
    adjusted: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, record: dict[str, Any], annotations: list[dict[str, Any]] | None,
            ambiguous: list[list[float]] | None = None) -> None:
        """Add a video; ``annotations`` None keeps it out of gt.json (trimmed clips)."""
        if name in self.videos:
            raise ValueError(
                f"{self.dataset}: video {name} appears twice "
                f"(subsets {self.videos[name]['subset']} and {record['subset']})"
            )
        self.videos[name] = record
        if annotations is not None:
            self.database[name] = {
                "subset": record["subset"],
                "duration": record["duration"],
                "annotations": annotations,
            }
        if ambiguous:
            self.ambiguous[name] = ambiguous

    def labels_of(self, annotations: Sequence[Mapping[str, Any]]) -> list[str]:
        """Video-level labels: the classes of the annotations, in class order."""
        order = {c: i for i, c in enumerate(self.classes)}
        return sorted({a["label"] for a in annotations}, key=order.__getitem__)

    def finish(self, version: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if not any(rec["split"] in ("train", "test") for rec in self.videos.values()):
            raise ValueError(f"{self.dataset}: no annotated videos found")
        index = {
            "dataset": self.dataset,
            "fps": self.fps,
            "classes": list(self.classes),
            "videos": self.videos,
            "excluded": self.excluded,
            "missing": self.missing,
            "adjusted": self.adjusted,
            **extra,
        }
        gt = {
            "version": version,
            "taxonomy": [{"nodeName": c, "nodeId": i} for i, c in enumerate(self.classes)],
            "database": self.database,
            "ambiguous": self.ambiguous,
        }
        for kind in ("excluded", "missing", "adjusted"):
            if getattr(self, kind):
                log.warning("%s: %d %s entries recorded in index.json", self.dataset,
                            len(getattr(self, kind)), kind)
        return index, gt


# ---- THUMOS14 text format --------------------------------------------------------------------


def parse_annotation_file(path: Path, label: str) -> list[Segment]:
    """Read one THUMOS14 annotation file (``video start end`` per line, any whitespace).

    Raises:
        ValueError: a line that is not ``video start end`` with numbers and start < end,
            naming the file and the line.
    """
    segments = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
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
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"{path}:{lineno}: start and end must be finite, got "
                             f"{line.strip()!r}")
        if not end > start:
            raise ValueError(f"{path}:{lineno}: end {end} is not after start {start}")
        if start < 0:
            raise ValueError(f"{path}:{lineno}: start {start} is negative")
        segments.append(Segment(video=fields[0], start=start, end=end, label=label))
    return segments


def resolve_folder(base: Path, relative: str) -> Path:
    """``base / relative``, matching each path component case-insensitively if needed.

    THUMOS14 copies spell the test annotation folder both ``TH14_Temporal_Annotations_Test`` and
    ``TH14_Temporal_annotations_test``; both are found whichever the config names.
    """
    exact = base / relative
    if exact.exists():
        return exact
    current = base
    for part in Path(relative).parts:
        candidate = current / part
        if not candidate.exists():
            matches = []
            if current.is_dir():
                matches = [p for p in current.iterdir() if p.name.lower() == part.lower()]
            if len(matches) != 1:
                raise FileNotFoundError(
                    f"{exact}: folder does not exist"
                    + (f" ({len(matches)} case-insensitive matches)" if matches else "")
                )
            candidate = matches[0]
        current = candidate
    return current


def read_thumos_subset(
    folder: Path, suffix: str, classes: Sequence[str]
) -> tuple[list[Segment], list[Segment]]:
    """All class segments and Ambiguous segments of one subset.

    Every class must have its file (an empty file is fine); a missing Ambiguous file means no
    ambiguous segments (:func:`build_index` records and warns about it: it changes the
    THUMOS14-protocol numbers). A ``<Name>_<suffix>.txt`` whose class is not configured is an error
    (a misspelt class would otherwise be dropped silently).
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: annotation folder does not exist")
    known = set(classes) | {AMBIGUOUS}
    unknown = sorted(
        p.name for p in folder.glob(f"*_{suffix}.txt")
        if p.name[: -len(f"_{suffix}.txt")] not in known
    )
    if unknown:
        raise ValueError(
            f"{folder}: annotation files of unknown classes {unknown}; "
            f"configured classes: {list(classes)}"
        )
    segments: list[Segment] = []
    for label in classes:
        path = folder / f"{label}_{suffix}.txt"
        if not path.exists():
            raise FileNotFoundError(f"{path}: annotation file for class {label!r} is missing")
        segments.extend(parse_annotation_file(path, label))
    amb_path = folder / f"{AMBIGUOUS}_{suffix}.txt"
    ambiguous = parse_annotation_file(amb_path, AMBIGUOUS) if amb_path.exists() else []
    return segments, ambiguous


def video_files(folder: Path) -> dict[str, Path]:
    """Video files of ``folder`` by stem (one listing, so large folders stay fast)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: video folder does not exist")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            if path.stem in files:
                raise ValueError(f"{folder}: two files for video {path.stem}: "
                                 f"{files[path.stem].name} and {path.name}")
            files[path.stem] = path
    return files


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
    """Duration in seconds, from the first frame's start to the last frame's end (exact pts)."""
    from extractors.decode import video_duration

    return video_duration(path)


def check_video_files(
    files: Mapping[str, Path], *, fps: float, min_frames: int,
    unfound: Mapping[str, Path] | None = None,
) -> None:
    """Check every video of an index at once (headers only); one error lists all bad ones,
    with the videos of ``unfound`` (``{name: folder}``) that have no file in their folder."""
    from extractors.decode import check_videos

    problems = {name: f"no video file in {folder} (looked for {', '.join(VIDEO_EXTENSIONS)})"
                for name, folder in dict(unfound or {}).items()}
    check_videos(files, fps=fps, min_frames=min_frames, problems=problems)


def _apply_out_of_range(
    builder: IndexBuilder, name: str, segments: list[Segment], duration: float, policy: str
) -> list[Segment]:
    kept = []
    for seg in segments:
        if seg.end <= duration:
            kept.append(seg)
            continue
        record = {"video": name, "label": seg.label, "segment": [seg.start, seg.end],
                  "duration": duration, "policy": policy}
        if policy == "error":
            raise ValueError(
                f"{name}: segment {seg.label} [{seg.start}, {seg.end}] ends after the video "
                f"({duration:.2f} s); set known_bad.out_of_range to keep, clip or drop"
            )
        if policy == "keep":
            kept.append(seg)
            record["action"] = "kept"
        elif policy == "clip" and seg.start < duration:
            kept.append(Segment(video=name, start=seg.start, end=duration, label=seg.label))
            record["action"] = "clipped"
        else:
            record["action"] = "removed"
        builder.adjusted.append(record)
    return kept


def build_index(
    *,
    dataset: str,
    classes: Sequence[str],
    subsets: Sequence[SubsetSpec],
    fps: float,
    root: str | os.PathLike[str] = ".",
    known_bad: KnownBad | None = None,
    trimmed: Mapping[str, Any] | None = None,
    min_frames: int = 1,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Index a THUMOS14-format dataset.

    Args:
        dataset: dataset name.
        classes: class names, in the order of the class indices.
        subsets: the subsets to index (folders relative to ``root`` unless absolute).
        fps: frame rate the pipeline resamples to (recorded for later stages).
        root: base folder for relative subset folders.
        known_bad: policy for known-bad videos and out-of-range segments.
        trimmed: optional UCF101 trimmed clips (see :func:`wtal.ucf101.index_trimmed`).
        min_frames: frames of one snippet at ``fps``; shorter videos are reported, all together
            with every unreadable or missing one (:func:`check_video_files`).

    Returns:
        ``(index, gt)`` dicts as described in the module docstring.
    """
    _check_classes(dataset, classes)
    policy = known_bad or KnownBad()
    base = Path(root)
    builder = IndexBuilder(dataset=dataset, classes=list(classes), fps=fps)
    seen: set[str] = set()
    read = []
    found: dict[str, Path] = {}
    unfound: dict[str, Path] = {}
    ambiguous_missing: list[dict[str, str]] = []
    for spec in subsets:
        if spec.annotations is None or spec.suffix is None or spec.videos is None:
            raise ValueError(f"{dataset}: subset {spec.name} needs videos, annotations, suffix")
        folder = resolve_folder(base, spec.annotations)
        segments, amb = read_thumos_subset(folder, spec.suffix, classes)
        names = sorted({s.video for s in segments} | {s.video for s in amb})
        video_folder = resolve_folder(base, spec.videos)
        read.append((spec, segments, amb, names))
        amb_path = folder / f"{AMBIGUOUS}_{spec.suffix}.txt"
        if not amb_path.exists():
            log.warning("%s: %s is missing: subset %s has no Ambiguous segments, which changes "
                        "the THUMOS14-protocol numbers (recorded in index.json "
                        "'ambiguous_missing')", dataset, amb_path, spec.name)
            ambiguous_missing.append({"subset": spec.name, "file": str(amb_path)})
        for name in names:
            if name in seen:
                raise ValueError(f"{dataset}: video {name} appears in two subsets")
            seen.add(name)
            if name not in policy.exclude:
                try:
                    found[name] = find_video(video_folder, name)
                except FileNotFoundError:
                    unfound[name] = video_folder
    check_video_files(found, fps=fps, min_frames=min_frames, unfound=unfound)
    for spec, segments, amb, names in read:
        for name in names:
            if name in policy.exclude:
                builder.excluded.append(
                    {"video": name, "subset": spec.name, "reason": "known_bad.exclude"}
                )
                continue
            path = found[name]
            duration = probe_duration(path)
            own = [s for s in segments if s.video == name]
            own = _apply_out_of_range(builder, name, own, duration, policy.out_of_range)
            annotations = [{"segment": [s.start, s.end], "label": s.label} for s in own]
            record = {
                "path": str(path),
                "subset": spec.name,
                "split": spec.split,
                "duration": duration,
                "labels": builder.labels_of(annotations),
            }
            amb_own = [[s.start, s.end] for s in amb if s.video == name]
            builder.add(name, record, annotations, amb_own)
    _add_trimmed(builder, trimmed, base)
    return builder.finish(f"{dataset} (THUMOS14 text format, normalised)",
                          known_bad={"exclude": list(policy.exclude),
                                     "out_of_range": policy.out_of_range},
                          ambiguous_missing=ambiguous_missing)


# ---- ActivityNet JSON ------------------------------------------------------------------------


def read_anet_database(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The ``database`` of an ActivityNet-schema JSON, checked and normalised.

    Segments may be numbers or strings (BaSNet's gt.json); ``duration`` may be absent (then
    ``None``). Errors name the file and the video.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise ValueError(f"{path}: not an ActivityNet-schema file (no 'database' object)")
    database: dict[str, dict[str, Any]] = {}
    for vid, entry in data["database"].items():
        where = f"{path}: database[{vid!r}]"
        if not isinstance(entry, dict) or "subset" not in entry:
            raise ValueError(f"{where}: no 'subset'")
        duration = entry.get("duration")
        if duration is not None:
            try:
                duration = float(duration)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: duration {duration!r} is not a number") from None
            if not (duration > 0 and math.isfinite(duration)):
                raise ValueError(f"{where}: duration {duration} is not a positive finite number")
        anns = []
        for k, ann in enumerate(entry.get("annotations", [])):
            if not isinstance(ann, dict) or "segment" not in ann or "label" not in ann:
                raise ValueError(f"{where}.annotations[{k}]: needs 'segment' and 'label'")
            seg = ann["segment"]
            try:
                start, end = float(seg[0]), float(seg[1])
                if len(seg) != 2:
                    raise ValueError
            except (TypeError, ValueError, IndexError):
                raise ValueError(
                    f"{where}.annotations[{k}]: segment {seg!r} is not [start, end]"
                ) from None
            if not (math.isfinite(start) and math.isfinite(end)):
                raise ValueError(
                    f"{where}.annotations[{k}]: segment [{start}, {end}] is not finite"
                )
            if not end > start or start < 0:
                raise ValueError(
                    f"{where}.annotations[{k}]: segment [{start}, {end}] is empty or negative"
                )
            anns.append({"segment": [start, end], "label": str(ann["label"])})
        database[str(vid)] = {"subset": str(entry["subset"]), "duration": duration,
                              "annotations": anns}
    return database


def classes_of(database: Mapping[str, Mapping[str, Any]], subsets: Sequence[str]) -> list[str]:
    """Sorted class names of the annotations of ``subsets``."""
    return sorted({a["label"] for e in database.values() if e["subset"] in subsets
                   for a in e["annotations"]})


def check_labels(path: Any, database: Mapping[str, Mapping[str, Any]],
                 classes: Sequence[str], subsets: Sequence[str]) -> None:
    """Every label of ``subsets`` is a configured class (else an error naming the video)."""
    known = set(classes)
    for vid, entry in database.items():
        if entry["subset"] not in subsets:
            continue
        for ann in entry["annotations"]:
            if ann["label"] not in known:
                raise ValueError(
                    f"{path}: video {vid}: unknown class {ann['label']!r} "
                    f"(not among the {len(classes)} configured classes)"
                )


def build_activitynet_index(
    *,
    dataset: str,
    annotations: str | os.PathLike[str],
    subsets: Sequence[SubsetSpec],
    fps: float,
    root: str | os.PathLike[str] = ".",
    videos: str = "videos",
    classes: Sequence[str] | None = None,
    prefix: str = "v_",
    trimmed: Mapping[str, Any] | None = None,
    min_frames: int = 1,
    known_bad: KnownBad | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Index an ActivityNet-1.3-format dataset.

    Database keys are YouTube ids; the files are ``<prefix><id>.<ext>`` (``v_`` by default) in
    the subset's ``videos`` folder (or the dataset's). The pipeline names every video by its
    file stem (``v_<id>``), in index.json and gt.json alike; the id is kept as ``id``.
    Videos that are not on disk are listed under ``missing`` and skipped; the files that are
    there are checked all at once from their headers (unreadable ones, and ones shorter than
    ``min_frames`` frames at ``fps``, are listed together in one error). Videos named in
    ``known_bad.exclude`` (by file stem or id) are left out and listed under ``excluded``.
    """
    policy = known_bad or KnownBad()
    base = Path(root)
    ann_path = resolve_folder(base, str(annotations))
    database = read_anet_database(ann_path)
    names = [s.name for s in subsets]
    present = {e["subset"] for e in database.values()}
    for name in names:
        if name not in present:
            raise ValueError(
                f"{ann_path}: no video of subset {name!r} (subsets: {sorted(present)})"
            )
    classes = list(classes) if classes else classes_of(database, names)
    _check_classes(dataset, classes)
    check_labels(ann_path, database, classes, names)
    builder = IndexBuilder(dataset=dataset, classes=classes, fps=fps)
    listings: dict[str, dict[str, Path]] = {}
    on_disk: dict[str, Path] = {}
    for spec in subsets:
        folder = str(resolve_folder(base, spec.videos or videos))
        files = listings.setdefault(folder, video_files(Path(folder)))
        for vid, entry in database.items():
            if entry["subset"] == spec.name:
                name = vid if vid.startswith(prefix) else f"{prefix}{vid}"
                if name in policy.exclude or vid in policy.exclude:
                    continue
                if (path := files.get(name) or files.get(vid)) is not None:
                    on_disk[name] = path
    check_video_files(on_disk, fps=fps, min_frames=min_frames)
    for spec in subsets:
        folder = str(resolve_folder(base, spec.videos or videos))
        if folder not in listings:
            listings[folder] = video_files(Path(folder))
        files = listings[folder]
        for vid in sorted(v for v, e in database.items() if e["subset"] == spec.name):
            entry = database[vid]
            name = vid if vid.startswith(prefix) else f"{prefix}{vid}"
            if name in policy.exclude or vid in policy.exclude:
                builder.excluded.append(
                    {"video": name, "subset": spec.name, "reason": "known_bad.exclude"}
                )
                continue
            path = files.get(name) or files.get(vid)
            if path is None:
                builder.missing.append({"video": name, "subset": spec.name,
                                        "reason": f"no file {name}.* in {folder}"})
                continue
            duration = entry["duration"] if entry["duration"] is not None else probe_duration(path)
            record = {"path": str(path), "id": vid, "subset": spec.name, "split": spec.split,
                      "duration": duration, "labels": builder.labels_of(entry["annotations"])}
            builder.add(name, record, entry["annotations"])
    if builder.missing:
        log.warning("%s: %d annotated videos have no file and are skipped (index.json 'missing')",
                    dataset, len(builder.missing))
    _add_trimmed(builder, trimmed, base)
    return builder.finish(f"{dataset} (ActivityNet JSON {ann_path.name}, normalised)")


# ---- shared helpers ----------------------------------------------------------------------------


def _check_classes(dataset: str, classes: Sequence[str]) -> None:
    if not classes:
        raise ValueError(f"{dataset}: no classes")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{dataset}: duplicate class names in {list(classes)}")


def _add_trimmed(builder: IndexBuilder, trimmed: Mapping[str, Any] | None, base: Path) -> None:
    if not trimmed:
        return
    from wtal.ucf101 import index_trimmed

    for name, record in index_trimmed(
        resolve_folder(base, trimmed["root"]) if not Path(trimmed["root"]).is_absolute()
        else Path(trimmed["root"]),
        classes=builder.classes,
        mapping=trimmed.get("classes"),
        class_index=trimmed.get("class_index"),
    ).items():
        builder.add(name, record, None)


def index_from_config(
    index_out: str | os.PathLike[str],
    gt_out: str | os.PathLike[str],
    cfg: Mapping[str, Any],
) -> dict[str, Any]:
    """Index stage for any dataset config (after schema validation): write both files."""
    fmt = cfg.get("format", "thumos14")
    name = cfg["name"]
    fps = cfg.get("fps", 25)
    root = cfg.get("root", ".")
    specs = [SubsetSpec(**dict(s)) for s in cfg.get("subsets", [])]
    trimmed = cfg.get("trimmed")
    # frames of one snippet (the workflow passes the features' snippet_length)
    min_frames = int(cfg.get("min_frames", 1))
    synthetic = cfg.get("synthetic") or {}
    if trimmed and synthetic.get("n_trimmed_per_class", 1) == 0:
        log.warning("%s: the synthetic demo makes no trimmed clips (n_trimmed_per_class: 0), "
                       "so the 'trimmed' block is not used", name)
        trimmed = None
    if fmt == "thumos14":
        index, gt = build_index(dataset=name, classes=cfg["classes"], subsets=specs, fps=fps,
                                root=root, known_bad=KnownBad.from_config(cfg.get("known_bad")),
                                trimmed=trimmed, min_frames=min_frames)
    elif fmt == "activitynet":
        index, gt = build_activitynet_index(
            dataset=name, annotations=cfg["annotations"], subsets=specs, fps=fps, root=root,
            videos=cfg.get("videos", "videos"), classes=cfg.get("classes"),
            prefix=cfg.get("video_prefix", "v_"), trimmed=trimmed, min_frames=min_frames,
            known_bad=KnownBad.from_config(cfg.get("known_bad")))
    elif fmt == "features":
        from wtal.byof import build_features_index

        index, gt = build_features_index(cfg)
    else:
        raise ValueError(f"{name}: unknown dataset format {fmt!r}; known: {FORMATS}")
    write_json(gt_out, gt)
    write_json(index_out, index)
    return index


def index_dataset(
    index_out: str | os.PathLike[str],
    gt_out: str | os.PathLike[str],
    *,
    dataset: str,
    classes: Sequence[str],
    subsets: Sequence[Mapping[str, str]],
    fps: float,
    root: str | os.PathLike[str] = ".",
    known_bad: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Index stage for a THUMOS14-format dataset: build and write ``index.json``, ``gt.json``."""
    return index_from_config(index_out, gt_out, {
        "name": dataset, "format": "thumos14", "classes": list(classes),
        "subsets": list(subsets), "fps": fps, "root": root, "known_bad": known_bad,
    })


def input_listing(cfg: Mapping[str, Any]) -> str:
    """A digest of the set of video or feature files the index stage of ``cfg`` would find.

    For the pipeline's ``params:`` of the index rule: when a video (or a feature file) appears
    or disappears, the digest changes and Snakemake reruns the index, so that a video listed
    as ``missing`` is picked up once its file exists. File names only (relative to the folder
    listed), sorted; a folder that does not exist counts as such. ``""`` for a synthetic
    dataset, whose generated folder is the index's input.
    """
    if cfg.get("synthetic") is not None:
        return ""
    fmt = cfg.get("format", "thumos14")
    base = Path(cfg.get("root", "."))
    entries: list[str] = []

    def add(folder: Path, files: Sequence[str]) -> None:
        entries.extend(f"{folder}/{name}" for name in sorted(files))

    def folder_of(relative: str) -> Path | None:
        try:
            return resolve_folder(base, relative)
        except FileNotFoundError:
            entries.append(f"{base / relative}: no folder")
            return None

    if fmt == "features":
        root = Path(cfg["features_dir"])
        if root.is_dir():
            add(root, [str(p.relative_to(root)) for p in root.rglob("*.npy")])
        else:
            entries.append(f"{root}: no folder")
    else:
        relatives = [s["videos"] for s in cfg.get("subsets", []) if s.get("videos")]
        if fmt == "activitynet":
            relatives.append(cfg.get("videos", "videos"))
        for relative in sorted(set(relatives)):
            folder = folder_of(relative)
            if folder is not None and folder.is_dir():
                add(folder, [p.name for p in folder.iterdir()
                             if p.suffix.lower() in VIDEO_EXTENSIONS])
    trimmed = cfg.get("trimmed")
    if trimmed:  # the UCF101 clips (videos, or their features for format features)
        folder = Path(trimmed["root"]) if fmt == "features" else folder_of(trimmed["root"])
        suffixes = (".npy",) if fmt == "features" else VIDEO_EXTENSIONS
        if folder is not None and folder.is_dir():
            add(folder, [str(p.relative_to(folder)) for p in folder.rglob("*")
                         if p.suffix.lower() in suffixes])
        elif folder is not None:
            entries.append(f"{folder}: no folder")
    digest = hashlib.sha256("\n".join(entries).encode("utf-8")).hexdigest()
    return f"sha256:{digest[:16]} ({len(entries)} entries)"


def load_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``index.json``."""
    index = read_json(path)
    for key in ("dataset", "classes", "videos"):
        if key not in index:
            raise ValueError(f"{path}: not an index file (no {key!r})")
    return index


def videos_of_split(index: Mapping[str, Any], split: str) -> list[str]:
    """Names of the videos used for ``split`` (``train``, ``test``, ``trimmed``), sorted."""
    return sorted(v for v, rec in index["videos"].items() if rec["split"] == split)


def subset_of_split(index: Mapping[str, Any], split: str) -> str:
    """The gt.json subset name of ``split`` (``train`` → ``validation`` on THUMOS14)."""
    names = {rec["subset"] for rec in index["videos"].values() if rec["split"] == split}
    if len(names) != 1:
        raise ValueError(f"split {split!r} maps to subsets {sorted(names)}, expected one")
    return names.pop()
