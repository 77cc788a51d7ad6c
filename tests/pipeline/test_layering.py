"""The workflow's layering: the Snakefile parses without torch, every rule carries its stage's
output version, and each stage's progress reaches its log file line by line."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from extractors.progresslog import ProgressLog
from wtal.fitting import fit, make_optimizer
from wtal.models import build_model
from wtal.versions import STAGE_VERSIONS, provenance

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "pipeline" / "config.yaml"


def test_the_snakefile_parses_without_torch(tmp_path: Path) -> None:
    """Every job of a cluster run parses the Snakefile: it must not pay for importing torch."""
    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch imported while parsing')\n")
    env_path = f"{tmp_path / 'blocker'}:{REPO}"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(tmp_path / "work"), "--configfile", str(CONFIG), "--list-rules"],
        capture_output=True, text=True, timeout=300, env={"PYTHONPATH": env_path,
                                                          "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "train" in proc.stdout.split()


def test_every_stage_rule_carries_its_output_version() -> None:
    rules = {p.stem: p.read_text() for p in (REPO / "pipeline" / "rules").glob("*.smk")}
    for name, stage in [("train", "train"), ("infer", "infer"), ("evaluate", "evaluate"),
                        ("ablation", "ablation"), ("index", "index"), ("report", "report")]:
        assert f'version=stage_version("{stage}")' in rules[name], name
    assert rules["features"].count("version=FEATURES_VERSION") == 1
    # import_features (one video) and import_split (the trimmed clips, one job)
    assert rules["import"].count("version=FEATURES_VERSION") == 2
    assert "code_version(" not in "".join(rules.values())  # no one constant for every stage
    assert set(STAGE_VERSIONS) == {"index", "train", "infer", "evaluate", "report", "ablation"}
    record = provenance("train")
    assert record["stage_version"] == STAGE_VERSIONS["train"]
    assert record["package"].startswith("wtal ")
    assert record["commit"] is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", record["commit"])


def test_training_writes_one_line_per_epoch(caplog) -> None:
    net = build_model("cas_baseline", in_dim=4, num_classes=2, hidden=4)
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(6, 4)).astype(np.float32) for _ in range(4)]
    labels = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    opt = make_optimizer(net.param_groups(1e-2), lr=1e-2, weight_decay=0.0)
    with caplog.at_level(logging.INFO, logger="wtal.fitting"):
        log = fit(net, seqs, labels, opt=opt, epochs=3, batch_size=2, rng=rng,
                  device=torch.device("cpu"), name="train toy",
                  loss_of=lambda out, y, mask, epoch, step: net.loss(out, y, mask, epoch=epoch,
                                                                   step=step))
    lines = [r.getMessage() for r in caplog.records if r.name == "wtal.fitting"]
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"train toy: epoch {i + 1}/3 loss {log.loss[i]:.4f} (bce=")
        assert "s/epoch, ETA " in line
    assert lines[-1].endswith("ETA 0:00:00")
    assert log.steps == 6


def test_progress_lines_count_chunks(caplog) -> None:
    logger = logging.getLogger("test.progress")
    with caplog.at_level(logging.INFO, logger="test.progress"):
        done = ProgressLog(logger, "features v.mp4", unit="snippets", total=10, every=4)
        for _ in range(5):
            done.update(2)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" snippets")[0] for line in lines] == [
        "features v.mp4: 4/10", "features v.mp4: 8/10", "features v.mp4: 10/10"]
    assert all("snippets/s, ETA" in line for line in lines)


def _imports(path: Path) -> list[str]:
    """Every module named by an import statement of ``path`` (at any depth)."""
    import ast

    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_packages_are_layered_without_a_cycle() -> None:
    """wtalio depends on neither package, extractors only on wtalio, wtal on both."""
    for package, forbidden in [("wtalio", ("wtal", "extractors")), ("extractors", ("wtal",))]:
        for path in sorted((REPO / package).rglob("*.py")):
            bad = [m for m in _imports(path) if m.split(".")[0] in forbidden]
            assert bad == [], f"{path.relative_to(REPO)} imports {bad}"


def test_no_private_name_is_imported_across_modules() -> None:
    import ast

    ours = ("wtal", "extractors", "wtalio")
    for path in [*REPO.joinpath("wtal").rglob("*.py"), *REPO.joinpath("extractors").rglob("*.py"),
                 *REPO.joinpath("wtalio").rglob("*.py"), *REPO.joinpath("pipeline").rglob("*.py"),
                 *REPO.joinpath("benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ours:
                private = [a.name for a in node.names
                           if a.name.startswith("_") and not a.name.startswith("__")]
                assert private == [], f"{path.relative_to(REPO)} imports {private}"
    for path in REPO.joinpath("pipeline").rglob("*.smk"):  # Snakemake syntax: read as text
        for line in path.read_text().splitlines():
            if re.match(r"\s*from\s+(wtal|extractors|wtalio)\b", line):
                assert not re.search(r"import\s+.*\b_[a-z]", line), f"{path.name}: {line}"
