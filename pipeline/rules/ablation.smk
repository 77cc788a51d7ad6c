rule ablation:
    """Train, infer and evaluate every variant of the model's ablation table (its settings'
    ``ablations:`` block, in the paper's order) → a comparison table (wtal.ablation)."""
    input:
        checked=lambda wc: (
            [] if workflow.dryrun else check_sources(dataset_config(wc.dataset), wc.dataset)
        ),
        index=index_json,
        gt="work/{dataset}/gt.json",
        train=train_features,
        test=test_features,
        trimmed=trimmed_features,
    output:
        table="results/{dataset}/{model}/ablation.md",
        json="results/{dataset}/{model}/ablation.json",
    params:
        model="{model}",
        ablation=ablation_params,
        evaluation=evaluation_params,
        dataset="{dataset}",
        device=device(),
        version=stage_version("ablation"),
    threads: 2
    log:
        "logs/{dataset}/{model}/ablation.log",
    benchmark:
        "benchmarks/{dataset}/{model}/ablation.tsv"
    resources:
        mem_mb=8000,
        runtime=1440,
        gpu=device_gpus,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/ablation.py"
