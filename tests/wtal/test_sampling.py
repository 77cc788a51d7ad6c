"""Sampling strategies (uniform, sparse, shot) and fixed-length rescaling, alone and in training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_infer import CLASSES, make_split

from wtal.evaluate import evaluate
from wtal.infer import InferSettings, infer
from wtal.sampling import (
    Sampling,
    rescale,
    sample,
    shot_boundaries,
    shot_indices,
    sparse_indices,
    uniform_indices,
)
from wtal.train import TrainSettings, train
from wtalio import write_json


def test_uniform_indices() -> None:
    np.testing.assert_array_equal(uniform_indices(10, interval=3), [0, 3, 6, 9])
    np.testing.assert_array_equal(uniform_indices(10, length=5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(uniform_indices(3, length=6), [0, 0, 1, 1, 2, 2])


def test_sparse_indices_one_per_segment_and_random() -> None:
    rng = np.random.default_rng(0)
    draws = np.stack([sparse_indices(100, 10, rng) for _ in range(200)])  # (200, 10)
    segment = draws // 10
    np.testing.assert_array_equal(segment, np.tile(np.arange(10), (200, 1)))
    # every unit of every segment gets drawn: it is an augmentation, not a fixed pick
    assert all(len(np.unique(draws[:, k])) == 10 for k in range(10))
    short = sparse_indices(3, 7, rng)  # fewer units than segments: repeats, in order
    assert len(short) == 7
    assert np.all(np.diff(short) >= 0)
    assert short.max() <= 2


def test_shot_boundaries_find_planted_cuts() -> None:
    rng = np.random.default_rng(1)
    scenes = rng.normal(size=(3, 32)) * 3
    x = np.concatenate([scenes[0] + 0.1 * rng.normal(size=(20, 32)),
                        scenes[1] + 0.1 * rng.normal(size=(15, 32)),
                        scenes[2] + 0.1 * rng.normal(size=(25, 32))])
    np.testing.assert_array_equal(shot_boundaries(x), [20, 35])
    # a steady sequence has no cut
    assert len(shot_boundaries(np.tile(scenes[0], (30, 1)) + 0.01 * rng.normal(size=(30, 32)),
                               z=3.0)) <= 1


def test_shot_indices_spread_over_shots() -> None:
    rng = np.random.default_rng(2)
    idx = shot_indices(60, np.array([20, 35]), 12, rng)
    assert len(idx) == 12
    assert np.all(np.diff(idx) >= 0)
    counts = np.histogram(idx, bins=[0, 20, 35, 60])[0]
    np.testing.assert_array_equal(counts, [4, 3, 5])  # proportional to 20, 15, 25
    with pytest.raises(ValueError, match="do not split"):
        shot_indices(10, np.array([5, 5]), 4, rng)


def test_sample_dispatch() -> None:
    x = np.arange(40, dtype=np.float32)[:, None]
    rng = np.random.default_rng(0)
    assert sample(x, Sampling(), rng) is x
    assert sample(x, Sampling(strategy="sparse", num_segments=8), rng).shape == (8, 1)
    assert sample(x, Sampling(strategy="shot", num_segments=5), rng).shape == (5, 1)
    with pytest.raises(ValueError, match="sampling must be one of"):
        Sampling(strategy="random")


def test_rescale_linear() -> None:
    x = np.arange(10, dtype=np.float64)[:, None] * np.array([[1.0, -2.0]])  # a ramp
    y = rescale(x, 20)
    assert y.shape == (20, 2)
    # interior positions stay on the ramp: position j sits at (j + 0.5) * 10/20 - 0.5
    pos = (np.arange(20) + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(y[1:-1, 0], pos[1:-1])
    np.testing.assert_allclose(y[:, 1], -2 * y[:, 0])
    np.testing.assert_array_equal(rescale(x, 10), x)
    np.testing.assert_allclose(rescale(rescale(x, 5), 10)[2:-2, 0], x[2:-2, 0], atol=1e-9)


@pytest.mark.parametrize("settings", [
    {"sampling": "sparse", "num_segments": 32},
    {"feature_length": 24},
], ids=["sparse", "fixed_length"])
def test_training_with_sampling_localizes(tmp_path: Path, settings: dict) -> None:
    """Sparse sampling and fixed-length rescaling train a model that still finds the actions,
    and a rescaled model's CAS comes back at the video's own length."""
    tr_paths, tr_videos, tr_gt = make_split(tmp_path, 40, 1, "tr")
    te_paths, te_videos, te_gt = make_split(tmp_path, 10, 2, "te")
    write_json(tmp_path / "index.json", {"dataset": "toy", "classes": CLASSES,
                                         "videos": {**tr_videos, **te_videos}})
    write_json(tmp_path / "gt.json", {"database": {**tr_gt, **te_gt}})
    torch.set_num_threads(2)
    log = train(tmp_path / "index.json", tr_paths, tmp_path / "model.pt", tmp_path / "t.json",
                model="cas_baseline", model_args={"hidden": 64, "dropout": 0.3},
                settings=TrainSettings(epochs=40, batch_size=8, lr=1e-3, seed=0, **settings),
                device="cpu")
    assert log["settings"] == {**log["settings"], **settings}
    infer(tmp_path / "model.pt", te_paths, tmp_path / "det.json", tmp_path / "cas",
          settings=InferSettings(), device="cpu")
    for path in te_paths:
        assert np.load(tmp_path / "cas" / path.name).shape[0] == np.load(path).shape[0]
    result = evaluate(tmp_path / "gt.json", tmp_path / "det.json", subset="test",
                      tious=[0.3, 0.5])
    assert result["mAP"][0] > 0.5, result
