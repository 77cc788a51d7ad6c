rule infer:
    """CAS → thresholded segments → Soft-NMS → detections in the ActivityNet submission format
    and in the official THUMOS14 text format (with its detclasslist.txt)."""
    input:
        model="results/{dataset}/{model}/model.pt",
        features=test_features,
    output:
        detections="results/{dataset}/{model}/detections.json",
        thumos14="results/{dataset}/{model}/detections_thumos14.txt",
        thumos14_classes="results/{dataset}/{model}/detclasslist.txt",
        cas=directory("results/{dataset}/{model}/cas"),
    params:
        infer=infer_params,
        device=device(),
        version=stage_version("infer"),
    threads: 2
    log:
        "logs/{dataset}/{model}/infer.log",
    benchmark:
        "benchmarks/{dataset}/{model}/infer.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=device_gpus,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/infer.py"
