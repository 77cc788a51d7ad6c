"""The embedded synthetic demo dataset: THUMOS14-like untrimmed videos with known ground truth.

The whole pipeline (decode, TV-L1 flow, two-stream I3D features with *random* weights, a weakly
supervised classifier, class activation sequences, detections, mAP) must run on this dataset on
two CPU cores in minutes. Features from randomly initialised 3-D convolutions followed by global
average pooling keep little more than colour, coarse texture statistics and motion energy, so
every class differs from the others, and from the background, in exactly those: each action is
one big (about 25-40 % of the frame), saturated, single-coloured object with its own motion.

=========== =========== ==========================================
class       object      motion
=========== =========== ==========================================
RedBounce   red disc    bounces up and down while drifting sideways
GreenSpin   green cross rotates about its centre
BlueSlide   blue square slides quickly from side to side
YellowPulse yellow ring grows and shrinks
=========== =========== ==========================================

The background, present in every frame, is a mid-grey low-contrast texture drifting slowly, two
or three grey/white distractor shapes that move all the time (so there is motion outside the
actions and optical flow is never trivially zero) and mild per-frame noise.

Layout written by :func:`synthesize_demo` (THUMOS14 / UCF101 conventions)::

    root/validation/video_validation_0000001.mp4 ...
    root/test/video_test_0000001.mp4 ...
    root/annotations/validation/<Class>_val.txt, Ambiguous_val.txt
    root/annotations/test/<Class>_test.txt, Ambiguous_test.txt
    root/trimmed/<Class>/v_<Class>_g01_c01.mp4, v_<Class>_g02_c01.mp4 ...  # one group each
    root/demo.json                      # arguments and machine-readable ground truth

Time convention: instance boundaries are multiples of 0.1 s and frame ``k`` (at ``k / fps``
seconds) shows the action if and only if ``start <= k / fps < end``.

Everything is a pure function of the seed: the plan (:func:`plan_demo`) is drawn from one
generator, and frame ``k`` of a video (:class:`SceneRenderer`) depends only on the plan and ``k``.
Videos are H.264 (yuv420p) at a constant frame rate, encoded single-threaded so that the same
seed gives the same decoded pixels.
"""

from __future__ import annotations

import functools
import io
import math
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np

from wtalio import write_json

__all__ = [
    "ACTION_CLASSES",
    "DEMO_CLASSES",
    "ActionClass",
    "ActionInstance",
    "DemoPlan",
    "DemoVideo",
    "Distractor",
    "Motion",
    "Scene",
    "SceneRenderer",
    "frame_range",
    "h264_encoder",
    "plan_demo",
    "rgb_to_yuv420p",
    "synthesize_demo",
]

SUBSETS = ("validation", "test")
_SUBSET_SUFFIX = {"validation": "val", "test": "test"}
_MARGIN_DS = 10  # instances stay >= 1.0 s away from the ends of a video (deciseconds)
_GAP_DS = 15  # >= 1.5 s of background between two instances (deciseconds)
_SHIFT = 4  # fractional bits for cv2 drawing: sub-pixel positions give smooth motion
_ONE = 1 << _SHIFT
_BACKGROUND_GREY = 128.0
_NOISE_SIGMA = 3.0  # per-pixel, per-channel Gaussian noise (grey levels)


# --------------------------------------------------------------------------------------------
# Small geometry helpers
# --------------------------------------------------------------------------------------------


def _reflect(value: float, lo: float, hi: float) -> float:
    """Fold ``value`` into ``[lo, hi]`` as a point bouncing between two walls would move."""
    span = hi - lo
    if span <= 0:
        return (lo + hi) / 2
    u = (value - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def _fixed(value: float) -> int:
    """Sub-pixel coordinate in cv2's fixed-point format (``_SHIFT`` fractional bits)."""
    return round(value * _ONE)


def _fill_circle(mask: np.ndarray, *, x: float, y: float, radius: float, value: int = 255) -> None:
    """Draw an anti-aliased filled circle into a single-channel ``uint8`` mask."""
    cv2.circle(mask, (_fixed(x), _fixed(y)), max(_fixed(radius), 1), value, -1, cv2.LINE_AA,
               _SHIFT)


def _fill_polygon(mask: np.ndarray, *, points: np.ndarray) -> None:
    """Draw an anti-aliased filled convex polygon (``points``: ``(n, 2)`` floats, x then y)."""
    fixed = np.round(points * _ONE).astype(np.int32)
    cv2.fillConvexPoly(mask, fixed, 255, cv2.LINE_AA, _SHIFT)


def _rotated_rectangle(*, x: float, y: float, length: float, width: float,
                       angle: float) -> np.ndarray:
    """Corners of a ``length`` x ``width`` rectangle centred at ``(x, y)``, rotated by ``angle``."""
    half = np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return half @ rotation.T + np.array([x, y])


def _regular_polygon(*, x: float, y: float, radius: float, sides: int,
                     angle: float) -> np.ndarray:
    """Vertices of a regular polygon with circumradius ``radius`` centred at ``(x, y)``."""
    theta = angle + 2 * np.pi * np.arange(sides) / sides
    return np.stack([x + radius * np.cos(theta), y + radius * np.sin(theta)], axis=1)


# --------------------------------------------------------------------------------------------
# Action classes: a colour and a motion each
# --------------------------------------------------------------------------------------------


class Motion(Protocol):
    """How one action class moves: per-instance random parameters and a drawing rule."""

    def sample(self, rng: np.random.Generator, *, width: int, height: int) -> dict[str, float]:
        """Draw the per-instance parameters (position, size, speed, phase...) for a frame size."""
        ...

    def draw(self, mask: np.ndarray, *, params: Mapping[str, float], tau: float) -> None:
        """Draw the object's coverage into ``mask`` at ``tau`` seconds after the instance start."""
        ...


def _area_scale(rng: np.random.Generator) -> float:
    """Per-instance linear size factor: the object's area varies by +-20 %."""
    return math.sqrt(rng.uniform(0.8, 1.2))


@dataclass(frozen=True)
class _Bounce:
    """A disc bouncing on the bottom edge (``|sin|`` height) while drifting sideways."""

    area: float = 0.30  # mean fraction of the frame covered

    def sample(self, rng: np.random.Generator, *, width: int, height: int) -> dict[str, float]:
        """Radius, horizontal start and drift, bounce rate and phase."""
        radius = math.sqrt(self.area * width * height / math.pi) * _area_scale(rng)
        radius = min(radius, 0.45 * min(width, height))
        return {
            "radius": radius,
            "x0": rng.uniform(radius, width - radius),
            "drift": rng.uniform(15.0, 40.0) * rng.choice([-1.0, 1.0]),  # px/s
            "rate": rng.uniform(1.2, 2.0),  # bounces per second
            "phase": rng.uniform(0.0, 1.0),
            "width": float(width),
            "height": float(height),
        }

    def draw(self, mask: np.ndarray, *, params: Mapping[str, float], tau: float) -> None:
        """Disc of the sampled radius at its bounce height and drift position."""
        r, w, h = params["radius"], params["width"], params["height"]
        x = _reflect(params["x0"] + params["drift"] * tau, r, w - r)
        floor = h - r  # centre height when the disc touches the bottom edge
        amplitude = max(h - 2 * r, 0.15 * h)
        lift = abs(math.sin(math.pi * (params["rate"] * tau + params["phase"])))
        _fill_circle(mask, x=x, y=floor - amplitude * lift, radius=r)


@dataclass(frozen=True)
class _Spin:
    """A plus-shaped cross rotating about its (nearly fixed) centre."""

    area: float = 0.30
    thickness: float = 0.30  # bar width / bar length

    def sample(self, rng: np.random.Generator, *, width: int, height: int) -> dict[str, float]:
        """Bar length, centre, angular speed (either direction) and start angle."""
        t = self.thickness
        length = math.sqrt(self.area * width * height / (2 * t - t * t)) * _area_scale(rng)
        reach = math.hypot(length / 2, t * length / 2)  # radius of the bounding circle
        limit = min(width, height) / 2
        if reach > limit:  # keep the rotating cross inside the frame
            length *= limit / reach
            reach = limit
        return {
            "length": length,
            "x": rng.uniform(reach, width - reach) if width > 2 * reach else width / 2,
            "y": rng.uniform(reach, height - reach) if height > 2 * reach else height / 2,
            "omega": 2 * math.pi * rng.uniform(0.35, 0.6) * rng.choice([-1.0, 1.0]),  # rad/s
            "angle0": rng.uniform(0.0, math.pi / 2),
        }

    def draw(self, mask: np.ndarray, *, params: Mapping[str, float], tau: float) -> None:
        """Two perpendicular bars at the current angle."""
        angle = params["angle0"] + params["omega"] * tau
        length = params["length"]
        for extra in (0.0, math.pi / 2):
            _fill_polygon(mask, points=_rotated_rectangle(
                x=params["x"], y=params["y"], length=length, width=self.thickness * length,
                angle=angle + extra))


@dataclass(frozen=True)
class _Slide:
    """A square sliding quickly from side to side at constant speed (triangle wave)."""

    area: float = 0.30

    def sample(self, rng: np.random.Generator, *, width: int, height: int) -> dict[str, float]:
        """Side, vertical position, speed, start position and direction."""
        side = math.sqrt(self.area * width * height) * _area_scale(rng)
        side = min(side, 0.9 * min(width, height))
        return {
            "side": side,
            "y": rng.uniform(side / 2, height - side / 2),
            "x0": rng.uniform(side / 2, width - side / 2),
            "speed": rng.uniform(1.0, 1.6) * width * rng.choice([-1.0, 1.0]),  # px/s
            "width": float(width),
        }

    def draw(self, mask: np.ndarray, *, params: Mapping[str, float], tau: float) -> None:
        """Axis-aligned square at its current horizontal position."""
        side, w = params["side"], params["width"]
        x = _reflect(params["x0"] + params["speed"] * tau, side / 2, w - side / 2)
        _fill_polygon(mask, points=_rotated_rectangle(x=x, y=params["y"], length=side,
                                                      width=side, angle=0.0))


@dataclass(frozen=True)
class _Pulse:
    """A thick ring whose radius oscillates sinusoidally (grows and shrinks)."""

    radius: float = 0.36  # mean outer radius / min(width, height)
    amplitude: float = 0.25  # relative radius swing
    inner: float = 0.45  # inner radius / outer radius

    def sample(self, rng: np.random.Generator, *, width: int, height: int) -> dict[str, float]:
        """Mean radius, centre, pulse rate and phase."""
        radius = self.radius * min(width, height) * _area_scale(rng)
        radius = min(radius, min(width, height) / (2 * (1 + self.amplitude)))
        reach = radius * (1 + self.amplitude)
        return {
            "radius": radius,
            "x": rng.uniform(reach, width - reach) if width > 2 * reach else width / 2,
            "y": rng.uniform(reach, height - reach) if height > 2 * reach else height / 2,
            "rate": rng.uniform(0.9, 1.5),  # pulses per second
            "phase": rng.uniform(0.0, 2 * math.pi),
        }

    def draw(self, mask: np.ndarray, *, params: Mapping[str, float], tau: float) -> None:
        """Outer disc minus inner disc at the current radius."""
        outer = params["radius"] * (
            1 + self.amplitude * math.sin(2 * math.pi * params["rate"] * tau + params["phase"]))
        _fill_circle(mask, x=params["x"], y=params["y"], radius=outer)
        _fill_circle(mask, x=params["x"], y=params["y"], radius=self.inner * outer, value=0)


@dataclass(frozen=True)
class ActionClass:
    """One demo action class: a name, an RGB colour, a description and a motion."""

    name: str
    colour: tuple[int, int, int]  # RGB
    description: str
    motion: Motion


ACTION_CLASSES: Mapping[str, ActionClass] = {
    spec.name: spec
    for spec in (
        ActionClass(name="RedBounce", colour=(225, 35, 35),
                    description="a red disc bouncing up and down while drifting sideways",
                    motion=_Bounce()),
        ActionClass(name="GreenSpin", colour=(35, 200, 60),
                    description="a green cross rotating about its centre", motion=_Spin()),
        ActionClass(name="BlueSlide", colour=(40, 80, 235),
                    description="a blue square sliding quickly from side to side",
                    motion=_Slide()),
        ActionClass(name="YellowPulse", colour=(240, 220, 30),
                    description="a yellow ring growing and shrinking", motion=_Pulse()),
    )
}
"""Every class the demo can draw, by name."""

DEMO_CLASSES: tuple[str, ...] = tuple(ACTION_CLASSES)
"""The default class list (THUMOS-style CamelCase names)."""


# --------------------------------------------------------------------------------------------
# The plan: everything random, drawn up front from one generator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionInstance:
    """One action instance: its class, its time span (seconds, one decimal) and its look."""

    label: str
    start: float
    end: float
    colour: tuple[int, int, int]  # the class colour with a small per-instance jitter
    params: Mapping[str, float] = field(default_factory=dict)  # the motion's own parameters

    def active(self, time: float) -> bool:
        """Whether the instance is shown at ``time`` seconds (``start <= time < end``)."""
        return self.start <= time < self.end


@dataclass(frozen=True)
class Distractor:
    """A grey/white shape moving in a straight line and bouncing off the frame edges."""

    shape: str  # "circle", "square" or "triangle"
    grey: float  # grey level 0..255
    radius: float  # circumradius, px
    x0: float
    y0: float
    vx: float  # px/s
    vy: float  # px/s
    angle0: float  # rad
    omega: float  # rad/s (polygons only)

    def draw(self, mask: np.ndarray, *, time: float) -> None:
        """Draw the shape's coverage at ``time`` seconds."""
        height, width = mask.shape
        r = self.radius
        x = _reflect(self.x0 + self.vx * time, r, width - r)
        y = _reflect(self.y0 + self.vy * time, r, height - r)
        if self.shape == "circle":
            _fill_circle(mask, x=x, y=y, radius=r)
        else:
            sides = 4 if self.shape == "square" else 3
            _fill_polygon(mask, points=_regular_polygon(
                x=x, y=y, radius=r, sides=sides, angle=self.angle0 + self.omega * time))


@dataclass(frozen=True)
class Scene:
    """Everything needed to render every frame of one video."""

    width: int
    height: int
    fps: float
    n_frames: int
    texture_seed: int
    noise_seed: int
    drift: tuple[float, float]  # background texture velocity, px/s (x, y)
    distractors: tuple[Distractor, ...]
    instances: tuple[ActionInstance, ...]


@dataclass(frozen=True)
class DemoVideo:
    """One video of the demo: where it goes, how long it is, and its scene."""

    name: str  # e.g. "video_validation_0000001" or "v_RedBounce_g01_c01"
    subset: str  # "validation", "test" or "trimmed"
    relpath: str  # path under the dataset root, POSIX separators
    duration: float  # seconds, one decimal
    scene: Scene

    def record(self) -> dict[str, Any]:
        """The ground-truth entry for ``demo.json``."""
        scene = self.scene
        instances = []
        for inst in scene.instances:
            first, stop = frame_range(inst.start, inst.end, fps=scene.fps,
                                      n_frames=scene.n_frames)
            instances.append({"label": inst.label, "start": inst.start, "end": inst.end,
                              "first_frame": first, "end_frame": stop})
        return {
            "subset": self.subset,
            "path": self.relpath,
            "duration": self.duration,
            "fps": scene.fps,
            "n_frames": scene.n_frames,
            "width": scene.width,
            "height": scene.height,
            "labels": sorted({inst.label for inst in scene.instances}),
            "instances": instances,
        }


@dataclass(frozen=True)
class DemoPlan:
    """The whole dataset as data: the arguments and every video, in writing order."""

    arguments: Mapping[str, Any]
    classes: tuple[str, ...]
    videos: tuple[DemoVideo, ...]

    def subset(self, name: str) -> list[DemoVideo]:
        """The videos of one subset ("validation", "test" or "trimmed"), in order."""
        return [video for video in self.videos if video.subset == name]


def frame_range(start: float, end: float, *, fps: float, n_frames: int) -> tuple[int, int]:
    """Frames ``[first, stop)`` that show an instance: those ``k`` with ``start <= k/fps < end``.

    Computed with the very float comparison the renderer uses, so the two always agree.
    """
    def first_at_or_after(time: float) -> int:
        k = max(math.ceil(time * fps), 0)
        while k > 0 and (k - 1) / fps >= time:
            k -= 1
        while k / fps < time:
            k += 1
        return min(k, n_frames)

    return first_at_or_after(start), first_at_or_after(end)


def _n_frames(duration: float, fps: float) -> int:
    """Number of frames ``k`` with ``k / fps < duration``."""
    k = math.ceil(duration * fps)
    while k > 0 and (k - 1) / fps >= duration:
        k -= 1
    while k / fps < duration:
        k += 1
    return k


def _check_range(name: str, value: tuple[float, float], *, minimum: float) -> None:
    lo, hi = value
    if not (minimum <= lo <= hi):
        raise ValueError(f"synthetic demo: {name} must satisfy {minimum} <= low <= high, "
                         f"got {value}")


def _sample_ds(rng: np.random.Generator, span: tuple[float, float]) -> int:
    """A duration in deciseconds drawn uniformly from ``span`` (seconds), kept inside it."""
    lo, hi = math.ceil(span[0] * 10 - 1e-9), math.floor(span[1] * 10 + 1e-9)
    if hi < lo:
        raise ValueError(f"synthetic demo: no multiple of 0.1 s lies in {span}")
    return min(max(round(rng.uniform(*span) * 10), lo), hi)


def _jitter_colour(rng: np.random.Generator, colour: tuple[int, int, int]) -> tuple[int, int, int]:
    jittered = np.clip(np.asarray(colour) + rng.integers(-12, 13, size=3), 0, 255)
    r, g, b = (int(v) for v in jittered)
    return r, g, b


def _make_instance(rng: np.random.Generator, *, label: str, start_ds: int, end_ds: int,
                   width: int, height: int) -> ActionInstance:
    spec = ACTION_CLASSES[label]
    return ActionInstance(label=label, start=start_ds / 10, end=end_ds / 10,
                          colour=_jitter_colour(rng, spec.colour),
                          params=spec.motion.sample(rng, width=width, height=height))


def _make_scene(rng: np.random.Generator, *, width: int, height: int, fps: float,
                duration: float, instances: tuple[ActionInstance, ...]) -> Scene:
    """Background texture/noise seeds, drift and distractors for one video."""
    size = min(width, height)
    distractors = []
    for _ in range(int(rng.integers(2, 4))):
        radius = size * rng.uniform(0.08, 0.12)
        speed = rng.uniform(0.2, 0.5) * size  # px/s
        heading = rng.uniform(0, 2 * math.pi)
        distractors.append(Distractor(
            shape=str(rng.choice(["circle", "square", "triangle"])),
            grey=float(rng.uniform(170.0, 240.0)),
            radius=radius,
            x0=rng.uniform(radius, width - radius),
            y0=rng.uniform(radius, height - radius),
            vx=speed * math.cos(heading),
            vy=speed * math.sin(heading),
            angle0=rng.uniform(0, 2 * math.pi),
            omega=rng.uniform(-1.5, 1.5),
        ))
    drift_speed = rng.uniform(4.0, 10.0)
    drift_heading = rng.uniform(0, 2 * math.pi)
    return Scene(
        width=width, height=height, fps=fps, n_frames=_n_frames(duration, fps),
        texture_seed=int(rng.integers(2**31)), noise_seed=int(rng.integers(2**31)),
        drift=(drift_speed * math.cos(drift_heading), drift_speed * math.sin(drift_heading)),
        distractors=tuple(distractors), instances=instances,
    )


def _assign_classes(rng: np.random.Generator, *, classes: Sequence[str],
                    n_videos: int) -> list[list[str]]:
    """One or two classes per video; every class is the main class of ``n // C`` videos or more.

    Main classes go round-robin over a shuffled class order; about half of the videos get a
    second class, the one used least so far (ties broken at random).
    """
    order = [classes[i] for i in rng.permutation(len(classes))]
    used = dict.fromkeys(classes, 0)
    assignments: list[list[str]] = []
    for i in range(n_videos):
        main = order[i % len(order)]
        used[main] += 1
        assignments.append([main])
    for labels in assignments:
        others = [c for c in classes if c not in labels]
        if others and rng.random() < 0.5:
            fewest = min(used[c] for c in others)
            candidates = [c for c in others if used[c] == fewest]
            second = candidates[int(rng.integers(len(candidates)))]
            used[second] += 1
            labels.append(second)
    return [assignments[i] for i in rng.permutation(n_videos)]


def _layout_instances(rng: np.random.Generator, *, labels: list[str], duration_ds: int,
                      instances_per_video: tuple[int, int],
                      instance_duration: tuple[float, float]) -> list[tuple[str, int, int]]:
    """Place non-overlapping instances: ``(label, start_ds, end_ds)`` sorted by start.

    Instances keep ``>= 1.5 s`` apart and ``>= 1 s`` from the ends. If the drawn instances do not
    fit, instances are dropped (never a class's last one), then shortened to the minimum
    duration, then a second class is dropped; a video too short even for one is an error.
    """
    labels = list(labels)
    counts = {c: int(rng.integers(instances_per_video[0], instances_per_video[1] + 1))
              for c in labels}
    items = [(c, _sample_ds(rng, instance_duration)) for c in labels for _ in range(counts[c])]
    min_ds = math.ceil(instance_duration[0] * 10 - 1e-9)

    def need() -> int:
        return sum(d for _, d in items) + _GAP_DS * (len(items) - 1) + 2 * _MARGIN_DS

    while need() > duration_ds:
        per_class = {c: sum(1 for lab, _ in items if lab == c) for c in labels}
        most = max(labels, key=lambda c: per_class[c])
        if per_class[most] > 1:
            last = max(i for i, (lab, _) in enumerate(items) if lab == most)
            del items[last]
        elif any(d > min_ds for _, d in items):
            longest = max(range(len(items)), key=lambda i: items[i][1])
            items[longest] = (items[longest][0], min_ds)
        elif len(labels) > 1:
            dropped = labels.pop()
            items = [item for item in items if item[0] != dropped]
        else:
            raise ValueError(
                f"synthetic demo: a {duration_ds / 10:.1f} s video cannot hold one "
                f"{min_ds / 10:.1f} s instance with {_MARGIN_DS / 10:.1f} s margins; "
                "lengthen duration_range or shorten instance_duration")
    items = [items[i] for i in rng.permutation(len(items))]
    slack = duration_ds - need()
    cuts = np.sort(rng.integers(0, slack + 1, size=len(items)))
    gaps = np.diff(np.concatenate([[0], cuts])).tolist()  # extra space before each instance
    placed = []
    t = _MARGIN_DS
    for (label, d), extra in zip(items, gaps, strict=True):
        t += int(extra)
        placed.append((label, t, t + d))
        t += d + _GAP_DS
    return placed


def plan_demo(*, seed: int = 0, classes: Sequence[str] = DEMO_CLASSES, n_validation: int = 16,
              n_test: int = 8, duration_range: tuple[float, float] = (14.0, 20.0),
              fps: float = 30.0, width: int = 160, height: int = 120,
              instances_per_video: tuple[int, int] = (1, 3),
              instance_duration: tuple[float, float] = (2.0, 5.0),
              n_trimmed_per_class: int = 3,
              trimmed_duration: tuple[float, float] = (2.0, 4.0)) -> DemoPlan:
    """Draw the whole dataset (names, durations, instances, looks) without rendering anything.

    Arguments are those of :func:`synthesize_demo`; the same arguments give the same plan.
    """
    classes = tuple(classes)
    unknown = [c for c in classes if c not in ACTION_CLASSES]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ValueError(f"synthetic demo: classes must be distinct names from "
                         f"{list(ACTION_CLASSES)}, got {list(classes)}")
    if n_validation < 0 or n_test < 0 or n_trimmed_per_class < 0:
        raise ValueError("synthetic demo: video counts must be >= 0")
    if not fps > 0:
        raise ValueError(f"synthetic demo: fps must be positive, got {fps}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"synthetic demo: width and height must be even and >= 16 (yuv420p), "
                         f"got {width}x{height}")
    _check_range("duration_range", duration_range, minimum=0.1)
    _check_range("instance_duration", instance_duration, minimum=0.1)
    _check_range("trimmed_duration", trimmed_duration, minimum=0.1)
    lo, hi = instances_per_video
    if not 1 <= lo <= hi:
        raise ValueError(f"synthetic demo: instances_per_video must satisfy 1 <= low <= high, "
                         f"got {instances_per_video}")

    arguments: dict[str, Any] = {
        "seed": seed, "classes": list(classes), "n_validation": n_validation, "n_test": n_test,
        "duration_range": list(duration_range), "fps": fps, "width": width, "height": height,
        "instances_per_video": list(instances_per_video),
        "instance_duration": list(instance_duration),
        "n_trimmed_per_class": n_trimmed_per_class, "trimmed_duration": list(trimmed_duration),
    }
    rng = np.random.default_rng(seed)
    videos: list[DemoVideo] = []
    for subset, count in (("validation", n_validation), ("test", n_test)):
        for index, labels in enumerate(_assign_classes(rng, classes=classes, n_videos=count),
                                       start=1):
            duration_ds = _sample_ds(rng, duration_range)
            placed = _layout_instances(rng, labels=labels, duration_ds=duration_ds,
                                       instances_per_video=instances_per_video,
                                       instance_duration=instance_duration)
            instances = tuple(
                _make_instance(rng, label=label, start_ds=s, end_ds=e, width=width,
                               height=height)
                for label, s, e in placed)
            name = f"video_{subset}_{index:07d}"
            scene = _make_scene(rng, width=width, height=height, fps=fps,
                                duration=duration_ds / 10, instances=instances)
            videos.append(DemoVideo(name=name, subset=subset, relpath=f"{subset}/{name}.mp4",
                                    duration=duration_ds / 10, scene=scene))
    for label in classes:
        for group in range(1, n_trimmed_per_class + 1):
            duration_ds = _sample_ds(rng, trimmed_duration)
            instance = _make_instance(rng, label=label, start_ds=0, end_ds=duration_ds,
                                      width=width, height=height)
            name = f"v_{label}_g{group:02d}_c01"
            scene = _make_scene(rng, width=width, height=height, fps=fps,
                                duration=duration_ds / 10, instances=(instance,))
            videos.append(DemoVideo(name=name, subset="trimmed",
                                    relpath=f"trimmed/{label}/{name}.mp4",
                                    duration=duration_ds / 10, scene=scene))
    return DemoPlan(arguments=arguments, classes=classes, videos=tuple(videos))


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _periodic_texture(*, seed: int, width: int, height: int) -> np.ndarray:
    """A seamless (periodic) low-contrast grey texture around mid-grey, ``float32`` HxW."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    radius2 = fx**2 + fy**2
    texture = np.zeros((height, width))
    for sigma_px, contrast in ((10.0, 9.0), (2.5, 4.0)):  # soft blobs plus finer grain
        noise = np.fft.fft2(rng.standard_normal((height, width)))
        smooth = np.fft.ifft2(noise * np.exp(-2 * (np.pi * sigma_px) ** 2 * radius2)).real
        texture += contrast * (smooth - smooth.mean()) / max(float(smooth.std()), 1e-12)
    return (_BACKGROUND_GREY + texture).astype(np.float32)


def _shift_periodic(image: np.ndarray, *, dx: float, dy: float) -> np.ndarray:
    """Translate a periodic image by a sub-pixel offset (bilinear, wrapping around)."""
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = np.float32(dx - ix), np.float32(dy - iy)
    base = np.roll(image, (iy, ix), axis=(0, 1))
    right = np.roll(base, 1, axis=1)
    top = (1 - fx) * base + fx * right
    bottom = np.roll(top, 1, axis=0)
    return (1 - fy) * top + fy * bottom


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """Convert an RGB ``uint8`` frame to planar yuv420p (BT.601, limited range).

    Done in numpy rather than by FFmpeg's scaler so that the encoded pixels do not depend on
    which SIMD path the scaler picks. Returns the ``(height * 3 // 2, width)`` layout PyAV expects.
    """
    height, width, _ = rgb.shape
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def down(plane: np.ndarray) -> np.ndarray:
        quads = plane.reshape(height // 2, 2, width // 2, 2)
        return (quads[:, 0, :, 0] + quads[:, 0, :, 1] + quads[:, 1, :, 0] + quads[:, 1, :, 1]) / 4

    def to_u8(plane: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(plane), 0, 255).astype(np.uint8)

    chroma = np.concatenate([to_u8(down(cb)).reshape(-1), to_u8(down(cr)).reshape(-1)])
    return np.concatenate([to_u8(y), chroma.reshape(height // 2, width)], axis=0)


class SceneRenderer:
    """Renders the frames of one :class:`Scene`; frame ``k`` depends only on the scene and ``k``."""

    def __init__(self, scene: Scene) -> None:
        """Precompute the background texture."""
        self.scene = scene
        self._texture = _periodic_texture(seed=scene.texture_seed, width=scene.width,
                                          height=scene.height)
        self._mask = np.empty((scene.height, scene.width), np.uint8)

    def _blend(self, canvas: np.ndarray, colour: Sequence[float]) -> None:
        """Paint ``colour`` through the current mask (anti-aliased edges blend)."""
        alpha = self._mask.astype(np.float32)[..., None] * np.float32(1 / 255)
        canvas += alpha * (np.asarray(colour, np.float32) - canvas)

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as an RGB ``uint8`` array of shape ``(height, width, 3)``."""
        scene = self.scene
        if not 0 <= k < scene.n_frames:
            raise IndexError(f"frame {k} outside 0..{scene.n_frames - 1}")
        time = k / scene.fps
        grey = _shift_periodic(self._texture, dx=scene.drift[0] * time,
                               dy=scene.drift[1] * time)
        canvas = np.repeat(grey[..., None], 3, axis=2)
        for distractor in scene.distractors:
            self._mask.fill(0)
            distractor.draw(self._mask, time=time)
            self._blend(canvas, (distractor.grey,) * 3)
        for instance in scene.instances:
            if instance.active(time):
                self._mask.fill(0)
                ACTION_CLASSES[instance.label].motion.draw(
                    self._mask, params=instance.params, tau=time - instance.start)
                self._blend(canvas, instance.colour)
        noise_rng = np.random.default_rng([scene.noise_seed, k])
        canvas += noise_rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(
            _NOISE_SIGMA)
        return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------

_H264_ENCODERS = ("libx264", "libopenh264", "h264_videotoolbox", "h264_mf", "h264_nvenc",
                  "h264_qsv", "h264_amf", "h264_vaapi", "h264_v4l2m2m")


def _codec_options(codec: str, *, fps: float) -> dict[str, str]:
    """Encoder options: single-threaded, no B-frames, a keyframe every second, high quality."""
    keyint = max(round(fps), 1)
    if codec == "libx264":
        return {"preset": "veryfast", "crf": "16",
                "x264-params": (f"threads=1:lookahead-threads=1:sliced-threads=0:bframes=0:"
                                f"keyint={keyint}:min-keyint={keyint}:scenecut=0")}
    return {"threads": "1", "bf": "0", "g": str(keyint)}


def _open_stream(container: Any, *, codec: str, fps: float, width: int, height: int) -> Any:
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.codec_context.thread_count = 1
    stream.options = _codec_options(codec, fps=fps)
    return stream


@functools.cache
def h264_encoder() -> str:
    """The H.264 encoder PyAV can use: ``libx264`` if it works, else the first one that does.

    Each candidate is tried on a two-frame clip in memory (hardware encoders may be compiled in
    but unusable). Raises ``RuntimeError`` if none works.
    """
    tried = []
    for name in _H264_ENCODERS:
        try:
            av.Codec(name, "w")
        except Exception:  # not compiled into this FFmpeg
            continue
        tried.append(name)
        try:
            buffer = io.BytesIO()
            with av.open(buffer, "w", format="mp4") as container:
                stream = _open_stream(container, codec=name, fps=25.0, width=64, height=48)
                for k in range(2):
                    frame = av.VideoFrame.from_ndarray(np.full((72, 64), 100, np.uint8),
                                                       format="yuv420p")
                    frame.pts = k
                    container.mux(stream.encode(frame))
                container.mux(stream.encode(None))
        except Exception:  # present but unusable here (e.g. no GPU for nvenc)
            continue
        return name
    raise RuntimeError(
        "synthetic demo: PyAV has no working H.264 encoder (tried "
        f"{', '.join(tried) or 'none present'}); install a PyAV/FFmpeg build with libx264")


def _write_video(path: Path, *, renderer: SceneRenderer, codec: str) -> None:
    """Encode every frame of ``renderer``'s scene to ``path``, one frame at a time."""
    scene = renderer.scene
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = _open_stream(container, codec=codec, fps=scene.fps, width=scene.width,
                              height=scene.height)
        for k in range(scene.n_frames):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(renderer.frame(k)),
                                               format="yuv420p")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _write_annotations(folder: Path, *, plan: DemoPlan) -> None:
    """THUMOS14 text annotations: one file per class and subset, plus empty Ambiguous files."""
    for subset in SUBSETS:
        suffix = _SUBSET_SUFFIX[subset]
        lines: dict[str, list[str]] = {c: [] for c in (*plan.classes, "Ambiguous")}
        for video in plan.subset(subset):
            for inst in video.scene.instances:
                lines[inst.label].append(f"{video.name} {inst.start:.1f} {inst.end:.1f}\n")
        out = folder / subset
        out.mkdir(parents=True, exist_ok=True)
        for label, rows in lines.items():
            (out / f"{label}_{suffix}.txt").write_text("".join(rows))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def synthesize_demo(root: Path, *, seed: int = 0, classes: Sequence[str] = DEMO_CLASSES,
                    n_validation: int = 16, n_test: int = 8,
                    duration_range: tuple[float, float] = (14.0, 20.0), fps: float = 30.0,
                    width: int = 160, height: int = 120,
                    instances_per_video: tuple[int, int] = (1, 3),
                    instance_duration: tuple[float, float] = (2.0, 5.0),
                    n_trimmed_per_class: int = 3,
                    trimmed_duration: tuple[float, float] = (2.0, 4.0),
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the synthetic demo dataset to ``root`` (see the module docstring for the layout).

    Deterministic for a given seed: the same annotations and the same decoded pixels. The
    dataset is built in a temporary sibling folder that replaces ``root`` only when complete;
    an existing ``root`` is removed only after success, and a failure leaves no temporary folder.

    Args:
        root: dataset folder to (re)create.
        seed: seed of every random choice.
        classes: class names, a subset of :data:`DEMO_CLASSES`.
        n_validation: untrimmed videos in ``validation/``.
        n_test: untrimmed videos in ``test/``.
        duration_range: untrimmed video length, seconds (rounded to 0.1 s).
        fps: constant frame rate.
        width: frame width in pixels (even).
        height: frame height in pixels (even).
        instances_per_video: inclusive range of instances per class present in a video.
        instance_duration: instance length, seconds (rounded to 0.1 s).
        n_trimmed_per_class: UCF101-style trimmed clips per class.
        trimmed_duration: trimmed clip length, seconds (rounded to 0.1 s).
        progress: called with each video's relative path before it is encoded.

    Returns:
        A summary: the root, the classes and the numbers of videos and instances per subset.
    """
    plan = plan_demo(seed=seed, classes=classes, n_validation=n_validation, n_test=n_test,
                     duration_range=duration_range, fps=fps, width=width, height=height,
                     instances_per_video=instances_per_video,
                     instance_duration=instance_duration,
                     n_trimmed_per_class=n_trimmed_per_class, trimmed_duration=trimmed_duration)
    codec = h264_encoder()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for video in plan.videos:
            if progress is not None:
                progress(video.relpath)
            _write_video(tmp / video.relpath, renderer=SceneRenderer(video.scene), codec=codec)
        _write_annotations(tmp / "annotations", plan=plan)
        (tmp / "trimmed").mkdir(exist_ok=True)
        write_json(tmp / "demo.json", {
            "format": "wtal-synthetic-demo",
            "version": 1,
            "seed": seed,
            "arguments": plan.arguments,
            "classes": list(plan.classes),
            "class_descriptions": {c: ACTION_CLASSES[c].description for c in plan.classes},
            "class_colours": {c: list(ACTION_CLASSES[c].colour) for c in plan.classes},
            "encoder": codec,
            "time_convention": "frame k shows an instance iff start <= k / fps < end",
            "videos": {video.name: video.record() for video in plan.videos},
        })
        _replace_dir(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    summary: dict[str, Any] = {"root": str(root), "seed": seed, "classes": list(plan.classes),
                               "encoder": codec}
    for subset in (*SUBSETS, "trimmed"):
        videos = plan.subset(subset)
        summary[subset] = {"videos": len(videos),
                           "instances": sum(len(v.scene.instances) for v in videos)}
    return summary


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` onto ``dst``; an old ``dst`` is deleted only afterwards."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.parent / f".{dst.name}.old-{secrets.token_hex(4)}"
    os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)
