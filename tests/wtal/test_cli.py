"""The ``wtal`` command line runs the stages by hand."""

from pathlib import Path

import numpy as np
import pytest
from conftest import counter_frames, write_video

from wtal.cli import main


def test_decode_flow_features_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(40, 48, 64, 3), dtype=np.uint8)
    video = write_video(tmp_path / "v.mp4", frames, fps=25.0)
    plan, flow, feats = tmp_path / "p.json", tmp_path / "f.zip", tmp_path / "x.npy"
    assert main(["decode", str(video), "--fps", "25", "--out", str(plan)]) == 0
    assert "40 frames at 25.000 fps" in capsys.readouterr().out
    assert main(["flow", str(plan), "--out", str(flow), "--short-side", "48", "--param",
                 "nscales=1", "warps=1", "inner_iterations=2", "outer_iterations=1"]) == 0
    assert "39 flows of 64x48" in capsys.readouterr().out
    assert main(["features", str(plan), str(flow), "--out", str(feats), "--short-side", "48",
                 "--crop", "32", "--snippet-length", "8", "--snippet-stride", "8",
                 "--device", "cpu"]) == 0
    assert "features of shape (5, 2048)" in capsys.readouterr().out
    assert np.load(feats).shape == (5, 2048)


def test_bad_video_exits_2_naming_the_file(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 1000)
    assert main(["decode", str(bad), "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err
    assert not (tmp_path / "p.json").exists()


def test_index_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ds"
    (root / "ann").mkdir(parents=True)
    (root / "ann" / "A_val.txt").write_text("clip1 0.1 0.5\n")
    write_video(root / "vids" / "clip1.mp4", counter_frames(25), fps=25.0)
    cfg = tmp_path / "ds.yaml"
    cfg.write_text(
        "name: toy\nroot: unused\nclasses: [A]\nfps: 25\nsubsets:\n"
        "  - {name: validation, split: train, videos: vids, annotations: ann, suffix: val}\n"
    )
    assert main(["index", "--dataset-config", str(cfg), "--root", str(root),
                 "--index", str(tmp_path / "i.json"), "--gt", str(tmp_path / "g.json")]) == 0
    assert "indexed 1 videos of toy" in capsys.readouterr().out


def test_unknown_training_setting_is_refused(tmp_path: Path, capsys) -> None:
    # refused by the model schema, as the workflow refuses it (wtal.settings)
    assert main(["train", "--index", "i.json", "--features", "x.npy", "--model", "cas_baseline",
                 "--out-model", str(tmp_path / "m.pt"), "--out-log", str(tmp_path / "t.json"),
                 "--set", "learning_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err
    assert "command-line settings" in err


def test_flow_by_hand_with_the_torch_backend_and_a_memory_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import zipfile

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, size=(6, 36, 44, 3), dtype=np.uint8)  # 44×36: upsampled
    video = write_video(tmp_path / "v.mp4", frames, fps=25.0)
    plan, flow = tmp_path / "p.json", tmp_path / "f.zip"
    assert main(["decode", str(video), "--fps", "25", "--out", str(plan)]) == 0
    cheap = ["--param", "nscales=1", "warps=1", "inner_iterations=2", "outer_iterations=1"]
    assert main(["flow", str(plan), "--out", str(flow), "--short-side", "48", "--backend",
                 "torch", "--device", "cpu", "--memory-budget-mb", "20", *cheap]) == 0
    assert "5 flows of 59x48" in capsys.readouterr().out  # short side 36 → 48, never kept small
    with zipfile.ZipFile(flow) as archive:
        meta = json.loads(archive.read("meta.json"))
    assert (meta["backend"], meta["device"]) == ("torch", "cpu")
    assert main(["flow", str(plan), "--out", str(tmp_path / "g.zip"), "--backend", "opencv",
                 "--device", "cuda"]) == 2
    assert "opencv TV-L1 backend runs on the CPU" in capsys.readouterr().err
    assert main(["flow", str(plan), "--out", str(tmp_path / "h.zip"), "--backend", "torch",
                 "--device", "cpu", "--batch-pairs", "2", "--memory-budget-mb", "20"]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "g.zip").exists()
    assert not (tmp_path / "h.zip").exists()


def test_decode_by_hand_refuses_a_video_shorter_than_a_snippet(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = write_video(tmp_path / "tiny.mp4", counter_frames(10, 32, 32), fps=25.0)
    assert main(["decode", str(video), "--fps", "25", "--min-frames", "16",
                 "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "tiny.mp4: 0.400 s long, 10 frame(s)" in err
    assert "known_bad.exclude" in err


MODELS_DIR = Path(__file__).resolve().parents[2] / "pipeline" / "config" / "models"


def test_a_configfile_datasets_model_settings_choose_the_per_dataset_block(
        tmp_path: Path) -> None:
    """A bring-your-own-features THUMOS14 (``model_settings: thumos14``) gets KT-MGFN's
    THUMOS14 block by hand as in the workflow (it once got the defaults: joint training and
    the default sampling); several configfiles merge, the later winning."""
    from wtal.cli import _model_block
    from wtal.settings import resolve_model_settings

    kt = str(MODELS_DIR / "kt_mgfn.yaml")
    mine = tmp_path / "mine.yaml"
    mine.write_text("datasets:\n  mythumos: {model_settings: thumos14, features_dir: f,\n"
                    "    annotations: a.json, snippet_seconds: 0.64, train_subset: validation,\n"
                    "    test_subset: test}\n"
                    "models:\n  kt_mgfn: {args: {hidden: 64}}\n")
    seed = tmp_path / "seed.yaml"
    seed.write_text("models:\n  kt_mgfn:\n    datasets:\n      mythumos: {train: {seed: 3}}\n"
                    "    args: {hidden: 32}\n")
    block = _model_block(kt, "mythumos", configfiles=[str(mine), str(seed)])
    assert block["args"]["joint"] is False  # kt_mgfn.yaml's thumos14 block
    assert block["train"]["sampling"] == "sparse"
    assert block["args"]["hidden"] == 32
    assert block["train"]["seed"] == 3
    workflow = resolve_model_settings(
        kt, "mythumos",
        {"args": {"hidden": 32}, "datasets": {"mythumos": {"train": {"seed": 3}}}},
        settings_of="thumos14")
    assert block == workflow
    plain = _model_block(kt, "mythumos")  # no config naming it: the defaults
    assert plain["args"]["joint"] is True
    # a shipped dataset name reads its own file's model_settings (null: its own block)
    assert _model_block(kt, "thumos14")["args"]["joint"] is False
    # the dataset entry is validated as the workflow validates it, and named when wrong
    broken = tmp_path / "broken.yaml"
    broken.write_text("datasets:\n  mythumos: {model_settings: thumos14, features_dir: f}\n")
    with pytest.raises(ValueError, match="mythumos"):
        _model_block(kt, "mythumos", configfiles=[str(broken)])


def test_ablate_runs_the_named_variants_in_table_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import wtal.ablation

    seen: dict = {}

    def fake_run_ablation(*args, variants, **kwargs):
        seen.update(variants=list(variants), settings=kwargs["settings"])
        return {"model": "ecm", "dataset": None, "protocol": "anet", "subset": "test",
                "variants": []}

    monkeypatch.setattr(wtal.ablation, "run_ablation", fake_run_ablation)
    monkeypatch.setattr(wtal.ablation, "ablation_table", lambda report: "table\n")
    common = ["ablate", "--index", "i.json", "--gt", "g.json", "--train", "a.npy", "--test",
              "b.npy", "--model", "ecm", "--config", str(MODELS_DIR / "ecm.yaml"),
              "--out", str(tmp_path / "ablation.md")]
    assert main([*common, "--variants", "ECM", "Pre-Cls"]) == 0
    assert seen["variants"] == ["Pre-Cls", "ECM"]  # the table's order, not the command's
    assert main([*common, "--variants", "ECM", "Post-CIs"]) == 2
    err = capsys.readouterr().err
    assert "Post-CIs" in err
    assert "ecm.yaml" in err
    assert "Post-Cls" in err
