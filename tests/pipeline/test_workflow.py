"""End to end: the Snakemake workflow on a tiny demo, its caching, lint, and sensitivity."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wtal.evaluate import evaluate
from wtal.infer import InferSettings, infer
from wtalio import read_json, write_json

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "pipeline" / "config.yaml"
TARGET = "results/demo/cas_baseline/map.json"

pytestmark = pytest.mark.slow


def snakemake(
    workdir: Path, *args: str, override: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the workflow on the test config (plus an ``override`` config file) in ``workdir``."""
    configs = [str(CONFIG)] + ([str(override)] if override else [])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", *configs, "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-8000:]}")
    return proc


def planned_rules(output: str) -> set[str]:
    """Rules a dry run would execute, from its job stats table."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.MULTILINE)}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir, TARGET)
    return workdir


def test_demo_produces_map(demo_run: Path) -> None:
    result = read_json(demo_run / TARGET)
    assert result["dataset"] == "demo"
    assert result["model"] == "cas_baseline"
    assert result["protocol"] == "anet"
    assert result["tiou"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert len(result["mAP"]) == 7
    assert set(result["protocols"]) >= {"anet"}
    assert 0.0 <= result["classification"]["mAP"] <= 1.0
    # a small demo still localises far above chance
    assert result["mAP"][4] > 0.5, result["mAP"]
    for stage in ("decode", "flow", "features"):
        assert any((demo_run / "benchmarks" / "demo" / stage).rglob("*.tsv"))
    sidecar = next((demo_run / "work/demo/features/i3d").glob("*.json"))
    side = read_json(sidecar)
    assert side["weights"]["rgb"]["source"] == "none"
    assert side["grid"]["fps"] == 25


def test_only_video_level_labels_reach_training(demo_run: Path) -> None:
    index = read_json(demo_run / "work/demo/index.json")
    text = json.dumps(index)
    assert "segment" not in text
    assert "annotations" not in text
    log = read_json(demo_run / "results/demo/cas_baseline/train.json")
    assert set(log["videos"]) == {v for v, r in index["videos"].items() if r["split"] == "train"}


def test_second_run_has_nothing_to_do(demo_run: Path) -> None:
    proc = snakemake(demo_run, TARGET, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_a_training_parameter_reruns_only_downstream(
    demo_run: Path, tmp_path: Path
) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("models: {cas_baseline: {train: {lr: 0.002}}}\n")
    proc = snakemake(demo_run, TARGET, "--dry-run", override=override)
    assert planned_rules(proc.stdout) == {"train", "infer", "evaluate"}


def test_changing_a_flow_parameter_reruns_flow_and_after(demo_run: Path, tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("datasets: {demo: {flow: {params: {warps: 3}}}}\n")
    proc = snakemake(demo_run, TARGET, "--dry-run", override=override)
    assert planned_rules(proc.stdout) == {"flow", "features", "train", "infer", "evaluate"}


def test_a_new_frame_plan_version_reruns_decode_flow_and_features(
    demo_run: Path, tmp_path: Path
) -> None:
    """A copy of the code whose plan version is bumped: a dry run on the finished workflow plans
    decode, flow, features and everything after them; the unchanged copy plans nothing. (Code
    hashes are left out of the triggers: a copy's rule scripts live at another path.)"""
    code = tmp_path / "code"
    ignore = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "work", "results",
                                    "logs", ".snakemake", "benchmarks")
    code.mkdir()
    for item in ("Snakefile", "pipeline", "extractors", "wtal", "wtalio"):
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, code / item, ignore=ignore)
        else:
            shutil.copy2(source, code / item)

    def dry_run() -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "snakemake", TARGET, "--snakefile", str(code / "Snakefile"),
               "--directory", str(demo_run), "--configfile", str(CONFIG), "--cores", "1",
               "--dry-run", "--rerun-triggers", "mtime", "params", "input"]
        env = {**os.environ, "PYTHONPATH": str(code)}
        # cwd outside the repository: `python -m` puts the cwd before PYTHONPATH on sys.path
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                              check=True, cwd=tmp_path)

    assert "Nothing to be done" in dry_run().stdout
    decode_py = code / "extractors" / "decode.py"
    text = decode_py.read_text()
    assert "\nPLAN_VERSION = " in text
    decode_py.write_text(re.sub(r"\nPLAN_VERSION = \d+", "\nPLAN_VERSION = 999", text))
    planned = planned_rules(dry_run().stdout)
    assert {"decode", "flow", "features", "train", "infer", "evaluate"} <= planned
    assert "index" not in planned


def planned_gpus(output: str) -> dict[str, set[int]]:
    """The ``gpu`` resource of every job a dry run plans, per rule (-1: none declared)."""
    found: dict[str, set[int]] = {}
    for block in re.split(r"^(?:local)?rule ", output, flags=re.MULTILINE)[1:]:
        rule = block.split(":", 1)[0]
        res = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        gpu = re.search(r"\bgpu=(\d+)", res.group(1)) if res else None
        found.setdefault(rule, set()).add(int(gpu.group(1)) if gpu else -1)
    return found


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # device cuda and the torch TV-L1 backend on CUDA: every GPU stage asks for one GPU
        ("device: cuda\ndatasets: {demo: {flow: {backend: torch, device: cuda}}}\n",
         {"flow": {1}, "features": {1}, "train": {1}, "infer": {1}, "evaluate": {-1}}),
        # device auto (the test config) and OpenCV flow: none does, so a CPU cluster runs it
        ("datasets: {demo: {flow: {params: {warps: 3}}}}\n",
         {"flow": {0}, "features": {0}, "train": {0}, "infer": {0}, "evaluate": {-1}}),
        # the torch backend with its device left on auto follows device: cuda ...
        ("device: cuda\ndatasets: {demo: {flow: {backend: torch, params: {warps: 3}}}}\n",
         {"flow": {1}, "features": {1}, "train": {1}, "infer": {1}, "evaluate": {-1}}),
        # ... OpenCV flow never asks for one
        ("device: cuda\ndatasets: {demo: {flow: {params: {warps: 3}}}}\n",
         {"flow": {0}, "features": {1}, "train": {1}, "infer": {1}, "evaluate": {-1}}),
    ],
    ids=["cuda", "cpu", "cuda-torch-flow-auto", "cuda-opencv-flow"],
)
def test_gpu_stages_declare_the_gpus_they_use(
    demo_run: Path, tmp_path: Path, override: str, expected: dict[str, set[int]]
) -> None:
    path = tmp_path / "override.yaml"
    path.write_text(override)
    proc = snakemake(demo_run, TARGET, "--dry-run", override=path)
    gpus = planned_gpus(proc.stdout)
    assert {rule: gpus.get(rule) for rule in expected} == expected, proc.stdout[-3000:]


def test_invalid_setting_is_rejected_by_the_schema(demo_run: Path, tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("models: {cas_baseline: {train: {lr: fast}}}\n")
    proc = snakemake(demo_run, TARGET, "--dry-run", override=override, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "lr" in output
    assert "'fast' is not of type 'number'" in output


def test_lint_is_clean(demo_run: Path) -> None:
    proc = snakemake(demo_run, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_shifted_detections_score_near_zero(demo_run: Path, tmp_path: Path) -> None:
    det = read_json(demo_run / "results/demo/cas_baseline/detections.json")
    gt = demo_run / "work/demo/gt.json"
    for dets in det["results"].values():
        for d in dets:
            d["segment"] = [d["segment"][0] + 3.0, d["segment"][1] + 3.0]
    write_json(tmp_path / "shifted.json", det)
    shifted = evaluate(gt, tmp_path / "shifted.json", subset="test", tious=[0.5])
    right = read_json(demo_run / TARGET)
    assert shifted["mAP"][0] < 0.05 < 0.5 < right["mAP"][4]


@pytest.mark.parametrize("factor", [0.4, 2.5])
def test_wrong_fps_scores_near_zero(demo_run: Path, tmp_path: Path, factor: float) -> None:
    """Reading snippet times with the wrong frame rate must break the evaluation."""
    feats = tmp_path / "features"
    shutil.copytree(demo_run / "work/demo/features/i3d", feats)
    index = read_json(demo_run / "work/demo/index.json")
    tests = sorted(v for v, r in index["videos"].items() if r["split"] == "test")
    for video in tests:
        side = read_json(feats / f"{video}.json")
        side["grid"]["fps"] = side["grid"]["fps"] * factor  # e.g. 10 fps read for 25 fps frames
        write_json(feats / f"{video}.json", side)
    det = tmp_path / "det.json"
    infer(demo_run / "results/demo/cas_baseline/model.pt", [feats / f"{v}.npy" for v in tests],
          det, tmp_path / "cas", settings=InferSettings(), device="cpu")
    wrong = evaluate(demo_run / "work/demo/gt.json", det, subset="test", tious=[0.5])
    right = read_json(demo_run / TARGET)
    assert wrong["mAP"][0] < 0.05 < 0.5 < right["mAP"][4]


def test_ablation_rule_writes_the_models_table(demo_run: Path) -> None:
    """cas_baseline's ablation (top-k mean against GAP) through the rule; the variant without
    overrides is the configured model, so it reproduces map.json exactly."""
    snakemake(demo_run, "results/demo/cas_baseline/ablation.md")
    report = read_json(demo_run / "results/demo/cas_baseline/ablation.json")
    rows = {row["variant"]: row for row in report["variants"]}
    assert list(rows) == ["top-k mean (k = T/8)", "GAP (mean)"]
    assert rows["GAP (mean)"]["settings"]["args"]["pooling"] == "mean"
    assert rows["top-k mean (k = T/8)"]["mAP"] == read_json(demo_run / TARGET)["mAP"]
    table = (demo_run / "results/demo/cas_baseline/ablation.md").read_text()
    assert "| GAP (mean) |" in table
    assert "pooling=mean" in table
    assert not list((demo_run / "results/demo/cas_baseline").glob(".ablation*"))  # no parts left


def test_knowledge_transfer_models_train_on_the_trimmed_clips_features(demo_run: Path) -> None:
    """kt_mgfn (``trimmed: true``) needs the trimmed clips' features, which cas_baseline's run
    did not make: a dry run plans exactly those (and decode and flow before them)."""
    index = read_json(demo_run / "work/demo/index.json")
    trimmed = [v for v, r in index["videos"].items() if r["split"] == "trimmed"]
    assert trimmed
    proc = snakemake(demo_run, "results/demo/kt_mgfn/map.json", "--dry-run")
    table = proc.stdout.split("Job stats:")[1].split("total")[0]
    counts = {m.group(1): int(m.group(2))
              for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}
    assert counts["features"] == len(trimmed)
    assert counts["train"] == 1
    for video in trimmed:
        assert f"work/demo/features/i3d/{video}.npy" in proc.stdout
    proc = snakemake(demo_run, "results/demo/cas_baseline/map.json", "--dry-run",
                     "--forcerun", "train")
    assert "work/demo/features/i3d/v_" not in proc.stdout  # the baseline does not need them
