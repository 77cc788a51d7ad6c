"""Every GPU claim of the project checked by one command, in at most eight minutes on one GPU.

Run from the repository root, on a machine with one CUDA GPU (H100/H200 class)::

    python benchmarks/gpu_check.py gpu-check-out            # full check, --device cuda
    python benchmarks/gpu_check.py out --device cpu --quick  # the same code, small, on a CPU

It prints a table and writes ``<out>/gpu_check.json``: the machine (GPU name, torch, CUDA and
cuDNN versions), every figure with its unit, a pass/fail per check, and per part its status
(``passed``, ``failed``, ``timeout`` or ``skipped``) with the reason. ``<out>/logs/`` keeps each
part's output. The exit status is 0 when no check failed, else 1.

Parts (each in its own process group with a time limit, so that a hang or a crash costs only
that part; a part that runs out of time keeps the figures it had recorded):

1. ``tests``: the ``gpu``-marked tests with ``WTAL_REQUIRE_GPU=1`` (a skip is a failure).
2. ``flow``: torch TV-L1 (``extractors.tvl1_torch``) vs OpenCV TV-L1 (``extractors.flow``) on
   the same frames of the synthetic demo scene at 224x224 and 340x256 (OpenCV's default
   parameters, the papers'): mean and 99th-percentile end-point error; pairs/s for several
   batch sizes; OpenCV's one-core pairs/s measured in the same run and the ratio; peak GPU
   memory per pair.
3. ``i3d``: two-stream I3D (random weights) snippets/s in fp32 and under bf16/fp16 autocast,
   with the largest feature difference autocast causes and the device-vs-CPU difference.
4. ``models``: for each of the six localizers, one training epoch on THUMOS14-sized random
   features (200 videos x 750 snippets x 2048, 20 classes) and one training step on the CPU
   (in a second process) and on the device from the same weights and batch: loss and
   gradients equal within a stated tolerance.
5. ``demo``: the demo workflow end to end with ``device: <device>`` against a CPU run of it
   (wall times; map.json equal, or the difference stated).

``--quick`` shrinks every size so that the whole runs on two CPU cores in a few minutes (the
test ``tests/test_gpu_check.py`` runs it so); its numbers only show that the code runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARTS = ("tests", "flow", "i3d", "models", "demo")
INJECTED = {"fail": "injected-failure", "hang": "injected-hang"}  # the harness's own test
# Seconds per part, each a bound against a hang; a part also gets at most what is left of the
# whole command's budget (BUDGET_S), so that with start-up the full check fits in 8 minutes.
LIMITS = {
    "full": {"tests": 90, "flow": 110, "i3d": 45, "models": 100, "demo": 150},
    "quick": {"tests": 60, "flow": 60, "i3d": 45, "models": 150, "demo": 180},
}
BUDGET_S = {"full": 470, "quick": 480}  # the whole command; a part gets at most what is left
INJECTED_LIMIT_S = 3
EPE_BAR_PX = 0.1  # mean end-point error of torch TV-L1 vs OpenCV (issue 6's bar)
LOSS_RTOL = 1e-4  # one training step, device vs CPU: |dloss| <= LOSS_RTOL * max(1, |loss|)
GRAD_RTOL = 1e-3  # per gradient tensor: max |dg| <= GRAD_RTOL * max |g_cpu| + GRAD_ATOL
GRAD_ATOL = 1e-7
I3D_DEVICE_RTOL = 1e-2  # fp32 features, device vs CPU: max |df| <= I3D_DEVICE_RTOL * max |f|
MAP_TOL = 0.02  # demo: mAP of the device run within this of the CPU run's at every tIoU
DEMO_TARGET = "results/demo/cas_baseline/map.json"

SIZES = {
    # per part and mode; every loop below is bounded by these
    "flow": {
        "full": {"sizes": {"224x224": (224, 224), "340x256": (256, 340)}, "pairs": 16,
                 "batches": {"224x224": [16, 64, 256], "340x256": [16, 64, 128]},
                 "eager_batch": 64, "min_time_s": 0.5, "max_calls": 5, "params": {}},
        "quick": {"sizes": {"64x48": (48, 64), "84x64": (64, 84)}, "pairs": 2,
                  "batches": {"64x48": [2], "84x64": [2]},
                  "eager_batch": None, "min_time_s": 0.0, "max_calls": 1,
                  # the demo's cheap parameters: eager torch on a CPU is slow with the papers'
                  "params": {"nscales": 3, "warps": 2, "inner_iterations": 10,
                             "outer_iterations": 2}},
    },
    "i3d": {
        "full": {"crop": 224, "frames": 16, "batches": [8, 32], "iters": 3, "cpu_batch": 1},
        "quick": {"crop": 64, "frames": 16, "batches": [2], "iters": 1, "cpu_batch": 1},
    },
    "models": {
        "full": {"videos": 200, "snippets": 750, "dim": 2048, "classes": 20,
                 "step_batch": 4, "step_snippets": 256},
        "quick": {"videos": 8, "snippets": 64, "dim": 2048, "classes": 20,
                  "step_batch": 2, "step_snippets": 32},
    },
}


# ============================================================================================
# Recording: figures with units, checks with pass/fail, written after every change
# ============================================================================================


class Recorder:
    """What one part found; rewritten to ``path`` after every change, so that a part killed for
    time still leaves every figure it had."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"figures": {}, "checks": [], "notes": []}
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))
        tmp.replace(self.path)

    def figure(self, name: str, value: float | int | None, unit: str, **extra: Any) -> None:
        """One number and its unit (None with a ``reason`` where it cannot be measured)."""
        if isinstance(value, float) and not math.isfinite(value):
            extra.setdefault("reason", f"not finite ({value})")
            value = None
        self.data["figures"][name] = {"value": value, "unit": unit, **extra}
        self.save()

    def check(self, name: str, passed: bool | None, detail: str) -> None:
        """A pass/fail check (None: not applicable here, with the reason in ``detail``)."""
        status = "skipped" if passed is None else ("passed" if passed else "failed")
        self.data["checks"].append({"name": name, "status": status, "detail": detail})
        self.save()

    def note(self, text: str) -> None:
        self.data["notes"].append(text)
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, tuple | set):
        return list(obj)
    return str(obj)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in this process after ``seconds`` (the outer process limit stays
    the backstop for what a signal cannot interrupt, e.g. a stuck device call)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took more than its {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def require_device(device: str) -> None:
    import torch

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: torch {torch.__version__} sees no CUDA GPU "
                           f"(torch.cuda.is_available() is False)")


# ============================================================================================
# Part 1: the gpu-marked tests
# ============================================================================================


def gpu_test_files() -> list[str]:
    """Test files that mark tests ``gpu`` (so pytest imports only those)."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                  if "mark.gpu" in p.read_text())


def part_tests(cfg: dict[str, Any], rec: Recorder) -> None:
    import xml.etree.ElementTree as ET

    import torch

    files = gpu_test_files()
    rec.set("files", files)
    if not files:
        rec.check("gpu-marked tests exist", False, "no test file marks a test gpu")
        return
    on_gpu = torch.device(cfg["device"]).type == "cuda"
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    if on_gpu:
        env["WTAL_REQUIRE_GPU"] = "1"
    else:
        env.pop("WTAL_REQUIRE_GPU", None)
    junit = Path(cfg["scratch"]) / "gpu-tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q", "-rs",
           f"--junitxml={junit}", *files]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None, f"{junit}: no testsuite"
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    for key, value in (("passed", passed), ("failed", counts["failures"]),
                       ("errors", counts["errors"]), ("skipped", counts["skipped"])):
        rec.figure(f"gpu tests {key}", value, "tests")
    rec.figure("pytest exit status", proc.returncode, "exit code")
    if on_gpu:
        rec.check("gpu tests pass with WTAL_REQUIRE_GPU=1",
                  proc.returncode == 0 and passed >= 1 and counts["skipped"] == 0,
                  f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
                  f"{counts['skipped']} skipped of {counts['tests']} (pytest exit "
                  f"{proc.returncode})")
    else:
        ok = proc.returncode == 0 and counts["skipped"] == counts["tests"] >= 1
        rec.check("gpu tests pass with WTAL_REQUIRE_GPU=1", None if ok else False,
                  f"skipped: device {cfg['device']} is not a CUDA GPU; without "
                  f"WTAL_REQUIRE_GPU the {counts['tests']} gpu tests were collected and "
                  f"skipped ({counts['skipped']}), exit {proc.returncode}")


# ============================================================================================
# Part 2: torch TV-L1 vs OpenCV TV-L1
# ============================================================================================


def scene_frames(n: int, height: int, width: int, *, seed: int = 0) -> Any:
    """``n`` consecutive grey frames (n, height, width) uint8 of demo scenes, during actions."""
    import numpy as np

    from extractors.flow import to_gray
    from wtal.demo import SceneRenderer, plan_demo

    plan = plan_demo(seed=seed, width=width, height=height, n_validation=16, n_test=0,
                     n_trimmed_per_class=0)
    grey: list[Any] = []
    for video in plan.subset("validation"):
        scene = video.scene
        renderer = SceneRenderer(scene)
        for instance in scene.instances:
            first = int(instance.start * scene.fps) + 1
            for k in range(first, min(int(instance.end * scene.fps), scene.n_frames)):
                grey.append(to_gray(renderer.frame(k)))
                if len(grey) == n:
                    return np.stack(grey)
    raise ValueError(f"the demo plan has only {len(grey)} action frames, {n} asked for")


def _opencv_pair(args: tuple[Any, Any, dict[str, Any]]) -> tuple[Any, float]:
    import cv2

    from extractors.flow import TVL1Params, create_opencv_tvl1

    cv2.setNumThreads(1)
    a, b, params = args
    tvl1 = create_opencv_tvl1(TVL1Params.from_dict(params))
    start = time.perf_counter()
    flow = tvl1.calc(a, b, None)
    return flow, time.perf_counter() - start


def opencv_flows(frames: Any, params: Any, workers: int) -> tuple[Any, list[float]]:
    """OpenCV flows of consecutive pairs, each on one thread; ``workers`` pairs at a time."""
    import numpy as np

    jobs = [(frames[i], frames[i + 1], params.to_dict()) for i in range(len(frames) - 1)]
    if workers <= 1:
        results = [_opencv_pair(job) for job in jobs]
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_opencv_pair, jobs)
    return np.stack([r[0] for r in results]), [r[1] for r in results]


def part_flow(cfg: dict[str, Any], rec: Recorder) -> None:
    import numpy as np
    import torch

    from extractors.flow import TVL1Params
    from extractors.tvl1_torch import tvl1_pairs

    size = SIZES["flow"][cfg["mode"]]
    dev = torch.device(cfg["device"])
    on_gpu = dev.type == "cuda"
    params = TVL1Params(**size["params"])  # full: OpenCV's defaults, the papers' parameters
    compiled = on_gpu  # what compute_flow_torch does by default
    rec.set("params", params.to_dict())
    cores = os.cpu_count() or 1
    workers = max(1, min(8, cores - 1)) if cfg["mode"] == "full" else min(2, cores)
    rec.note(f"OpenCV runs each pair on one thread (cv2.setNumThreads(1)), {workers} pair(s) "
             f"side by side in separate processes; its one-core rate is pairs / summed seconds")
    rec.note(f"torch: tvl1_pairs on {dev}, {'compiled' if compiled else 'eager'} (the "
             f"pipeline's default there), pairs cycled over the {size['pairs']} real pairs")
    for label, (h, w) in size["sizes"].items():
        frames = scene_frames(size["pairs"] + 1, h, w)
        reference, seconds = opencv_flows(frames, params, workers)
        cv_rate = len(seconds) / sum(seconds)
        rec.figure(f"OpenCV 1 core [{label}]", cv_rate, "pairs/s", pairs=len(seconds))
        prev = torch.from_numpy(frames[:-1]).to(dev)
        nxt = torch.from_numpy(frames[1:]).to(dev)
        ours = tvl1_pairs(prev, nxt, params, compiled=compiled).cpu().numpy()
        err = np.sqrt(((ours - reference) ** 2).sum(-1))  # (pairs, H, W) px
        mean, p99 = float(err.mean()), float(np.percentile(err, 99))
        rec.figure(f"EPE mean vs OpenCV [{label}]", mean, "px", pairs=len(err))
        rec.figure(f"EPE p99 vs OpenCV [{label}]", p99, "px", pairs=len(err))
        rec.check(f"torch TV-L1 EPE mean vs OpenCV <= {EPE_BAR_PX} px [{label}]",
                  mean <= EPE_BAR_PX, f"{mean:.4f} px over {len(err)} pairs (p99 {p99:.3f})")
        runs = [(b, compiled) for b in size["batches"][label]]
        if size["eager_batch"] and compiled:
            runs.append((size["eager_batch"], False))
        for batch, comp in runs:
            idx = np.arange(batch) % (len(frames) - 1)
            a = torch.from_numpy(frames[idx]).to(dev)
            b = torch.from_numpy(frames[idx + 1]).to(dev)
            if on_gpu or comp:  # warm-up (compilation, CUDA start-up), untimed
                tvl1_pairs(a, b, params, compiled=comp)
                sync(dev)
            if on_gpu:
                torch.cuda.reset_peak_memory_stats(dev)
                base = torch.cuda.memory_allocated(dev)
            calls, start = 0, time.perf_counter()
            while True:
                tvl1_pairs(a, b, params, compiled=comp)
                sync(dev)
                calls += 1
                elapsed = time.perf_counter() - start
                if calls >= size["max_calls"] or elapsed >= size["min_time_s"]:
                    break
            rate = calls * batch / elapsed
            kind = "compiled" if comp else "eager"
            rec.figure(f"torch {dev.type} {kind} [{label}, batch {batch}]", rate, "pairs/s",
                       calls=calls)
            rec.figure(f"torch / OpenCV 1 core [{label}, batch {batch}, {kind}]",
                       rate / cv_rate, "x")
            if on_gpu:
                peak = (torch.cuda.max_memory_allocated(dev) - base) / batch / 2**20
                rec.figure(f"peak GPU memory per pair [{label}, batch {batch}, {kind}]", peak,
                           "MiB/pair")
            else:
                rec.figure(f"peak GPU memory per pair [{label}, batch {batch}, {kind}]", None,
                           "MiB/pair", reason="no CUDA device: torch.cuda.max_memory_allocated "
                           "measures GPU memory only")


# ============================================================================================
# Part 3: two-stream I3D
# ============================================================================================


def part_i3d(cfg: dict[str, Any], rec: Recorder) -> None:
    import torch

    from extractors.backbones import RANDOM_WEIGHTS, build_i3d

    size = SIZES["i3d"][cfg["mode"]]
    dev = torch.device(cfg["device"])
    on_gpu = dev.type == "cuda"
    streams = {"rgb": build_i3d(in_channels=3, weights=RANDOM_WEIGHTS, sha256=None, seed=0),
               "flow": build_i3d(in_channels=2, weights=RANDOM_WEIGHTS, sha256=None, seed=1)}
    crop, length = size["crop"], size["frames"]
    rec.set("input", {"crop": crop, "frames_per_snippet": length, "weights": "random (seed 0/1)",
                      "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                      "matmul_precision": torch.get_float32_matmul_precision()})
    gen = torch.Generator().manual_seed(0)

    def inputs(batch: int) -> dict[str, torch.Tensor]:
        return {"rgb": torch.rand(batch, 3, length, crop, crop, generator=gen) * 2 - 1,
                "flow": torch.rand(batch, 2, length, crop, crop, generator=gen) * 2 - 1}

    def features(x: dict[str, torch.Tensor], dtype: torch.dtype | None) -> torch.Tensor:
        with torch.inference_mode():
            ctx = (torch.autocast(dev.type, dtype=dtype) if dtype is not None
                   else contextlib.nullcontext())
            with ctx:
                out = torch.cat([streams[s].features(x[s]) for s in ("rgb", "flow")], dim=1)
            return out.float()

    # device vs CPU, fp32, on the same weights and clips
    x_small = inputs(size["cpu_batch"])
    if on_gpu:
        cpu_out = features(x_small, None)
        for s in streams.values():
            s.net.to(dev)
        dev_out = features({k: v.to(dev) for k, v in x_small.items()}, None).cpu()
        diff = float((dev_out - cpu_out).abs().max() / cpu_out.abs().max())
        rec.figure("fp32 features, device vs CPU: max |diff| / max |f|", diff, "ratio",
                   batch=size["cpu_batch"])
        rec.check(f"I3D fp32 features on the device match the CPU's (<= {I3D_DEVICE_RTOL})",
                  diff <= I3D_DEVICE_RTOL, f"max |diff| / max |f| = {diff:.2e}")
    else:
        rec.check(f"I3D fp32 features on the device match the CPU's (<= {I3D_DEVICE_RTOL})",
                  None, "skipped: the device is the CPU")
    precisions: list[tuple[str, torch.dtype | None]] = [("fp32", None), ("bf16 autocast",
                                                                            torch.bfloat16)]
    if on_gpu:
        precisions.append(("fp16 autocast", torch.float16))
    else:
        rec.note("fp16 autocast is timed on CUDA only")
    for batch in size["batches"]:
        x = {k: v.to(dev) for k, v in inputs(batch).items()}
        reference = None
        for label, dtype in precisions:
            out = features(x, dtype)  # warm-up, untimed
            sync(dev)
            start = time.perf_counter()
            for _ in range(size["iters"]):
                out = features(x, dtype)
            sync(dev)
            rate = size["iters"] * batch / (time.perf_counter() - start)
            rec.figure(f"I3D two-stream {label} [batch {batch}]", rate, "snippets/s",
                       crop=crop, frames=length)
            finite = bool(torch.isfinite(out).all())
            if reference is None:
                reference = out
                rec.check(f"I3D fp32 features finite [batch {batch}]", finite,
                          f"{tuple(out.shape)} features")
                continue
            diff = float((out - reference).abs().max())
            scale = float(reference.abs().max())
            rec.figure(f"I3D {label} vs fp32: max |diff| [batch {batch}]", diff,
                       "feature units")
            rec.figure(f"I3D {label} vs fp32: max |diff| / max |f| [batch {batch}]",
                       diff / scale, "ratio")
            rec.check(f"I3D {label} features finite [batch {batch}]", finite,
                      f"max |diff| vs fp32 {diff:.3g} ({diff / scale:.2%} of max |f|)")


# ============================================================================================
# Part 4: the six localizers
# ============================================================================================
# ---- training adapter: the ONLY place that uses wtal.train's internals ---------------------
# (the model registry, the settings, the optimiser, the loss dispatch and the sampling of a
# training batch, as wtal.train.train's main loop uses them). When the training loop changes
# (e.g. a Localizer contract), adapt these four functions and nothing else.


def model_settings(name: str, *, max_snippets: int | None = None) -> tuple[dict[str, Any], Any]:
    """Builder args and TrainSettings of ``name`` for THUMOS14, resolved as the workflow does
    (with ``max_snippets``, training sequences are sampled or cropped to at most that many)."""
    import dataclasses

    from wtal.settings import resolve_model_settings, train_settings

    cfg = resolve_model_settings(REPO / "pipeline" / "config" / "models" / f"{name}.yaml",
                                 "thumos14")
    settings = train_settings(cfg["train"])
    if max_snippets is not None:
        settings = dataclasses.replace(
            settings, num_segments=min(settings.num_segments, max_snippets),
            max_seqlen=min(settings.max_seqlen, max_snippets))
    return dict(cfg["args"]), settings


def build_localizer(name: str, *, args: dict[str, Any], in_dim: int, num_classes: int) -> Any:
    """The model on the CPU, seeded, RGB columns first and flow second as the features give."""
    import torch

    from wtal.models import build_model, builder_parameters

    if "streams" in builder_parameters(name):
        args = {**args, "streams": {"rgb": [0, in_dim // 2], "flow": [in_dim // 2, in_dim]}}
    torch.manual_seed(0)
    return build_model(name, in_dim=in_dim, num_classes=num_classes, **args)


def batch_loss(net: Any, x: Any, mask: Any, labels: Any, *, settings: Any, epoch: int,
               reference: Any = None) -> Any:
    """The training loss of one batch (forward and the model's objective, Localizer.loss)."""
    loss, _ = net.loss(net(x, mask), labels, mask, epoch=epoch, reference=reference,
                       video_loss=settings.loss)
    return loss


def run_epoch(net: Any, feats: list[Any], labels: Any, *, settings: Any, epoch: int,
              device: Any, rng: Any) -> dict[str, Any]:
    """One epoch of the training loop (wtal.fitting.fit, with wtal.train's sampling or
    cropping); the model's pretrain step runs first and is timed apart."""
    from wtal.fitting import fit, random_crop
    from wtal.models.base import PretrainInputs
    from wtal.sampling import Sampling, sample, shot_boundaries
    from wtal.train import make_optimizer

    out: dict[str, Any] = {}
    start = time.perf_counter()
    pretrained = net.pretrain(PretrainInputs(videos=feats, labels=labels, trimmed=None,
                                             settings=settings, rng=rng, device=device))
    sync(device)
    out["pretrain_s"] = time.perf_counter() - start
    opt = make_optimizer(net, settings)
    sampler = Sampling(strategy=settings.sampling, num_segments=settings.num_segments)
    bounds = ([shot_boundaries(x, z=sampler.shot_z, min_shot=sampler.min_shot) for x in feats]
              if sampler.strategy == "shot" else None)

    def take(i: int, x: Any) -> Any:
        if sampler.strategy != "all":
            return sample(x, sampler, rng, bounds[i] if bounds else None)
        return random_crop(x, settings.max_seqlen, rng)

    losses: list[float] = []

    def loss_of(out_: Any, y: Any, mask: Any, epoch_: int, step: int) -> Any:
        loss, parts = net.loss(out_, y, mask, epoch=epoch + epoch_, step=step,
                               reference=pretrained.reference, video_loss=settings.loss)
        losses.append(float(loss.item()))
        return loss, parts

    start = time.perf_counter()
    fitted = fit(net, feats, labels, loss_of=loss_of, opt=opt, epochs=1,
                 batch_size=settings.batch_size, rng=rng, device=device, take=take,
                 name="gpu_check epoch")
    sync(device)
    out.update(epoch_s=time.perf_counter() - start, steps=fitted.steps,
               loss=float(sum(losses) / max(1, len(losses))))
    return out


# ---- end of the training adapter -------------------------------------------------------------


def model_names() -> list[str]:
    from wtal.models import list_models

    return list_models()


def step_batch(size: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The batch of the one-step comparison: (B, T, D) features, (B, T) mask, (B, C) labels."""
    import torch

    gen = torch.Generator().manual_seed(1)
    b, t = size["step_batch"], size["step_snippets"]
    x = torch.randn(b, t, size["dim"], generator=gen)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[-1, t * 3 // 4 :] = False  # one shorter video, padded
    labels = torch.zeros(b, size["classes"])
    labels[torch.arange(b), torch.randint(size["classes"], (b,), generator=gen)] = 1.0
    return x, mask, labels


def one_step(name: str, size: dict[str, Any], device: Any,
             state: dict[str, Any] | None) -> dict[str, Any]:
    """Loss and gradients of one training step (no dropout: the RNGs of two devices differ)
    at the last epoch's objective, from ``state`` (or the seeded weights)."""
    import torch

    args, settings = model_settings(name)
    net = build_localizer(name, args=args, in_dim=size["dim"], num_classes=size["classes"])
    if state is not None:
        net.load_state_dict(state)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    net.to(device).train()
    x, mask, labels = step_batch(size)
    x, mask, labels = x.to(device), mask.to(device), labels.to(device)
    sync(device)
    start = time.perf_counter()
    loss = batch_loss(net, x, mask, labels, settings=settings, epoch=max(settings.epochs - 1, 0))
    loss.backward()
    sync(device)
    seconds = time.perf_counter() - start
    grads = {k: p.grad.detach().cpu() for k, p in net.named_parameters() if p.grad is not None}
    return {"loss": float(loss.item()), "grads": grads, "state": state, "seconds": seconds}


def worker_models_reference(cfg: dict[str, Any], rec: Recorder) -> None:
    """The CPU side of the one-step comparison, in a process of its own (one thread)."""
    import torch

    threads = 1 if cfg["mode"] == "quick" else min(4, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    size = SIZES["models"][cfg["mode"]]
    for name in model_names():
        try:
            step = one_step(name, size, "cpu", None)
            torch.save(step, Path(cfg["scratch"]) / f"{name}.pt")
            rec.figure(f"{name} step on the CPU ({threads} thread{'s' if threads > 1 else ''})",
                       step["seconds"], "s", note="forward and backward, first call")
            rec.check(f"{name} CPU step", True, "written")
        except Exception as exc:  # recorded; the other models go on
            rec.check(f"{name} CPU step", False, f"{type(exc).__name__}: {exc}")


def compare_step(ref: dict[str, Any], got: dict[str, Any]) -> tuple[bool, dict[str, float], str]:
    """Loss and gradients of two steps against the tolerances; figures and a sentence."""
    dloss = abs(got["loss"] - ref["loss"])
    loss_ok = dloss <= LOSS_RTOL * max(1.0, abs(ref["loss"]))
    worst, worst_name, missing = 0.0, "", sorted(set(ref["grads"]) ^ set(got["grads"]))
    grads_ok = not missing
    for key, g_ref in ref["grads"].items():
        if key not in got["grads"]:
            continue
        delta = float((got["grads"][key] - g_ref).abs().max()) if g_ref.numel() else 0.0
        scale = float(g_ref.abs().max()) if g_ref.numel() else 0.0
        if delta > GRAD_RTOL * scale + GRAD_ATOL:
            grads_ok = False
        rel = delta / scale if scale > 0 else (0.0 if delta == 0 else math.inf)
        if rel > worst:
            worst, worst_name = rel, key
    figures = {"loss_abs_diff": dloss, "grad_max_rel_diff": worst}
    text = (f"loss {ref['loss']:.6g} vs {got['loss']:.6g} (|diff| {dloss:.2e}); largest "
            f"gradient difference {worst:.2e} of its tensor's max ({worst_name or '-'}), "
            f"{len(ref['grads'])} tensors")
    if missing:
        text += f"; gradients only on one side: {missing}"
    return loss_ok and grads_ok, figures, text


def part_models(cfg: dict[str, Any], rec: Recorder) -> None:
    import numpy as np
    import torch

    size = SIZES["models"][cfg["mode"]]
    dev = torch.device(cfg["device"])
    names = model_names()
    rec.set("data", {k: size[k] for k in ("videos", "snippets", "dim", "classes")} |
            {"features": "random normal, float32", "labels": "one random class per video"})
    rec.note(f"one step: batch {size['step_batch']} x {size['step_snippets']} snippets, one "
             f"shorter (padded), dropout off, the last epoch's objective; CPU side in a second "
             f"process (quick: one thread); TF32 off on the device for it; tolerances: loss "
             f"{LOSS_RTOL} relative, gradients {GRAD_RTOL} of each tensor's max + {GRAD_ATOL}")
    rec.note("epoch: wtal.train's main loop (THUMOS14 settings of each model's settings file), "
             "timed apart from the pretrain hook, which gets no trimmed clips (as train() "
             "without them: knowledge transfer off) and, for ASSG, one seed-network epoch"
             + ("; quick: sequences sampled or cropped to at most the snippets given"
                if cfg["mode"] == "quick" else ""))
    # CPU side of the one-step comparison, in a second process
    scratch = Path(cfg["scratch"])
    ref_result = scratch / "models-reference.json"
    limit = cfg["limit_s"] * 0.35
    started = cfg.get("t0", time.monotonic())
    proc = run_worker("models-reference", cfg, ref_result, limit, scratch / "ref.log")
    print((scratch / "ref.log").read_text()[-4000:], flush=True)
    if proc != 0:
        rec.note(f"the CPU reference process ended with status {proc} (None: out of time)")
    if ref_result.exists():
        for key, fig in json.loads(ref_result.read_text())["figures"].items():
            rec.figure(key, fig.pop("value"), fig.pop("unit"), **fig)
    rng = np.random.default_rng(0)  # the epoch's data, shared by the models
    feats = [rng.standard_normal((size["snippets"], size["dim"]), dtype=np.float32)
             for _ in range(size["videos"])]
    labels = np.zeros((size["videos"], size["classes"]), np.float32)
    labels[np.arange(size["videos"]), rng.integers(0, size["classes"], size["videos"])] = 1.0
    torch.backends.cuda.matmul.allow_tf32 = False
    allow_tf32 = torch.backends.cudnn.allow_tf32
    def share(n_done: int) -> float:
        """What is left of the part's time, shared by the models still to run."""
        left = cfg["limit_s"] - (time.monotonic() - started) - 2
        return max(left, 1.0) / (len(names) - n_done)

    for n_done, name in enumerate(names):
        try:
            with deadline(share(n_done)):
                ref_path = scratch / f"{name}.pt"
                if not ref_path.exists():
                    raise RuntimeError("the CPU reference step did not finish")
                ref = torch.load(ref_path, weights_only=True)
                torch.backends.cudnn.allow_tf32 = False
                try:
                    got = one_step(name, size, dev, ref["state"])
                finally:
                    torch.backends.cudnn.allow_tf32 = allow_tf32
                rec.figure(f"{name} step on the device ({dev.type})", got["seconds"], "s",
                           note="forward and backward, first call (start-up included)")
                ok, figures, text = compare_step(ref, got)
                rec.figure(f"{name} step: loss |diff|", figures["loss_abs_diff"], "loss units")
                rec.figure(f"{name} step: max gradient diff", figures["grad_max_rel_diff"],
                           "fraction of the tensor's max |g|")
                rec.check(f"{name}: one step, {dev.type} vs CPU, equal within tolerance", ok,
                          text)
        except Exception as exc:  # recorded; the other models go on
            rec.check(f"{name}: one step, {dev.type} vs CPU, equal within tolerance", False,
                      f"{type(exc).__name__}: {exc}")
        try:
            with deadline(share(n_done)):
                args, settings = model_settings(
                    name, max_snippets=size["snippets"] if cfg["mode"] == "quick" else None)
                if name == "assg":
                    args = {**args, "seed_epochs": 1}
                net = build_localizer(name, args=args, in_dim=size["dim"],
                                      num_classes=size["classes"]).to(dev)
                result = run_epoch(net, feats, labels, settings=settings,
                                   epoch=max(settings.epochs - 1, 0), device=dev,
                                   rng=np.random.default_rng(0))
                del net
                rec.figure(f"{name} epoch", result["epoch_s"], "s", steps=result["steps"],
                           batch_size=settings.batch_size, sampling=settings.sampling)
                if "pretrain_s" in result:
                    rec.figure(f"{name} pretrain hook", result["pretrain_s"], "s")
                rec.check(f"{name}: one epoch on {dev.type}, finite loss",
                          math.isfinite(result["loss"]),
                          f"{result['steps']} steps, mean loss {result['loss']:.4g}")
        except Exception as exc:  # recorded; the other models go on
            rec.check(f"{name}: one epoch on {dev.type}, finite loss", False,
                      f"{type(exc).__name__}: {exc}")
        if dev.type == "cuda":
            torch.cuda.empty_cache()


# ============================================================================================
# Part 5: the demo end to end (no torch here: it runs Snakemake)
# ============================================================================================

QUICK_DEMO = """\
# gpu_check --quick: a tiny demo (6 short, small videos), the rest as the demo
datasets:
  demo:
    synthetic: {seed: 1, n_validation: 4, n_test: 2, duration_range: [5.0, 6.0], width: 64,
                height: 48, n_trimmed_per_class: 1}
    features: {short_side: 48, crop: 48}
models:
  cas_baseline: {train: {epochs: 20}}
"""


def demo_command(workdir: Path, device: str, cores: int, override: Path | None,
                 *extra: str) -> list[str]:
    # the target first: --config, --configfile and --forcerun take every word that follows
    cmd = [sys.executable, "-m", "snakemake", DEMO_TARGET, "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--cores", str(cores), "--config", f"device={device}"]
    if override is not None:
        cmd += ["--configfile", str(override)]
    return [*cmd, *extra]


def compare_maps(ref: dict[str, Any], got: dict[str, Any]) -> tuple[bool, float, str]:
    """Whether two map.json agree within MAP_TOL at every tIoU; the largest difference."""
    diffs = [abs(a - b) for a, b in zip(ref["mAP"], got["mAP"], strict=True)]
    worst = max(diffs) if diffs else 0.0
    identical = ref == got
    text = ("identical map.json" if identical else
            f"map.json differs: mAP {[round(v, 4) for v in got['mAP']]} vs the CPU run's "
            f"{[round(v, 4) for v in ref['mAP']]}, largest difference {worst:.4f}")
    return worst <= MAP_TOL, worst, text


# ============================================================================================
# The harness: workers in process groups with time limits, the table and the JSON
# ============================================================================================

WORKERS: dict[str, Callable[[dict[str, Any], Recorder], None]] = {
    "tests": part_tests,
    "flow": part_flow,
    "i3d": part_i3d,
    "models": part_models,
    "models-reference": worker_models_reference,
}


def _pythonpath() -> str:
    rest = os.environ.get("PYTHONPATH")
    return str(REPO) + (os.pathsep + rest if rest else "")


def run_command(cmd: list[str], limit: float, log: Path, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> int | None:
    """Run ``cmd`` in its own process group; None when it ran out of time (group killed)."""
    with log.open("a") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            return proc.wait(timeout=max(limit, 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None


def run_worker(part: str, cfg: dict[str, Any], result: Path, limit: float, log: Path) -> int | None:
    config = result.with_suffix(".config.json")
    config.write_text(json.dumps({**cfg, "limit_s": limit}))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", part, "--worker-config",
           str(config), "--worker-result", str(result)]
    return run_command(cmd, limit, log, env={**os.environ, "PYTHONPATH": _pythonpath()},
                       cwd=REPO)


def worker_main(part: str, config: Path, result: Path) -> int:
    cfg = {**json.loads(config.read_text()), "t0": time.monotonic()}
    rec = Recorder(result)
    if part == INJECTED["hang"]:
        time.sleep(3600)
    try:
        if part == INJECTED["fail"]:
            raise RuntimeError("injected failure (--inject fail)")
        require_device(cfg["device"])
        WORKERS[part](cfg, rec)
    except Exception as exc:  # reported in the result; the run goes on
        rec.set("error", f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        return 1
    return 0


def part_status(found: dict[str, Any], rc: int | None) -> tuple[str, str]:
    checks = found.get("checks", [])
    if rc is None:
        return "timeout", "ran out of its time limit; the figures it had are kept"
    if found.get("error"):
        return "failed", found["error"]
    failed = [c["name"] for c in checks if c["status"] == "failed"]
    if failed:
        return "failed", f"failed checks: {', '.join(failed)}"
    if rc != 0:
        return "failed", f"exit status {rc}"
    if checks and all(c["status"] == "skipped" for c in checks):
        return "skipped", "; ".join(c["detail"] for c in checks)
    return "passed", ""


def environment(device: str) -> dict[str, Any]:
    """GPU name, torch, CUDA and cuDNN versions, OpenCV, Python, CPU, the code's commit."""
    import cv2
    import torch

    import wtal

    env: dict[str, Any] = {
        "device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(), "opencv": cv2.__version__,
        "python": platform.python_version(), "cpu_cores": os.cpu_count(),
        "wtal": wtal.__version__,
    }
    with contextlib.suppress(OSError):
        names = [line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        env["cpu"] = names[0] if names else platform.processor()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   gpu_count=torch.cuda.device_count(),
                   gpu_capability=f"{props.major}.{props.minor}")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,"
                                  "noheader"], capture_output=True, text=True, timeout=20)
            env["driver"] = smi.stdout.strip() or None
    else:
        env["gpu"] = None
        env["gpu_reason"] = "torch.cuda.is_available() is False"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=20)
        env["commit"] = git.stdout.strip() or None
    return env


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.out = Path(args.out)
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu_check_"))
        self.t0 = time.monotonic()
        self.budget = args.budget if args.budget is not None else BUDGET_S[self.mode]
        self.report: dict[str, Any] = {
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "mode": self.mode, "device": args.device, "budget_s": self.budget,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "parts": {},
        }
        self.demo_ref: tuple[subprocess.Popen[bytes], Path, float] | None = None

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.t0)

    def limit(self, part: str) -> float:
        limits = {**LIMITS[self.mode], **INJECTED_LIMITS, **self.args.limit}
        return max(0.0, min(limits[part], self.left()))

    def save(self) -> None:
        path = self.out / "gpu_check.json"
        tmp = path.with_name(".gpu_check.json.tmp")
        tmp.write_text(json.dumps(self.report, indent=1, default=_jsonable))
        tmp.replace(path)

    def record(self, part: str, found: dict[str, Any], status: str, reason: str,
               seconds: float, limit: float) -> None:
        self.report["parts"][part] = {"status": status, "reason": reason,
                                      "seconds": round(seconds, 2), "limit_s": round(limit, 1),
                                      **found}
        self.save()
        print(f"[{time.monotonic() - self.t0:6.1f} s] {part}: {status}"
              + (f" ({reason[:200]})" if reason else ""), flush=True)

    def run_part(self, part: str) -> None:
        limit = self.limit(part)
        if limit < 1:
            self.record(part, {}, "timeout", "no time left in the budget", 0.0, limit)
            return
        result = self.scratch / f"{part}.json"
        cfg = {"device": self.args.device, "mode": self.mode,
               "scratch": str(self.scratch / part)}
        Path(cfg["scratch"]).mkdir(exist_ok=True)
        start = time.monotonic()
        rc = run_worker(part, cfg, result, limit, self.logs / f"{part}.log")
        found = json.loads(result.read_text()) if result.exists() else {}
        status, reason = part_status(found, rc)
        self.record(part, found, status, reason, time.monotonic() - start, limit)

    # -- part 5 ----------------------------------------------------------------------------

    def demo_override(self) -> Path | None:
        if self.mode == "full":
            return None
        path = self.scratch / "quick_demo.yaml"
        path.write_text(QUICK_DEMO)
        return path

    def start_demo_reference(self) -> None:
        """The CPU run of the demo, started first and run beside parts 1-4 (niced, on all but
        four cores) in full mode, so that part 5 only waits for the device run."""
        workdir = self.scratch / "demo-cpu"
        cores = max(1, (os.cpu_count() or 2) - 4) if self.mode == "full" else (os.cpu_count() or 2)
        cmd = demo_command(workdir, "cpu", cores, self.demo_override())
        if self.mode == "full":
            cmd = ["nice", "-n", "19", *cmd]
        log = (self.logs / "demo-cpu.log").open("w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": _pythonpath()}, cwd=REPO)
        self.demo_ref = (proc, workdir, time.monotonic())

    def run_demo(self) -> None:
        limit = self.limit("demo")
        start = time.monotonic()
        found: dict[str, Any] = {"figures": {}, "checks": [], "notes": []}
        status, reason = "passed", ""
        try:
            status, reason = self._demo(found, start + limit)
        except Exception as exc:  # recorded; the report is still written
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            if self.demo_ref is not None and self.demo_ref[0].poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.demo_ref[0].pid, signal.SIGKILL)
                self.demo_ref[0].wait()
        if status != "passed":  # keep the workflow's own job logs
            for run in ("demo-cpu", "demo-device"):
                if (self.scratch / run / "logs").is_dir():
                    shutil.copytree(self.scratch / run / "logs", self.logs / f"{run}-jobs",
                                    dirs_exist_ok=True)
        self.record("demo", found, status, reason, time.monotonic() - start, limit)

    def _demo(self, found: dict[str, Any], end: float) -> tuple[str, str]:
        assert self.demo_ref is not None
        ref_proc, ref_dir, ref_start = self.demo_ref
        dev = self.args.device
        figures, checks, notes = found["figures"], found["checks"], found["notes"]
        override = self.demo_override()
        if self.mode == "quick":
            notes.append("quick: a tiny demo (tests' override, 6 videos of 5-6 s at 64x48); "
                         "the CPU run first, then the device run retrains (train, infer, "
                         "evaluate) on a copy of its features")
        else:
            notes.append(f"full: the demo as configured, device {dev} end to end in a fresh "
                         f"folder with all cores; the CPU run started at the beginning, niced")
        # in quick mode the reference run comes first and the device run reuses its features
        if self.mode == "quick":
            rc = _wait(ref_proc, end - time.monotonic())
            if rc is None:
                return "timeout", "the CPU run of the demo ran out of time"
            figures["demo CPU run"] = {"value": time.monotonic() - ref_start, "unit": "s"}
            if rc != 0:
                return "failed", f"the CPU run of the demo failed (exit {rc}, logs/demo-cpu.log)"
            dev_dir = self.scratch / "demo-device"
            shutil.copytree(ref_dir, dev_dir, symlinks=True)
            extra: tuple[str, ...] = ("--forcerun", "train")
        else:
            dev_dir, extra = self.scratch / "demo-device", ()
        cmd = demo_command(dev_dir, dev, os.cpu_count() or 2, override, *extra)
        start = time.monotonic()
        rc = run_command(cmd, end - time.monotonic(), self.logs / "demo-device.log",
                         env={**os.environ, "PYTHONPATH": _pythonpath()}, cwd=REPO)
        seconds = time.monotonic() - start
        if rc is None:
            return "timeout", f"the device run of the demo ran out of time after {seconds:.0f} s"
        figures[f"demo {dev} run"] = {"value": seconds, "unit": "s",
                                      "scope": "train, infer, evaluate" if extra else
                                      "end to end"}
        if rc != 0:
            return "failed", f"the device run failed (exit {rc}, logs/demo-device.log)"
        checks.append({"name": f"demo with device {dev} completes", "status": "passed",
                       "detail": f"{DEMO_TARGET} in {seconds:.1f} s"})
        if self.mode == "full":
            rc = _wait(ref_proc, end - time.monotonic())
            if rc is None:
                return "timeout", "the CPU run of the demo did not finish in time"
            figures["demo CPU run"] = {"value": time.monotonic() - ref_start, "unit": "s",
                                       "scope": "end to end, niced, beside parts 1-4"}
            if rc != 0:
                return "failed", f"the CPU run of the demo failed (exit {rc}, logs/demo-cpu.log)"
        ref = json.loads((ref_dir / DEMO_TARGET).read_text())
        got = json.loads((dev_dir / DEMO_TARGET).read_text())
        ok, worst, text = compare_maps(ref, got)
        figures["demo mAP largest |diff| vs CPU"] = {"value": worst, "unit": "mAP"}
        figures["demo map.json identical to CPU's"] = {"value": ref == got, "unit": "bool"}
        figures[f"demo mAP@0.5 ({dev})"] = {"value": got["mAP"][4] if len(got["mAP"]) > 4
                                             else None, "unit": "mAP"}
        checks.append({"name": f"demo map.json within {MAP_TOL} of the CPU run's", "status":
                       "passed" if ok else "failed", "detail": text})
        return ("passed", "") if ok else ("failed", text)

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.report["environment"] = environment(self.args.device)
        except Exception as exc:  # the parts still run
            self.report["environment"] = {"error": f"{type(exc).__name__}: {exc}"}
        self.save()
        parts = [INJECTED[k] for k in self.args.inject] + list(self.args.parts)
        if "demo" in parts:
            self.start_demo_reference()
        try:
            for part in parts:
                if part == "demo":
                    self.run_demo()
                else:
                    self.run_part(part)
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
        wall = time.monotonic() - self.t0
        statuses = [p["status"] for p in self.report["parts"].values()]
        self.report.update(wall_s=round(wall, 1), within_budget=wall <= self.budget,
                           passed=all(s in ("passed", "skipped") for s in statuses),
                           summary={s: statuses.count(s) for s in sorted(set(statuses))})
        self.save()
        print(table(self.report))
        print(f"\nwritten: {self.out / 'gpu_check.json'} ({wall:.0f} s)")
        return 0 if self.report["passed"] else 1


INJECTED_LIMITS = {INJECTED["fail"]: 60, INJECTED["hang"]: INJECTED_LIMIT_S}


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return proc.wait(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        return None


def _value(fig: dict[str, Any]) -> str:
    value = fig.get("value")
    if value is None:
        return "n/a (" + str(fig.get("reason", "not measured")) + ")"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    """The report as a plain-text table: per part its status, checks and figures."""
    env = report.get("environment", {})
    lines = [f"GPU: {env.get('gpu') or 'none'}; torch {env.get('torch')}, CUDA "
             f"{env.get('cuda')}, cuDNN {env.get('cudnn')}; device {report['device']}, "
             f"mode {report['mode']}; CPU: {env.get('cpu')} x {env.get('cpu_cores')}", ""]
    rows = [("part", "what", "value", "unit / status")]
    for part, found in report["parts"].items():
        rows.append((part, f"[{found['status']}] {found['reason'][:70]}",
                     f"{found['seconds']:.1f}", f"s (limit {found['limit_s']:.0f} s)"))
        for check in found.get("checks", []):
            rows.append(("", check["name"][:78], "", check["status"]))
        for name, fig in found.get("figures", {}).items():
            rows.append(("", name[:78], _value(fig)[:60], fig.get("unit", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        lines.append(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    lines.append(f"\nwall {report.get('wall_s')} s of a {report['budget_s']} s budget; "
                 f"{report.get('summary')}")
    return "\n".join(lines)


def _limits(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, text.split(",")):
        part, _, seconds = item.partition("=")
        out[part.strip()] = float(seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="folder for gpu_check.json and logs/")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a few minutes on two CPU cores (CI)")
    parser.add_argument("--parts", type=lambda s: [p for p in s.split(",") if p],
                        default=list(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole command (full 470, quick 480)")
    parser.add_argument("--limit", type=_limits, default={},
                        help="per-part limits in seconds, e.g. 'flow=60,models=90'")
    parser.add_argument("--inject", type=lambda s: [p for p in s.split(",") if p], default=[],
                        help="test the harness: 'fail' adds a part that raises, 'hang' one "
                        "that never ends (killed after its limit)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-config", help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, Path(args.worker_config), Path(args.worker_result))
    if not args.out:
        parser.error("the output folder is required")
    unknown = [p for p in args.parts if p not in PARTS]
    bad_inject = [k for k in args.inject if k not in INJECTED]
    if unknown or bad_inject:
        parser.error(f"unknown parts {unknown} (known: {', '.join(PARTS)}) or --inject "
                     f"{bad_inject} (fail, hang)")
    return Harness(args).run()


if __name__ == "__main__":
    sys.exit(main())
