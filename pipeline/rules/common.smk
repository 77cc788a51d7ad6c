# Configuration loading and validation, and the input/params functions of the rules.
# Nothing here runs a stage; rules only wire files and params to library functions.
import os
from pathlib import Path

from snakemake.utils import validate

from extractors.decode import PLAN_VERSION
from extractors.versions import FEATURES_VERSION, FLOW_VERSION
from wtal.checks import check_model_datasets, check_model_settings, check_settings
from wtal.datasets import input_listing, load_index, resolve_folder, videos_of_split
from wtal.settings import (
    merge_model_settings,
    merge_settings,
    read_yaml,
    resolve_dataset_settings,
    resolve_model_settings,
)
from wtal.versions import stage_version

BASE = Path(workflow.basedir)
CONFIG_DIR = BASE / "pipeline" / "config"
SCHEMAS = BASE / "pipeline" / "schemas"

check_settings(config, SCHEMAS / "config.schema.yaml", "config")  # a short message
validate(config, schema=str(SCHEMAS / "config.schema.yaml"))


def deep_merge(base, override):
    """Copy of ``base`` with ``override`` merged in key by key (dicts recursively)."""
    return merge_settings(base, override)


DATASETS = sorted(
    {p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml")} | set(config["datasets"])
)
MODELS = sorted({p.stem for p in (CONFIG_DIR / "models").glob("*.yaml")})
_DATASET_CACHE = {}
_MODEL_CACHE = {}
for _model in MODELS:  # a per-dataset block of an unknown dataset would be ignored
    _file = CONFIG_DIR / "models" / f"{_model}.yaml"
    check_model_datasets(_model, read_yaml(_file).get("datasets"), DATASETS, source=str(_file))
    check_model_datasets(_model, (config["models"].get(_model) or {}).get("datasets"), DATASETS,
                         source=f"config models.{_model}")


def dataset_config(name):
    """Settings of dataset ``name``: its file, then config overrides, validated with defaults."""
    if name not in _DATASET_CACHE:
        _DATASET_CACHE[name] = resolve_dataset_settings(
            name, CONFIG_DIR / "datasets" / f"{name}.yaml", config["datasets"].get(name)
        )
    return _DATASET_CACHE[name]


def _merged_model_config(model, dataset):
    """The model file, its block for ``dataset`` and the user's overrides, merged (later wins),
    not validated (wtal.settings.merge_model_settings)."""
    return merge_model_settings(
        CONFIG_DIR / "models" / f"{model}.yaml", dataset, config["models"].get(model),
        settings_of=dataset_config(dataset)["model_settings"],
    )


def model_config(model, dataset):
    """Settings of ``model`` on ``dataset``, validated against the model schema.

    Later wins: the model file, its block for ``dataset``, the user's overrides for the model,
    the user's overrides for the model on ``dataset``. Call it from ``params:`` functions, not
    from input functions: Snakemake treats an input function's error as "this rule cannot make
    the file" and, when the file exists, silently keeps it, so a schema error would be lost.
    """
    key = (model, dataset)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = resolve_model_settings(
            CONFIG_DIR / "models" / f"{model}.yaml", dataset, config["models"].get(model),
            settings_of=dataset_config(dataset)["model_settings"],
        )
        if workflow.is_main_process:  # not in every cluster job: the check imports torch
            where = f"model {model} on dataset {dataset}"
            check_model_settings(model, _MODEL_CACHE[key], where=where)  # args vs the builder
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
    if cfg["format"] == "features":
        path = Path(cfg["annotations"])
        return sorted(str(p) for p in path.glob("*.npy")) if path.is_dir() else [str(path)]
    if cfg["format"] == "activitynet":
        return [str(Path(cfg["root"]) / cfg["annotations"])]
    files = []
    for subset in cfg["subsets"]:
        try:
            folder = resolve_folder(Path(cfg["root"]), subset["annotations"])
        except FileNotFoundError:
            continue  # the index stage reports the missing folder, naming it
        files += sorted(str(p) for p in folder.glob(f"*_{subset['suffix']}.txt"))
    return files


def index_json(wildcards):
    return checkpoints.index.get(dataset=wildcards.dataset).output.index


_INDEX_CACHE = {}


def cached_index(path):
    """index.json, parsed once per version of the file (path, mtime, size) rather than once
    per job: the input functions of a dataset's per-video jobs all read it, and with THUMOS14
    and its 2,700 UCF101 clips (1.2 MB) parsing it for every job made each DAG update take
    minutes. Callers must not modify the returned dict."""
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    hit = _INDEX_CACHE.get(str(path))
    if hit is None or hit[0] != stamp:
        hit = _INDEX_CACHE[str(path)] = (stamp, load_index(path))
    return hit[1]


def video_file(wildcards):
    """The video file of {video}, as listed by the index stage."""
    videos = cached_index(index_json(wildcards))["videos"]
    if wildcards.video not in videos:
        raise ValueError(f"video {wildcards.video} is not in dataset {wildcards.dataset}")
    return videos[wildcards.video]["path"]


def _features_of_split(wildcards, split):
    extractor = dataset_config(wildcards.dataset)["features"]["extractor"]
    index = cached_index(index_json(wildcards))
    return [
        f"work/{wildcards.dataset}/features/{extractor}/{video}.npy"
        for video in videos_of_split(index, split)
    ]


def video_record(wildcards):
    videos = cached_index(index_json(wildcards))["videos"]
    if wildcards.video not in videos:
        raise ValueError(f"video {wildcards.video} is not in dataset {wildcards.dataset}")
    return videos[wildcards.video]


def import_inputs(wildcards):
    """The user's feature files of {video} (bring-your-own features), or the unpacked folder."""
    source = video_record(wildcards).get("features")
    if source is None:
        raise ValueError(f"video {wildcards.video} of {wildcards.dataset} has no feature source")
    if source["layout"] == "wtalc":
        return {"unpacked": f"work/{wildcards.dataset}/features/joint"}
    return {"sources": source["files"]}


def joint_inputs(wildcards):
    cfg = dataset_config(wildcards.dataset)
    from wtal.byof import find_joint

    return {
        "joint": str(find_joint(Path(cfg["features_dir"]), cfg.get("features_file"))),
        "annotations": cfg["annotations"],
    }


def import_params(wildcards):
    cfg = dataset_config(wildcards.dataset)
    return {"snippet_seconds": cfg["snippet_seconds"], "streams": cfg["streams"]}


def train_features(wildcards):
    return _features_of_split(wildcards, "train")


def test_features(wildcards):
    return _features_of_split(wildcards, "test")


def features_flow_input(wildcards):
    """The flow cache of {video}, unless the backbone is RGB-only (then no flow stage runs)."""
    from extractors.catalog import RGB_ONLY

    if wildcards.extractor in RGB_ONLY:
        return []
    return f"work/{wildcards.dataset}/flow/{wildcards.video}.zip"


def trimmed_features(wildcards):
    """The trimmed clips' features, for a model that learns from them (``trimmed: true``)."""
    # not model_config: an input function's error would be swallowed (see model_config); the
    # params functions of the same rule validate the settings
    if _merged_model_config(wildcards.model, wildcards.dataset).get("trimmed") is not True:
        return []
    if dataset_config(wildcards.dataset)["features"]["extractor"] == "imported":
        # bring-your-own features: every clip imported by one job (rule import_split)
        if not videos_of_split(cached_index(index_json(wildcards)), "trimmed"):
            return []
        return [f"work/{wildcards.dataset}/features/imported_trimmed"]
    return _features_of_split(wildcards, "trimmed")


def split_import_inputs(wildcards):
    """The user's feature files of every video of {split} (bring-your-own features)."""
    index = cached_index(index_json(wildcards))
    videos = videos_of_split(index, wildcards.split)
    if not videos:
        raise ValueError(f"dataset {wildcards.dataset} has no videos in split {wildcards.split}")
    inputs = {"sources": sorted({f for v in videos
                                 for f in index["videos"][v]["features"].get("files", [])})}
    if any(index["videos"][v]["features"]["layout"] == "wtalc" for v in videos):
        inputs["unpacked"] = f"work/{wildcards.dataset}/features/joint"
    return inputs


# ---- params functions ------------------------------------------------------------------------


def synthetic_params(wildcards):
    return dataset_config(wildcards.dataset)["synthetic"]


def index_params(wildcards):
    cfg = dataset_config(wildcards.dataset)
    # everything the index depends on, and nothing else (a changed param reruns the index)
    skip = ("flow", "features", "evaluation", "tiou", "synthetic")
    params = {key: value for key, value in cfg.items() if key not in skip}
    if cfg["format"] != "features":  # videos shorter than one snippet are reported here
        params["min_frames"] = snippet_frames(wildcards)
    listing = input_listing(cfg)  # "" for a synthetic dataset, whose folder is the input
    if listing:  # the set of video / feature files it would find: a new one reruns the index
        params["input_files"] = listing
    return params


def dataset_fps(wildcards):
    return dataset_config(wildcards.dataset)["fps"]


def snippet_frames(wildcards):
    """Frames of one snippet: a video giving fewer is an error at the index and decode stages."""
    return dataset_config(wildcards.dataset)["features"]["snippet_length"]


def decode_params(wildcards):
    # the plan's version: a change to how plans are made reruns decode and all after it
    return {"fps": dataset_fps(wildcards), "min_frames": snippet_frames(wildcards),
            "plan_version": PLAN_VERSION}


def flow_params(wildcards):
    cfg = dataset_config(wildcards.dataset)
    return {
        **cfg["flow"],
        "short_side": cfg["features"]["short_side"],
        "code_version": FLOW_VERSION,  # the flow stage's output version
    }


def feature_params(wildcards):
    """Keyword arguments of extractors.features.FeatureSettings for the dataset.

    Settings added with the other backbones are passed only when they differ from their
    defaults, so that the params of existing i3d jobs (and so their outputs) stay as they were.
    """
    cfg = dataset_config(wildcards.dataset)["features"]
    params = {
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
    defaults = {"extractor": "i3d", "ten_crop": False, "every_nth": 1, "flow_stack": 5,
                "resnet_depth": 101}
    params.update({k: cfg[k] for k, v in defaults.items() if cfg[k] != v})
    return params


def device():
    return config["device"]


def device_gpus(wildcards):
    """GPUs asked for by a job that runs on ``device`` (features, train, infer, report,
    ablation): 1 with ``device: cuda``, else 0.

    The SLURM profile turns ``gpu: 1`` into ``sbatch --gpus=1``; locally it limits nothing
    unless ``--resources gpu=N`` is given. ``auto`` asks for none: it takes a GPU only where
    the node happens to have one.
    """
    return 1 if config["device"] == "cuda" else 0


def flow_gpus(wildcards):
    """1 when the dataset's flow runs the torch TV-L1 backend on CUDA, else 0: backend torch or
    auto with flow.device cuda, or with flow.device auto while ``device`` is cuda (a job given
    no GPU would find none); OpenCV, or flow.device cpu, asks for none."""
    flow = dataset_config(wildcards.dataset)["flow"]
    backend, where = flow.get("backend", "opencv"), flow.get("device", "auto")
    on_cuda = where == "cuda" or (where == "auto" and config["device"] == "cuda")
    return 1 if backend in ("torch", "auto") and on_cuda else 0


def model_args(wildcards):
    return model_config(wildcards.model, wildcards.dataset)["args"]


def train_params(wildcards):
    return model_config(wildcards.model, wildcards.dataset)["train"]


def infer_params(wildcards):
    return model_config(wildcards.model, wildcards.dataset)["infer"]


def ablation_params(wildcards):
    cfg = model_config(wildcards.model, wildcards.dataset)
    return {
        "settings": {k: cfg[k] for k in ("args", "train", "infer")},
        "variants": cfg["ablations"],
    }


def evaluation_params(wildcards):
    cfg = dataset_config(wildcards.dataset)
    test = [s["name"] for s in cfg["subsets"] if s["split"] == "test"]
    return {**cfg["evaluation"], "subset": test[0]}


