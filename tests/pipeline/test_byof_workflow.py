"""Bring your own features, end to end through Snakemake: train → infer → evaluate, no videos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from byof_fixtures import (
    HALF,
    SNIPPET_SECONDS,
    make_videos,
    write_per_video,
    write_trimmed,
    write_wtalc,
)

from wtalio import read_json

REPO = Path(__file__).resolve().parents[2]
TARGET = "results/byo/cas_baseline/map.json"

pytestmark = pytest.mark.slow


def run(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(configfile), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def user_config(tmp_path: Path, dataset: dict) -> Path:
    """A user's --configfile declaring dataset ``byo`` by the documented keys."""
    cfg = {
        "targets": [{"dataset": "byo", "model": "cas_baseline"}],
        "datasets": {"byo": {
            **dataset,
            "snippet_seconds": SNIPPET_SECONDS,
            "train_subset": "validation",
            "test_subset": "test",
            "tiou": [0.1, 0.3, 0.5, 0.7],
            "streams": {"rgb": [0, HALF], "flow": [HALF, 2 * HALF]},
        }},
        "models": {"cas_baseline": {"datasets": {"byo": {
            "args": {"hidden": 64, "dropout": 0.3},
            "train": {"epochs": 60, "batch_size": 8, "lr": 0.001},
        }}}},
    }
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("layout", ["per_video", "wtalc"])
def test_bring_your_own_features_end_to_end(tmp_path: Path, layout: str) -> None:
    videos = make_videos(seed=0)
    data = tmp_path / "data"
    dataset = (write_per_video(data, videos) if layout == "per_video"
               else write_wtalc(data, videos))
    configfile = user_config(tmp_path, dataset)
    work = tmp_path / "work"
    proc = run(work, configfile, TARGET)
    assert proc.returncode == 0, proc.stderr[-6000:]
    result = read_json(work / TARGET)
    assert result["dataset"] == "byo"
    assert result["tiou"] == pytest.approx([0.1, 0.3, 0.5, 0.7])
    # the generated actions are easy: a right time mapping finds them, a wrong one would not
    assert result["mAP"][2] > 0.5, result
    # no video stage ran
    assert not (work / "work" / "byo" / "decode").exists()
    assert not (work / "work" / "byo" / "flow").exists()
    imported = sorted((work / "work" / "byo" / "features" / "imported").glob("*.npy"))
    assert len(imported) == len(videos)
    sidecar = read_json(imported[0].with_suffix(".json"))
    assert sidecar["streams"] == {"rgb": [0, HALF], "flow": [HALF, 2 * HALF]}
    if layout == "wtalc":
        assert (work / "work" / "byo" / "features" / "joint").is_dir()
    # nothing left to do on a second run
    again = run(work, configfile, TARGET, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_config_error_before_any_job(tmp_path: Path) -> None:
    """A features dataset without snippet_seconds fails at config validation, naming the key."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"byo": {
        "features_dir": str(tmp_path), "annotations": str(tmp_path / "a.json"),
        "train_subset": "validation", "test_subset": "test"}}}))
    proc = run(tmp_path / "w", path, TARGET, "-n")
    assert proc.returncode != 0
    assert "snippet_seconds" in proc.stdout + proc.stderr
    assert not (tmp_path / "w" / "work").exists()


def test_trimmed_clip_features_reach_a_knowledge_transfer_model(tmp_path: Path) -> None:
    """Bring-your-own features with UCF101 clips' features (``trimmed.root``): the workflow
    imports the clips, all in one job (rule import_split), and TSRNet trains its trimmed
    network on them; map.json says so."""
    videos = make_videos(seed=1, n_train=8, n_test=4)
    data = tmp_path / "data"
    dataset = write_per_video(data, videos)
    trimmed = write_trimmed(data / "ucf", per_class=3)
    configfile = user_config(tmp_path, {**dataset, **{"trimmed": trimmed["trimmed"]}})
    cfg = yaml.safe_load(configfile.read_text())
    cfg["models"] = {"tsrnet": {"datasets": {"byo": {
        "args": {"attention_hidden": 16, "fc_hidden": 32, "hops": 2},
        "train": {"epochs": 4, "batch_size": 4, "lr": 0.01, "lr_milestones": []}}}}}
    configfile.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    proc = run(work, configfile, "results/byo/tsrnet/map.json")
    assert proc.returncode == 0, proc.stderr[-6000:]
    imported = work / "work" / "byo" / "features" / "imported_trimmed"
    for clip, (_, x) in trimmed["clips"].items():
        assert read_json(imported / f"{clip}.json")["shape"] == list(x.shape)
        assert not (imported.parent / "imported" / f"{clip}.npy").exists()  # not one job each
    assert sorted(p.name for p in imported.glob("*.npy")) == sorted(
        f"{c}.npy" for c in trimmed["clips"])
    jobs = sorted((work / "benchmarks" / "byo" / "features").rglob("*.tsv"))
    assert [j.name for j in jobs if "imported_trimmed" in j.name] == ["imported_trimmed.tsv"]
    result = read_json(work / "results" / "byo" / "tsrnet" / "map.json")
    assert result["knowledge_transfer"] == f"on: {len(trimmed['clips'])} trimmed clips", result
    pretrain = read_json(work / "results" / "byo" / "tsrnet" / "train.json")["pretrain"]
    assert (pretrain["kt"], pretrain["trimmed_clips"], pretrain["kt_classes"]) == ("on", 6, 2)
    assert pretrain["trimmed_loss"][-1] < pretrain["trimmed_loss"][0]  # the clips taught it
