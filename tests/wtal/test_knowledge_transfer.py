"""A model whose paper transfers knowledge from trimmed clips (its settings say
``trimmed: true``) but that was trained without any says so: train.json records whether the
clips were used, map.json carries the pretraining log and a ``knowledge_transfer`` status, and
the summary marks the model's rows."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from wtal.evaluate import NO_TRIMMED, training_record
from wtal.report import write_summary
from wtalio import write_json

ROOT = Path(__file__).resolve().parents[2]


def test_training_record_says_when_the_transfer_was_off() -> None:
    pretrain = {"ktm": "off: the dataset has no trimmed clips"}
    off = training_record({"pretrain": pretrain, "n_trimmed": 0, "used_trimmed": False},
                          learns_from_trimmed=True)
    assert off == {"pretrain": pretrain, "knowledge_transfer": NO_TRIMMED}
    assert off["knowledge_transfer"].startswith("off: no trimmed videos configured")
    assert "trimmed: {root:" in NO_TRIMMED  # the one setting that turns it on
    on = training_record({"pretrain": {"ktm": "on"}, "n_trimmed": 12, "used_trimmed": True},
                         learns_from_trimmed=True)
    assert on["knowledge_transfer"] == "on: 12 trimmed clips"
    unused = training_record({"pretrain": {"ktm": "off: ktm: false"}, "n_trimmed": 12,
                              "used_trimmed": False}, learns_from_trimmed=True)
    assert unused["knowledge_transfer"].startswith("off: 12 trimmed clips given but not used")
    plain = training_record({"pretrain": "none", "n_trimmed": 0}, learns_from_trimmed=False)
    assert plain == {"pretrain": "none"}  # a model that never learns from trimmed clips


def test_the_models_that_declare_trimmed_clips_are_their_papers() -> None:
    """The declaration the workflow reads (``trimmed: true`` in the model's settings)."""
    declared = {p.stem for p in (ROOT / "pipeline/config/models").glob("*.yaml")
                if yaml.safe_load(p.read_text()).get("trimmed") is True}
    assert declared == {"kt_mgfn", "tsrnet"}
    rule = (ROOT / "pipeline/rules/evaluate.smk").read_text()
    assert 'train_log="results/{dataset}/{model}/train.json"' in rule
    assert "learns_from_trimmed=" in rule
    script = (ROOT / "pipeline/scripts/evaluate.py").read_text()
    assert "training_record(" in script


def map_json(root: Path, model: str, transfer: str | None) -> Path:
    tious = [0.1, 0.5]
    block = {"tiou": tious, "mAP": [0.4, 0.2], "average_mAP": 0.3, "per_class": {}}
    extra = {"knowledge_transfer": transfer} if transfer else {}
    path = root / "results" / "thumos14" / model / "map.json"
    write_json(path, {"dataset": "thumos14", "model": model, "protocol": "anet", **block,
                      "protocols": {"anet": block}, "pretrain": None, **extra})
    return path


def test_summary_marks_the_rows_without_knowledge_transfer(tmp_path: Path) -> None:
    maps = [map_json(tmp_path, "kt_mgfn", NO_TRIMMED), map_json(tmp_path, "tsrnet", "on: 5 "
                                                                "trimmed clips"),
            map_json(tmp_path, "cpmn", None)]
    write_summary(maps, tmp_path / "s.md", tmp_path / "s.csv")
    md = (tmp_path / "s.md").read_text()
    rows = {line.split(" | ")[0][2:]: line for line in md.splitlines()
            if line.startswith("| ") and " | ours | " in line}
    assert set(rows) == {"kt_mgfn (knowledge transfer off)", "tsrnet", "cpmn"}
    assert "no trimmed videos configured" in rows["kt_mgfn (knowledge transfer off)"]
    assert "knowledge transfer" not in rows["tsrnet"] + rows["cpmn"]
    with open(tmp_path / "s.csv") as handle:
        ours = {r["model"]: r for r in csv.DictReader(handle) if r["source"] == "ours"}
    assert ours["kt_mgfn"]["note"].startswith("knowledge transfer off: no trimmed videos")
    assert ours["cpmn"]["note"] == ""
    # the papers' rows still follow the marked model's own
    section = md.split("## thumos14")[1].split("\n## ")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| kt_mgfn")]
    assert lines[0].startswith("| kt_mgfn (knowledge transfer off) | ours |")
    assert any(" | paper | " in ln for ln in lines[1:])
