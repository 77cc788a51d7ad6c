"""A feature-level benchmark with THUMOS14's structure, to tell the localizers apart.

The demo's six test videos cannot separate the models (one detection moves its mAP by six
points). This benchmark has THUMOS14's size and annotation structure and planted two-stream
features whose premise is the one every seed paper states: each action has a short, strongly
discriminative part inside a longer, weakly discriminative whole, and the background carries the
class's context (the scene) but no action. It is a benchmark, not a test: this script writes the
data, the workflow runs on it through the bring-your-own-features path, and the table of results
goes into the README.

Structure, measured on the official THUMOS14 temporal annotations (TH14evalkit ``groundtruth``,
``<Class>_{val,test}.txt`` and ``Ambiguous_{val,test}.txt``; validation = training):

* 200 validation and 213 test videos (we make 200 and 212: the kit's test folder has one video
  with only Ambiguous segments, which the papers exclude with two others);
* 15.0 (val) / 15.8 (test) instances per video on average, median 8 / 9, maximum 128 / 218:
  a heavy tail, drawn here from a geometric law of mean 15;
* instance length median 2.9 / 3.2 s, mean 4.0 / 4.5 s, 10th percentile 0.9 / 1.1 s, 90th
  8.0 / 9.1 s; each class has its own median (1.1 s CricketShot … 9.7 s CleanAndJerk, table
  :data:`CLASS_MEDIAN_SECONDS`, the mean of val and test) and a log-normal spread around it;
* gap between consecutive instances of a video: median 2.4 / 2.6 s, a heavy tail;
* classes per video: 87 % / 84 % one class, the rest two, almost always CliffDiving with Diving
  (every CliffDiving instance is also annotated as Diving) or CricketBowling with CricketShot;
* Ambiguous segments: 89 / 99 in 35 / 37 videos, median 3.6 / 2.9 s;
* video durations (W-TALC's ``duration.npy``, see the project's formats notes): 8.9 s to 27.9
  minutes, median 2.6 minutes, about 137,000 snippets of 0.64 s in all: log-normal here.

Features (``--dim`` columns per stream, RGB first, rows 0.64 s apart as I3D's 16 frames at
25 fps). Each class ``c`` has unit vectors, per stream: a *core* direction (strongly
discriminative), a *whole* direction (weakly discriminative) and a *context* direction (its
scene, shared within a scene group: athletics, cricket, diving). Every snippet is AR(1)-smoothed
Gaussian noise plus, each weighted by the fraction of the snippet that the part covers:

* the video's scene context (RGB) on every snippet of a scene shot, the action's included;
  30 % of the background is cut-aways without it;
* inside an action, the whole direction at a weak amplitude, a class-agnostic motion direction
  (flow), and in one contiguous part of about 30 % of the instance (at least one snippet) the
  core direction at a strong amplitude;
* in the background, camera-motion bursts: the motion direction without any class;
* inside an Ambiguous segment, the whole direction and motion, no core.

A plain multiple-instance classifier therefore finds the cores (short detections, good at low
tIoU, poor at high), is tempted by the scene context across the background, and by motion bursts
when it scores actionness; the seed papers' mechanisms (erasing, boundary regression, pseudo
labels, background modelling) are what should recover whole instances.

Usage::

    python benchmarks/thumos_like.py make OUT                # data + OUT/config.yaml
    python benchmarks/thumos_like.py make OUT --trimmed-groups 25  # + UCF101-like clips (KT)
    python benchmarks/thumos_like.py run OUT --seeds 0 1 2   # the workflow for every model
    python benchmarks/thumos_like.py choose OUT assg         # ASSG's level, training videos only
    python benchmarks/thumos_like.py choose OUT tsrnet       # TSRNet's β, training videos only
    python benchmarks/thumos_like.py table OUT               # OUT/results.md (mean ± sd)
    python benchmarks/thumos_like.py where OUT A=RUN_A B=RUN_B  # CAS and detections by part
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wtal.datasets import THUMOS14_UCF101_IDS

REPO = Path(__file__).resolve().parents[1]
DATASET = "thumos_like"
SNIPPET_SECONDS = 0.64
MODELS = ("cas_baseline", "kt_mgfn", "assg", "cpmn", "ecm", "tsrnet")

#: Median instance length per class, seconds: mean of the validation and test medians of the
#: official annotations (measured, see the module docstring).
CLASS_MEDIAN_SECONDS: dict[str, float] = {
    "BaseballPitch": 3.0, "BasketballDunk": 1.55, "Billiards": 2.45, "CleanAndJerk": 8.95,
    "CliffDiving": 2.7, "CricketBowling": 1.25, "CricketShot": 1.15, "Diving": 2.5,
    "FrisbeeCatch": 2.25, "GolfSwing": 4.25, "HammerThrow": 7.1, "HighJump": 4.85,
    "JavelinThrow": 6.3, "LongJump": 7.0, "PoleVault": 6.55, "Shotput": 4.8,
    "SoccerPenalty": 2.8, "TennisSwing": 1.55, "ThrowDiscus": 4.05, "VolleyballSpiking": 1.8,
}
#: THUMOS14's 20 classes in their usual order.
CLASSES: tuple[str, ...] = tuple(THUMOS14_UCF101_IDS)
assert set(CLASS_MEDIAN_SECONDS) == set(CLASSES)
#: Scene groups: classes filmed in the same kind of place share most of their context.
SCENES: dict[str, tuple[str, ...]] = {
    "athletics": ("HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault", "Shotput",
                  "ThrowDiscus"),
    "cricket": ("CricketBowling", "CricketShot"),
    "diving": ("CliffDiving", "Diving"),
}


@dataclass(frozen=True)
class Spec:
    """What the benchmark looks like. Defaults: THUMOS14's structure (module docstring)."""

    n_train: int = 200
    n_test: int = 212
    dim: int = 32                      # feature columns per stream (I3D has 1024)
    duration_median_s: float = 156.0   # 2.6 minutes
    duration_sigma: float = 0.8        # log-normal spread of durations
    duration_range_s: tuple[float, float] = (8.9, 1674.0)
    instances_mean: float = 17.0       # geometric law before the coverage cap: about 15 kept
    length_sigma: float = 0.6          # log-normal spread of instance lengths around the class's
    min_length_s: float = 0.4
    max_coverage: float = 0.6          # instances cover at most this fraction of a video
    gap_sigma: float = 1.5             # log-normal spread of the gaps (scaled to fill the video)
    two_class_other: float = 0.03      # a second class outside the co-occurring pairs
    cricket_pair: float = 0.7          # a cricket video has both cricket classes
    ambiguous_rate: float = 0.45       # Ambiguous segments per video (Poisson)
    ambiguous_median_s: float = 3.2
    noise: float = 1.0                 # norm of a snippet's noise per stream
    noise_ar: float = 0.6              # AR(1) coefficient of the noise over snippets
    context: tuple[float, float] = (0.6, 1.2)  # amplitude of the scene context (RGB), per video
    cutaway: float = 0.3               # fraction of background without the scene
    whole: float = 0.5                 # amplitude of the weakly discriminative whole
    core: float = 1.6                  # amplitude of the strongly discriminative core
    core_fraction: float = 0.3         # the core's share of an instance
    motion: float = 0.8                # amplitude of the class-agnostic motion (flow)
    camera_motion: float = 0.08        # fraction of background snippets with motion bursts
    # UCF101-like trimmed clips of the 20 classes, for knowledge transfer (KT-MGFN, TSRNet):
    # UCF101 has 25 groups per class of 4-7 clips each, 7.21 s long on average (1.06 s to
    # 71.04 s; Soomro et al. 2012). 0 groups: no clips (the benchmark's first results).
    trimmed_groups: int = 0
    trimmed_clips_per_group: tuple[int, int] = (4, 7)
    trimmed_median_s: float = 6.0      # log-normal, σ 0.6: mean ≈ 7.2 s
    trimmed_sigma: float = 0.6
    trimmed_range_s: tuple[float, float] = (1.06, 71.04)
    trimmed_domain: float = 0.5        # amplitude of the clips' shared offset (another dataset)
    seed: int = 0


@dataclass
class Video:
    name: str
    subset: str
    duration: float
    scene: str                                      # the class whose context the video shows
    annotations: list[dict[str, Any]] = field(default_factory=list)
    ambiguous: list[list[float]] = field(default_factory=list)


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def _mix(a: np.ndarray, b: np.ndarray, wa: float) -> np.ndarray:
    v = wa * a + (1.0 - wa) * b
    return v / np.linalg.norm(v)


def directions(spec: Spec, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Per class, ``core`` / ``whole`` (2·dim: RGB then flow) and ``context`` (dim, RGB); plus
    ``motion`` (dim, flow) under the key ``"_motion"``. CliffDiving shares most of Diving's
    directions (its instances are Diving too); scene groups share most of their context."""
    d = spec.dim
    scene_of = {c: g for g, members in SCENES.items() for c in members}
    scene_dir = {g: _unit(rng, d) for g in SCENES}
    out: dict[str, dict[str, np.ndarray]] = {}
    for c in CLASSES:
        own_ctx = _unit(rng, d)
        ctx = _mix(scene_dir[scene_of[c]], own_ctx, 0.7) if c in scene_of else own_ctx
        out[c] = {"core": np.concatenate([_unit(rng, d), _unit(rng, d)]),
                  "whole": np.concatenate([_unit(rng, d), _unit(rng, d)]),
                  "context": ctx}
    for part in ("core", "whole"):
        mixed = [_mix(out["Diving"][part][s], out["CliffDiving"][part][s], 0.6)
                 for s in (slice(0, d), slice(d, 2 * d))]
        out["CliffDiving"][part] = np.concatenate(mixed)
    out["_motion"] = {"flow": _unit(rng, d)}
    return out


def _lengths(rng: np.random.Generator, spec: Spec, label: str, n: int) -> np.ndarray:
    med = CLASS_MEDIAN_SECONDS[label]
    return np.maximum(spec.min_length_s, med * np.exp(spec.length_sigma * rng.normal(size=n)))


def _place(rng: np.random.Generator, spec: Spec, lengths: np.ndarray,
           duration: float) -> np.ndarray:
    """Start times: the instances in order, separated by log-normal gaps scaled so that all fit
    into ``duration`` (first and last gap included)."""
    free = duration - float(lengths.sum())
    gaps = np.exp(spec.gap_sigma * rng.normal(size=len(lengths) + 1))
    gaps *= free / gaps.sum()
    return np.cumsum(gaps[:-1] + np.concatenate([[0.0], lengths[:-1]]))


def layout_video(rng: np.random.Generator, spec: Spec, name: str, subset: str) -> Video:
    """One video's duration, classes, instances and Ambiguous segments."""
    lo, hi = spec.duration_range_s
    duration = float(np.clip(spec.duration_median_s * math.exp(spec.duration_sigma
                                                               * rng.normal()), lo, hi))
    duration = round(duration, 2)
    primary = CLASSES[int(rng.integers(len(CLASSES)))]
    second = None
    if primary in SCENES["cricket"] and rng.random() < spec.cricket_pair:
        second = next(c for c in SCENES["cricket"] if c != primary)
    elif primary != "CliffDiving" and rng.random() < spec.two_class_other:
        second = CLASSES[int(rng.integers(len(CLASSES)))]
        second = None if second in (primary, "CliffDiving") else second
    n = int(rng.geometric(1.0 / spec.instances_mean))
    labels = [primary if second is None or rng.random() < 0.5 else second for _ in range(n)]
    lengths = np.concatenate([_lengths(rng, spec, lab, 1) for lab in labels])
    while lengths.sum() > spec.max_coverage * duration and len(lengths) > 1:
        lengths, labels = lengths[:-1], labels[:-1]
    if lengths.sum() > spec.max_coverage * duration:
        lengths = lengths * (spec.max_coverage * duration / lengths.sum())
    starts = _place(rng, spec, lengths, duration)
    video = Video(name=name, subset=subset, duration=duration, scene=primary)
    for label, s, ln in zip(labels, starts, lengths, strict=True):
        seg = [round(float(s), 1), round(float(s + ln), 1)]
        if seg[1] <= seg[0]:
            seg[1] = round(seg[0] + 0.1, 1)
        video.annotations.append({"label": label, "segment": seg})
        if label == "CliffDiving":  # THUMOS14: every CliffDiving instance is Diving too
            video.annotations.append({"label": "Diving", "segment": list(seg)})
    for _ in range(int(rng.poisson(spec.ambiguous_rate))):
        ln = spec.ambiguous_median_s * math.exp(0.6 * rng.normal())
        s = float(rng.uniform(0.0, max(0.0, duration - ln)))
        video.ambiguous.append([round(s, 1), round(min(duration, s + ln), 1)])
    return video


def _coverage(n_rows: int, start: float, end: float) -> np.ndarray:
    """Fraction of each snippet ``[i, i+1)·0.64 s`` inside ``[start, end)``, shape (T,)."""
    left = np.arange(n_rows) * SNIPPET_SECONDS
    overlap = np.minimum(left + SNIPPET_SECONDS, end) - np.maximum(left, start)
    return np.clip(overlap / SNIPPET_SECONDS, 0.0, 1.0)


def _scene_shots(rows: int, spec: Spec, rng: np.random.Generator) -> np.ndarray:
    """1 on the snippets of scene shots, 0 on cut-aways (shots of 8-39 snippets), (T,)."""
    shot = np.ones(rows)
    t = 0
    while t < rows:
        length = int(rng.integers(8, 40))
        if rng.random() < spec.cutaway:
            shot[t:t + length] = 0.0
        t += length
    return shot


def _rendered(video: Video) -> list[dict[str, Any]]:
    """The annotations that are planted, in order: a Diving instance that repeats a
    CliffDiving one is carried by the CliffDiving rendering."""
    return [ann for ann in video.annotations
            if not (ann["label"] == "Diving" and any(
                a["label"] == "CliffDiving" and a["segment"] == ann["segment"]
                for a in video.annotations))]


def render(video: Video, spec: Spec, dirs: dict[str, dict[str, np.ndarray]],
           rng: np.random.Generator) -> np.ndarray:
    """The video's features, float32 (T, 2·dim), T = round(duration / 0.64)."""
    d = spec.dim
    rows = max(1, round(video.duration / SNIPPET_SECONDS))
    eps = rng.normal(scale=spec.noise / math.sqrt(d), size=(rows, 2 * d))  # (T, 2d)
    noise = np.empty_like(eps)
    noise[0] = eps[0]
    for t in range(1, rows):  # AR(1), stationary variance kept
        noise[t] = spec.noise_ar * noise[t - 1] + math.sqrt(1 - spec.noise_ar ** 2) * eps[t]
    x = noise
    inside = np.zeros(rows)
    for ann in video.annotations:
        inside = np.maximum(inside, _coverage(rows, *ann["segment"]))
    # scene context on the RGB half, absent from cut-away shots of the background
    shot = np.maximum(_scene_shots(rows, spec, rng), inside)
    amp = rng.uniform(*spec.context)
    x[:, :d] += amp * shot[:, None] * dirs[video.scene]["context"][None, :]
    motion = dirs["_motion"]["flow"]
    for ann in _rendered(video):
        s, e = ann["segment"]
        cover = _coverage(rows, s, e)[:, None]
        x += spec.whole * cover * dirs[ann["label"]]["whole"][None, :]
        x[:, d:] += spec.motion * cover * motion[None, :]
        core_len = max(SNIPPET_SECONDS, spec.core_fraction * (e - s))
        core_len = min(core_len, e - s)
        cs = s + rng.uniform(0.0, (e - s) - core_len)
        core = _coverage(rows, cs, cs + core_len)[:, None]
        x += spec.core * core * dirs[ann["label"]]["core"][None, :]
    for s, e in video.ambiguous:
        cover = _coverage(rows, s, e)[:, None]
        x += spec.whole * cover * dirs[video.scene]["whole"][None, :]
        x[:, d:] += spec.motion * cover * motion[None, :]
    burst = (rng.random(rows) < spec.camera_motion) & (inside == 0)
    x[:, d:] += spec.motion * burst[:, None] * motion[None, :]
    return x.astype(np.float32)


#: Region codes of :func:`regions`, per snippet.
CUTAWAY, SCENE, WHOLE, CORE, AMBIGUOUS = 0, 1, 2, 3, 4
REGION_NAMES = {CORE: "core", WHOLE: "whole", SCENE: "scene background",
                CUTAWAY: "cut-away background"}


def _replay_regions(video: Video, spec: Spec,
                    rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """What :func:`render` will plant in each snippet of ``video`` (codes above), drawn from a
    copy of ``rng`` with the same draws in the same order (``rng`` itself is not advanced),
    and the copy's state after them (render's must be the same)."""
    r = np.random.Generator(type(rng.bit_generator)())
    r.bit_generator.state = rng.bit_generator.state
    d = spec.dim
    rows = max(1, round(video.duration / SNIPPET_SECONDS))
    r.normal(size=(rows, 2 * d))
    shot = _scene_shots(rows, spec, r)
    r.uniform(*spec.context)
    code = np.where(shot > 0, SCENE, CUTAWAY).astype(np.int8)
    for s, e in video.ambiguous:
        code[_coverage(rows, s, e) >= 0.5] = AMBIGUOUS
    for ann in _rendered(video):
        s, e = ann["segment"]
        code[_coverage(rows, s, e) >= 0.5] = WHOLE
        core_len = min(max(SNIPPET_SECONDS, spec.core_fraction * (e - s)), e - s)
        cs = s + r.uniform(0.0, (e - s) - core_len)
        code[_coverage(rows, cs, cs + core_len) >= 0.5] = CORE
    r.random(rows)
    return code, r.bit_generator.state


def regions(spec: Spec) -> dict[str, np.ndarray]:
    """Per video of the benchmark made with ``spec``, the part planted in each snippet
    (:data:`CUTAWAY`, :data:`SCENE` background, :data:`WHOLE` or :data:`CORE` of an action,
    :data:`AMBIGUOUS`; a snippet counts as a part when the part covers half of it), replayed
    from the data seed as :func:`make` draws it (checked draw for draw). For diagnoses: where a
    model's CAS is high and where its detections lie."""
    rng = np.random.default_rng(spec.seed)
    dirs = directions(spec, rng)
    out = {}
    for subset, n in (("validation", spec.n_train), ("test", spec.n_test)):
        for i in range(n):
            name = f"video_{subset}_{i + 1:07d}"
            video = layout_video(rng, spec, name, subset)
            out[name], after = _replay_regions(video, spec, rng)
            render(video, spec, dirs, rng)
            if after != rng.bit_generator.state:
                raise RuntimeError(f"{name}: the replay of render's draws went out of step")
    return out


def where(out: Path, runs: dict[str, Path], *, top: int = 15) -> str:
    """Where each run's CAS is high and where its detections lie, on the test videos, by the
    planted parts (:func:`regions`): a diagnosis of a trained model, not a setting.

    ``runs``: label → folder with ``detections.json`` and ``cas/<video>.npy`` (the infer
    stage's outputs). Per run: the mean CAS of each video's labelled classes in each part
    (averaged over videos), and of each test video's ``top`` best detections the median
    length and the share of their snippets in action, scene background and cut-away
    background."""
    spec = Spec(**json.loads((out / "spec.json").read_text()))
    parts = regions(spec)
    gt = json.loads((out / "annotations.json").read_text())["database"]
    lines = [f"| run | CAS: core | whole | scene bg | cut-away bg | top-{top}: median s "
             "| in action | in scene bg | in cut-away bg |", "|---" * 9 + "|"]
    for label, folder in runs.items():
        submission = json.loads((folder / "detections.json").read_text())
        det = submission["results"]
        names = sorted(n for n in det if gt[n]["subset"] == "test")
        order = list(next(iter(submission["video_scores"].values())))  # the CAS's columns
        cas_means = {k: [] for k in REGION_NAMES}
        lengths, shares = [], np.zeros(3)
        for name in names:
            code = parts[name]
            cas = np.load(folder / "cas" / f"{name}.npy")  # (T, C)
            labels = sorted({a["label"] for a in gt[name]["annotations"]} - {"Ambiguous"})
            cols = [order.index(c) for c in labels]
            score = cas[: len(code), cols].max(axis=1)
            for k in REGION_NAMES:
                if (code[: len(score)] == k).any():
                    cas_means[k].append(float(score[code[: len(score)] == k].mean()))
            best = sorted(det[name], key=lambda d: -d["score"])[:top]
            for d in best:
                s, e = d["segment"]
                lengths.append(e - s)
                idx = np.arange(int(s / SNIPPET_SECONDS), max(int(s / SNIPPET_SECONDS) + 1,
                                                            math.ceil(e / SNIPPET_SECONDS)))
                c = code[idx[idx < len(code)]]
                shares += [np.isin(c, (WHOLE, CORE)).sum(), (c == SCENE).sum(),
                           (c == CUTAWAY).sum()]
        shares = 100 * shares / max(shares.sum(), 1)
        cells = [f"{np.mean(cas_means[k]):.3f}" for k in (CORE, WHOLE, SCENE, CUTAWAY)]
        cells += [f"{np.median(lengths):.1f}"] + [f"{v:.0f} %" for v in shares]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def make_trimmed(out: Path, spec: Spec, dirs: dict[str, dict[str, np.ndarray]]) -> int:
    """UCF101-like trimmed clips, ``out/trimmed/<Class>/v_<Class>_gGG_cCC.npy`` (the UCF101
    folder layout of :mod:`wtal.byof`'s ``trimmed.root``; THUMOS14's classes are UCF101's):
    ``spec.trimmed_groups`` groups of 4-7 clips per class. A clip is all action, rendered as an
    instance of the untrimmed videos is (its class's scene context, the whole direction and
    motion throughout, the core in one contiguous 30 %), plus an offset shared by all clips
    (amplitude ``trimmed_domain``, per stream): they come from another dataset. Drawn from
    their own random stream, so the untrimmed videos do not depend on them. Returns the count."""
    rng = np.random.default_rng([spec.seed, 101])
    domain = np.concatenate([_unit(rng, spec.dim), _unit(rng, spec.dim)]) * spec.trimmed_domain
    lo, hi = spec.trimmed_range_s
    n = 0
    for cls in CLASSES:
        folder = out / "trimmed" / cls
        folder.mkdir(parents=True, exist_ok=True)
        for g in range(1, spec.trimmed_groups + 1):
            for c in range(1, int(rng.integers(spec.trimmed_clips_per_group[0],
                                               spec.trimmed_clips_per_group[1] + 1)) + 1):
                duration = float(np.clip(spec.trimmed_median_s * math.exp(
                    spec.trimmed_sigma * rng.normal()), lo, hi))
                duration = round(duration, 2)
                clip = Video(name=f"v_{cls}_g{g:02d}_c{c:02d}", subset="ucf101",
                             duration=duration, scene=cls,
                             annotations=[{"label": cls, "segment": [0.0, duration]}])
                x = render(clip, spec, dirs, rng) + domain[None, :].astype(np.float32)
                np.save(folder / f"{clip.name}.npy", x)
                n += 1
    return n


def make(out: str | os.PathLike[str], spec: Spec) -> dict[str, Any]:
    """Write ``out/features/<video>.npy``, ``out/annotations.json`` (ActivityNet schema, subsets
    ``validation`` and ``test``, Ambiguous segments as label ``Ambiguous``), ``out/spec.json``
    and ``out/config.yaml``; returns the structure's statistics (also in ``out/stats.json``)."""
    out = Path(out)
    feats = out / "features"
    feats.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    dirs = directions(spec, rng)
    database: dict[str, Any] = {}
    videos = []
    for subset, n in (("validation", spec.n_train), ("test", spec.n_test)):
        for i in range(n):
            name = f"video_{subset}_{i + 1:07d}"
            video = layout_video(rng, spec, name, subset)
            np.save(feats / f"{name}.npy", render(video, spec, dirs, rng))
            anns = video.annotations + [{"label": "Ambiguous", "segment": s}
                                        for s in video.ambiguous]
            database[name] = {"subset": subset, "duration": video.duration, "annotations": anns}
            videos.append(video)
    (out / "annotations.json").write_text(json.dumps({"version": "thumos_like-1",
                                                      "database": database}))
    (out / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
    stats = structure_stats(videos)
    if spec.trimmed_groups:
        stats["trimmed_clips"] = make_trimmed(out, spec, dirs)
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    write_config(out, spec)
    return stats


def structure_stats(videos: Sequence[Video]) -> dict[str, Any]:
    """The measured quantities of the module docstring, per subset, for comparison."""
    stats: dict[str, Any] = {}
    for subset in ("validation", "test"):
        vs = [v for v in videos if v.subset == subset]
        n = [len(v.annotations) for v in vs]
        lengths = [a["segment"][1] - a["segment"][0] for v in vs for a in v.annotations]
        gaps = []
        for v in vs:
            seg = sorted(a["segment"] for a in v.annotations)
            gaps += [b[0] - a[1] for a, b in itertools.pairwise(seg)]
        q = np.percentile(lengths, [10, 50, 90])
        stats[subset] = {
            "videos": len(vs),
            "instances": sum(n),
            "instances_per_video_mean": round(statistics.mean(n), 2),
            "instances_per_video_median": statistics.median(n),
            "instances_per_video_max": max(n),
            "length_s_p10_median_p90": [round(float(x), 2) for x in q],
            "length_s_mean": round(statistics.mean(lengths), 2),
            "gap_s_median": round(statistics.median(gaps), 2),
            "two_class_videos": sum(len({a["label"] for a in v.annotations}) > 1 for v in vs),
            "ambiguous_segments": sum(len(v.ambiguous) for v in vs),
            "duration_s_median": round(statistics.median(v.duration for v in vs), 1),
            "snippets": sum(round(v.duration / SNIPPET_SECONDS) for v in vs),
        }
    return stats


#: Layer widths of each model on the benchmark: the THUMOS14 widths divided by
#: :data:`WIDTH_DIVISOR` (the features have 2 × 32 columns instead of 2 × 1024; at full width
#: one model takes about an hour on 2 cores). Not narrower: at a quarter or an eighth of the
#: width the papers' dropout (0.7) leaves too few units, and the baseline at its learning rate
#: (1e-4) had not learnt to classify its training videos after 800 steps (top-1 0.47 at 128
#: channels, 0.03 at 64; 0.98 at 256). Everything else is the model's THUMOS14 setting.
WIDTHS: dict[str, dict[str, int]] = {
    "cas_baseline": {"hidden": 512},
    "kt_mgfn": {"hidden": 512, "brm_hidden": 128},
    "assg": {"hidden": 512, "seed_hidden": 512},
    "cpmn": {"hidden": 512},
    "ecm": {"hidden": 512},
    "tsrnet": {"attention_hidden": 256, "fc_hidden": 512},
}
WIDTH_DIVISOR = 2

#: Feature columns per stream of THUMOS14's I3D features.
I3D_DIM = 1024


def sgd_lr(model: str, dim: int) -> float | None:
    """The learning rate on the benchmark of a model trained by SGD (TSRNet; None for Adam).

    SGD's step on a layer that reads the standardised features changes its output in
    proportion to their squared norm, i.e. to the number of columns: at ``dim`` columns
    instead of I3D's 1024 the THUMOS14 learning rate would take 1024 / ``dim`` times smaller
    steps relative to the weights (TSRNet's classification loss, 20 classes, plateaued at 1.9
    over the paper's 15,000 iterations at 1e-4 on 32 columns). Its THUMOS14 rate × 1024 / dim
    keeps the steps as they are on THUMOS14. Adam normalises its steps and needs no such
    change."""
    from wtal.settings import resolve_model_settings

    train = resolve_model_settings(REPO / "pipeline" / "config" / "models" / f"{model}.yaml",
                                   "thumos14")["train"]
    if train.get("optimizer", "adam") != "sgd":
        return None
    return float(train["lr"]) * I3D_DIM / dim


def write_config(out: Path, spec: Spec) -> Path:
    """``out/config.yaml``: the dataset for the workflow (bring-your-own features, models use
    their THUMOS14 settings, with the widths of :data:`WIDTHS` scaled down)."""
    import yaml

    models = {}
    for model, widths in WIDTHS.items():
        args = {k: max(8, v // WIDTH_DIVISOR) for k, v in widths.items()}
        models[model] = {"datasets": {DATASET: {"args": args}}}
        lr = sgd_lr(model, spec.dim)
        if lr is not None:
            models[model]["datasets"][DATASET]["train"] = {"lr": lr}
    cfg = {
        "models": models,
        "datasets": {DATASET: {
            "features_dir": str((out / "features").resolve()),
            "annotations": str((out / "annotations.json").resolve()),
            "snippet_seconds": SNIPPET_SECONDS,
            "train_subset": "validation",
            "test_subset": "test",
            "classes": list(CLASSES),
            "streams": {"rgb": [0, spec.dim], "flow": [spec.dim, 2 * spec.dim]},
            "model_settings": "thumos14",
            **({"trimmed": {"root": str((out / "trimmed").resolve())}}
               if spec.trimmed_groups else {}),
            "evaluation": {"protocol": "anet", "protocols": ["anet", "thumos14"],
                           "tiou": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]},
        }},
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(out: Path, seeds: Sequence[int], models: Sequence[str], cores: int,
        targets: Sequence[str] = ("map.json",), threads_per_job: int | None = None) -> None:
    """The workflow on the benchmark, once per training seed, in ``out/seed<k>/``, each model
    with the settings :func:`choose` chose for it on the training videos, if any."""
    from wtal.settings import merge_settings

    shared = out / "work"  # index, ground truth and imported features: the same for every seed
    shared.mkdir(exist_ok=True)
    for seed in seeds:
        workdir = out / f"seed{seed}"
        workdir.mkdir(exist_ok=True)
        if not (workdir / "work").exists():
            (workdir / "work").symlink_to(shared.resolve(), target_is_directory=True)
        overrides = {"models": {m: {"datasets": {DATASET: merge_settings(
            chosen_override(out, m), {"train": {"seed": seed}})}} for m in models}}
        (workdir / "seed.yaml").write_text(json.dumps(overrides))
        cmd = snakemake_command(out, workdir, models, cores, targets, threads_per_job)
        env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, env=env, cwd=workdir)


def snakemake_command(out: Path, workdir: Path, models: Sequence[str], cores: int,
                      targets: Sequence[str], threads_per_job: int | None = None) -> list[str]:
    """The Snakemake command :func:`run` runs in ``workdir`` (one training seed).

    ``threads_per_job``: the torch threads of each train and ablation job (the rules ask for
    2); 1 with ``cores`` 2 runs two models' trainings or ablation tables side by side, which
    on 2 cores finishes sooner than one after the other with 2 threads each."""
    wanted = [f"results/{DATASET}/{m}/{t}" for m in models for t in targets]
    threads = ([] if threads_per_job is None else
               ["--set-threads", f"train={threads_per_job}", f"ablation={threads_per_job}"])
    return ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--cores", str(cores), *threads, "--quiet", "reason", "--configfile",
            str(out / "config.yaml"), str(workdir / "seed.yaml"), "--", *wanted]


#: Settings the papers leave open, chosen on the benchmark's training videos by
#: cross-validation (:func:`choose`): ASSG's proposal level (the levels of
#: :func:`wtal.models.assg.choose_proposal_level`) and TSRNet's β, the weight of its sparsity
#: term (Eq. 5; the demo chose 3 on its training videos, the THUMOS14 default 0.1 is not chosen
#: on any data).
CHOICES: dict[str, dict[str, dict[str, Any]]] = {
    "assg": {f"level {lv:g}": {"infer": {"cas_thresholds": [lv]}}  # PROPOSAL_LEVELS, without
             for lv in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)},            # importing torch here
    "tsrnet": {f"beta {b:g}": {"args": {"beta": b}} for b in (0.1, 1.0, 3.0, 10.0)},
}


def chosen_override(out: Path, model: str) -> dict[str, Any]:
    """The settings :func:`choose` chose for ``model`` (``out/chosen/<model>.json``), or {}."""
    path = out / "chosen" / f"{model}.json"
    return json.loads(path.read_text())["override"] if path.exists() else {}


def choose(out: Path, model: str, *, folds: int = 2, seed: int = 0) -> dict[str, Any]:
    """``model``'s :data:`CHOICES` candidate chosen on the benchmark's TRAINING videos alone
    by ``folds``-fold cross-validation (:func:`wtal.crossval.cross_validate`, Ave-mAP
    0.1:0.5 of the held-out folds), written to ``out/chosen/<model>.json`` (with the winning
    ``override``), which :func:`run` then applies. Needs the workflow's index and imported
    features (``out/work``, made by a first :func:`run`)."""
    import yaml

    from wtal.crossval import cross_validate
    from wtal.settings import resolve_model_settings
    from wtalio import read_json

    if model not in CHOICES:
        raise ValueError(f"nothing to choose for {model!r} (models: {sorted(CHOICES)})")
    work = out / "work" / DATASET
    index = read_json(work / "index.json")
    train = [work / "features" / "imported" / f"{v}.npy"
             for v, r in sorted(index["videos"].items()) if r["split"] == "train"]
    user = yaml.safe_load((out / "config.yaml").read_text())["models"][model]
    settings = resolve_model_settings(REPO / "pipeline" / "config" / "models" / f"{model}.yaml",
                                      DATASET, user, settings_of="thumos14")
    result = cross_validate(work / "index.json", train, work / "gt.json",
                            out / "choose" / model, model=model, settings=settings,
                            candidates=CHOICES[model], folds=folds, seeds=(seed,))
    (out / "chosen").mkdir(exist_ok=True)
    (out / "chosen" / f"{model}.json").write_text(json.dumps(result, indent=1))
    return result


def table(out: Path, models: Sequence[str] = MODELS) -> str:
    """mean ± sd over the seeds of mAP@0.1:0.7 and their average (ActivityNet code) and of
    mAP@0.5 under the THUMOS14 kit: ``out/results.md`` and ``out/results.json``."""
    rows: dict[str, dict[str, list[float]]] = {}
    for model in models:
        for mp in sorted(out.glob(f"seed*/results/{DATASET}/{model}/map.json")):
            m = json.loads(mp.read_text())
            r = rows.setdefault(model, {})
            anet = m["protocols"]["anet"] if "protocols" in m else m
            for t, v in zip(anet["tiou"], anet["mAP"], strict=True):
                r.setdefault(f"{t:g}", []).append(100 * v)
            r.setdefault("avg", []).append(100 * float(np.mean(anet["mAP"])))
            kit = m.get("protocols", {}).get("thumos14")
            if kit:
                r.setdefault("kit@0.5", []).append(100 * kit["mAP"][kit["tiou"].index(0.5)])
    cols = [f"{t:g}" for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)] + ["avg", "kit@0.5"]
    lines = ["| model | seeds | " + " | ".join(cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for model, r in rows.items():
        cells = []
        for c in cols:
            v = r.get(c, [])
            cells.append(f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}" if len(v) > 1
                         else (f"{v[0]:.1f}" if v else "–"))
        lines.append(f"| `{model}` | {len(r['avg'])} | " + " | ".join(cells) + " |")
        lines += published_rows(model)
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    return text


def published_rows(model: str) -> list[str]:
    """The paper's THUMOS14 rows for ``model`` (wtal.papers), in the table's columns: what the
    paper reports on the real THUMOS14 test set with its own features, for context."""
    from wtal.papers import published

    rows = []
    for p in published(model, "thumos14"):
        cells = []
        for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
            v = p.at(t)
            cells.append("–" if v is None else f"{v:g}")
        known = [p.at(t) for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)]
        avg = f"{statistics.mean(known):.1f}" if all(v is not None for v in known) else "–"
        rows.append(f"| ↳ paper, THUMOS14 ({p.source}; {p.features}) | – | "
                    + " | ".join(cells) + f" | {avg} | – |")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the benchmark's features, annotations and config")
    mk.add_argument("out")
    mk.add_argument("--seed", type=int, default=0, help="data seed (not a training seed)")
    mk.add_argument("--n-train", type=int, default=Spec.n_train)
    mk.add_argument("--n-test", type=int, default=Spec.n_test)
    mk.add_argument("--dim", type=int, default=Spec.dim, help="feature columns per stream")
    mk.add_argument("--trimmed-groups", type=int, default=Spec.trimmed_groups,
                    help="UCF101-like trimmed clips for knowledge transfer: groups of 4-7 clips "
                         "per class (UCF101: 25); 0 = none")
    rn = sub.add_parser("run", help="run the workflow for each model and training seed")
    rn.add_argument("out")
    rn.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rn.add_argument("--models", nargs="+", default=list(MODELS))
    rn.add_argument("--cores", type=int, default=2)
    rn.add_argument("--ablation", action="store_true",
                    help="also each model's ablation table (results/.../ablation.md)")
    rn.add_argument("--only-ablation", action="store_true",
                    help="each model's ablation table alone, without its map.json")
    rn.add_argument("--threads-per-job", type=int, default=None,
                    help="torch threads of each train / ablation job (1 with --cores 2: two "
                         "jobs side by side)")
    ch = sub.add_parser("choose", help="a setting the paper leaves open (CHOICES), by "
                        "cross-validation on the training videos")
    ch.add_argument("out")
    ch.add_argument("model", choices=sorted(CHOICES))
    ch.add_argument("--folds", type=int, default=2)
    tb = sub.add_parser("table", help="results.md: mean ± sd over the seeds")
    tb.add_argument("out")
    wh = sub.add_parser("where", help="where trained models' CAS is high and their detections "
                        "lie, by the planted parts of the test videos (a diagnosis)")
    wh.add_argument("out")
    wh.add_argument("runs", nargs="+", metavar="LABEL=FOLDER",
                    help="a folder with the infer stage's detections.json and cas/")
    wh.add_argument("--top", type=int, default=15, help="best detections per video")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.cmd == "make":
        spec = Spec(n_train=args.n_train, n_test=args.n_test, dim=args.dim, seed=args.seed,
                    trimmed_groups=args.trimmed_groups)
        print(json.dumps(make(out, spec), indent=1))
    elif args.cmd == "run":
        targets = (("ablation.md",) if args.only_ablation
                   else ("map.json", "ablation.md") if args.ablation else ("map.json",))
        run(out, args.seeds, args.models, args.cores, targets, args.threads_per_job)
        print(table(out, args.models))
    elif args.cmd == "choose":
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        chosen = choose(out, args.model, folds=args.folds)
        print(json.dumps({"best": chosen["best"], "mean": chosen["mean"]}, indent=1))
    elif args.cmd == "where":
        runs = dict(r.split("=", 1) for r in args.runs)
        print(where(out, {k: Path(v) for k, v in runs.items()}, top=args.top), end="")
    else:
        print(table(out))


if __name__ == "__main__":
    sys.exit(main())
