rule evaluate:
    """mAP at the dataset's tIoU thresholds on the test subset → map.json: the primary protocol
    at the top level, every protocol of the dataset's evaluation block under "protocols"."""
    input:
        gt="work/{dataset}/gt.json",
        detections="results/{dataset}/{model}/detections.json",
    output:
        map_json="results/{dataset}/{model}/map.json",
    params:
        evaluation=evaluation_params,
        dataset="{dataset}",
        model="{model}",
        version=stage_version("evaluate"),
    log:
        "logs/{dataset}/{model}/evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{model}/evaluate.tsv"
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/evaluate.py"
