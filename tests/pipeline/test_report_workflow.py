"""The report and summary rules, and ``snakemake --report``, on a tiny finished demo run.

The run's upstream files (index, ground truth, features, model, detections, map.json) are made
by the stage functions on small planted features in seconds; Snakemake then runs only the
report and summary rules on them (``--allowed-rules``) and builds the HTML report.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from extractors.grid import SnippetGrid
from wtal.evaluate import evaluate
from wtal.infer import InferSettings, infer
from wtal.train import TrainSettings, train
from wtalio import read_json, save_npy, write_json

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "pipeline" / "config.yaml"
CLASSES = ["RedBounce", "GreenSpin", "BlueSlide", "YellowPulse"]
RUN = "results/demo/cas_baseline"
TARGETS = [f"{RUN}/report/report.json", "results/summary.md"]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(CONFIG), "--cores", "2", *args,
           "--allowed-rules", "report", "summary"]  # last: it takes every word after it
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-8000:]}")
    return proc


def finished_demo_run(root: Path) -> None:
    """work/demo/{index,gt}.json, test and train features, and a trained, evaluated model."""
    rng = np.random.default_rng(0)
    directions = np.random.default_rng(7).normal(size=(len(CLASSES), 32)) * 3.0
    feats = root / "work" / "demo" / "features" / "i3d"
    videos, database, paths = {}, {}, {"train": [], "test": []}
    for split, subset, n in (("train", "validation", 16), ("test", "test", 4)):
        for i in range(n):
            name = f"video_{subset}_{i + 1:07d}"
            t = int(rng.integers(20, 26))
            x = rng.normal(size=(t, 32)).astype(np.float32)
            c, start, length = i % len(CLASSES), int(rng.integers(2, 8)), int(rng.integers(5, 9))
            x[start : start + length] += directions[c]
            grid = SnippetGrid(fps=25.0, n_frames=t * 16)
            save_npy(feats / f"{name}.npy", x)
            write_json(feats / f"{name}.json", {"shape": list(x.shape), "grid": grid.to_dict(),
                                                "extractor": "i3d"})
            paths[split].append(feats / f"{name}.npy")
            videos[name] = {"labels": [CLASSES[c]], "split": split, "subset": subset,
                            "path": f"work/demo/raw/{subset}/{name}.mp4"}
            seg = [round(float(grid.starts()[start]), 3),
                   round(float(grid.ends()[start + length - 1]), 3)]
            database[name] = {"subset": subset, "duration": t * 0.64,
                              "annotations": [{"label": CLASSES[c], "segment": seg}]}
    write_json(root / "work/demo/index.json", {"dataset": "demo", "classes": CLASSES,
                                               "videos": videos})
    write_json(root / "work/demo/gt.json", {"database": database})
    run = root / RUN
    train(root / "work/demo/index.json", paths["train"], run / "model.pt", run / "train.json",
          model="cas_baseline", model_args={"hidden": 32, "dropout": 0.2},
          settings=TrainSettings(epochs=20, batch_size=8, lr=3e-3), device="cpu")
    infer(run / "model.pt", paths["test"], run / "detections.json", run / "cas",
          settings=InferSettings(), device="cpu")
    write_json(run / "map.json", evaluate(root / "work/demo/gt.json", run / "detections.json",
                                          subset="test", tious=[0.1, 0.3, 0.5, 0.7],
                                          protocols=["thumos14"], dataset="demo",
                                          model="cas_baseline"))


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report_workflow")
    finished_demo_run(root)
    snakemake(root, *TARGETS)
    return root


def test_report_rule_writes_the_figures(reported: Path) -> None:
    report = reported / RUN / "report"
    manifest = read_json(report / "report.json")
    assert list(manifest["videos"]) == [f"video_test_{i:07d}" for i in (1, 2, 3)]
    for name in manifest["figures"]:
        assert (report / name).read_bytes()[:4] == b"\x89PNG", name
    assert set(manifest["pr_ap"]) == {"anet", "thumos14"}
    assert (reported / "logs/demo/cas_baseline/report.log").exists()
    summary = (reported / "results/summary.md").read_text()
    assert "| cas_baseline | ours | anet |" in summary
    assert (reported / "results/summary.csv").read_text().startswith("dataset,model,source")


def test_snakemake_report_builds_an_html_report(reported: Path) -> None:
    snakemake(reported, "--report", "report.html", *TARGETS)
    html = (reported / "report.html").read_text()
    # every registered figure and table, with its rendered caption
    for name in ("video_test_0000001.png", "ap_per_class.png", "pr_curves.png", "loss.png",
                 "summary.csv"):
        assert name in html, name
    for caption in ("Timeline of test video <strong>video_test_0000002</strong>",
                    "Per-class average precision of <strong>cas_baseline</strong>",
                    "Precision-recall curves per class",
                    "Training curves of <strong>cas_baseline</strong>",
                    "Detection mAP (%) of every model and dataset of this workflow"):
        assert caption in html, caption
    for category in ("Timelines", "Detection quality", "Training", "Summary"):
        assert re.search(rf'"{category}"', html), category
    assert "raw video to evaluated detections" in html  # the workflow description
    # the figures are embedded as data, not links to files
    assert re.search(r"data:image/png;base64,", html) or json.dumps("image/png") in html
