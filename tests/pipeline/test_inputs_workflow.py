"""The workflow notices what changed on disk and refuses wrong settings before any job runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from byof_fixtures import HALF, SNIPPET_SECONDS, make_videos, write_per_video

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = REPO / "tests" / "pipeline" / "config.yaml"
DEMO_TARGET = "results/demo/cas_baseline/map.json"

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, configfiles: list[Path]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--cores", "1",
           "--configfile", *[str(c) for c in configfiles]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def planned_rules(output: str) -> set[str]:
    if "Job stats:" not in output:
        return set()
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.MULTILINE)}


def test_index_reruns_when_a_feature_file_appears(tmp_path: Path) -> None:
    videos = make_videos(seed=0, n_train=3, n_test=3)
    data = write_per_video(tmp_path / "data", videos)
    late = Path(data["features_dir"]) / "v_video_test_0000001.npy"
    kept = np.load(late)
    late.unlink()
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"byo": {
        **data, "snippet_seconds": SNIPPET_SECONDS, "train_subset": "validation",
        "test_subset": "test", "streams": {"rgb": [0, HALF], "flow": [HALF, 2 * HALF]}}}}))
    work = tmp_path / "work"
    proc = snakemake(work, "work/byo/index.json", configfiles=[config])
    assert proc.returncode == 0, proc.stderr[-4000:]
    index = yaml.safe_load((work / "work/byo/index.json").read_text())
    assert [m["video"] for m in index["missing"]] == ["video_test_0000001"]
    again = snakemake(work, "work/byo/index.json", "-n", configfiles=[config])
    assert planned_rules(again.stdout) == set(), again.stdout
    np.save(late, kept)  # the user adds the missing file
    proc = snakemake(work, "work/byo/index.json", "-n", configfiles=[config])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert planned_rules(proc.stdout) == {"index"}, proc.stdout + proc.stderr


def dry_run(tmp_path: Path, override: str) -> subprocess.CompletedProcess:
    path = tmp_path / "override.yaml"
    path.write_text(override)
    return snakemake(tmp_path / "w", DEMO_TARGET, "-n", configfiles=[TEST_CONFIG, path])


def test_typo_in_model_args_fails_the_dry_run(tmp_path: Path) -> None:
    proc = dry_run(tmp_path, "models: {cas_baseline: {args: {hiden: 512}}}\n")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "args.hiden is not an argument of model cas_baseline" in output
    assert "did you mean 'hidden'" in output
    assert not (tmp_path / "w" / "work").exists()


def test_unknown_dataset_in_a_models_block_is_an_error(tmp_path: Path) -> None:
    proc = dry_run(tmp_path, "models: {cas_baseline: {datasets: {thumos41: {train: "
                             "{epochs: 3}}}}}\n")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "dataset 'thumos41', which is not a dataset (did you mean 'thumos14'?)" in output


@pytest.mark.parametrize(("override", "line"), [
    ("models: {cas_baseline: {infer: {class_threshold: 1.5}}}",
     "infer.class_threshold: 1.5 is greater than the maximum of 1"),
    ("models: {cas_baseline: {infer: {nms_iou: 0}}}",
     "infer.nms_iou: 0 is less than or equal to the minimum of 0"),
    ("models: {cas_baseline: {train: {lr: fast}}}", "train.lr: 'fast' is not of type 'number'"),
])
def test_schema_errors_are_short_and_name_key_value_and_range(
        tmp_path: Path, override: str, line: str) -> None:
    proc = dry_run(tmp_path, override + "\n")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert line in output
    assert "Failed validating" not in output  # no schema dump
    assert len(output.splitlines()) < 40, output


def test_rule_scripts_find_the_project_without_it_installed(tmp_path: Path) -> None:
    """A conda deployment's environment has the dependencies but not the project: the rule
    scripts must import it from the workflow's own folder.

    The job runs under a virtual environment's Python that sees this interpreter's
    site-packages (the dependencies) through a plain path entry, so the editable install's
    import hook there is never loaded, and without PYTHONPATH: ``import wtal`` only works if
    the script finds the project itself. The Snakefile's own imports work in any case
    (Snakemake puts the workflow folder on the main process's path).

    This held before issue 17 too: Snakemake's script preamble extends every script job's
    ``sys.path`` with the main process's (which holds the workflow folder), also for a conda
    environment's Python. The test guards that the scripts keep relying on nothing more.
    """
    import site
    import venv

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False, system_site_packages=False, symlinks=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # a path entry, not a site dir: the .pth files there (the editable install) are not read
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{env_dir / 'bin'}:{env['PATH']}"
    probe = subprocess.run([str(python), "-c", "import numpy, snakemake, yaml; import wtal"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "No module named 'wtal'" in probe.stderr, probe.stderr  # the project is not there

    videos = make_videos(seed=0, n_train=2, n_test=2)
    data = write_per_video(tmp_path / "data", videos)
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"byo": {
        **data, "snippet_seconds": SNIPPET_SECONDS, "train_subset": "validation",
        "test_subset": "test"}}}))
    cmd = [str(python), "-m", "snakemake", "work/byo/index.json", "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(tmp_path / "w"), "--cores", "1",
           "--configfile", str(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    log = tmp_path / "w" / "logs" / "byo" / "index.log"
    detail = proc.stderr[-3000:] + (log.read_text() if log.exists() else "")
    assert proc.returncode == 0, detail
    assert (tmp_path / "w" / "work" / "byo" / "index.json").exists()
