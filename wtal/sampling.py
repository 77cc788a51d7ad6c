"""The papers' snippet sampling strategies and fixed-length rescaling, for every model.

CPMN Sec. 3.2 and KT-MGFN Sec. III-C try three ways of shortening a feature sequence of
``T`` units before the classifier:

1. **uniform** — units at a regular interval ``sigma`` (``l'_u = l_u / sigma``), or ``K``
   evenly spaced units; deterministic, used at test time.
2. **sparse** (TSN) — the sequence is cut into ``K`` equal segments and one random unit is drawn
   from each, anew every epoch; a data augmentation, used for training by both papers.
3. **shot** — units drawn per shot. The papers use the shot boundary detector of Su et al.
   (ICONIP 2018), which is not public; ours is a simple, documented detector on feature
   differences: a boundary is placed before unit ``t + 1`` when the cosine distance between
   units ``t`` and ``t + 1`` exceeds ``mean + z * std`` of all such distances of the video
   (``z = 2`` by default) and the shot so far has at least ``min_shot`` units. ``K`` units are
   then spread over the shots in proportion to their length (every shot gets one while
   ``K`` allows), each at a random position in its shot.

ActivityNet models rescale every sequence to a fixed length by linear interpolation (KT-MGFN
Sec. IV-B: ``l_w = 256``; CPMN: 64; ECM: 100 snippets): :func:`rescale`. A CAS computed on a
rescaled or sampled sequence is brought back to the video's own snippets with :func:`rescale`
as well, so that the snippet grid stays the only time mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

STRATEGIES = ("all", "uniform", "sparse", "shot")


@dataclass(frozen=True)
class Sampling:
    """How training sequences are shortened (``all`` = no sampling, random crops only)."""

    strategy: str = "all"  # all | uniform | sparse | shot
    num_segments: int = 750  # K: units per sampled sequence (uniform, sparse, shot)
    shot_z: float = 2.0  # shot boundary: cosine distance above mean + z * std
    min_shot: int = 2  # shortest shot, units

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"sampling must be one of {STRATEGIES}, not {self.strategy!r}")
        if self.num_segments < 1 or self.min_shot < 1:
            raise ValueError("num_segments and min_shot must be >= 1")


def uniform_indices(n: int, *, length: int | None = None, interval: int = 1) -> np.ndarray:
    """Every ``interval``-th unit, or ``length`` evenly spaced units (segment centres)."""
    if n < 1:
        raise ValueError("cannot sample an empty sequence")
    if length is None:
        if interval < 1:
            raise ValueError(f"interval must be >= 1, got {interval}")
        return np.arange(0, n, interval)
    edges = np.linspace(0.0, n, length + 1)
    return np.minimum(((edges[:-1] + edges[1:]) / 2).astype(np.int64), n - 1)


def sparse_indices(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """One random unit from each of ``k`` equal segments of ``[0, n)`` (sorted, (k,)).

    With ``n < k`` segments are shorter than a unit and units repeat, as in TSN.
    """
    if n < 1:
        raise ValueError("cannot sample an empty sequence")
    edges = np.linspace(0.0, n, k + 1)
    picks = edges[:-1] + rng.random(k) * (edges[1:] - edges[:-1])
    return np.minimum(picks.astype(np.int64), n - 1)


def shot_boundaries(x: np.ndarray, *, z: float = 2.0, min_shot: int = 2) -> np.ndarray:
    """Start indices of the shots after the first, from feature differences of ``x`` (T, D)."""
    if len(x) < 2:
        return np.zeros(0, dtype=np.int64)
    a, b = x[:-1], x[1:]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)
    dist = 1.0 - cos  # (T-1,)
    threshold = dist.mean() + z * dist.std()
    starts, last = [], 0
    for t in np.flatnonzero(dist > threshold):
        if t + 1 - last >= min_shot and len(x) - (t + 1) >= 1:
            starts.append(t + 1)
            last = t + 1
    return np.asarray(starts, dtype=np.int64)


def shot_indices(n: int, boundaries: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` units spread over the shots in proportion to their length, random within each."""
    edges = np.concatenate([[0], np.asarray(boundaries, dtype=np.int64), [n]])
    lengths = np.diff(edges)
    if (lengths < 1).any():
        raise ValueError(f"shot boundaries {boundaries} do not split [0, {n})")
    share = lengths / lengths.sum() * k
    counts = np.floor(share).astype(np.int64)
    if k >= len(lengths):
        counts = np.maximum(counts, 1)
    while counts.sum() > k:  # take back from the largest
        counts[np.argmax(counts)] -= 1
    while counts.sum() < k:  # give to the largest remainders
        counts[np.argmax(share - counts)] += 1
    picks = [sparse_indices(int(length), int(c), rng) + start
             for start, length, c in zip(edges[:-1], lengths, counts, strict=True) if c > 0]
    return np.sort(np.concatenate(picks))


def sample(x: np.ndarray, sampling: Sampling, rng: np.random.Generator,
           boundaries: np.ndarray | None = None) -> np.ndarray:
    """A training sequence of ``x`` (T, D) by ``sampling`` (``all`` returns ``x``)."""
    k = sampling.num_segments
    if sampling.strategy == "all":
        return x
    if sampling.strategy == "uniform":
        return x[uniform_indices(len(x), length=k)]
    if sampling.strategy == "sparse":
        return x[sparse_indices(len(x), k, rng)]
    if boundaries is None:
        boundaries = shot_boundaries(x, z=sampling.shot_z, min_shot=sampling.min_shot)
    return x[shot_indices(len(x), boundaries, k, rng)]


def rescale(x: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of ``x`` (T, D) to (length, D), aligning unit centres.

    Position ``j`` of the result sits at ``(j + 0.5) * T / length - 0.5`` in units of ``x``
    (the convention of BMN-style feature rescaling), clamped to the ends.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    n = len(x)
    if n < 1:
        raise ValueError("cannot rescale an empty sequence")
    if n == length:
        return x.copy()
    pos = np.clip((np.arange(length) + 0.5) * n / length - 0.5, 0, n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return ((1 - w) * x[lo] + w * x[hi]).astype(x.dtype, copy=False)


def pad_batch(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (T_i, D) sequences to (B, T_max, D) with a (B, T_max) validity mask."""
    t_max = max(len(s) for s in seqs)
    x = np.zeros((len(seqs), t_max, seqs[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(seqs), t_max), dtype=bool)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
        mask[i, : len(s)] = True
    return torch.from_numpy(x), torch.from_numpy(mask)
