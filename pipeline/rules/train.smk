rule train:
    """Train a localizer on the training split's features and video-level labels only."""
    input:
        index=index_json,
        features=train_features,
    output:
        model="results/{dataset}/{model}/model.pt",
        log_json="results/{dataset}/{model}/train.json",
    params:
        model="{model}",
        args=model_args,
        train=train_params,
        device=device(),
        version=code_version,
    threads: 2
    log:
        "logs/{dataset}/{model}/train.log",
    benchmark:
        "benchmarks/{dataset}/{model}/train.tsv"
    resources:
        mem_mb=8000,
        runtime=600,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/train.py"
