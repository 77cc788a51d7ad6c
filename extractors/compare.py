"""Compare two feature sets video by video: are my features the released ones?

The usual reason a reproduction collapses is features extracted with other settings than the
released ones (another crop, frame rate, flow bound, input scaling). :func:`compare_features`
pairs the videos of two feature sets (two ``.npy`` files, or two folders of ``<video>.npy``) and
reports, per video and per stream:

* ``cosine_mean`` / ``cosine_min``: cosine similarity of corresponding snippets (rows), averaged
  and the worst; near 1 when the same network saw the same pixels;
* ``scale_ratio``: median over snippets of ``|b_t| / |a_t|`` (L2 norms); 1 when the scales agree
  (a factor of 2 or 255 points at input scaling);
* ``rel_error``: ``|b - a| / |a|`` over the compared rows (Frobenius norms).

Rows are compared in order; when the two files have different numbers of snippets only the first
``min(T_a, T_b)`` are compared and the difference is reported (an off-by-one count usually means
another snippet grid). Streams come from the sidecars' ``streams`` column ranges when both files
have the same ones, otherwise the whole row is one stream (``all``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["compare_arrays", "compare_features", "format_table", "pair_files"]

_EPS = 1e-12


def _streams(path: Path) -> dict[str, list[int]] | None:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        streams = json.loads(sidecar.read_text()).get("streams")
    except (json.JSONDecodeError, OSError, AttributeError):
        return None
    return streams if isinstance(streams, dict) else None


def compare_arrays(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Similarity of two (T, D) feature arrays, row by row over the first ``min(T_a, T_b)``.

    Returns:
        ``{"snippets_a", "snippets_b", "compared", "cosine_mean", "cosine_min", "scale_ratio",
        "rel_error"}``.

    Raises:
        ValueError: the arrays are not 2-D or their widths differ.
    """
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"features must be (T, D) arrays, got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} vs {b.shape[1]}")
    n = min(len(a), len(b))
    x = a[:n].astype(np.float64)  # (n, D)
    y = b[:n].astype(np.float64)  # (n, D)
    na, nb = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)  # (n,)
    cos = (x * y).sum(axis=1) / np.maximum(na * nb, _EPS)  # (n,)
    both = (na > _EPS) & (nb > _EPS)
    ratio = float(np.median(nb[both] / na[both])) if both.any() else float("nan")
    rel = float(np.linalg.norm(y - x) / max(np.linalg.norm(x), _EPS)) if n else float("nan")
    return {
        "snippets_a": len(a),
        "snippets_b": len(b),
        "compared": n,
        "cosine_mean": float(cos.mean()) if n else float("nan"),
        "cosine_min": float(cos.min()) if n else float("nan"),
        "scale_ratio": ratio,
        "rel_error": rel,
    }


def pair_files(
    a: str | os.PathLike[str], b: str | os.PathLike[str]
) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """Pair the feature files of ``a`` and ``b`` (two files, or two folders matched by name).

    Returns:
        ``(pairs, only_a, only_b)``: ``(video, file_a, file_b)`` in name order, and the videos
        found on one side only.

    Raises:
        FileNotFoundError: ``a`` or ``b`` does not exist.
        ValueError: one is a file and the other a folder.
    """
    pa, pb = Path(a), Path(b)
    for p in (pa, pb):
        if not p.exists():
            raise FileNotFoundError(f"no such feature file or folder: {p}")
    if pa.is_file() and pb.is_file():
        return [(pa.stem, pa, pb)], [], []
    if pa.is_dir() and pb.is_dir():
        fa = {p.stem: p for p in pa.glob("*.npy")}
        fb = {p.stem: p for p in pb.glob("*.npy")}
        common = sorted(fa.keys() & fb.keys())
        return ([(v, fa[v], fb[v]) for v in common], sorted(fa.keys() - fb.keys()),
                sorted(fb.keys() - fa.keys()))
    raise ValueError(f"compare two files or two folders, not {pa} and {pb}")


def compare_features(
    a: str | os.PathLike[str], b: str | os.PathLike[str]
) -> dict[str, Any]:
    """Per-video (and per-stream) cosine similarity and scale of feature set ``b`` against ``a``.

    Args:
        a: the reference features: a ``.npy`` (T, D) file or a folder of ``<video>.npy``.
        b: the features to check, the same kind of path as ``a``.

    Returns:
        ``{"videos": {video: {stream: comparison}}, "errors": {video: message},
        "only_a": [...], "only_b": [...], "summary": {stream: {"videos", "cosine_mean",
        "cosine_min", "scale_ratio"}}}``; a comparison is :func:`compare_arrays`' dict plus
        ``columns``. The summary averages ``cosine_mean`` and takes the median ``scale_ratio``
        over videos, and the worst ``cosine_min``.
    """
    pairs, only_a, only_b = pair_files(a, b)
    videos: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for video, fa, fb in pairs:
        xa, xb = np.load(fa), np.load(fb)
        if xa.ndim != 2 or xb.ndim != 2 or xa.shape[1] != xb.shape[1]:
            errors[video] = f"shapes {xa.shape} and {xb.shape} cannot be compared"
            continue
        sa, sb = _streams(fa), _streams(fb)
        streams = sa if sa is not None and sa == sb else {"all": [0, xa.shape[1]]}
        if "all" not in streams and len(streams) > 1:
            streams = {"all": [0, xa.shape[1]], **streams}
        videos[video] = {
            name: {**compare_arrays(xa[:, lo:hi], xb[:, lo:hi]), "columns": [lo, hi]}
            for name, (lo, hi) in streams.items()
        }
    summary: dict[str, dict[str, Any]] = {}
    names = sorted({s for per in videos.values() for s in per})
    for name in names:
        rows = [per[name] for per in videos.values() if name in per]
        summary[name] = {
            "videos": len(rows),
            "cosine_mean": float(np.mean([r["cosine_mean"] for r in rows])),
            "cosine_min": float(np.min([r["cosine_min"] for r in rows])),
            "scale_ratio": float(np.median([r["scale_ratio"] for r in rows])),
        }
    return {"videos": videos, "errors": errors, "only_a": only_a, "only_b": only_b,
            "summary": summary}


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table, one line per video and stream, then the summary."""
    lines = [f"{'video':<28} {'stream':<6} {'T_a':>6} {'T_b':>6} {'cos mean':>9} {'cos min':>9} "
             f"{'scale':>8} {'rel err':>8}"]
    for video, per in result["videos"].items():
        for name, r in per.items():
            lines.append(
                f"{video:<28} {name:<6} {r['snippets_a']:>6} {r['snippets_b']:>6} "
                f"{r['cosine_mean']:>9.4f} {r['cosine_min']:>9.4f} {r['scale_ratio']:>8.4f} "
                f"{r['rel_error']:>8.4f}"
            )
    for video, message in result["errors"].items():
        lines.append(f"{video:<28} error: {message}")
    for name, s in result["summary"].items():
        lines.append(
            f"{'ALL (' + str(s['videos']) + ' videos)':<28} {name:<6} {'':>6} {'':>6} "
            f"{s['cosine_mean']:>9.4f} {s['cosine_min']:>9.4f} {s['scale_ratio']:>8.4f}"
        )
    for side in ("only_a", "only_b"):
        if result[side]:
            shown = ", ".join(result[side][:5]) + (" ..." if len(result[side]) > 5 else "")
            lines.append(f"{len(result[side])} videos {side.replace('_', ' in ')}: {shown}")
    return "\n".join(lines)
