"""A dataset's ``model_settings``: whose per-dataset model blocks apply (wtal.settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wtal.settings import resolve_dataset_settings, resolve_model_settings

MODELS = Path(__file__).resolve().parents[2] / "pipeline" / "config" / "models"


def test_own_features_get_the_thumos14_block_only_when_asked() -> None:
    path = MODELS / "kt_mgfn.yaml"
    plain = resolve_model_settings(path, "mine")
    like = resolve_model_settings(path, "mine", settings_of="thumos14")
    thumos = resolve_model_settings(path, "thumos14")
    assert like["train"] == thumos["train"]
    assert like["train"] != plain["train"]  # the THUMOS14 block changes the sampling


def test_the_users_overrides_for_the_own_name_still_win() -> None:
    user = {"datasets": {"mine": {"train": {"seed": 7}}, "thumos14": {"train": {"seed": 5}}}}
    cfg = resolve_model_settings(MODELS / "kt_mgfn.yaml", "mine", user, settings_of="thumos14")
    assert cfg["train"]["seed"] == 7


def test_dataset_schema_accepts_and_defaults_it(tmp_path: Path) -> None:
    feats = {"features_dir": str(tmp_path), "annotations": str(tmp_path / "a.json"),
             "snippet_seconds": 0.64, "train_subset": "validation", "test_subset": "test"}
    assert resolve_dataset_settings("mine", None, feats)["model_settings"] is None
    got = resolve_dataset_settings("mine", None, {**feats, "model_settings": "thumos14"})
    assert got["model_settings"] == "thumos14"
    with pytest.raises(ValueError, match="model_settings"):
        resolve_dataset_settings("mine", None, {**feats, "model_settings": 3})
