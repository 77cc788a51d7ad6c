"""The typed settings of the train and infer stages (plain dataclasses, no torch).

``TrainSettings`` is what trains (with the model's ``args``); ``InferSettings`` is what only
infers: changing it reruns the infer stage and what follows, never training.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by the localizers."""

    epochs: int = 100  # passes over the training videos
    batch_size: int = 16  # videos per step
    lr: float = 1e-4  # Adam learning rate
    lr_milestones: tuple[int, ...] = ()  # epochs at which the lr is multiplied by lr_gamma
    lr_gamma: float = 0.1  # factor of each lr step
    weight_decay: float = 5e-4  # Adam weight decay
    max_seqlen: int = 750  # longer sequences are randomly cropped to this many snippets
    loss: str = "bce"  # video-level loss: bce or softmax
    feature_norm: str = "standardize"  # standardize (train-set mean/std) or none
    seed: int = 0  # seeds the initialisation, shuffling and cropping
    sampling: str = "all"  # all (random crops of max_seqlen) | uniform | sparse | shot
    num_segments: int = 750  # K units per sampled training sequence (wtal.sampling)
    feature_length: int | None = None  # rescale every sequence to this length (train and test)
    optimizer: str = "adam"  # adam or sgd
    momentum: float = 0.9  # sgd only


@dataclass(frozen=True)
class InferSettings:
    """Post-processing settings."""

    class_threshold: float = 0.2  # localise classes whose video score reaches this
    cas_thresholds: tuple[float, ...] = field(
        default=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    )  # levels on the min-max normalised CAS
    inflation: float = 0.25  # outer band of the outer-inner contrast, fraction of the length
    video_score_weight: float = 0.2  # weight of the video-level score in a segment's confidence
    nms: str = "soft"  # soft (Gaussian, Eq. 7), hard, or none
    nms_iou: float = 0.5  # θ of Eq. (7) / IoU threshold of hard NMS
    soft_nms_epsilon: float = 0.75  # ε of Eq. (7)
    max_per_video: int = 100  # detections kept per video (over all classes)


# ---- resolution: one function for Snakemake, the CLI, ablation and ``wtal detect`` ----------

#: The workflow's configuration folders (``pipeline/config``, ``pipeline/schemas``).
PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"
CONFIG_DIR = PIPELINE / "config"
SCHEMAS = PIPELINE / "schemas"


def merge_settings(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Copy of ``base`` with ``override`` merged in key by key (mappings recursively)."""
    merged = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping (empty for an empty file)."""
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def validate(values: dict[str, Any], schema: str, source: str) -> dict[str, Any]:
    """``values`` checked against ``pipeline/schemas/<schema>`` with its defaults filled in
    (in place, as Snakemake's ``validate`` does, which it is).

    Raises:
        ValueError: naming ``source`` and what is wrong.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    from wtal.checks import check_settings

    check_settings(values, SCHEMAS / schema, source)  # a few lines: key, value, allowed range
    try:
        snakemake_validate(values, schema=str(SCHEMAS / schema))
    except WorkflowError as err:
        raise ValueError(f"{source}: {err}") from err
    return values


def merge_model_settings(
    path: str | os.PathLike[str],
    dataset: str | None,
    user: Mapping[str, Any] | None = None,
    *,
    settings_of: str | None = None,
) -> dict[str, Any]:
    """A model's settings merged, not validated. Later wins: the model file ``path``, its block
    for ``dataset`` (for ``settings_of`` when given: the dataset's ``model_settings``), the
    user's overrides for the model, the user's overrides for the model on ``dataset`` (``user``
    is the model's entry of the workflow config's ``models:``)."""
    base = read_yaml(path)
    user = dict(user or {})
    merged = merge_settings(base, (base.get("datasets") or {}).get(settings_of or dataset))
    merged = merge_settings(merged, {k: v for k, v in user.items() if k != "datasets"})
    merged = merge_settings(merged, (user.get("datasets") or {}).get(dataset))
    merged.pop("datasets", None)
    merged.setdefault("name", Path(path).stem)
    return merged


def resolve_model_settings(
    path: str | os.PathLike[str],
    dataset: str | None,
    user: Mapping[str, Any] | None = None,
    *,
    settings_of: str | None = None,
) -> dict[str, Any]:
    """A model's settings for ``dataset``: :func:`merge_model_settings`, validated against
    ``model.schema.yaml`` with its defaults. The workflow (``common.smk``), the CLI and the
    ablation stage all resolve model settings here.

    Raises:
        ValueError: the settings break the schema (the file is named).
    """
    merged = merge_model_settings(path, dataset, user, settings_of=settings_of)
    return validate(merged, "model.schema.yaml",
                    f"model {Path(path).stem} on dataset {dataset} ({path})")


def resolve_dataset_settings(
    name: str,
    path: str | os.PathLike[str] | None,
    user: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A dataset's settings: its file (``path``, None when the config alone declares it), then
    the user's overrides, validated with defaults; a bring-your-own-features dataset is given
    the common shape (``subsets``, ``evaluation.tiou``).

    Raises:
        ValueError: the settings break the schema, or a synthetic dataset's root is not
            ``work/<name>/raw``.
    """
    base = read_yaml(path) if path is not None and Path(path).exists() else {}
    merged = merge_settings(base, user)
    merged.setdefault("name", name)
    if "features_dir" in merged:
        merged.setdefault("format", "features")
    validate(merged, "dataset.schema.yaml", f"dataset {name}")
    if merged["format"] == "features":
        merged["subsets"] = [
            {"name": merged["train_subset"], "split": "train"},
            {"name": merged["test_subset"], "split": "test"},
        ]
        if "tiou" in merged:
            merged["evaluation"] = {**merged["evaluation"], "tiou": merged["tiou"]}
        merged["features"] = {**merged["features"], "extractor": "imported"}
    if merged["synthetic"] is not None and merged["root"] != f"work/{name}/raw":
        raise ValueError(f"dataset {name}: a synthetic dataset's root must be work/{name}/raw")
    return merged


def _checked(cls: type, values: Mapping[str, Any], source: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{source}: unknown settings {unknown}; known: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def train_settings(values: Mapping[str, Any]) -> TrainSettings:
    """A model's ``train`` settings as :class:`TrainSettings` (lists become tuples).

    Raises:
        ValueError: an unknown key.
    """
    return _checked(TrainSettings, values, "train settings")


def infer_settings(values: Mapping[str, Any]) -> tuple[InferSettings, dict[str, Any]]:
    """A model's ``infer`` settings: the generic :class:`InferSettings` and the model's own
    knobs (``infer.model``, the keyword arguments of its ``Localizer.InferOptions``).

    Raises:
        ValueError: an unknown key.
    """
    values = dict(values)
    model = dict(values.pop("model", None) or {})
    return _checked(InferSettings, values, "infer settings"), model
