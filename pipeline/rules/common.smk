# Configuration loading and validation, and the input/params functions of the rules.
# Nothing here runs a stage; rules only wire files and params to library functions.
import copy
from pathlib import Path

import yaml
from snakemake.utils import validate

import extractors
import wtal
from wtal.datasets import load_index, videos_of_split

BASE = Path(workflow.basedir)
CONFIG_DIR = BASE / "pipeline" / "config"
SCHEMAS = BASE / "pipeline" / "schemas"

validate(config, schema=str(SCHEMAS / "config.schema.yaml"))


def deep_merge(base, override):
    """Copy of ``base`` with ``override`` merged in key by key (dicts recursively)."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


DATASETS = sorted(
    {p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml")} | set(config["datasets"])
)
MODELS = sorted({p.stem for p in (CONFIG_DIR / "models").glob("*.yaml")})
_DATASET_CACHE = {}
_MODEL_CACHE = {}


def dataset_config(name):
    """Settings of dataset ``name``: its file, then config overrides, validated with defaults."""
    if name not in _DATASET_CACHE:
        path = CONFIG_DIR / "datasets" / f"{name}.yaml"
        base = _read_yaml(path) if path.exists() else {}
        merged = deep_merge(base, config["datasets"].get(name))
        merged.setdefault("name", name)
        validate(merged, schema=str(SCHEMAS / "dataset.schema.yaml"))
        if merged["synthetic"] is not None and merged["root"] != f"work/{name}/raw":
            raise ValueError(f"dataset {name}: a synthetic dataset's root must be work/{name}/raw")
        _DATASET_CACHE[name] = merged
    return _DATASET_CACHE[name]


def model_config(model, dataset):
    """Settings of ``model`` on ``dataset``.

    Later wins: the model file, its block for ``dataset``, the user's overrides for the model,
    the user's overrides for the model on ``dataset``.
    """
    key = (model, dataset)
    if key not in _MODEL_CACHE:
        base = _read_yaml(CONFIG_DIR / "models" / f"{model}.yaml")
        user = config["models"].get(model) or {}
        merged = deep_merge(base, base.get("datasets", {}).get(dataset))
        merged = deep_merge(merged, {k: v for k, v in user.items() if k != "datasets"})
        merged = deep_merge(merged, (user.get("datasets") or {}).get(dataset))
        merged.pop("datasets", None)
        merged.setdefault("name", model)
        validate(merged, schema=str(SCHEMAS / "model.schema.yaml"))
        _MODEL_CACHE[key] = merged
    return _MODEL_CACHE[key]


def default_targets():
    return [f"results/{t['dataset']}/{t['model']}/map.json" for t in config["targets"]]


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(MODELS),
    extractor="i3d",
    video=r"[^/]+",


# ---- input functions -------------------------------------------------------------------------


def index_inputs(wildcards):
    """The generated folder of a synthetic dataset, or a real dataset's annotation files.

    Annotation files are inputs so that editing one reruns the index and everything after it.
    """
    cfg = dataset_config(wildcards.dataset)
    if cfg["synthetic"] is not None:
        return [f"work/{wildcards.dataset}/raw"]
    files = []
    for subset in cfg["subsets"]:
        folder = Path(cfg["root"]) / subset["annotations"]
        files += sorted(str(p) for p in folder.glob(f"*_{subset['suffix']}.txt"))
    return files


def index_json(wildcards):
    return checkpoints.index.get(dataset=wildcards.dataset).output.index


def video_file(wildcards):
    """The video file of {video}, as listed by the index stage."""
    videos = load_index(index_json(wildcards))["videos"]
    if wildcards.video not in videos:
        raise ValueError(f"video {wildcards.video} is not in dataset {wildcards.dataset}")
    return videos[wildcards.video]["path"]


def _features_of_split(wildcards, split):
    extractor = dataset_config(wildcards.dataset)["features"]["extractor"]
    index = load_index(index_json(wildcards))
    return [
        f"work/{wildcards.dataset}/features/{extractor}/{video}.npy"
        for video in videos_of_split(index, split)
    ]


def train_features(wildcards):
    return _features_of_split(wildcards, "train")


def test_features(wildcards):
    return _features_of_split(wildcards, "test")


# ---- params functions ------------------------------------------------------------------------


def synthetic_params(wildcards):
    return dataset_config(wildcards.dataset)["synthetic"]


def index_params(wildcards):
    cfg = dataset_config(wildcards.dataset)
    return {
        "dataset": cfg["name"],
        "classes": cfg["classes"],
        "subsets": cfg["subsets"],
        "fps": cfg["fps"],
        "root": cfg["root"],
    }


def dataset_fps(wildcards):
    return dataset_config(wildcards.dataset)["fps"]


def flow_params(wildcards):
    cfg = dataset_config(wildcards.dataset)
    return {
        **cfg["flow"],
        "short_side": cfg["features"]["short_side"],
        "code_version": extractors.__version__,
    }


def feature_params(wildcards):
    cfg = dataset_config(wildcards.dataset)["features"]
    return {
        "snippet_length": cfg["snippet_length"],
        "snippet_stride": cfg["snippet_stride"],
        "short_side": cfg["short_side"],
        "crop": cfg["crop"],
        "rgb_weights": cfg["weights"]["rgb"],
        "rgb_sha256": cfg["weights"]["rgb_sha256"],
        "flow_weights": cfg["weights"]["flow"],
        "flow_sha256": cfg["weights"]["flow_sha256"],
        "seed": cfg["seed"],
        "batch_size": cfg["batch_size"],
    }


def device():
    return config["device"]


def model_args(wildcards):
    return model_config(wildcards.model, wildcards.dataset)["args"]


def train_params(wildcards):
    return model_config(wildcards.model, wildcards.dataset)["train"]


def infer_params(wildcards):
    return model_config(wildcards.model, wildcards.dataset)["infer"]


def evaluation_params(wildcards):
    cfg = dataset_config(wildcards.dataset)
    test = [s["name"] for s in cfg["subsets"] if s["split"] == "test"]
    return {**cfg["evaluation"], "subset": test[0]}


def code_version(wildcards):
    return wtal.__version__
