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


def _pretrain_log(model: str, **args: object) -> dict:
    """What ``train.json`` records of the pretraining of a tiny ``model`` on two videos
    without trimmed clips (``pretrain``, ``transfer_missing``)."""
    import numpy as np
    import torch

    from wtal.models import build_model
    from wtal.models.base import PretrainInputs
    from wtal.train import TrainSettings

    common = {"in_dim": 8, "num_classes": 2, "dropout": 0.0}
    if model == "tsrnet":
        common |= {"streams": {"rgb": [0, 4], "flow": [4, 8]}, "hops": 2,
                   "attention_hidden": 6, "fc_hidden": 5}
    else:
        common |= {"hidden": 8, "brm_hidden": 4, "anchor_scales": (1, 2)}
    net = build_model(model, **common, **args)
    rng = np.random.default_rng(0)
    done = net.pretrain(PretrainInputs(
        videos=[rng.standard_normal((6, 8)).astype(np.float32) for _ in range(2)],
        labels=np.eye(2, dtype=np.float32), trimmed=None, settings=TrainSettings(epochs=1),
        rng=rng, device=torch.device("cpu")))
    return {"pretrain": done.log, "transfer_missing": done.transfer_missing}


def test_ablation_rows_that_asked_for_a_transfer_they_did_not_get_are_marked() -> None:
    """An ablation run on a dataset without trimmed clips trains its KT rows (KT-MGFN's +KTM,
    TSRNet's +KT) without the transfer; ablation.md marks those rows, and only those: a row
    whose arguments switch the transfer off asked for nothing."""
    from wtal.ablation import ablation_table, transfer_missing

    missing = {"kt_mgfn": _pretrain_log("kt_mgfn", ktm=True),
               "tsrnet": _pretrain_log("tsrnet", knowledge_transfer=True)}
    asked_nothing = {"kt_mgfn": _pretrain_log("kt_mgfn", ktm=False),
                     "tsrnet": _pretrain_log("tsrnet", knowledge_transfer=False)}
    for model in missing:
        assert transfer_missing(missing[model]) == "the dataset has no trimmed clips", model
        assert transfer_missing(asked_nothing[model]) is None, model
    assert transfer_missing({"pretrain": {"ktm": "on"}, "transfer_missing": None}) is None
    assert transfer_missing({"pretrain": "none: the model has no pretrain stage"}) is None

    def row(name: str, pretrain: object) -> dict:
        return {"variant": name, "overrides": {}, "tiou": [0.5], "mAP": [0.25],
                "average_mAP": 0.25, "frame_accuracy": 0.5, "train_seconds": 3.0,
                "shares_training_with": None, "knowledge_transfer_off": transfer_missing(pretrain)}

    table = ablation_table({"model": "tsrnet", "dataset": "d", "protocol": "anet",
                            "subset": "test", "variants": [
                                row("Two-Stream+SA", asked_nothing["tsrnet"]),
                                row("TSRNet", missing["tsrnet"])]})
    assert "| Two-Stream+SA | 25.0 |" in table
    assert "| TSRNet † | 25.0 |" in table
    assert "† Trained WITHOUT the knowledge transfer" in table
    assert "TSRNet: the dataset has no trimmed clips" in table
    assert "Two-Stream+SA:" not in table
