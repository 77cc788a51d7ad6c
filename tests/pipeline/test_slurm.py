"""The workflow on a real SLURM cluster: the slurm profile, every job through sbatch, same results.

A single-node cluster (munged, slurmctld, slurmd on 127.0.0.1) is started by ``.ci/slurm_up.sh``
and stopped by ``.ci/slurm_down.sh``, which kills exactly the daemons it started, by PID, also
when a test fails. The tiny demo of ``slurm_config.yaml`` then runs once through
``--workflow-profile pipeline/profiles/slurm`` and once locally; the outputs must be identical.

Needs root, apt (or munge and slurm already installed) and 2 CPUs; it skips with the reason
otherwise, and fails instead of skipping when WTAL_SLURM=1 (as CI sets where it can run it).
WTAL_SLURM=0 skips it. Every step is bounded in time: it can never hang.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "pipeline" / "slurm_config.yaml"
PROFILE = REPO / "pipeline" / "profiles" / "slurm"
TARGET = "results/demo/cas_baseline/map.json"
LOCK = Path("/tmp/wtal-slurm-test.lock")  # one local cluster per machine at a time
VIDEOS = 6  # 4 validation + 2 test videos in slurm_config.yaml
PER_GROUP = 3  # --group-components per_video=3: 2 SLURM jobs for the 18 per-video jobs
RUN_TIMEOUT = 600  # seconds for one workflow run

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cannot_run(reason: str) -> None:
    if os.environ.get("WTAL_SLURM") == "1":
        pytest.fail(f"WTAL_SLURM=1 but the SLURM test cannot run here: {reason}")
    pytest.skip(f"SLURM test skipped: {reason}")


def run_bounded(cmd: list[str], *, timeout: float, cwd: Path | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; on timeout SIGKILL the whole session and fail.

    The slurm executor may ignore SIGTERM while it waits for job states, so a plain
    ``subprocess.run(timeout=...)`` (which kills only the child) is not enough.
    """
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}\n{out[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@contextlib.contextmanager
def machine_lock(wait: float) -> Iterator[None]:
    """Hold an exclusive lock on LOCK, waiting at most ``wait`` seconds for it."""
    with open(LOCK, "w") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    _cannot_run(f"another SLURM test holds {LOCK} for more than {wait:.0f} s")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running single-node SLURM cluster; its state folder (logs under log/)."""
    if os.environ.get("WTAL_SLURM") == "0":
        pytest.skip("SLURM test skipped: WTAL_SLURM=0")
    if not sys.platform.startswith("linux"):
        _cannot_run("needs Linux")
    if os.geteuid() != 0:
        _cannot_run("not root (the local cluster's daemons need root)")
    if (os.cpu_count() or 1) < 2:
        _cannot_run("needs 2 CPUs (train and infer ask SLURM for 2)")
    if shutil.which("timeout") is None:
        _cannot_run("no timeout(1)")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        _cannot_run("snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')")
    with machine_lock(wait=600):
        state = tmp_path_factory.mktemp("slurm")
        try:
            up = run_bounded(["timeout", "-k", "10", "900", "bash",
                              str(REPO / ".ci" / "slurm_up.sh"), str(state)], timeout=930)
            if up.returncode == 77:
                _cannot_run(up.stdout.strip().splitlines()[-1] if up.stdout.strip() else "?")
            assert up.returncode == 0, f"slurm_up.sh failed ({up.returncode}):\n{up.stdout}"
            yield state
        finally:
            down = run_bounded(["timeout", "-k", "5", "120", "bash",
                                str(REPO / ".ci" / "slurm_down.sh"), str(state)], timeout=130)
            for pid_file in (state / "run").glob("*.pid"):  # the script removes what it stopped
                pytest.fail(f"slurm_down.sh left {pid_file.name} running:\n{down.stdout}")


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(CONFIG), *args, TARGET]


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The tiny demo run through the slurm profile; (workdir, snakemake's output)."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    cmd = snakemake_cmd(
        workdir, "--workflow-profile", str(PROFILE),
        "--cores", "2",  # width of a group job: the node has 2 CPUs
        "--group-components", f"per_video={PER_GROUP}",
        "--retries", "0",
        "--seconds-between-status-checks", "2",
        "--slurm-keep-successful-logs",
        "--verbose",  # prints every sbatch call
    )
    proc = run_bounded(["timeout", "-k", "10", str(RUN_TIMEOUT), *cmd], timeout=RUN_TIMEOUT + 20)
    assert proc.returncode == 0, proc.stdout[-8000:]
    return workdir, proc.stdout


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("local_run")
    proc = run_bounded(["timeout", "-k", "10", str(RUN_TIMEOUT),
                        *snakemake_cmd(workdir, "--cores", "2")], timeout=RUN_TIMEOUT + 20)
    assert proc.returncode == 0, proc.stdout[-8000:]
    return workdir


SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*/logs/slurm/([^/]+)/")


def job_kind(log_folder: str) -> str:
    """``rule_<rule>`` for a single job; ``group_<group>_<its rules>`` for a group job."""
    kind, _, name = log_folder.partition("_")
    if kind == "group":
        return "per_video" if name.startswith("per_video_") else name
    return name


def test_every_job_goes_through_sbatch(slurm_run: tuple[Path, str], slurm_cluster: Path) -> None:
    workdir, out = slurm_run
    submitted = {int(m.group(1)): job_kind(m.group(2)) for m in SUBMITTED.finditer(out)}
    kinds = Counter(submitted.values())
    # one sbatch per single job, one per PER_GROUP videos for decode -> flow -> features
    assert kinds == {"synth_demo": 1, "index": 1, "per_video": VIDEOS // PER_GROUP,
                     "train": 1, "infer": 1, "evaluate": 1}, out[-6000:]
    # nothing but the target-collecting rule ran outside SLURM
    assert set(re.findall(r"^localrule (\w+):", out, re.MULTILINE)) <= {"all"}
    # the controller received and completed exactly these batch jobs, all with exit status 0
    ctld = (slurm_cluster / "log" / "slurmctld.log").read_text()
    batch = {int(j) for j in re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", ctld)}
    done = {int(j) for j in re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS 0", ctld)}
    assert batch == set(submitted)
    assert set(submitted) <= done
    # inside the SLURM jobs: every per-video job of every video ran, in the group jobs
    ran: Counter[str] = Counter()
    for jobid, kind in submitted.items():
        logs = list((workdir / "logs" / "slurm").rglob(f"{jobid}.log"))
        assert len(logs) == 1, (jobid, kind, logs)
        # the job's own snakemake runs each job of the SLURM job locally, on the node
        rules = re.findall(r"^local(?:rule|checkpoint) (\w+):", logs[0].read_text(), re.MULTILINE)
        if kind == "per_video":
            assert Counter(rules) == {"decode": PER_GROUP, "flow": PER_GROUP,
                                      "features": PER_GROUP}, logs[0].read_text()[-3000:]
        ran.update(rules)
    assert ran == {"synth_demo": 1, "index": 1, "decode": VIDEOS, "flow": VIDEOS,
                   "features": VIDEOS, "train": 1, "infer": 1, "evaluate": 1}


def test_group_jobs_ask_for_the_summed_resources(slurm_run: tuple[Path, str]) -> None:
    """Group jobs run 2 videos' jobs side by side (--cores 2): 2 CPUs, 2 x the memory of the
    largest (features, 4000 MB), and runtime summed over the layers: each of decode (10 min),
    flow (240) and features (120) needs ceil(PER_GROUP / 2) = 2 layers."""
    _, out = slurm_run
    calls = re.findall(r"sbatch call: (sbatch .*)$", out, re.MULTILINE)
    group = [c for c in calls if "--comment rule_per_video" in c]
    assert len(group) == VIDEOS // PER_GROUP, calls
    for call in group:
        assert " -t 740 " in call, call[:400]
        assert " --mem 8000 " in call, call[:400]
        assert " --cpus-per-task=2 " in call, call[:400]
    train = [c for c in calls if "--comment rule_train" in c]
    assert len(train) == 1
    assert " -t 600 --mem 8000 " in train[0]
    assert " --cpus-per-task=2 " in train[0]


def _json(path: Path) -> object:
    return json.loads(path.read_text())


def test_outputs_equal_a_local_run(slurm_run: tuple[Path, str], local_run: Path) -> None:
    workdir, _ = slurm_run
    for rel in ("work/demo/index.json", "work/demo/gt.json",
                "results/demo/cas_baseline/detections.json", TARGET):
        assert _json(workdir / rel) == _json(local_run / rel), rel
    feats = sorted((local_run / "work/demo/features/i3d").glob("*.npy"))
    assert len(feats) == VIDEOS
    for local in feats:
        remote = workdir / "work/demo/features/i3d" / local.name
        np.testing.assert_array_equal(np.load(remote), np.load(local))
        assert _json(remote.with_suffix(".json")) == _json(local.with_suffix(".json"))
    for local in sorted((local_run / "work/demo/flow").glob("*.zip")):
        assert (workdir / "work/demo/flow" / local.name).read_bytes() == local.read_bytes()
    assert _json(workdir / TARGET)["dataset"] == "demo"
