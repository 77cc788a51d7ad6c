# ---- checks when the workflow is parsed: every model and dataset named in the config exists ----
for _name in config["models"]:
    if _name not in MODELS:
        raise ValueError(
            f"config models: {_name!r} is not a model (no pipeline/config/models/{_name}.yaml;"
            f" known: {', '.join(MODELS)})"
        )
for _target in config["targets"]:
    if _target["model"] not in MODELS:
        raise ValueError(
            f"config targets: unknown model {_target['model']!r} for dataset "
            f"{_target['dataset']!r} (no pipeline/config/models/{_target['model']}.yaml; "
            f"known: {', '.join(MODELS)})"
        )
    if _target["dataset"] not in DATASETS:
        raise ValueError(
            f"config targets: unknown dataset {_target['dataset']!r} (no "
            f"pipeline/config/datasets/{_target['dataset']}.yaml and no 'datasets: "
            f"{{{_target['dataset']}: ...}}' in the config; known: {', '.join(DATASETS)})"
        )


rule train:
    """Train a localizer on the training split's features and video-level labels only."""
    input:
        # first, so that it runs when the DAG is built, before any job: the dataset's folders
        # and weights files exist (wtalio.check_sources; not in a dry run, which only plans)
        checked=lambda wc: (
            [] if workflow.dryrun else check_sources(dataset_config(wc.dataset), wc.dataset)
        ),
        index=index_json,
        features=train_features,
        trimmed=trimmed_features,
    output:
        model="results/{dataset}/{model}/model.pt",
        log_json="results/{dataset}/{model}/train.json",
    params:
        model="{model}",
        args=model_args,
        train=train_params,
        device=device(),
        version=stage_version("train"),
    threads: 2
    log:
        "logs/{dataset}/{model}/train.log",
    benchmark:
        "benchmarks/{dataset}/{model}/train.tsv"
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=device_gpus,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/train.py"
