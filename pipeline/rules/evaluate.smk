rule evaluate:
    """mAP at the dataset's tIoU thresholds on the test subset → map.json: the primary protocol
    at the top level, every protocol of the dataset's evaluation block under "protocols"; from
    train.json the pretraining log and, for a model that learns from trimmed clips
    (``trimmed: true``), whether its knowledge transfer was on (wtal.evaluate.training_record);
    for a dataset run with another's model settings (``model_settings``), that dataset's name
    (``model_settings_of``: the summary puts that benchmark's published numbers beside it)."""
    input:
        gt="work/{dataset}/gt.json",
        detections="results/{dataset}/{model}/detections.json",
        train_log="results/{dataset}/{model}/train.json",
    output:
        map_json="results/{dataset}/{model}/map.json",
    params:
        evaluation=evaluation_params,
        dataset="{dataset}",
        model="{model}",
        learns_from_trimmed=lambda wc: model_config(wc.model, wc.dataset).get("trimmed") is True,
        model_settings_of=lambda wc: dataset_config(wc.dataset)["model_settings"],
        version=stage_version("evaluate"),
    log:
        "logs/{dataset}/{model}/evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{model}/evaluate.tsv"
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/evaluate.py"
