"""A dataset's ``model_settings``: whose per-dataset model blocks apply (wtal.settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wtal.settings import resolve_dataset_settings, resolve_model_settings


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text("name: toy\nargs: {}\ntrain: {epochs: 3}\n"
                    "datasets:\n  thumos14: {train: {epochs: 11, sampling: sparse}}\n")
    return path


def test_own_features_get_the_thumos14_block_only_when_asked(model_file: Path) -> None:
    plain = resolve_model_settings(model_file, "mine")
    like = resolve_model_settings(model_file, "mine", settings_of="thumos14")
    assert plain["train"]["epochs"] == 3
    assert like["train"] == resolve_model_settings(model_file, "thumos14")["train"]
    assert like["train"]["epochs"] == 11


def test_the_users_overrides_for_the_own_name_still_win(model_file: Path) -> None:
    user = {"datasets": {"mine": {"train": {"seed": 7}}, "thumos14": {"train": {"seed": 5}}}}
    cfg = resolve_model_settings(model_file, "mine", user, settings_of="thumos14")
    assert cfg["train"]["seed"] == 7
    assert cfg["train"]["epochs"] == 11


def test_dataset_schema_accepts_and_defaults_it(tmp_path: Path) -> None:
    feats = {"features_dir": str(tmp_path), "annotations": str(tmp_path / "a.json"),
             "snippet_seconds": 0.64, "train_subset": "validation", "test_subset": "test"}
    assert resolve_dataset_settings("mine", None, feats)["model_settings"] is None
    got = resolve_dataset_settings("mine", None, {**feats, "model_settings": "thumos14"})
    assert got["model_settings"] == "thumos14"
    with pytest.raises(ValueError, match="model_settings"):
        resolve_dataset_settings("mine", None, {**feats, "model_settings": 3})
