"""Atomic file writes and small JSON helpers shared by every stage.

A stage never leaves a file that looks finished after a failure: it writes to a temporary
file in the same folder and renames it into place only when the write is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

URL_SCHEMES = ("http://", "https://", "file://")  # weights sources that are downloaded


def temporaries_of(target: str | os.PathLike[str], suffix: str = "") -> list[Path]:
    """Temporary files that :func:`atomic_path` made for ``target`` and never renamed.

    A process killed while writing (SIGKILL, a lost node, a SLURM time limit) cannot remove
    its temporary file; the name says whose it is: ``.<name>.<8 random chars>.tmp<suffix>``.
    """
    target = Path(target)
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\.tmp{re.escape(suffix)}")
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))


def remove_stale_temporaries(target: str | os.PathLike[str], suffix: str = "") -> None:
    """Delete what killed writers of ``target`` left behind (one writer per target at a time)."""
    for stale in temporaries_of(target, suffix):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file is removed if the block raises. ``suffix`` lets libraries that insist on
    a file extension (``np.save`` adds ``.npy``) write to the temporary name unchanged.
    Temporary files of ``path`` left by a killed earlier writer are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target, suffix)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False)
        handle.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a parse error names the file."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save an array to ``.npy`` atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def check_sources(cfg: Mapping[str, Any], name: str) -> list[str]:
    """Check that what a dataset's features are made from exists; return no files.

    For the pipeline, which calls it when it builds the DAG (before any job starts), so that a
    wrong path is an error naming the setting, not a job that fails after hours of decode and
    flow: the video ``root`` of a non-synthetic dataset, or ``features_dir`` and
    ``annotations`` of a bring-your-own-features dataset, and local ``features.weights``
    files (URLs and ``none`` are not checked).

    Args:
        cfg: the dataset's validated settings.
        name: the dataset's name, for the message.

    Returns:
        ``[]`` (so that it can stand as a rule input).

    Raises:
        FileNotFoundError: a path does not exist; the message names the setting and the path.
    """
    paths: dict[str, Any] = {}
    if cfg.get("format") == "features":
        paths = {"features_dir": cfg.get("features_dir"), "annotations": cfg.get("annotations")}
    else:
        if cfg.get("synthetic") is None:  # a synthetic dataset's root is made by synth_demo
            paths["root"] = cfg.get("root")
        weights = (cfg.get("features") or {}).get("weights") or {}
        for stream in ("rgb", "flow"):
            source = weights.get(stream, "none")
            if source != "none" and not str(source).lower().startswith(URL_SCHEMES):
                paths[f"features.weights.{stream}"] = source
    for key, path in paths.items():
        if path is None or not Path(path).expanduser().exists():
            raise FileNotFoundError(
                f"dataset {name}: {key} {path} does not exist (relative paths are from the "
                f"working directory {Path.cwd()}); set it in pipeline/config/datasets/{name}.yaml "
                f"or with --config 'datasets={{{name}: {{...}}}}'"
            )
    return []
