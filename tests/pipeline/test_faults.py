"""Faults: bad videos, killed runs, bad detections and features, bad configs, determinism.

- A dataset of good and broken videos runs with ``--keep-going``: each broken video fails with
  an error naming it, the others go on, and nothing a failed job wrote looks finished.
- The tiny demo killed (SIGKILL, like a lost node) in the middle of flow, features and
  training, then rerun, resumes and ends with results identical to an uninterrupted run.
- Detections with unknown labels or negative / empty segments, features with NaN / inf, and a
  config naming an unknown model or a missing path are clear errors, the last before any job.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_video

from extractors.features import load_features
from wtal.evaluate import evaluate
from wtal.infer import InferSettings, infer
from wtal.train import TrainSettings, train
from wtalio import read_json, write_json

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "pipeline" / "slurm_config.yaml"  # 6 short videos, every stage
TARGET = "results/demo/cas_baseline/map.json"
PROFILE = REPO / "pipeline" / "profiles" / "default"
TIMEOUT = 600


def snakemake_cmd(workdir: Path, *args: str, configs: tuple[Path, ...] = (TINY,)) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--workflow-profile", str(PROFILE),
            "--configfile", *map(str, configs), "--cores", "2", *args]


def run(workdir: Path, *args: str, configs: tuple[Path, ...] = (TINY,),
        check: bool = True) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(workdir, *args, configs=configs)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


def temporaries(folder: Path) -> list[Path]:
    """Files an atomic writer has not renamed into place (``.<name>.<random>.tmp*``)."""
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


# ---- broken videos, --keep-going -------------------------------------------------------------

FPS = 25


def moving_frames(n: int, seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A textured square drifting over noise: real motion for the flow, cheap to encode."""
    rng = np.random.default_rng(seed)
    base = (rng.random((height, width * 2, 3)) * 255).astype(np.uint8)
    return np.stack([base[:, i % width : i % width + width] for i in range(n)])


def garbled(good: Path, out: Path) -> Path:
    """``good`` with the payload of its ``mdat`` box overwritten: a valid container whose frames
    cannot be decoded."""
    data = bytearray(good.read_bytes())
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = np.random.default_rng(0).integers(
        0, 256, size - 8, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def audio_only(out: Path) -> Path:
    import av

    with av.open(str(out), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = 44100
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


#: broken video -> what the index stage's one error says of it (besides its file's path): every
#: breakage that a container's header shows is reported there, all videos at once
AT_INDEX = {
    "v_corrupt": "cannot be opened as a video container",
    "v_truncated": "cannot be opened as a video container",
    "v_empty": "zero-length file",
    "v_audio": "has no video stream",
    "v_short": f"0.400 s long, 10 frame(s) at {FPS} fps; one snippet needs 16",
}
#: broken video -> (failing stage, what its log says): breakage only decoding shows
AT_DECODE = {"v_garbled": ("decode", "cannot be decoded")}
BROKEN = {**AT_INDEX, **AT_DECODE}
GOOD = ["v_train1", "v_train2", "v_vfr", "v_test1"]
FOLDER = "v_folder"  # a directory named like a video: the index records it as missing


@pytest.fixture(scope="module")
def broken_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, tuple[subprocess.CompletedProcess, str], subprocess.CompletedProcess]:
    """An ActivityNet-format dataset of 4 good and 6 broken videos and a folder. First run: the
    index stage fails, listing the five whose headers show it; second run, with those in
    ``known_bad.exclude`` as the error says: to features with --keep-going."""
    root = tmp_path_factory.mktemp("broken_dataset")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "v_train1.mp4", moving_frames(75, 1), fps=FPS)
    write_video(videos / "v_train2.mp4", moving_frames(75, 2), fps=FPS)
    write_video(videos / "v_test1.mp4", moving_frames(75, 3), fps=FPS)
    times = [0.04 * i for i in range(40)] + [1.6 + 0.08 * i for i in range(20)]  # VFR, 3.2 s
    write_video(videos / "v_vfr.mp4", moving_frames(60, 4), fps=FPS, timestamps=times)
    write_video(videos / "v_short.mp4", moving_frames(10, 5), fps=FPS)  # 0.4 s: 10 frames
    good = (videos / "v_train1.mp4").read_bytes()
    (videos / "v_corrupt.mp4").write_bytes(np.random.default_rng(1).bytes(20_000))
    (videos / "v_truncated.mp4").write_bytes(good[: len(good) // 3])
    (videos / "v_empty.mp4").write_bytes(b"")
    (videos / f"{FOLDER}.mp4").mkdir()
    garbled(videos / "v_train1.mp4", videos / "v_garbled.mp4")
    audio_only(videos / "v_audio.mp4")
    subsets = {"v_test1": "validation", "v_short": "validation"}
    database = {
        name.removeprefix("v_"): {
            "subset": subsets.get(name, "training"),
            "duration": 3.0,
            "annotations": [{"segment": [0.5, 2.0], "label": "Drift" if i % 2 else "Slide"}],
        }
        for i, name in enumerate([*GOOD, *BROKEN, FOLDER])
    }
    write_json(root / "anet.json", {"version": "test", "database": database})
    dataset = {
        "format": "activitynet", "root": str(root), "annotations": "anet.json",
        "videos": "videos", "video_prefix": "v_", "trimmed": None, "fps": FPS,
        "subsets": [{"name": "training", "split": "train"},
                    {"name": "validation", "split": "test"}],
        "flow": {"algorithm": "tvl1", "backend": "opencv", "bound": 20, "codec": "jpg",
                 "params": {"nscales": 1, "warps": 1, "inner_iterations": 5,
                            "outer_iterations": 1}},
        "features": {"extractor": "i3d", "snippet_length": 16, "snippet_stride": 16,
                     "short_side": 48, "crop": 48, "seed": 0, "batch_size": 8,
                     "weights": {"rgb": "none", "flow": "none"}},
        "evaluation": {"protocol": "anet", "protocols": ["anet"], "tiou": [0.5]},
    }
    config = root / "config.yaml"
    config.write_text(json.dumps({"targets": [{"dataset": "broken", "model": "cas_baseline"}],
                                  "datasets": {"broken": dataset}}))
    workdir = tmp_path_factory.mktemp("broken_run")
    targets = [f"work/broken/features/i3d/{v}.npy" for v in GOOD + list(AT_DECODE)]
    first = run(workdir, "--keep-going", *targets, configs=(config,), check=False)
    first_log = (workdir / "logs" / "broken" / "index.log").read_text()  # the rerun rewrites it
    excluded = root / "excluded.yaml"
    excluded.write_text(json.dumps({"datasets": {"broken": {
        "known_bad": {"exclude": sorted(AT_INDEX)}}}}))
    second = run(workdir, "--keep-going", *targets, configs=(config, excluded), check=False)
    return workdir, (first, first_log), second


def test_the_index_lists_every_unusable_video_at_once(broken_run) -> None:
    _, (first, log), _ = broken_run
    assert first.returncode != 0
    assert "rule decode:" not in first.stdout + first.stderr  # nothing ran after the index
    assert f"{len(AT_INDEX)} video(s) cannot be used" in log
    for video, message in AT_INDEX.items():
        assert f"  {video}: " in log, (video, log[-3000:])
        assert f"{video}.mp4: {message}" in log, (video, log[-3000:])
    assert "v_garbled:" not in log  # its header is sound: decode finds it
    assert f"exclude: [{', '.join(sorted(AT_INDEX))}]" in log
    assert "known_bad" in log


def test_each_video_broken_inside_fails_at_decode_naming_the_file(broken_run) -> None:
    workdir, _, second = broken_run
    output = second.stdout + second.stderr
    assert second.returncode != 0
    for video, (stage, message) in AT_DECODE.items():
        text = (workdir / "logs" / "broken" / stage / f"{video}.log").read_text()
        assert f"{video}.mp4" in text, (video, text[-2000:])
        assert message in text, (video, text[-2000:])
        assert f"video={video}" in output  # Snakemake's error block names the job
    index = read_json(workdir / "work/broken/index.json")
    assert set(index["videos"]) == set(GOOD) | set(AT_DECODE)
    assert sorted(e["video"] for e in index["excluded"]) == sorted(AT_INDEX)
    # a documented, recorded skip: the folder is no video file, so the video is "missing"
    assert [m["video"] for m in index["missing"]] == [FOLDER]
    assert "no file" in index["missing"][0]["reason"]


def test_the_other_videos_go_on(broken_run) -> None:
    workdir, _, _ = broken_run
    for video in GOOD:
        features, sidecar = load_features(workdir / f"work/broken/features/i3d/{video}.npy")
        assert features.shape[1] == 2048
        assert sidecar["shape"][0] == features.shape[0] >= 4
    plan = read_json(workdir / "work/broken/decode/v_vfr.json")
    assert plan["variable_frame_rate"] is True  # handled through the timestamps, and flagged
    assert plan["duration"] == pytest.approx(3.2, abs=0.08)  # from the real timestamps
    assert plan["n_frames"] == math.ceil(plan["duration"] * FPS - 1e-6)
    assert read_json(workdir / "work/broken/decode/v_train1.json")["variable_frame_rate"] is False


def test_failed_jobs_leave_nothing_that_looks_finished(broken_run) -> None:
    workdir, _, _ = broken_run
    work = workdir / "work" / "broken"
    for video in BROKEN:
        assert not (work / "features" / "i3d" / f"{video}.npy").exists()
        assert not (work / "features" / "i3d" / f"{video}.json").exists()
        assert not (work / "decode" / f"{video}.json").exists()
        assert not (work / "flow" / f"{video}.zip").exists()
    assert temporaries(workdir / "work") == []


# ---- killed in the middle, resumed -----------------------------------------------------------


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo, uninterrupted."""
    workdir = tmp_path_factory.mktemp("reference")
    run(workdir, TARGET)
    return workdir


def running_outputs(workdir: Path) -> set[str]:
    """Outputs of the jobs Snakemake has started and not finished (its incomplete markers)."""
    folder = workdir / ".snakemake" / "incomplete"
    found = set()
    for marker in folder.rglob("*") if folder.is_dir() else []:
        if marker.is_file() and marker.name != "migration_underway":
            with contextlib.suppress(ValueError):
                found.add(base64.urlsafe_b64decode(marker.name).decode())
    return found


def kill_when(workdir: Path, ready: Callable[[set[str]], bool], *, linger: float) -> None:
    """Start the workflow; once ``ready(running outputs)`` holds, wait ``linger`` s and SIGKILL
    Snakemake and all its jobs at once, like a node that disappears."""
    cmd = snakemake_cmd(workdir, TARGET)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + TIMEOUT
    try:
        while not ready(running_outputs(workdir)):
            if proc.poll() is not None:
                raise AssertionError(f"the workflow ended before the kill point:\n"
                                     f"{proc.stderr.read()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("kill point not reached in time")
            time.sleep(0.05)
        time.sleep(linger)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()


def assert_outputs_are_whole(workdir: Path) -> None:
    """Every output that exists after a kill is complete: killed writers left only temporaries."""
    work = workdir / "work" / "demo"
    for path in (work / "decode").glob("*.json"):
        assert read_json(path)["n_frames"] > 0
    for path in (work / "flow").glob("*.zip"):
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None
            assert json.loads(archive.read("meta.json"))["n_flows"] > 0
    for path in (work / "features" / "i3d").glob("*.npy"):
        assert np.isfinite(np.load(path)).all()
    model = workdir / "results/demo/cas_baseline/model.pt"
    if model.exists():
        assert "state_dict" in torch.load(model, map_location="cpu", weights_only=False)


def same_outputs(a: Path, b: Path) -> None:
    """Every stage's outputs are identical, compared in pipeline order so that a failure names
    the first stage that differs."""
    for rel in ("work/demo/index.json", "work/demo/gt.json"):
        assert read_json(a / rel) == read_json(b / rel), rel
    for sub, pattern in (("work/demo/decode", "*.json"), ("work/demo/flow", "*.zip"),
                         ("work/demo/features/i3d", "*")):
        files = sorted(p.name for p in (a / sub).glob(pattern))
        assert files == sorted(p.name for p in (b / sub).glob(pattern)), sub
        assert files, sub
        for name in files:
            assert (a / sub / name).read_bytes() == (b / sub / name).read_bytes(), f"{sub}/{name}"
    ma = torch.load(a / "results/demo/cas_baseline/model.pt", weights_only=False)
    mb = torch.load(b / "results/demo/cas_baseline/model.pt", weights_only=False)
    assert ma["state_dict"].keys() == mb["state_dict"].keys()
    for key, value in ma["state_dict"].items():
        assert torch.equal(value, mb["state_dict"][key]), key
    for rel in ("results/demo/cas_baseline/detections.json", TARGET):
        assert read_json(a / rel) == read_json(b / rel), rel


@pytest.mark.slow
def test_killed_in_flow_features_and_training_resumes_to_identical_results(
    reference_run: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "killed"
    workdir.mkdir()
    stages = [
        ("flow", lambda r: any(o.startswith("work/demo/flow/") for o in r), 1.0),
        ("features", lambda r: any(o.startswith("work/demo/features/") for o in r), 1.5),
        ("train", lambda r: "results/demo/cas_baseline/model.pt" in r, 1.5),
    ]
    for stage, ready, linger in stages:
        kill_when(workdir, ready, linger=linger)
        assert not (workdir / TARGET).exists(), f"killed in {stage} too late"
        assert_outputs_are_whole(workdir)
        # a killed Snakemake leaves its lock: the documented first step is to remove it
        run(workdir, "--unlock")
    if not (workdir / "results/demo/cas_baseline/model.pt").exists():
        # killed inside training: nothing was saved, the rerun trains from the start
        assert not (workdir / "results/demo/cas_baseline/train.json").exists()
    proc = run(workdir, TARGET)  # the default profile reruns incomplete jobs
    assert "train" in proc.stdout + proc.stderr
    same_outputs(workdir, reference_run)
    assert temporaries(workdir / "work") == []
    assert temporaries(workdir / "results") == []


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_map_twice(reference_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    shutil.copytree(reference_run, again, symlinks=True)
    (again / TARGET).unlink()
    run(again, TARGET, "--forcerun", "train")  # train, infer, evaluate once more, on the CPU
    assert read_json(again / TARGET) == read_json(reference_run / TARGET)
    same_outputs(again, reference_run)


# ---- bad detections, bad features ------------------------------------------------------------


@pytest.fixture
def gt_and_detections(reference_run: Path) -> tuple[Path, dict]:
    """The reference run's ground truth, and a fresh copy of its detections."""
    return reference_run / "work/demo/gt.json", read_json(
        reference_run / "results/demo/cas_baseline/detections.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": "NoSuchClass"},
         r"labels that are not classes of the dataset: \['NoSuchClass'\]"),
        ({"segment": [-1.0, 2.0]}, "starts before 0 s"),
        ({"segment": [3.0, 3.0]}, r"is empty or inverted \(end <= start\)"),
        ({"segment": [4.0, 2.0]}, r"is empty or inverted \(end <= start\)"),
        ({"segment": [1.0, float("nan")]}, "is not finite"),
    ],
)
def test_strict_evaluation_refuses_bad_detections(
    gt_and_detections: tuple[Path, dict], tmp_path: Path, change: dict, message: str
) -> None:
    gt, det = gt_and_detections
    video = next(v for v, d in det["results"].items() if d)
    det["results"][video][0].update(change)
    path = tmp_path / "bad_detections.json"
    path.write_text(json.dumps(det))
    with pytest.raises(ValueError, match=message) as info:
        evaluate(gt, path, subset="test", tious=[0.5], strict=True)
    assert str(path) in str(info.value)
    if "segment" in change and np.isfinite(change["segment"]).all():
        assert repr(video) in str(info.value)


@pytest.mark.slow
def test_evaluate_stage_refuses_unknown_labels(reference_run: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "bad_labels"
    shutil.copytree(reference_run, workdir, symlinks=True)
    detections = workdir / "results/demo/cas_baseline/detections.json"
    det = read_json(detections)
    for dets in det["results"].values():
        for d in dets:
            d["label"] = d["label"].upper()
    write_json(detections, det)  # newer than map.json: evaluate reruns, infer does not
    proc = run(workdir, TARGET, check=False)
    assert proc.returncode != 0
    log = (workdir / "logs/demo/cas_baseline/evaluate.log").read_text()
    assert "labels that are not classes of the dataset" in log
    assert str(Path("results/demo/cas_baseline/detections.json")) in log
    assert not (workdir / TARGET).exists()  # the old map.json is not left looking current


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused_naming_the_file(
    reference_run: Path, tmp_path: Path, bad: float
) -> None:
    index = reference_run / "work/demo/index.json"
    source = reference_run / "work/demo/features/i3d"
    names = sorted(p.stem for p in source.glob("video_validation_*.npy"))
    feats = tmp_path / "features"
    shutil.copytree(source, feats)
    x = np.load(feats / f"{names[1]}.npy")
    x[2, 7] = bad
    np.save(feats / f"{names[1]}.npy", x)
    with pytest.raises(ValueError, match="non-finite feature values") as info:
        train(index, [feats / f"{n}.npy" for n in names], tmp_path / "m.pt", tmp_path / "t.json",
              model="cas_baseline", model_args={"hidden": 16}, settings=TrainSettings(epochs=1),
              device="cpu")
    assert f"{names[1]}.npy" in str(info.value)
    assert "first at snippet 2" in str(info.value)
    assert not (tmp_path / "m.pt").exists()
    with pytest.raises(ValueError, match="non-finite feature values") as info:
        infer(reference_run / "results/demo/cas_baseline/model.pt",
              [feats / f"{n}.npy" for n in names], tmp_path / "det.json", tmp_path / "cas",
              settings=InferSettings(), device="cpu")
    assert f"{names[1]}.npy" in str(info.value)
    assert not (tmp_path / "det.json").exists()


# ---- bad configs: refused before any job starts ----------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("targets: [{dataset: demo, model: nosuch}]", "unknown model 'nosuch'"),
        ("models: {nosuch: {train: {lr: 0.1}}}", "config models: 'nosuch' is not a model"),
        ("datasets: {demo: {features: {weights: {rgb: /nonexistent/rgb_imagenet.pt}}}}",
         "dataset demo: features.weights.rgb /nonexistent/rgb_imagenet.pt does not exist"),
        ("targets: [{dataset: thumos14, model: cas_baseline}]\n"
         "datasets: {thumos14: {root: /nonexistent/thumos14}}",
         "dataset thumos14: root /nonexistent/thumos14 does not exist"),
    ],
)
def test_bad_config_is_refused_before_any_job(tmp_path: Path, override: str, message: str) -> None:
    config = tmp_path / "override.yaml"
    config.write_text(override + "\n")
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = run(workdir, configs=(TINY, config), check=False)  # a real run, not a dry run
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workdir / "work").exists()  # no job ran (synth_demo would create work/demo)
    assert not (workdir / "logs").exists()


def test_a_rerun_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    """A writer killed inside ``atomic_path`` leaves its temporary file; the next write of the
    same target removes it, and never touches another target's temporaries."""
    import tempfile

    from wtalio import temporaries_of

    target = tmp_path / "v.json"
    fd, stale = tempfile.mkstemp(prefix=".v.json.", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    other = tmp_path / ".v.json.gz.abcdefgh.tmp"  # a temporary of v.json.gz
    other.write_text("x")
    assert temporaries_of(target) == [Path(stale)]
    write_json(target, {"ok": True})
    assert read_json(target) == {"ok": True}
    assert not Path(stale).exists()
    assert other.exists()
    assert temporaries_of(target) == []
