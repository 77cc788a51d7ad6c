"""`wtal detect`: a raw video through every stage with the settings the model was trained with."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from extractors.decode import decode
from extractors.features import FeatureSettings, extract_features
from extractors.flowstage import flow_stage
from wtal.cli import main
from wtal.demo import synthesize_demo
from wtal.detect import detect, feature_settings, infer_settings
from wtal.evaluate import evaluate
from wtal.infer import InferSettings, infer
from wtal.train import TrainSettings, train
from wtalio import read_json, write_json

CLASSES = ("RedBounce", "BlueSlide")
FPS = 10.0  # not the 25 of the defaults: detect must take the model's
FLOW = {"backend": "opencv", "bound": 20.0, "codec": "jpg", "short_side": 48,
        "params": {"nscales": 2, "warps": 1, "inner_iterations": 5, "outer_iterations": 1}}
I3D = FeatureSettings(snippet_length=8, snippet_stride=8, short_side=48, crop=48, seed=3)
PNG = b"\x89PNG\r\n\x1a\n"


def extract(video: Path, folder: Path) -> Path:
    """The workflow's decode, flow and features stages on one video, by hand."""
    name = video.stem
    decode(video, folder / f"{name}.plan.json", fps=FPS)
    flow_stage(folder / f"{name}.plan.json", folder / f"{name}.zip", threads=1, **FLOW)
    extract_features(folder / f"{name}.plan.json", folder / f"{name}.zip", folder / f"{name}.npy",
                settings=I3D, device="cpu", threads=1)
    return folder / f"{name}.npy"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny demo: 4 training videos and 1 test video, features, a trained model."""
    root = tmp_path_factory.mktemp("detect_demo")
    synthesize_demo(root / "raw", seed=5, classes=CLASSES, n_validation=4, n_test=1,
                    duration_range=(4.0, 4.0), width=64, height=48,
                    instances_per_video=(1, 1), instance_duration=(1.5, 2.0),
                    n_trimmed_per_class=1, trimmed_duration=(1.0, 1.0))
    info = read_json(root / "raw" / "demo.json")
    videos, database, features = {}, {}, []
    for name, rec in info["videos"].items():
        if rec["subset"] not in ("validation", "test"):
            continue
        split = "train" if rec["subset"] == "validation" else "test"
        videos[name] = {"labels": rec["labels"], "split": split, "subset": rec["subset"],
                        "path": str(root / "raw" / rec["path"])}
        database[name] = {"subset": rec["subset"], "duration": rec["duration"],
                          "annotations": [{"label": i["label"], "segment": [i["start"], i["end"]]}
                                          for i in rec["instances"]]}
        if split == "train":
            features.append(extract(root / "raw" / rec["path"], root / "features"))
    write_json(root / "index.json", {"dataset": "tinydemo", "classes": list(CLASSES),
                                     "videos": videos})
    write_json(root / "gt.json", {"database": database})
    run = root / "results"
    torch.manual_seed(0)
    train(root / "index.json", features, run / "model.pt", run / "train.json",
          model="cas_baseline", model_args={"hidden": 32, "dropout": 0.2},
          settings=TrainSettings(epochs=40, batch_size=4, lr=3e-3, seed=0), device="cpu",
          threads=2)
    # the infer stage's record of its post-processing settings, which detect must reuse
    write_json(run / "detections.json",
               {"results": {}, "settings": dataclasses.asdict(InferSettings(max_per_video=3))})
    test = next(n for n, v in videos.items() if v["split"] == "test")
    return {"root": root, "run": run, "model": run / "model.pt", "test": test,
            "video": Path(videos[test]["path"]), "label": videos[test]["labels"][0],
            "sidecar": features[0].with_suffix(".json")}


def test_detect_runs_every_stage_with_the_models_settings(demo: dict, tmp_path: Path) -> None:
    result = detect(demo["video"], demo["model"], work_dir=tmp_path / "work", device="cpu",
                    threads=1)
    info = result["detect"]
    assert info["fps"] == FPS
    assert info["feature_settings"]["features"] == dataclasses.asdict(I3D)
    assert info["feature_settings"]["flow"]["params"]["nscales"] == 2
    side = read_json(tmp_path / "work" / f"{demo['test']}.json")
    assert side["grid"]["length"] == 8
    assert side["grid"]["fps"] == FPS
    assert side["settings"]["seed"] == 3
    # the same features and detections as the workflow's stages run by hand on the video
    by_hand = extract(demo["video"], tmp_path / "hand")
    np.testing.assert_allclose(np.load(tmp_path / "work" / f"{demo['test']}.npy"),
                               np.load(by_hand), rtol=1e-5, atol=1e-5)
    sub = infer(demo["model"], [by_hand], tmp_path / "d.json", tmp_path / "cas",
                settings=InferSettings(max_per_video=3), device="cpu")
    dets = result["results"][demo["test"]]
    ref = sub["results"][demo["test"]]
    assert [(d["label"], d["segment"]) for d in dets] == [(d["label"], d["segment"]) for d in ref]
    assert [d["score"] for d in dets] == pytest.approx([d["score"] for d in ref], abs=1e-4)
    # post-processing as the model's infer stage ran it (max_per_video=3 beside the model)
    assert info["settings"]["max_per_video"] == 3
    assert 1 <= len(dets) <= 3
    assert info["settings_source"].endswith("detections.json")
    for d in dets:
        assert d["label"] in CLASSES
        assert 0.0 <= d["segment"][0] < d["segment"][1] <= info["duration"] + 1e-6
    # the tiny model recognises the test video's action
    scores = result["video_scores"][demo["test"]]
    assert max(scores, key=scores.get) == demo["label"]


def test_detect_command_prints_a_table_and_writes_json_and_figure(
    demo: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, fig = tmp_path / "det.json", tmp_path / "timeline.png"
    code = main(["detect", str(demo["video"]), "--model", str(demo["model"]), "--out", str(out),
                 "--figure", str(fig), "--set", "max_per_video=2", "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    result = read_json(out)
    dets = result["results"][demo["test"]]
    assert 1 <= len(dets) <= 2
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if "start (s)" in line)
    assert lines[header].split() == ["#", "class", "start", "(s)", "end", "(s)", "score"]
    rows = [line.split() for line in lines[header + 1 : header + 1 + len(dets)]]
    for row, d in zip(rows, dets, strict=True):
        assert row[1] == d["label"]
        assert float(row[2]) == pytest.approx(d["segment"][0], abs=0.005)
        assert float(row[3]) == pytest.approx(d["segment"][1], abs=0.005)
    assert f"detections: {out}" in printed
    assert fig.read_bytes()[:8] == PNG
    # the output is a submission the evaluator reads
    ev = evaluate(demo["root"] / "gt.json", out, subset="test", tious=[0.1], protocol="anet")
    assert ev["counts"]["predictions"] == len(dets)


def test_feature_settings_come_from_the_checkpoint_or_a_sidecar(demo: dict,
                                                                 tmp_path: Path,
                                                                 capsys) -> None:
    ckpt = torch.load(demo["model"], map_location="cpu", weights_only=False)
    recorded = feature_settings(ckpt)
    assert recorded["fps"] == FPS
    assert recorded["flow"]["short_side"] == 48
    assert recorded["features"]["crop"] == 48
    stripped = {k: v for k, v in ckpt.items() if k != "feature_settings"}
    assert feature_settings(stripped, demo["sidecar"]) == recorded
    with pytest.raises(ValueError, match="--features-sidecar"):
        feature_settings(stripped)
    torch.save(stripped, tmp_path / "old.pt")
    code = main(["detect", str(demo["video"]), "--model", str(tmp_path / "old.pt")])
    assert code == 2
    assert "--features-sidecar" in capsys.readouterr().err


def test_infer_settings_default_and_override(demo: dict, tmp_path: Path) -> None:
    settings, source = infer_settings(demo["model"], {"nms": "hard"})
    assert (settings.max_per_video, settings.nms, source) == (3, "hard", str(
        demo["run"] / "detections.json"))
    settings, source = infer_settings(tmp_path / "model.pt")
    assert (settings, source) == (InferSettings(), "defaults")
    with pytest.raises(ValueError, match="bogus"):
        infer_settings(tmp_path / "model.pt", {"bogus": 1})


def test_feature_settings_of_a_flow_backbone_need_flow(demo: dict) -> None:
    ckpt = torch.load(demo["model"], map_location="cpu", weights_only=False)
    no_flow = {**ckpt, "feature_settings": {**ckpt["feature_settings"], "flow": None}}
    with pytest.raises(ValueError, match="i3d features need flow"):
        feature_settings(no_flow)
    bad = {**ckpt, "feature_settings": {**ckpt["feature_settings"],
                                        "settings": {**ckpt["feature_settings"]["settings"],
                                                     "every_nth": 0}}}
    with pytest.raises(ValueError, match=r"invalid feature settings.*every_nth"):
        feature_settings(bad)


def test_detect_with_an_rgb_only_backbone_skips_flow(demo: dict, tmp_path: Path) -> None:
    """A model trained on i3d_r50 features (RGB only): detect makes the same features, with no
    flow stage, and the same detections as the stages run by hand."""
    rgb = dataclasses.replace(I3D, extractor="i3d_r50", seed=4)
    index = read_json(demo["root"] / "index.json")
    features = []
    for name, rec in index["videos"].items():
        if rec["split"] != "train":
            continue
        plan = tmp_path / "feats" / f"{name}.plan.json"
        decode(Path(rec["path"]), plan, fps=FPS)
        extract_features(plan, None, tmp_path / "feats" / f"{name}.npy", settings=rgb,
                         device="cpu", threads=1)
        features.append(tmp_path / "feats" / f"{name}.npy")
    torch.manual_seed(0)
    train(demo["root"] / "index.json", features, tmp_path / "run" / "model.pt",
          tmp_path / "run" / "train.json", model="cas_baseline",
          model_args={"hidden": 16, "dropout": 0.0},
          settings=TrainSettings(epochs=3, batch_size=4, lr=1e-3, seed=0), device="cpu",
          threads=1)
    ckpt = torch.load(tmp_path / "run" / "model.pt", map_location="cpu", weights_only=False)
    made = feature_settings(ckpt)
    assert made["extractor"] == "i3d_r50"
    assert made["flow"] is None
    assert made["fps"] == FPS
    assert made["features"] == dataclasses.asdict(rgb)
    result = detect(demo["video"], tmp_path / "run" / "model.pt", work_dir=tmp_path / "work",
                    device="cpu", threads=1, flow_backend="torch")  # no flow: ignored
    assert not list((tmp_path / "work").glob("*.zip"))  # no flow stage ran
    assert read_json(tmp_path / "work" / f"{demo['test']}.json")["extractor"] == "i3d_r50"
    plan = tmp_path / "hand" / f"{demo['test']}.plan.json"
    decode(demo["video"], plan, fps=FPS)
    by_hand = extract_features(plan, None, tmp_path / "hand" / f"{demo['test']}.npy",
                               settings=rgb, device="cpu", threads=1)
    assert by_hand["extractor"] == "i3d_r50"
    np.testing.assert_allclose(np.load(tmp_path / "work" / f"{demo['test']}.npy"),
                               np.load(tmp_path / "hand" / f"{demo['test']}.npy"),
                               rtol=1e-5, atol=1e-5)
    sub = infer(tmp_path / "run" / "model.pt", [tmp_path / "hand" / f"{demo['test']}.npy"],
                tmp_path / "d.json", tmp_path / "cas", settings=InferSettings(), device="cpu")
    dets = result["results"][demo["test"]]
    ref = sub["results"][demo["test"]]
    assert [(d["label"], d["segment"]) for d in dets] == [(d["label"], d["segment"]) for d in ref]
