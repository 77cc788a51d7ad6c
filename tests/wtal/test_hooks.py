"""The stages drive a model through its Localizer contract: pretrain (trimmed clips, its
explicit output handed to the loss), parameter groups and optimisers, model-made candidates at
inference, the standardisation statistics, and the ablation stage."""

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from extractors.grid import SnippetGrid
from wtal.ablation import ablation_table, merge_settings, run_ablation, variant_settings
from wtal.infer import InferSettings, finish_detections, infer
from wtal.models import register_model
from wtal.models.base import Localizer, Pretrained, PretrainInputs
from wtal.train import TrainSettings, feature_statistics, train
from wtalio import read_json, save_npy, write_json

CLASSES = ["A", "B"]
DIM = 8


class Out(NamedTuple):
    cas: torch.Tensor  # (B, T, C)
    video_logits: torch.Tensor  # (B, C)
    mask: torch.Tensor | None  # (B, T)


class Probe(Localizer):
    """A tiny model overriding every method of the contract; it records what the loop hands
    it."""

    seen: dict[str, Any]

    def __init__(self, *, in_dim: int, num_classes: int, candidates: list | None = None,
                 split_groups: bool = False) -> None:
        super().__init__()
        self.a = nn.Linear(in_dim, num_classes)
        self.b = nn.Linear(in_dim, num_classes)
        self.planted = candidates
        self.split_groups = split_groups
        self.seen = {}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Out:
        cas = self.a(x) + self.b(x)  # (B, T, C)
        return Out(cas, cas.mean(dim=1), mask)

    def pretrain(self, inputs: PretrainInputs) -> Pretrained:
        trimmed = inputs.trimmed
        self.seen = {"feats": inputs.videos, "labels": inputs.labels, "trimmed": trimmed}
        return Pretrained(log={"trimmed": "off" if trimmed is None else len(trimmed[0])},
                          reference=len(inputs.videos), used_trimmed=trimmed is not None)

    def loss(self, out, labels, mask, *, epoch, step=0, reference=None, video_loss="bce"):
        self.seen.setdefault("references", []).append(reference)
        self.seen.setdefault("steps", []).append(step)
        return super().loss(out, labels, mask, epoch=epoch, video_loss=video_loss)

    def param_groups(self, lr: float) -> list[dict]:
        if not self.split_groups:
            return [{"params": self.parameters()}]
        return [{"params": self.a.parameters(), "lr": lr},
                {"params": self.b.parameters(), "lr": 5 * lr}]

    def unread_infer_settings(self) -> frozenset[str]:
        return frozenset({"inflation"}) if self.planted is not None else frozenset()

    def candidates(self, out: Out, *, settings: InferSettings, options=None) -> list | None:
        if self.planted is None:
            return None
        t = out.cas.shape[1]
        return [(c, s * t, e * t, sc) for c, s, e, sc in self.planted]


_PROBES: list[Probe] = []


@register_model("test_probe")
def _probe(**kwargs: Any) -> Probe:
    net = Probe(**kwargs)
    _PROBES.append(net)
    return net


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Any]:
    """Two training videos, one test video, two trimmed clips; features 8-d."""
    rng = np.random.default_rng(0)
    videos, paths = {}, {"train": [], "test": [], "trimmed": []}
    specs = [("tr0", "train", ["A"], 12), ("tr1", "train", ["B"], 10),
             ("te0", "test", ["A"], 20), ("clip0", "trimmed", ["B"], 4),
             ("clip1", "trimmed", ["A"], 5)]
    for name, split, labels, t in specs:
        x = rng.normal(size=(t, DIM)).astype(np.float32) + 3.0
        x[:, 0] = 7.0  # a constant column (a dead unit)
        grid = SnippetGrid(fps=25.0, n_frames=16 * t, length=16, stride=16)
        save_npy(tmp_path / f"{name}.npy", x)
        write_json(tmp_path / f"{name}.json", {"shape": list(x.shape), "grid": grid.to_dict(),
                                                "extractor": "toy"})
        videos[name] = {"labels": labels, "split": split, "subset": split}
        paths[split].append(tmp_path / f"{name}.npy")
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": CLASSES, "videos": videos})
    return {"root": tmp_path, **paths}


def run_train(data: dict[str, Any], out: Path, *, trimmed: bool = True,
              model_args: dict | None = None, **settings: Any) -> dict:
    return train(data["root"] / "index.json", data["train"], out / "m.pt", out / "t.json",
                 model="test_probe", model_args=model_args or {},
                 settings=TrainSettings(**{"epochs": 2, "batch_size": 2, "lr": 1e-2, **settings}),
                 device="cpu", trimmed_paths=data["trimmed"] if trimmed else ())


def test_feature_statistics_leave_constant_columns_unscaled() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4)) * [1.0, 2.0, 0.0, 1e-6] + [0.0, 5.0, 3.0, 1.0]
    mean, std = feature_statistics([x[:20], x[20:]])
    assert mean == pytest.approx(x.mean(axis=0), abs=1e-5)
    assert std[:2] == pytest.approx(x[:, :2].std(axis=0), rel=1e-5)
    assert np.isinf(std[2:]).all()  # constant and nearly constant: dropped
    # a test value off a dead unit standardises to 0 instead of growing by 1e6
    z = (np.array([0.0, 5.0, 3.5, 1.5]) - mean) / std
    assert z[2:].tolist() == [0.0, 0.0]
    assert np.isfinite(z).all()


def test_pretrain_gets_standardised_sequences_and_trimmed_clips(data, tmp_path: Path) -> None:
    log = run_train(data, tmp_path)
    net = _PROBES[-1]
    assert log["pretrain"] == {"trimmed": 2}
    assert read_json(tmp_path / "t.json")["n_trimmed"] == 2
    feats, trimmed_feats = net.seen["feats"], net.seen["trimmed"][0]
    assert [len(x) for x in feats] == [12, 10]
    assert [len(x) for x in trimmed_feats] == [4, 5]
    both = np.concatenate(feats)
    assert both[:, 1:].mean(axis=0) == pytest.approx(0.0, abs=1e-5)  # standardised
    assert both[:, 1:].std(axis=0) == pytest.approx(1.0, abs=1e-4)
    assert both[:, 0] == pytest.approx(0.0)  # the dead unit, dropped
    # the clips are standardised with the training videos' statistics, not their own
    raw = np.load(data["root"] / "clip0.npy")
    mean, std = feature_statistics([np.load(p) for p in data["train"]])
    assert trimmed_feats[0] == pytest.approx((raw - mean) / std, abs=1e-5)
    assert net.seen["trimmed"][1].tolist() == [[0.0, 1.0], [1.0, 0.0]]  # clip0 B, clip1 A
    assert net.seen["labels"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    # what pretrain returned reaches every loss call; steps are counted from 0 over the epochs
    assert net.seen["references"] == [2, 2]
    assert net.seen["steps"] == [0, 1]


def test_pretrain_without_trimmed_clips_is_told_so(data, tmp_path: Path) -> None:
    log = run_train(data, tmp_path, trimmed=False)
    assert log["pretrain"] == {"trimmed": "off"}
    assert log["n_trimmed"] == 0
    assert _PROBES[-1].seen["trimmed"] is None


def test_trimmed_clips_must_be_of_the_trimmed_split(data, tmp_path: Path) -> None:
    data = {**data, "trimmed": [data["root"] / "te0.npy"]}
    with pytest.raises(ValueError, match=r"te0.npy: video 'te0' is in split 'test'"):
        run_train(data, tmp_path)


def test_models_without_pretrain_say_the_clips_are_unused(data, tmp_path: Path,
                                                          caplog) -> None:
    with caplog.at_level(logging.WARNING):
        log = train(data["root"] / "index.json", data["train"], tmp_path / "m.pt",
                    tmp_path / "t.json", model="cas_baseline", model_args={"hidden": 8},
                    settings=TrainSettings(epochs=1, batch_size=2), device="cpu",
                    trimmed_paths=data["trimmed"])
    assert "does not learn from trimmed clips: the 2 given are not used" in caplog.text
    assert log["pretrain"].startswith("none")
    assert len(log["epoch_seconds"]) == 1
    assert log["epoch_seconds"][0] > 0


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_parameter_groups_and_optimizers(data, tmp_path: Path, optimizer: str) -> None:
    torch.manual_seed(0)  # the loop seeds the same way before building the model
    start = {k: v.clone() for k, v in Probe(in_dim=DIM, num_classes=2).state_dict().items()}
    log = run_train(data, tmp_path, model_args={"split_groups": True}, optimizer=optimizer,
                    seed=0, epochs=1, batch_size=4, weight_decay=0.0)
    assert log["lr_groups"] == [[pytest.approx(1e-2), pytest.approx(5e-2)]]
    trained = torch.load(tmp_path / "m.pt", weights_only=False)["state_dict"]
    step_a = (trained["a.weight"] - start["a.weight"]).abs().max().item()
    step_b = (trained["b.weight"] - start["b.weight"]).abs().max().item()
    # a and b get the same gradient (cas = a(x) + b(x)); b's group has 5 times the rate, so
    # after one step (the two videos in one batch) it has moved 5 times as far (Adam and SGD)
    assert step_a > 0
    assert step_b == pytest.approx(5 * step_a, rel=1e-3)


def test_unknown_optimizer_is_refused(data, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        run_train(data, tmp_path, optimizer="rmsprop")


def test_infer_uses_the_models_candidates_through_the_grid(data, tmp_path: Path) -> None:
    # candidates as fractions of the sequence: the test video has 20 snippets of 16/25 s
    cands = [[0, 0.1, 0.3, 0.9], [1, 0.5, 0.55, 0.4], [0, -0.2, 0.05, 0.3], [1, 0.98, 1.5, 0.2]]
    run_train(data, tmp_path, model_args={"candidates": cands})
    settings = InferSettings(nms="none")
    sub = infer(tmp_path / "m.pt", data["test"], tmp_path / "d.json", tmp_path / "cas",
                settings=settings, device="cpu")
    dets = sub["results"]["te0"]
    s = 16 / 25
    assert [(d["label"], d["segment"], d["score"]) for d in dets] == [
        ("A", [round(2 * s, 3), round(6 * s, 3)], pytest.approx(0.9)),
        ("B", [round(10 * s, 3), round(11 * s, 3)], pytest.approx(0.4)),
        ("A", [0.0, round(1 * s, 3)], pytest.approx(0.3)),  # clipped at the start
        ("B", [round(19.6 * s, 3), round(20 * s, 3)], pytest.approx(0.2)),  # and at the end
    ]


def test_infer_says_which_settings_the_model_does_not_read(data, tmp_path: Path,
                                                          caplog) -> None:
    run_train(data, tmp_path, model_args={"candidates": [[0, 0.1, 0.3, 0.9]]})
    with caplog.at_level(logging.WARNING, logger="wtal.infer"):
        sub = infer(tmp_path / "m.pt", data["test"], tmp_path / "d.json", tmp_path / "cas",
                    settings=InferSettings(inflation=0.5), device="cpu")
    assert sub["unread_settings"] == ["inflation"]
    assert "does not read the infer settings ['inflation']" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wtal.infer"):  # left at its default: quiet
        infer(tmp_path / "m.pt", data["test"], tmp_path / "d.json", tmp_path / "cas",
              settings=InferSettings(), device="cpu")
    assert "does not read" not in caplog.text


def test_model_candidates_of_a_rescaled_model_map_back(data, tmp_path: Path) -> None:
    cands = [[0, 0.25, 0.5, 0.9]]  # a quarter to a half of whatever length the model sees
    run_train(data, tmp_path, model_args={"candidates": cands}, feature_length=8)
    sub = infer(tmp_path / "m.pt", data["test"], tmp_path / "d.json", tmp_path / "cas",
                settings=InferSettings(nms="none"), device="cpu")
    s = 16 / 25
    assert sub["results"]["te0"][0]["segment"] == [round(5 * s, 3), round(10 * s, 3)]
    assert np.load(tmp_path / "cas" / "te0.npy").shape == (20, 2)


def test_finish_detections_applies_nms_per_class_and_refuses_bad_classes() -> None:
    grid = SnippetGrid(fps=1.0, n_frames=10, length=1, stride=1)
    cands = [(0, 0.0, 4.0, 0.9), (0, 0.5, 4.0, 0.8), (1, 0.5, 4.0, 0.7)]
    dets = finish_detections(cands, grid, ["A", "B"], InferSettings(nms="hard", nms_iou=0.5))
    assert [(d["label"], d["score"]) for d in dets] == [("A", 0.9), ("B", 0.7)]
    with pytest.raises(ValueError, match="class index 2, but there are 2 classes"):
        finish_detections([(2, 0.0, 1.0, 0.5)], grid, ["A", "B"], InferSettings())


def test_variant_settings_merge_overrides_in_table_order() -> None:
    base = {"args": {"a": 1, "b": {"x": 1, "y": 2}}, "train": {"epochs": 3}, "infer": {}}
    out = variant_settings(base, {"full": {}, "no b.x": {"args": {"b": {"x": 0}}},
                                  "short": {"train": {"epochs": 1}}})
    assert list(out) == ["full", "no b.x", "short"]
    assert out["full"] == base
    assert out["no b.x"]["args"] == {"a": 1, "b": {"x": 0, "y": 2}}
    assert out["short"]["train"] == {"epochs": 1}
    assert base["args"]["b"]["x"] == 1  # the base is not changed
    assert merge_settings({"a": {"b": 1}}, None) == {"a": {"b": 1}}
    with pytest.raises(ValueError, match="unknown sections \\['model'\\]"):
        variant_settings(base, {"bad": {"model": {}}})
    with pytest.raises(ValueError, match="no ablations"):
        variant_settings(base, {})


def test_ablation_stage_trains_every_distinct_variant(data, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = data["root"]
    write_json(root / "gt.json", {"database": {"te0": {"subset": "test", "annotations": [
        {"label": "A", "segment": [1.0, 5.0]}]}}})
    settings = {"args": {"candidates": [[0, 0.1, 0.4, 0.9]]},
                "train": {"epochs": 1, "batch_size": 2}, "infer": {"nms": "none"}}
    variants = {"candidates": {}, "a miss": {"args": {"candidates": [[0, 0.6, 0.9, 0.9]]}},
                "candidates, top 1": {"infer": {"max_per_video": 1}}}
    out = tmp_path / "out"
    import wtal.train

    trainings = []
    real_train = wtal.train.train
    monkeypatch.setattr(wtal.train, "train",
                        lambda *a, **k: trainings.append(k["model_args"]) or real_train(*a, **k))
    report = run_ablation(root / "index.json", data["train"], data["test"], root / "gt.json",
                          out / "ablation.md", out / "ablation.json", model="test_probe",
                          settings=settings, variants=variants,
                          evaluation={"subset": "test", "tiou": [0.3, 0.5], "protocol": "anet"},
                          trimmed_paths=data["trimmed"], dataset="toy", device="cpu")
    rows = report["variants"]
    assert [r["variant"] for r in rows] == ["candidates", "a miss", "candidates, top 1"]
    # the third differs from the first in inference alone: trained twice, not three times
    assert len(trainings) == 2
    assert [r["shares_training_with"] for r in rows] == [None, None, "candidates"]
    assert rows[2]["mAP"] == rows[0]["mAP"]
    # 1.28-5.12 s against 1-5 s: a hit at both thresholds; 7.68-11.52 s: none
    assert rows[0]["mAP"] == [1.0, 1.0]
    assert rows[1]["mAP"] == [0.0, 0.0]
    assert rows[0]["pretrain"] == {"trimmed": 2}
    # frame accuracy reads the CAS, which the candidates do not change (same seed, same model)
    assert 0.0 <= rows[0]["frame_accuracy"] <= 1.0
    assert rows[1]["frame_accuracy"] == rows[0]["frame_accuracy"]
    table = (out / "ablation.md").read_text()
    assert "| candidates | 100.0 | 100.0 | 100.0 |" in table
    assert "| a miss | 0.0 | 0.0 | 0.0 |" in table
    assert "candidates=[[0, 0.6, 0.9, 0.9]]" in table
    assert "| = candidates | max_per_video=1 |" in table
    assert table == ablation_table(read_json(out / "ablation.json"))
    assert sorted(p.name for p in out.iterdir()) == ["ablation.json", "ablation.md"]


def test_an_ablation_keeps_each_variants_model_and_outputs_when_asked(
        data, tmp_path: Path) -> None:
    """``keep_dir``: every variant's folder holds what a diagnosis of its row needs (a variant
    that shares its training holds no model), the kept model re-infers to the row's detections,
    and the table is the same as without keeping."""
    from wtal.ablation import variant_folder
    from wtal.infer import infer
    from wtal.settings import infer_settings

    root = data["root"]
    write_json(root / "gt.json", {"database": {"te0": {"subset": "test", "annotations": [
        {"label": "A", "segment": [1.0, 5.0]}]}}})
    settings = {"args": {"candidates": [[0, 0.1, 0.4, 0.9]]},
                "train": {"epochs": 1, "batch_size": 2}, "infer": {"nms": "none"}}
    variants = {"+cand": {}, "a miss": {"args": {"candidates": [[0, 0.6, 0.9, 0.9]]}},
                "+cand, top 1": {"infer": {"max_per_video": 1}}}
    evaluation = {"subset": "test", "tiou": [0.3, 0.5], "protocol": "anet"}

    def ablate(out: Path, keep: Path | None) -> dict:
        return run_ablation(root / "index.json", data["train"], data["test"], root / "gt.json",
                            out / "ablation.md", out / "ablation.json", model="test_probe",
                            settings=settings, variants=variants, evaluation=evaluation,
                            dataset="toy", device="cpu", keep_dir=keep)

    keep = tmp_path / "models"
    report = ablate(tmp_path / "out", keep)
    assert [variant_folder(n) for n in variants] == ["+cand", "a_miss", "+cand_top_1"]
    assert sorted(p.name for p in keep.iterdir()) == ["+cand", "+cand_top_1", "a_miss"]
    for name in ("+cand", "a_miss"):
        assert sorted(p.name for p in (keep / name).iterdir()) == [
            "cas", "detections.json", "model.pt", "row.json", "train.json"]
    assert sorted(p.name for p in (keep / "+cand_top_1").iterdir()) == [
        "cas", "detections.json", "row.json"]
    assert sorted(p.name for p in (keep / "a_miss" / "cas").iterdir())  # per-video CAS files
    for row in report["variants"]:
        assert read_json(keep / variant_folder(row["variant"]) / "row.json") == row
    again = tmp_path / "again"
    infer(keep / "a_miss" / "model.pt", data["test"], again / "detections.json", again / "cas",
          settings=infer_settings({"nms": "none"})[0], device="cpu")
    assert (read_json(again / "detections.json")["results"]
            == read_json(keep / "a_miss" / "detections.json")["results"])
    plain = ablate(tmp_path / "plain", None)
    assert [r["mAP"] for r in plain["variants"]] == [r["mAP"] for r in report["variants"]]
    assert (tmp_path / "plain" / "ablation.md").read_text() == (
        tmp_path / "out" / "ablation.md").read_text()
    with pytest.raises(ValueError, match="'a miss' and 'a  miss' would both be kept"):
        run_ablation(root / "index.json", data["train"], data["test"], root / "gt.json",
                     tmp_path / "x" / "ablation.md", tmp_path / "x" / "ablation.json",
                     model="test_probe", settings=settings,
                     variants={"a miss": {}, "a  miss": {}}, evaluation=evaluation,
                     dataset="toy", device="cpu", keep_dir=keep)


def test_an_interrupted_ablation_resumes_where_it_stopped(data, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed in its third variant leaves no table, only its finished trainings and rows
    (hidden); the rerun trains only what was not finished and writes the same table as an
    uninterrupted run. A changed input file makes the saved parts stale."""
    root = data["root"]
    write_json(root / "gt.json", {"database": {"te0": {"subset": "test", "annotations": [
        {"label": "A", "segment": [1.0, 5.0]}]}}})
    settings = {"args": {"candidates": [[0, 0.1, 0.4, 0.9]]},
                "train": {"epochs": 1, "batch_size": 2}, "infer": {"nms": "none"}}
    variants = {"candidates": {}, "candidates, top 1": {"infer": {"max_per_video": 1}},
                "a miss": {"args": {"candidates": [[0, 0.6, 0.9, 0.9]]}}}
    import wtal.infer
    import wtal.train

    trainings, inferred = [], []
    real_train, real_infer = wtal.train.train, wtal.infer.infer
    monkeypatch.setattr(wtal.train, "train",
                        lambda *a, **k: trainings.append(k["model_args"]) or real_train(*a, **k))

    def ablate(out: Path) -> dict:
        return run_ablation(root / "index.json", data["train"], data["test"], root / "gt.json",
                            out / "ablation.md", out / "ablation.json", model="test_probe",
                            settings=settings, variants=variants,
                            evaluation={"subset": "test", "tiou": [0.3, 0.5], "protocol": "anet"},
                            dataset="toy", device="cpu")

    def killed_in_the_third(*a, **k):
        inferred.append(1)
        if len(inferred) == 3:
            raise KeyboardInterrupt("killed")
        return real_infer(*a, **k)

    out = tmp_path / "out"
    monkeypatch.setattr(wtal.infer, "infer", killed_in_the_third)
    with pytest.raises(KeyboardInterrupt):
        ablate(out)
    assert len(trainings) == 2  # the third variant was trained, then killed in inference
    assert not (out / "ablation.md").exists()
    assert not (out / "ablation.json").exists()
    assert len(list((out / ".ablation.parts").glob("row-*.json"))) == 2
    monkeypatch.setattr(wtal.infer, "infer", real_infer)
    trainings.clear()
    resumed = ablate(out)
    assert trainings == []  # both trainings were kept; only the third row was inferred
    assert [r["variant"] for r in resumed["variants"]] == list(variants)
    assert resumed["variants"][1]["shares_training_with"] == "candidates"
    assert sorted(p.name for p in out.iterdir()) == ["ablation.json", "ablation.md"]
    fresh = ablate(tmp_path / "fresh")
    assert len(trainings) == 2
    for a, b in zip(resumed["variants"], fresh["variants"], strict=True):
        assert (a["mAP"], a["frame_accuracy"]) == (b["mAP"], b["frame_accuracy"])
    # stale parts: an interrupted run, then a changed feature file → everything retrains
    trainings.clear()
    inferred.clear()
    monkeypatch.setattr(wtal.infer, "infer", killed_in_the_third)
    with pytest.raises(KeyboardInterrupt):
        ablate(tmp_path / "stale")
    monkeypatch.setattr(wtal.infer, "infer", real_infer)
    st = os.stat(data["train"][0])  # the features rewritten: a new modification time
    os.utime(data["train"][0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    trainings.clear()
    ablate(tmp_path / "stale")
    assert len(trainings) == 2
