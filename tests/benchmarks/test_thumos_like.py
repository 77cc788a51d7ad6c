"""benchmarks/thumos_like.py writes a THUMOS14-structured feature benchmark that the
bring-your-own-features path reads, with the premise it promises planted in the features."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from wtal.datasets import index_from_config
from wtal.settings import resolve_dataset_settings

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "thumos_like.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("thumos_like", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["thumos_like"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def made(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("thumos_like")
    spec = bench.Spec(n_train=12, n_test=12, dim=8, seed=4)
    stats = bench.make(out, spec)
    return out, spec, stats


def test_files_and_structure(bench, made) -> None:
    out, spec, stats = made
    db = json.loads((out / "annotations.json").read_text())["database"]
    assert sum(e["subset"] == "validation" for e in db.values()) == 12
    assert sum(e["subset"] == "test" for e in db.values()) == 12
    for name, entry in db.items():
        x = np.load(out / "features" / f"{name}.npy")
        assert x.dtype == np.float32
        assert x.shape == (round(entry["duration"] / bench.SNIPPET_SECONDS), 2 * spec.dim)
        for a in entry["annotations"]:
            assert a["label"] in bench.CLASSES or a["label"] == "Ambiguous"
            assert 0 <= a["segment"][0] < a["segment"][1] <= entry["duration"] + 0.1
        segs = {tuple(a["segment"]) for a in entry["annotations"] if a["label"] == "Diving"}
        for a in entry["annotations"]:
            if a["label"] == "CliffDiving":  # THUMOS14: CliffDiving instances are Diving too
                assert tuple(a["segment"]) in segs
    assert stats["validation"]["instances"] > 12  # many instances per video, not one


def test_premise_core_inside_whole_context_outside(bench, made) -> None:
    """Projected on a class's core direction, core snippets score highest, the rest of the
    instance is weaker, the background near zero; the scene context is on the background."""
    out, spec, _ = made
    rng = np.random.default_rng(spec.seed)
    dirs = bench.directions(spec, rng)  # same draw order as make(): directions come first
    db = json.loads((out / "annotations.json").read_text())["database"]
    inside, outside, context_bg = [], [], []
    for name, entry in db.items():
        x = np.load(out / "features" / f"{name}.npy")
        mask = np.zeros(len(x), bool)
        for a in entry["annotations"]:
            if a["label"] == "Ambiguous":
                continue
            s, e = (int(np.floor(t / bench.SNIPPET_SECONDS)) for t in a["segment"])
            mask[s:e + 1] = True
            proj = x[s:e + 1] @ dirs[a["label"]]["core"]
            inside.append(proj.max())
        outside.append(x[~mask] @ dirs[bench.CLASSES[0]]["core"])
        scene = [a["label"] for a in entry["annotations"] if a["label"] != "Ambiguous"]
        if scene and (~mask).any():
            context_bg.append(float(np.mean(x[~mask, :spec.dim] @ dirs[scene[0]]["context"])))
    assert np.mean(inside) > 1.0
    assert abs(np.mean(np.concatenate(outside))) < 0.2
    assert np.mean(context_bg) > 0.3


def test_the_workflow_config_indexes_as_thumos14_like(bench, made) -> None:
    out, _, _ = made
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    ds = resolve_dataset_settings(bench.DATASET, None, cfg["datasets"][bench.DATASET])
    assert ds["model_settings"] == "thumos14"
    index = index_from_config(out / "index.json", out / "gt.json", ds)
    gt = json.loads((out / "gt.json").read_text())
    assert index["classes"] == list(bench.CLASSES)
    n_amb = sum(a["label"] == "Ambiguous" for e in json.loads(
        (out / "annotations.json").read_text())["database"].values() for a in e["annotations"])
    assert sum(len(v) for v in gt.get("ambiguous", {}).values()) == n_amb
    widths = cfg["models"]["cas_baseline"]["datasets"][bench.DATASET]["args"]
    assert widths["hidden"] == 512 // bench.WIDTH_DIVISOR


def test_sgd_models_get_the_learning_rate_of_their_feature_columns(bench, made) -> None:
    """TSRNet (SGD) takes its THUMOS14 rate × 1024 / dim; the Adam models keep theirs."""
    from wtal.settings import resolve_model_settings

    out, spec, _ = made
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    models = SCRIPT.parents[1] / "pipeline" / "config" / "models"
    paper_lr = resolve_model_settings(models / "tsrnet.yaml", "thumos14")["train"]["lr"]
    tsr = cfg["models"]["tsrnet"]["datasets"][bench.DATASET]
    assert tsr["train"]["lr"] == pytest.approx(paper_lr * 1024 / spec.dim)
    resolved = resolve_model_settings(models / "tsrnet.yaml", bench.DATASET,
                                      cfg["models"]["tsrnet"], settings_of="thumos14")
    assert resolved["train"]["lr"] == pytest.approx(paper_lr * 1024 / spec.dim)
    assert resolved["train"]["optimizer"] == "sgd"
    for model in ("cas_baseline", "kt_mgfn", "assg", "cpmn", "ecm"):
        assert "train" not in cfg["models"][model]["datasets"][bench.DATASET], model
        assert bench.sgd_lr(model, spec.dim) is None


def test_choices_are_settings_overrides_and_chosen_ones_are_applied(bench, tmp_path) -> None:
    """Every candidate overrides args / train / infer only; ``chosen_override`` reads the
    override ``choose`` wrote (what ``run`` merges under the seed), {} where none was chosen."""
    from wtal.ablation import variant_settings

    for model, candidates in bench.CHOICES.items():
        assert len(candidates) >= 2, model
        variant_settings({"args": {}, "train": {}, "infer": {}}, candidates)  # no ValueError
    assert bench.chosen_override(tmp_path, "tsrnet") == {}
    (tmp_path / "chosen").mkdir()
    (tmp_path / "chosen" / "tsrnet.json").write_text(json.dumps(
        {"best": "beta 3", "override": {"args": {"beta": 3.0}}}))
    assert bench.chosen_override(tmp_path, "tsrnet") == {"args": {"beta": 3.0}}
    with pytest.raises(ValueError, match="nothing to choose"):
        bench.choose(tmp_path, "cas_baseline")


def test_run_command_targets_and_threads(bench, tmp_path) -> None:
    """``run --only-ablation --threads-per-job 1``: the tables alone, each job on one thread."""
    cmd = bench.snakemake_command(tmp_path, tmp_path / "seed0", ["ecm", "assg"], 2,
                                  ("ablation.md",), 1)
    wanted = cmd[cmd.index("--") + 1:]
    assert wanted == ["results/thumos_like/ecm/ablation.md",
                      "results/thumos_like/assg/ablation.md"]
    i = cmd.index("--set-threads")
    assert cmd[i + 1: i + 3] == ["train=1", "ablation=1"]
    assert cmd[cmd.index("--cores") + 1] == "2"
    plain = bench.snakemake_command(tmp_path, tmp_path / "seed0", ["ecm"], 2, ("map.json",))
    assert "--set-threads" not in plain
    assert plain[-1] == "results/thumos_like/ecm/map.json"


def test_trimmed_clips_for_knowledge_transfer(bench, made, tmp_path) -> None:
    """``trimmed_groups``: UCF101-like clips in UCF101's folder layout, all action (the class's
    whole direction on every row), indexed as the dataset's trimmed split; the untrimmed videos
    are the same as without them."""
    import dataclasses

    out0, spec0, _ = made
    spec = dataclasses.replace(spec0, trimmed_groups=2)
    stats = bench.make(tmp_path, spec)
    clips = sorted((tmp_path / "trimmed").glob("*/*.npy"))
    assert stats["trimmed_clips"] == len(clips)
    assert 20 * 2 * 4 <= len(clips) <= 20 * 2 * 7
    assert {p.parent.name for p in clips} == set(bench.CLASSES)
    rng = np.random.default_rng(spec.seed)
    dirs = bench.directions(spec, rng)
    lengths, margins = [], []
    for path in clips:
        cls = path.parent.name
        assert path.stem.startswith(f"v_{cls}_g")
        x = np.load(path)
        assert x.dtype == np.float32
        assert x.shape[1] == 2 * spec.dim
        lengths.append(x.shape[0] * bench.SNIPPET_SECONDS)
        own = (x @ dirs[cls]["whole"]).mean()
        margins += [own - (x @ dirs[c]["whole"]).mean() for c in bench.CLASSES
                    if c != cls and "Diving" not in c + cls]
    assert np.mean(margins) > 0.3  # the whole direction at amplitude 0.5 on every row
    assert 4.0 < np.median(lengths) < 9.0  # UCF101: 7.21 s on average
    for name in ("video_validation_0000001", "video_test_0000003"):
        np.testing.assert_array_equal(np.load(tmp_path / "features" / f"{name}.npy"),
                                      np.load(out0 / "features" / f"{name}.npy"))
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    ds = resolve_dataset_settings(bench.DATASET, None, cfg["datasets"][bench.DATASET])
    assert ds["trimmed"] == {"root": str((tmp_path / "trimmed").resolve())}
    index = index_from_config(tmp_path / "index.json", tmp_path / "gt.json", ds)
    trimmed = {v: r for v, r in index["videos"].items() if r["split"] == "trimmed"}
    assert sorted(trimmed) == sorted(p.stem for p in clips)
    assert all(r["labels"] == [r["ucf101_class"]] for r in trimmed.values())
    assert "trimmed" not in yaml.safe_load((out0 / "config.yaml").read_text())["datasets"][
        bench.DATASET]


def test_regions_replay_what_make_planted(bench, made) -> None:
    """The parts replayed from the data seed are those in the features: the class's core
    direction is strong on core snippets only, the scene context absent from cut-aways."""
    out, spec, _ = made
    parts = bench.regions(spec)
    db = json.loads((out / "annotations.json").read_text())["database"]
    assert set(parts) == set(db)
    dirs = bench.directions(spec, np.random.default_rng(spec.seed))
    core, context = {k: [] for k in range(5)}, {k: [] for k in range(5)}
    for name, entry in db.items():
        x = np.load(out / "features" / f"{name}.npy")
        code = parts[name]
        assert code.shape == (len(x),)
        labels = [a["label"] for a in entry["annotations"] if a["label"] != "Ambiguous"]
        if not labels:
            continue
        c = np.max([x @ dirs[lab]["core"] for lab in set(labels)], axis=0)
        ctx = np.max([x[:, :spec.dim] @ dirs[lab]["context"] for lab in set(labels)], axis=0)
        for k in range(5):
            core[k] += list(c[code == k])
            context[k] += list(ctx[code == k])
    assert np.mean(core[bench.CORE]) > 1.0
    for k in (bench.WHOLE, bench.SCENE, bench.CUTAWAY):
        assert np.mean(core[k]) < 0.5 * np.mean(core[bench.CORE])
    assert np.mean(context[bench.SCENE]) > 0.4
    assert abs(np.mean(context[bench.CUTAWAY])) < 0.2


def test_where_reads_cas_and_detections_by_part(bench, made, tmp_path) -> None:
    """A run whose CAS is 1 on the labelled classes' cores and whose detections are the test
    instances: CAS 1 on cores, 0 elsewhere, every detection snippet in an action."""
    out, spec, _ = made
    parts = bench.regions(spec)
    db = json.loads((out / "annotations.json").read_text())["database"]
    run = tmp_path / "run"
    (run / "cas").mkdir(parents=True)
    results, scores = {}, {}
    for name, entry in db.items():
        if entry["subset"] != "test":
            continue
        cas = np.zeros((len(parts[name]), len(bench.CLASSES)), np.float32)
        labels = {a["label"] for a in entry["annotations"]} - {"Ambiguous"}
        for lab in labels:
            cas[parts[name] == bench.CORE, bench.CLASSES.index(lab)] = 1.0
        np.save(run / "cas" / f"{name}.npy", cas)
        results[name] = [{"label": a["label"], "segment": a["segment"], "score": 1.0}
                         for a in entry["annotations"] if a["label"] != "Ambiguous"]
        scores[name] = {c: 0.0 for c in bench.CLASSES}
    (run / "detections.json").write_text(json.dumps({"results": results,
                                                     "video_scores": scores}))
    text = bench.where(out, {"planted": run})
    row = next(line for line in text.splitlines() if line.startswith("| planted"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["1.000", "0.000", "0.000", "0.000"]
    in_action = int(cells[6].rstrip(" %"))
    assert in_action >= 90  # detections are the instances (edge snippets under half covered)
