"""Settings checks run when the workflow starts (wtal.checks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wtal.checks import (
    check_model_args,
    check_model_datasets,
    check_model_settings,
    check_settings,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "pipeline" / "schemas"
MODELS = Path(__file__).resolve().parents[2] / "pipeline" / "config" / "models"


def test_unknown_builder_argument_names_the_closest() -> None:
    check_model_args("cas_baseline", {"hidden": 64, "dropout": 0.1}, where="here")
    with pytest.raises(ValueError, match=r"here: args\.hiden .*did you mean 'hidden'"):
        check_model_args("cas_baseline", {"hiden": 512}, where="here")
    with pytest.raises(ValueError, match=r"args\.in_dim of model cas_baseline is set by training"):
        check_model_args("cas_baseline", {"in_dim": 3}, where="here")


def test_ablation_variants_are_checked_too() -> None:
    settings = {"args": {"hidden": 8}, "ablations": {"small": {"args": {"hiden": 4}}}}
    with pytest.raises(ValueError, match=r"ablation 'small': args\.hiden"):
        check_model_settings("cas_baseline", settings, where="m")


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_model_settings_pass(path: Path) -> None:
    settings = yaml.safe_load(path.read_text())
    check_model_settings(path.stem, settings, where=str(path))
    for block in (settings.get("datasets") or {}).values():
        check_model_args(path.stem, {**settings.get("args", {}), **block.get("args", {})},
                         where=str(path))
    check_model_datasets(path.stem, settings.get("datasets"),
                         ["demo", "thumos14", "activitynet13"], source=str(path))


def test_unknown_dataset_block() -> None:
    with pytest.raises(ValueError, match=r"my\.yaml: model kt_mgfn .* 'thumos', .*did you mean "
                       r"'thumos14'"):
        check_model_datasets("kt_mgfn", {"thumos": {}}, ["demo", "thumos14"], source="my.yaml")


def test_schema_message_is_short_with_key_value_and_range() -> None:
    settings = {"name": "m", "infer": {"class_threshold": 1.5, "nms_iou": 0.5}}
    with pytest.raises(ValueError, match="model m: invalid settings") as err:
        check_settings(settings, SCHEMAS / "model.schema.yaml", "model m")
    text = str(err.value)
    assert "infer.class_threshold: 1.5 is greater than the maximum of 1" in text
    assert len(text.splitlines()) <= 4
    check_settings({"name": "m", "infer": {"nms_iou": 1.0}}, SCHEMAS / "model.schema.yaml", "m")
    with pytest.raises(ValueError, match=r"infer\.cas_thresholds\[1\]: -0\.1 is less than"):
        check_settings({"name": "m", "infer": {"cas_thresholds": [0.1, -0.1]}},
                       SCHEMAS / "model.schema.yaml", "m")
