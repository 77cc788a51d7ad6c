"""Train and infer stages on synthetic features with planted actions; then evaluate."""

from pathlib import Path

import numpy as np
import pytest
import torch

from extractors.grid import SnippetGrid
from wtal.evaluate import evaluate
from wtal.infer import InferSettings, infer, localize
from wtal.train import TrainSettings, train
from wtalio import read_json, save_npy, write_json

CLASSES = ["A", "B", "C"]
FPS, LENGTH = 25.0, 16
SNIPPET_S = LENGTH / FPS


def make_split(root: Path, n: int, seed: int, prefix: str):
    """Feature files with class-specific directions added inside known snippet runs."""
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(99).normal(size=(len(CLASSES), 64)) * 2.0
    paths, videos, gt = [], {}, {}
    for i in range(n):
        t = int(rng.integers(40, 60))
        x = rng.normal(size=(t, 64)).astype(np.float32)
        labels = sorted(rng.choice(len(CLASSES), size=int(rng.integers(1, 3)), replace=False))
        anns = []
        cursor = int(rng.integers(2, 6))
        for c in labels:
            length = int(rng.integers(4, 9))
            x[cursor : cursor + length] += directions[c]
            anns.append({"segment": [cursor * SNIPPET_S, (cursor + length) * SNIPPET_S],
                         "label": CLASSES[c]})
            cursor += length + int(rng.integers(5, 10))
        name = f"{prefix}_{i:03d}"
        grid = SnippetGrid(fps=FPS, n_frames=t * LENGTH, length=LENGTH, stride=LENGTH)
        save_npy(root / f"{name}.npy", x)
        write_json(root / f"{name}.json", {"shape": list(x.shape), "grid": grid.to_dict(),
                                           "extractor": "synthetic"})
        paths.append(root / f"{name}.npy")
        videos[name] = {"labels": [CLASSES[c] for c in labels],
                        "split": "train" if prefix == "tr" else "test",
                        "subset": "validation" if prefix == "tr" else "test"}
        gt[name] = {"subset": videos[name]["subset"], "annotations": anns}
    return paths, videos, gt


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("feats")
    tr_paths, tr_videos, tr_gt = make_split(root, 40, 1, "tr")
    te_paths, te_videos, te_gt = make_split(root, 15, 2, "te")
    write_json(root / "index.json", {"dataset": "toy", "classes": CLASSES,
                                     "videos": {**tr_videos, **te_videos}})
    write_json(root / "gt.json", {"database": {**tr_gt, **te_gt}})
    settings = TrainSettings(epochs=40, batch_size=8, lr=1e-3, seed=0)
    torch.set_num_threads(2)
    log = train(root / "index.json", tr_paths, root / "model.pt", root / "train.json",
                model="cas_baseline", model_args={"hidden": 64, "dropout": 0.3},
                settings=settings, device="cpu")
    return root, te_paths, log


def test_training_reduces_loss_and_writes_log(trained) -> None:
    root, _, log = trained
    assert log["loss"][-1] < 0.5 * log["loss"][0]
    assert read_json(root / "train.json")["n_videos"] == 40
    ckpt = torch.load(root / "model.pt", weights_only=False)
    assert ckpt["classes"] == CLASSES


def test_training_is_seeded(trained, tmp_path: Path) -> None:
    root, _, log = trained
    paths = sorted(root.glob("tr_*.npy"))
    again = train(root / "index.json", paths, tmp_path / "m.pt", tmp_path / "t.json",
                  model="cas_baseline", model_args={"hidden": 64, "dropout": 0.3},
                  settings=TrainSettings(epochs=40, batch_size=8, lr=1e-3, seed=0),
                  device="cpu")
    assert again["loss"] == pytest.approx(log["loss"], rel=1e-5)


def test_step_learning_rate_schedule(trained, tmp_path: Path) -> None:
    root, _, _ = trained
    paths = sorted(root.glob("tr_*.npy"))[:8]
    log = train(root / "index.json", paths, tmp_path / "m.pt", tmp_path / "t.json",
                model="cas_baseline", model_args={"hidden": 16},
                settings=TrainSettings(epochs=5, batch_size=8, lr=1e-3, lr_milestones=(2, 4),
                                       lr_gamma=0.5),
                device="cpu")
    assert log["lr"] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


def test_infer_and_evaluate_localises_planted_actions(trained, tmp_path: Path) -> None:
    root, te_paths, _ = trained
    det = tmp_path / "detections.json"
    infer(root / "model.pt", te_paths, det, tmp_path / "cas", settings=InferSettings(),
          device="cpu")
    sub = read_json(det)
    assert set(sub["results"]) == {p.stem for p in te_paths}
    assert (tmp_path / "cas" / f"{te_paths[0].stem}.npy").exists()
    result = evaluate(root / "gt.json", det, subset="test", tious=[0.3, 0.5, 0.7])
    assert result["mAP"][1] > 0.6, result
    # the same detections shifted by 3 s are worthless: the time mapping matters
    for dets in sub["results"].values():
        for d in dets:
            d["segment"] = [d["segment"][0] + 3.0, d["segment"][1] + 3.0]
    write_json(tmp_path / "shifted.json", sub)
    shifted = evaluate(root / "gt.json", tmp_path / "shifted.json", subset="test",
                       tious=[0.3, 0.5, 0.7])
    assert shifted["mAP"][1] < 0.1


def test_localize_uses_the_grid() -> None:
    cas = np.zeros((20, 2))
    cas[5:9, 1] = 1.0
    grid = SnippetGrid(fps=25.0, n_frames=320)
    dets = localize(cas, np.array([0.0, 0.9]), grid, ["x", "y"], InferSettings())
    assert dets[0]["label"] == "y"
    assert dets[0]["segment"] == pytest.approx([5 * 0.64, 9 * 0.64])
    with pytest.raises(ValueError, match="snippets"):
        localize(cas[:10], np.array([0.0, 0.9]), grid, ["x", "y"], InferSettings())
