"""Atomic file writes and small JSON helpers shared by every stage.

The layering: ``wtalio`` depends on neither of the project's packages; ``extractors`` (raw video
to features) uses it; ``wtal`` (features to metrics) uses both. No import goes the other way.

A stage never leaves a file that looks finished after a failure: it writes to a temporary
file in the same folder and renames it into place only when the write is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
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
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def current_umask() -> int:
    """The process's umask (read without changing it for longer than a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs follow the umask
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


def read_text(path: str | os.PathLike[str]) -> str:
    """A UTF-8 text file's contents, without a leading byte-order mark.

    Raises:
        ValueError: the file is not UTF-8, naming the file, the line and the byte.
    """
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start}); "
            f"save the file as UTF-8"
        ) from None


def _no_duplicate_keys(path: str | os.PathLike[str]) -> Any:
    """An ``object_pairs_hook`` refusing a key that appears twice in one JSON object (the
    ``json`` module would silently keep the last)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        fast = dict(pairs)
        if len(fast) == len(pairs):  # the common case, at C speed
            return fast
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                first = out[key]
                where = ""
                if isinstance(first, dict) and isinstance(value, dict) and (
                        "subset" in first or "subset" in value):
                    where = (f" (subsets {first.get('subset')!r} and {value.get('subset')!r}; "
                             f"the second would replace the first)")
                raise ValueError(f"{path}: key {key!r} appears twice in one object{where}")
            out[key] = value
        return out

    return hook


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a UTF-8 JSON file (a byte-order mark is skipped); errors name the file: invalid
    JSON, text that is not UTF-8, a key given twice in one object."""
    text = read_text(path)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def save_torch(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` atomically, byte-reproducibly: the archive's inner folder is named after
    ``path``'s stem (as a direct ``torch.save(obj, path)`` names it), not after a random
    temporary name."""
    import torch

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp = tmp_dir / target.name
        torch.save(obj, tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


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
