"""Bring your own features: datasets given by precomputed snippet features, no videos.

A dataset config with ``format: features`` (implied by a ``features_dir`` key) names::

    features_dir: /path/features       # where the features are (layout below)
    annotations: /path/annotations.json  # ActivityNet schema (segments may be strings; label
                                         # "Ambiguous" marks THUMOS14's Ambiguous segments)
    snippet_seconds: 0.64              # time covered by one feature row (16 frames at 25 fps)
    train_subset: validation           # subset names of the annotations
    test_subset: test
    streams: {rgb: [0, 1024], flow: [1024, 2048]}   # optional column ranges per stream
    layout: per_video                  # per_video | basnet | wtalc
    trimmed: {root: /path/ucf101_features}  # optional: UCF101 clips' features, for the models
                                       # that transfer knowledge from them (KT-MGFN, TSRNet)

Layouts:

* ``per_video`` — ``<features_dir>/<video>.npy``, float (T, D); ``<video>`` is the annotation key,
  or ``v_<key>`` when only that exists (ActivityNet feature files carry the ``v_`` prefix).
* ``basnet`` — BaSNet / CoLA: ``<features_dir>/<subset>/{rgb,flow}/<video>.npy``, each (T, 1024),
  concatenated RGB first (``np.concatenate((rgb, flow), axis=1)`` as those codebases do).
* ``wtalc`` — W-TALC: one object array ``<features_dir>/*-JOINTFeatures.npy`` aligned by index
  with the annotation folder's ``videoname.npy`` (``annotations`` is then that folder with
  ``videoname.npy``, ``subset.npy``, ``classlist.npy``, ``duration.npy``, ``segments.npy``,
  ``labels.npy``). The joint file is unpacked once (:func:`unpack_joint`) and read per video.

Trimmed clips (optional, ``trimmed``): ``<root>/<UcfClass>/v_<UcfClass>_g<GG>_c<CC>.npy``, the
UCF101 folder layout with one (T, D) feature file per clip in place of its video, extracted as the
untrimmed videos' features were (same columns, same ``snippet_seconds``); ``trimmed.classes`` maps
the dataset's classes to UCF101 folders as for videos (:mod:`wtal.ucf101`). They are indexed under
split ``trimmed`` (:func:`index_trimmed_features`) and imported all in one job
(:func:`import_split`, into one folder that :func:`split_files` reads back), where the videos
are imported one job each.

The import stage (:func:`import_features`) writes every video's features as
``<video>.npy`` (float32) with the same kind of sidecar as the extractors write, so that training,
inference and evaluation do not know where the features came from. Row ``i`` covers
``[i * snippet_seconds, (i + 1) * snippet_seconds)`` (the BaSNet / W-TALC convention).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from extractors.grid import SnippetGrid
from wtal.datasets import (
    AMBIGUOUS,
    IndexBuilder,
    check_labels,
    classes_of,
    read_anet_database,
    videos_of_split,
)
from wtalio import current_umask, save_npy, write_json

LAYOUTS = ("per_video", "basnet", "wtalc")

logger = logging.getLogger(__name__)


def snippet_grid(n_rows: int, snippet_seconds: float) -> SnippetGrid:
    """The grid of imported features: one row per ``snippet_seconds``, starting at 0 s."""
    if not snippet_seconds > 0:
        raise ValueError(f"snippet_seconds must be positive, got {snippet_seconds}")
    return SnippetGrid(fps=1.0 / snippet_seconds, n_frames=n_rows, length=1, stride=1)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | np.bytes_) else str(value)


def read_wtalc_annotations(folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """W-TALC's annotation folder as an ActivityNet-schema ``database`` (keys: video names).

    ``duration.npy`` is (N, 1); ``segments.npy`` and ``labels.npy`` are object arrays (one list
    per video; labels are per segment). The row of each video in the joint feature file is kept
    as ``row``.
    """
    folder = Path(folder)

    def load(name: str, pickled: bool = False) -> np.ndarray:
        path = folder / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: W-TALC annotation file is missing")
        return np.load(path, allow_pickle=pickled, encoding="bytes")

    names = [_text(v) for v in load("videoname.npy")]
    subsets = [_text(v) for v in load("subset.npy")]
    durations = load("duration.npy").reshape(len(names), -1)[:, 0]
    segments = load("segments.npy", pickled=True)
    labels = load("labels.npy", pickled=True)
    for what, arr in (("subset.npy", subsets), ("duration.npy", durations),
                      ("segments.npy", segments), ("labels.npy", labels)):
        if len(arr) != len(names):
            raise ValueError(f"{folder / what}: {len(arr)} entries but videoname.npy has "
                             f"{len(names)}")
    database: dict[str, dict[str, Any]] = {}
    for row, name in enumerate(names):
        segs, labs = list(segments[row]), list(labels[row])
        if len(segs) != len(labs):
            raise ValueError(f"{folder}: video {name}: {len(segs)} segments but {len(labs)} labels")
        anns = []
        for seg, lab in zip(segs, labs, strict=True):
            start, end = float(seg[0]), float(seg[1])
            if not (np.isfinite(start) and np.isfinite(end)):
                raise ValueError(f"{folder / 'segments.npy'}: video {name}: segment "
                                 f"[{start}, {end}] is not finite")
            if not end > start or start < 0:
                raise ValueError(f"{folder / 'segments.npy'}: video {name}: segment "
                                 f"[{start}, {end}] is empty or negative")
            anns.append({"segment": [start, end], "label": _text(lab)})
        database[name] = {"subset": subsets[row], "duration": float(durations[row]),
                          "annotations": anns, "row": row}
    return database


#: Rows × snippet_seconds may differ from the annotated duration by this many snippets (a
#: tail shorter than one snippet forms no row; encoders pad or drop a frame or two).
DEFAULT_SNIPPET_TOLERANCE = 2.0


def check_feature_duration(video: str, rows: int, duration: float, *, snippet_seconds: float,
                           tolerance: float, source: Any, annotations: Any) -> float:
    """Check that a video's feature rows cover its annotated duration; return the difference.

    Raises:
        ValueError: ``|rows × snippet_seconds − duration|`` exceeds ``tolerance`` snippets,
            naming the video, its feature file, both numbers and the key to fix. A wrong
            ``snippet_seconds`` maps every detection to the wrong time and gives a wrong
            mAP without any other sign.
    """
    covered = rows * snippet_seconds
    diff = abs(covered - float(duration))
    if diff > tolerance * snippet_seconds + 1e-9:
        raise ValueError(
            f"{source}: video {video}: {rows} feature rows x snippet_seconds {snippet_seconds} "
            f"= {covered:.2f} s, but {annotations} gives a duration of {float(duration):.2f} s "
            f"(a difference of {diff / snippet_seconds:.1f} snippets, more than "
            f"snippet_tolerance {tolerance}); set snippet_seconds to the time one feature row "
            f"covers (or snippet_tolerance: null to skip this check)"
        )
    return diff


def _rows(path: Path) -> int:
    """Rows of a ``.npy`` feature file, from its header."""
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a readable .npy array ({err})") from None
    if len(shape) != 2:
        raise ValueError(f"{path}: expected a (T, D) array, got shape {shape}")
    return int(shape[0])


def _joint_rows(path: Path) -> list[int]:
    """Rows of every video's array of a W-TALC joint feature file."""
    joint = np.load(path, allow_pickle=True, encoding="bytes")
    return [int(np.asarray(x).shape[0]) for x in joint]


def find_joint(features_dir: Path, name: str | None) -> Path:
    if name:
        path = features_dir / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: W-TALC joint feature file does not exist")
        return path
    found = sorted(features_dir.glob("*-JOINTFeatures.npy"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{features_dir}: expected one *-JOINTFeatures.npy, found {[p.name for p in found]}; "
            f"set features_file"
        )
    return found[0]


def feature_sources(cfg: Mapping[str, Any], key: str, subset: str, *,
                    prefix: str = "v_") -> list[str] | None:
    """Source files of one video's features in the configured layout; None if absent.

    ``per_video`` looks for ``<key>.npy``, then ``<prefix><key>.npy``.
    """
    base = Path(cfg["features_dir"])
    layout = cfg.get("layout", "per_video")
    if layout == "per_video":
        for stem in (key, f"{prefix}{key}"):
            path = base / f"{stem}.npy"
            if path.exists():
                return [str(path)]
        return None
    if layout == "basnet":
        files = [base / subset / stream / f"{key}.npy" for stream in ("rgb", "flow")]
        return [str(p) for p in files] if all(p.exists() for p in files) else None
    raise ValueError(f"no per-video sources in layout {layout!r}")


def split_ambiguous(database: Mapping[str, Mapping[str, Any]],
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, list[list[float]]]]:
    """Annotations labelled ``Ambiguous`` (THUMOS14's segments that the official kit ignores)
    taken out of ``database``: ``(database without them, {video: [[t1, t2], ...]})``."""
    kept: dict[str, dict[str, Any]] = {}
    ambiguous: dict[str, list[list[float]]] = {}
    for key, entry in database.items():
        anns = []
        for a in entry["annotations"]:
            if a["label"] == AMBIGUOUS:
                ambiguous.setdefault(key, []).append([float(x) for x in a["segment"]])
            else:
                anns.append(a)
        kept[key] = {**entry, "annotations": anns}
    return kept, ambiguous


def build_features_index(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Index of a ``format: features`` dataset; videos without features are listed as missing."""
    layout = cfg.get("layout", "per_video")
    if layout not in LAYOUTS:
        raise ValueError(f"{cfg['name']}: unknown features layout {layout!r}; known: {LAYOUTS}")
    features_dir = Path(cfg["features_dir"])
    if not features_dir.is_dir():
        raise FileNotFoundError(f"{features_dir}: features_dir does not exist")
    ann = Path(cfg["annotations"])
    database = read_wtalc_annotations(ann) if layout == "wtalc" else read_anet_database(ann)
    splits = {cfg["train_subset"]: "train", cfg["test_subset"]: "test"}
    present = {e["subset"] for e in database.values()}
    for subset in splits:
        if subset not in present:
            raise ValueError(f"{ann}: no video of subset {subset!r} (subsets: {sorted(present)})")
    database, ambiguous = split_ambiguous(database)
    classes = list(cfg.get("classes") or classes_of(database, list(splits)))
    check_labels(ann, database, classes, list(splits))
    builder = IndexBuilder(dataset=cfg["name"], classes=classes, fps=1.0 / cfg["snippet_seconds"])
    joint = find_joint(features_dir, cfg.get("features_file")) if layout == "wtalc" else None
    joint_rows = _joint_rows(joint) if joint is not None else None
    prefix = cfg.get("video_prefix", "v_")
    snippet_seconds = float(cfg["snippet_seconds"])
    tolerance = cfg.get("snippet_tolerance", DEFAULT_SNIPPET_TOLERANCE)
    check = {"snippet_seconds": snippet_seconds, "snippet_tolerance": tolerance,
             "videos_checked": 0, "max_difference_seconds": 0.0, "worst_video": None}
    for key in sorted(database):
        entry = database[key]
        split = splits.get(entry["subset"])
        if split is None:
            continue
        if layout == "wtalc":
            name, sources = key, [str(joint)]
        else:
            sources = feature_sources(cfg, key, entry["subset"], prefix=prefix)
            name = Path(sources[0]).stem if sources and layout == "per_video" else key
        if sources is None:
            builder.missing.append({"video": key, "subset": entry["subset"],
                                    "reason": f"no features for {key} in {features_dir} "
                                              f"(layout {layout})"})
            continue
        duration = entry["duration"]
        if layout == "wtalc":
            rows, source = joint_rows[entry["row"]], f"{joint} (row {entry['row']})"
        else:
            rows, source = _rows(Path(sources[0])), sources[0]
        if duration is None:  # BaSNet's gt.json has none: rows x snippet_seconds
            duration = rows * snippet_seconds
        elif tolerance is not None:
            diff = check_feature_duration(name, rows, duration, snippet_seconds=snippet_seconds,
                                          tolerance=tolerance, source=source, annotations=ann)
            check["videos_checked"] += 1
            if diff >= check["max_difference_seconds"]:
                check["max_difference_seconds"], check["worst_video"] = round(diff, 6), name
        record = {
            "path": None,
            "subset": entry["subset"],
            "split": split,
            "duration": duration,
            "labels": builder.labels_of(entry["annotations"]),
            "features": {"layout": layout, "files": sources, **(
                {"row": entry["row"]} if "row" in entry else {})},
        }
        builder.add(name, record, entry["annotations"], ambiguous.get(key))
    trimmed = cfg.get("trimmed")
    if trimmed:
        for name, record in index_trimmed_features(
                Path(trimmed["root"]), classes=classes, mapping=trimmed.get("classes"),
                class_index=trimmed.get("class_index"), snippet_seconds=snippet_seconds).items():
            builder.add(name, record, None)
    return builder.finish(f"{cfg['name']} (features, {layout} layout, {ann.name})",
                          snippet_seconds=cfg["snippet_seconds"], duration_check=check,
                          streams=cfg.get("streams"))


def index_trimmed_features(
    root: Path,
    *,
    classes: Sequence[str],
    snippet_seconds: float,
    mapping: Mapping[str, str] | None = None,
    class_index: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Index records of trimmed clips given as features (module docstring), split ``trimmed``.

    Args:
        root: the folder of UCF101 class folders of ``.npy`` feature files.
        classes: the dataset's classes; those in the mapping take their UCF101 folder's clips.
        snippet_seconds: time covered by one feature row (a clip's duration is rows × it).
        mapping: dataset class → UCF101 folder; None = :func:`wtal.ucf101.default_mapping`.
        class_index: optional ``classInd.txt`` to check the mapped classes against.

    Raises:
        FileNotFoundError: ``root`` or a mapped class folder does not exist.
        ValueError: a folder without ``.npy`` files, a file not named as a UCF101 clip, or a
            file that is not a (T, D) array (each naming the file).
    """
    from wtal.ucf101 import clips_by_class

    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: trimmed.root (the trimmed clips' features) does "
                                f"not exist")
    records: dict[str, dict[str, Any]] = {}
    for cls, (ucf, files) in clips_by_class(Path(root), classes=classes, mapping=mapping,
                                            class_index=class_index, extensions=(".npy",),
                                            kind="feature").items():
        for path in files:
            records[path.stem] = {
                "path": None,
                "subset": "ucf101",
                "split": "trimmed",
                "duration": _rows(path) * snippet_seconds,
                "labels": [cls],
                "ucf101_class": ucf,
                "features": {"layout": "per_video", "files": [str(path)]},
            }
    return records


def unpack_joint(joint_file: str | os.PathLike[str], annotations: str | os.PathLike[str],
                 out_dir: str | os.PathLike[str]) -> int:
    """Write every video of a W-TALC joint feature file as ``<out_dir>/<video>.npy``.

    The folder appears complete or not at all (written beside it, then renamed).
    Returns the number of videos.
    """
    joint = np.load(joint_file, allow_pickle=True, encoding="bytes")
    names = [_text(v) for v in np.load(Path(annotations) / "videoname.npy")]
    if len(joint) != len(names):
        raise ValueError(f"{joint_file}: {len(joint)} feature arrays but "
                         f"{Path(annotations) / 'videoname.npy'} lists {len(names)} videos")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; outputs follow the umask
    try:
        for name, feats in zip(names, joint, strict=True):
            np.save(tmp / f"{name}.npy", np.asarray(feats))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(names)


def _load_2d(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path}: not a numeric .npy array ({err})") from None
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{path}: expected a (T, D) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path}: dtype {x.dtype} is not numeric")
    return x


def import_features(
    video: str,
    record: Mapping[str, Any],
    out: str | os.PathLike[str],
    *,
    snippet_seconds: float,
    streams: Mapping[str, list[int]] | None = None,
    unpacked: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Import stage: one video's features in the project's format (``.npy`` + sidecar).

    Args:
        video: the video name.
        record: the video's index.json record (its ``features`` entry).
        out: the ``.npy`` to write; the sidecar goes beside it.
        snippet_seconds: time covered by one feature row.
        streams: optional column ranges per stream (``{"rgb": [0, 1024], ...}``).
        unpacked: the folder written by :func:`unpack_joint` (``wtalc`` layout).

    Raises:
        ValueError: a malformed array (naming the file): not (T, D), not numeric, NaN or
            infinite values (with the first bad row), RGB and flow of different lengths,
            stream ranges outside the columns.
    """
    source = record["features"]
    layout = source["layout"]
    if layout == "per_video":
        files = [Path(source["files"][0])]
        x = _load_2d(files[0])
    elif layout == "basnet":
        files = [Path(f) for f in source["files"]]
        rgb, flow = (_load_2d(f) for f in files)
        if rgb.shape[0] != flow.shape[0]:
            raise ValueError(f"{files[0]} has {rgb.shape[0]} rows but {files[1]} "
                             f"{flow.shape[0]}")
        x = np.concatenate((rgb, flow), axis=1)
        if streams is None:
            streams = {"rgb": [0, rgb.shape[1]], "flow": [rgb.shape[1], x.shape[1]]}
    elif layout == "wtalc":
        if unpacked is None:
            raise ValueError(f"{video}: the wtalc layout needs the unpacked joint folder")
        files = [Path(unpacked) / f"{video}.npy"]
        x = _load_2d(files[0])
    else:
        raise ValueError(f"{video}: unknown features layout {layout!r}")
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{files[0] if len(files) == 1 else files}: {int(bad.sum())} NaN or "
                         f"infinite values (first in row {row}) in the features of {video}")
    for stream, (lo, hi) in (streams or {}).items():
        if not 0 <= lo < hi <= x.shape[1]:
            where = files[0] if len(files) == 1 else ", ".join(str(f) for f in files)
            raise ValueError(f"{where}: stream {stream} columns [{lo}, {hi}) (setting "
                             f"'streams') are outside its {x.shape[1]} feature columns "
                             f"(features of video {video})")
    x = x.astype(np.float32)
    grid = snippet_grid(x.shape[0], snippet_seconds)
    sidecar = {
        "video": video,
        "extractor": "imported",
        "shape": list(x.shape),
        "streams": dict(streams) if streams else None,
        "grid": grid.to_dict(),
        "settings": {"layout": layout, "snippet_seconds": snippet_seconds,
                     "sources": [str(f) for f in files]},
        "flow": None,
    }
    out = Path(out)
    save_npy(out, x)
    write_json(out.with_suffix(".json"), sidecar)
    return sidecar


def import_split(
    index: Mapping[str, Any],
    split: str,
    out_dir: str | os.PathLike[str],
    *,
    snippet_seconds: float,
    streams: Mapping[str, list[int]] | None = None,
    unpacked: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Import stage for a whole split in one job: :func:`import_features` for every video of
    ``split`` (sorted names), into ``out_dir/<video>.npy`` + sidecar.

    The workflow imports the trimmed clips this way: UCF101 has 13,320 of them, and one
    Snakemake job each (about 77 a minute on 2 cores, thousands of SLURM jobs on a cluster)
    would cost more than the copying. The first bad clip stops the job, named.

    Returns:
        the feature files written, in the split's order.

    Raises:
        ValueError: the split has no videos, or a video's features are malformed.
    """
    names = videos_of_split(index, split)
    if not names:
        raise ValueError(f"the dataset index has no videos in split {split!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = out_dir / f"{name}.npy"
        import_features(name, index["videos"][name], path, snippet_seconds=snippet_seconds,
                        streams=streams, unpacked=unpacked)
        paths.append(path)
    logger.info("imported the %d videos of split %s into %s", len(paths), split, out_dir)
    return paths


def split_files(
    paths: Sequence[str | os.PathLike[str]], index: Mapping[str, Any], split: str
) -> list[Path]:
    """Feature files as a stage reads them: a folder written by :func:`import_split` stands
    for the ``<video>.npy`` of every video of ``split`` in it (the index's order); files
    are kept as they are.

    Raises:
        ValueError: a video of the split has no file in the folder (both named).
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            files.append(p)
            continue
        for name in videos_of_split(index, split):
            f = p / f"{name}.npy"
            if not f.is_file():
                raise ValueError(f"{p}: no features of {split} video {name!r} ({f.name}); the "
                                 f"folder is not the import of the index's {split} split")
            files.append(f)
    return files
