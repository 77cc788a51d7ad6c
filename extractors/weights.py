"""Find, verify and load pretrained checkpoints with strict key matching.

* :func:`resolve_weights` turns a local path or a URL into a local file, downloading URLs into
  a cache atomically and checking SHA-256 hashes;
* :func:`load_state_dict` reads a checkpoint safely (``weights_only=True``), unwraps a container
  key and strips a DataParallel ``module.`` prefix;
* :func:`load_strict` loads it into a model and fails loudly on any key or shape mismatch
  (only missing ``num_batches_tracked`` buffers are tolerated);
* :func:`build_weights_record` describes the weights for a feature sidecar.

Random weights (``RANDOM_WEIGHTS = "none"`` in the configuration) are handled by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from wtalio import atomic_path

__all__ = [
    "URL_SCHEMES",
    "WeightsError",
    "build_weights_record",
    "file_sha256",
    "load_state_dict",
    "load_strict",
    "resolve_weights",
]

logger = logging.getLogger(__name__)

URL_SCHEMES: tuple[str, ...] = ("http://", "https://", "file://")
_CHUNK = 1 << 20  # bytes read at a time when hashing or downloading
_DOWNLOAD_TIMEOUT_S = 60.0
_MAX_LISTED = 10  # keys named per category in a mismatch message
_DP_PREFIX = "module."
_NUM_BATCHES_TRACKED = "num_batches_tracked"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class WeightsError(ValueError):
    """A checkpoint is corrupt, has the wrong hash, or does not fit the model."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes.

    Args:
        path: the file.

    Returns:
        The hash as 64 lower-case hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _normalise_sha256(sha256: str | None) -> str | None:
    """Lower-case and validate an expected hash (a full 64-digit SHA-256, not a prefix)."""
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _SHA256_RE.fullmatch(value):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return value


def _is_url(source: str | os.PathLike[str]) -> bool:
    return isinstance(source, str) and source.lower().startswith(URL_SCHEMES)


def _hash_mismatch(path: Path, expected: str, actual: str) -> WeightsError:
    return WeightsError(f"{path}: sha256 mismatch: expected {expected}, got {actual}")


def resolve_weights(
    source: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Turn a checkpoint source into a verified local file.

    A local path must exist (it is never modified or deleted). A URL (``http://``, ``https://``
    or ``file://``) is downloaded with :mod:`urllib` to ``cache_dir / <basename of the URL>``
    through a temporary file that is renamed into place only once complete and verified; a
    cached file is reused when it is already there (and, if ``sha256`` is given, has that
    hash; a cached file with another hash is downloaded again). Without ``sha256`` the
    download is accepted and its hash is logged so that it can be pinned.

    Args:
        source: a local path or a URL.
        sha256: expected SHA-256 (64 hex digits, any case); ``None`` skips the check.
        cache_dir: download folder for URLs; default ``torch.hub.get_dir()/checkpoints``.

    Returns:
        Path of the local file.

    Raises:
        FileNotFoundError: a local path does not exist or is not a file.
        WeightsError: the file's SHA-256 differs from ``sha256`` (a bad download is deleted).
        ValueError: ``sha256`` is malformed, or the URL names no file.
    """
    expected = _normalise_sha256(sha256)
    if not _is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        if expected is not None:
            actual = file_sha256(path)
            if actual != expected:
                raise _hash_mismatch(path, expected, actual)
        return path

    url = str(source)
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name:
        raise ValueError(f"weights URL names no file: {url}")
    folder = cache_dir if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    target = folder / name

    if target.is_file():
        actual = file_sha256(target)
        if expected is None:
            logger.info("using cached %s (sha256 %s) for %s", target, actual, url)
            return target
        if actual == expected:
            logger.info("using cached %s for %s", target, url)
            return target
        logger.warning(
            "cached %s has sha256 %s, expected %s; downloading %s again",
            target, actual, expected, url,
        )

    logger.info("downloading %s to %s", url, target)
    with atomic_path(target) as tmp:
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response, open(
            tmp, "wb"
        ) as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            # Raising inside atomic_path deletes the temporary file; remove any stale
            # cached copy too, so that nothing with this name is left to be trusted.
            target.unlink(missing_ok=True)
            raise _hash_mismatch(target, expected, actual)
    if expected is None:
        logger.warning(
            "downloaded %s without a pinned hash: sha256 %s (pass sha256= to verify)",
            url, actual,
        )
    return target


def load_state_dict(path: Path, *, container_key: str | None = None) -> dict[str, Tensor]:
    """Read a checkpoint's tensors safely.

    Args:
        path: checkpoint file, read with ``torch.load(map_location="cpu", weights_only=True)``.
        container_key: top-level key holding the state dict (``"model_state"`` for
            pytorchvideo, ``"state_dict"`` for many training scripts); ``None`` when the file is
            the state dict itself.

    Returns:
        Key -> tensor, in file order, with a leading ``module.`` (DataParallel) removed from
        every key that has one.

    Raises:
        WeightsError: the file cannot be read safely, the container key is missing, the result
            is not a mapping of tensors, or stripping ``module.`` makes two keys collide.
    """
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise WeightsError(f"{path}: cannot load checkpoint with weights_only=True: {err}") from err

    if container_key is not None:
        if not isinstance(obj, Mapping) or container_key not in obj:
            found = sorted(map(str, obj.keys()))[:_MAX_LISTED] if isinstance(obj, Mapping) else []
            raise WeightsError(
                f"{path}: checkpoint has no top-level key {container_key!r} "
                f"(top-level: {type(obj).__name__} with keys {found})"
            )
        obj = obj[container_key]

    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: expected a state dict (mapping), got {type(obj).__name__}")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        hint = "" if container_key is not None else " (is it wrapped? pass container_key)"
        raise WeightsError(
            f"{path}: {len(not_tensors)} entries are not tensors{hint}: "
            f"{not_tensors[:_MAX_LISTED]}"
        )

    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        name = str(key)
        if name.startswith(_DP_PREFIX):
            name = name[len(_DP_PREFIX):]
        if name in state:
            raise WeightsError(f"{path}: key {name!r} appears both with and without 'module.'")
        state[name] = value
    return state


def load_strict(model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str) -> None:
    """Load ``state_dict`` into ``model``, requiring exact keys and shapes.

    The one tolerance: ``*.num_batches_tracked`` buffers missing from the checkpoint (older
    PyTorch did not save them) keep the model's current values. Any other missing key, any
    unexpected key and any shape mismatch is an error, and the model is then left unchanged.

    Args:
        model: the model to fill.
        state_dict: checkpoint tensors (see :func:`load_state_dict`).
        source: what the weights are (path or URL), named in error messages.

    Returns:
        None.

    Raises:
        WeightsError: naming ``source``, the number of missing / unexpected / mismatched keys
            and the first ten of each.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    tolerated = [k for k in missing if k.rsplit(".", 1)[-1] == _NUM_BATCHES_TRACKED]
    missing = [k for k in missing if k not in tolerated]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"{source}: checkpoint does not fit {type(model).__name__}: "
            f"{len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} shape-mismatched keys"
        ]
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        ):
            if keys:
                more = f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
                parts.append(f"{label}: {keys[:_MAX_LISTED]}{more}")
        raise WeightsError("; ".join(parts))

    full = dict(state_dict)
    for key in tolerated:
        full[key] = own[key]
    if tolerated:
        logger.info("%s: %d num_batches_tracked buffers absent; kept", source, len(tolerated))
    model.load_state_dict(full, strict=True)


def build_weights_record(
    source: str | os.PathLike[str], path: str | os.PathLike[str]
) -> dict[str, str]:
    """Describe the weights used, for a feature sidecar.

    Args:
        source: what the configuration named (path or URL).
        path: the local file actually loaded.

    Returns:
        ``{"source": str(source), "path": <absolute path>, "sha256": <hash of the file>}``.
    """
    local = Path(path)
    return {
        "source": str(source),
        "path": str(local.resolve()),
        "sha256": file_sha256(local),
    }
