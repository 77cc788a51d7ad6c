"""The shipped THUMOS14 and ActivityNet-1.3 configs through Snakemake on fixture copies laid out
as distributed: the index stage runs, and the plan for map.json has one decode/flow/features job
per usable video (the known-bad and the missing ones are not planned)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import counter_frames, write_video

from wtal.datasets import THUMOS14_UCF101_IDS
from wtalio import read_json

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(configfile), "--cores", "1", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def planned(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def clip(path: Path) -> None:
    write_video(path, counter_frames(25), fps=25.0)


def test_thumos14_config(tmp_path: Path) -> None:
    root = tmp_path / "thumos14"
    val = root / "TH14_Temporal_annotations_validation" / "annotation"
    test = root / "TH14_Temporal_annotations_test" / "annotations" / "annotation"  # other case
    for folder, suffix in ((val, "val"), (test, "test")):
        folder.mkdir(parents=True)
        for c in THUMOS14_UCF101_IDS:
            (folder / f"{c}_{suffix}.txt").write_text("")
    (val / "Diving_val.txt").write_text("video_validation_0000001  0.1 0.6\n")
    (test / "Diving_test.txt").write_text(
        "video_test_0000001 0.2 0.5\nvideo_test_0000270 0.1 9.0\n")
    clip(root / "validation" / "video_validation_0000001.mp4")
    clip(root / "test" / "video_test_0000001.mp4")
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"thumos14": {"root": str(root)}}}))
    work = tmp_path / "work"
    snakemake(work, config, "work/thumos14/index.json")
    index = read_json(work / "work" / "thumos14" / "index.json")
    assert sorted(index["videos"]) == ["video_test_0000001", "video_validation_0000001"]
    assert [e["video"] for e in index["excluded"]] == ["video_test_0000270"]
    plan = planned(snakemake(work, config, "-n", "results/thumos14/cas_baseline/map.json").stdout)
    assert plan["decode"] == plan["flow"] == plan["features"] == 2
    assert plan["train"] == plan["evaluate"] == 1


def test_activitynet13_config(tmp_path: Path) -> None:
    root = tmp_path / "anet"
    database = {
        "trainvid001": {"subset": "training", "duration": 1.0, "annotations": [
            {"segment": [0.1, 0.5], "label": "Archery"}]},
        "gone0000001": {"subset": "training", "duration": 1.0, "annotations": [
            {"segment": [0.1, 0.5], "label": "Archery"}]},
        "validvid001": {"subset": "validation", "duration": 1.0, "annotations": [
            {"segment": [0.2, 0.9], "label": "Archery"}]},
    }
    root.mkdir()
    (root / "activity_net.v1-3.min.json").write_text(json.dumps(
        {"version": "VERSION 1.3", "taxonomy": [], "database": database}))
    clip(root / "videos" / "v_trainvid001.mp4")
    clip(root / "videos" / "v_validvid001.mp4")
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"activitynet13": {"root": str(root)}}}))
    work = tmp_path / "work"
    snakemake(work, config, "work/activitynet13/index.json")
    index = read_json(work / "work" / "activitynet13" / "index.json")
    assert sorted(index["videos"]) == ["v_trainvid001", "v_validvid001"]
    assert [m["video"] for m in index["missing"]] == ["v_gone0000001"]
    plan = planned(snakemake(work, config, "-n", "results/activitynet13/kt_mgfn/map.json").stdout)
    assert plan["features"] == 2
