"""Settings through the workflow, for every model: an inference knob reruns inference and
evaluation only (never training), and the ``wtal`` command line resolves the same settings as
Snakemake for the same config (one resolution, :mod:`wtal.settings`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from byof_fixtures import HALF, SNIPPET_SECONDS, make_videos, write_per_video

from wtalio import read_json

REPO = Path(__file__).resolve().parents[2]
MODELS = ["cas_baseline", "ecm", "cpmn", "assg", "tsrnet", "kt_mgfn"]

#: Tiny training settings per model (the knob under test is never one of them).
TINY = {
    "cas_baseline": {"args": {"hidden": 8}},
    "ecm": {"args": {"hidden": 8}},
    "cpmn": {"args": {"hidden": 8}},
    "assg": {"args": {"hidden": 8, "seed_hidden": 8, "seed_epochs": 1}},
    "tsrnet": {"args": {"hops": 1, "attention_hidden": 4, "fc_hidden": 8}},
    "kt_mgfn": {"args": {"hidden": 8, "brm_hidden": 8, "trimmed_epochs": 1}},
}

#: An inference-only change per model: the generic post-processing or the model's own knobs.
INFER_CHANGE = {
    "cas_baseline": {"class_threshold": 0.3},
    "ecm": {"model": {"tag_gammas": [1.0, 0.5]}},
    "cpmn": {"model": {"theta": 0.3}},
    "assg": {"video_score_weight": 0.1},
    "tsrnet": {"model": {"detect_threshold": 0.3}},
    "kt_mgfn": {"model": {"score_oic": False}},
}

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *configfiles: Path, args: tuple[str, ...] = ()) -> str:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", *map(str, configfiles),
           "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


def planned_rules(output: str) -> set[str]:
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.MULTILINE)}


def targets() -> list[str]:
    return [f"results/byo/{m}/map.json" for m in MODELS]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("settings")
    dataset = write_per_video(root / "data", make_videos(seed=0, n_train=8, n_test=4))
    models = {m: {"datasets": {"byo": {**TINY[m], "train": {"epochs": 1, "batch_size": 8}}}}
              for m in MODELS}
    cfg = {
        "targets": [{"dataset": "byo", "model": m} for m in MODELS],
        "datasets": {"byo": {**dataset, "snippet_seconds": SNIPPET_SECONDS,
                             "train_subset": "validation", "test_subset": "test",
                             "tiou": [0.3, 0.5],
                             "streams": {"rgb": [0, HALF], "flow": [HALF, 2 * HALF]}}},
        "models": models,
    }
    configfile = root / "my.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    work = root / "work"
    snakemake(work, configfile, args=tuple(targets()))
    return {"root": root, "work": work, "configfile": configfile}


@pytest.mark.parametrize("model", MODELS)
def test_an_inference_knob_reruns_only_infer_and_evaluate(run: dict[str, Path], model: str,
                                                          tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump(
        {"models": {model: {"datasets": {"byo": {"infer": INFER_CHANGE[model]}}}}}))
    out = snakemake(run["work"], run["configfile"], override,
                    args=(f"results/byo/{model}/map.json", "--dry-run"))
    assert planned_rules(out) == {"infer", "evaluate"}, out[-3000:]


@pytest.mark.parametrize("model", MODELS)
def test_the_command_line_resolves_the_workflows_settings(run: dict[str, Path], model: str,
                                                          tmp_path: Path) -> None:
    work = run["work"]
    index = read_json(work / "work" / "byo" / "index.json")
    feats = work / "work" / "byo" / "features" / "imported"
    train = [str(feats / f"{v}.npy") for v, r in sorted(index["videos"].items())
             if r["split"] == "train"]
    test = [str(feats / f"{v}.npy") for v, r in sorted(index["videos"].items())
            if r["split"] == "test"]
    config = ["--config", str(REPO / "pipeline" / "config" / "models" / f"{model}.yaml"),
              "--dataset", "byo", "--configfile", str(run["configfile"]), "--device", "cpu"]
    wtal = [sys.executable, "-m", "wtal.cli"]
    proc = subprocess.run([*wtal, "train", "--index", str(work / "work/byo/index.json"),
                           "--features", *train, "--model", model,
                           "--out-model", str(tmp_path / "model.pt"),
                           "--out-log", str(tmp_path / "train.json"), *config],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = subprocess.run([*wtal, "infer", "--model", str(tmp_path / "model.pt"),
                           "--features", *test, "--out", str(tmp_path / "detections.json"),
                           "--cas-dir", str(tmp_path / "cas"), *config],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    mine, theirs = read_json(tmp_path / "train.json"), read_json(
        work / "results" / "byo" / model / "train.json")
    assert mine["settings"] == theirs["settings"]
    assert mine["model_args"] == theirs["model_args"]
    assert mine["loss"] == theirs["loss"]  # same settings, same seed: the same training
    mine, theirs = read_json(tmp_path / "detections.json"), read_json(
        work / "results" / "byo" / model / "detections.json")
    assert mine["settings"] == theirs["settings"]
    assert mine["results"] == theirs["results"]
