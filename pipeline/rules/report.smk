# Reports: what a model sees (timelines of its per-module scores), how well it detects (AP per
# class, precision-recall, losses), and a comparison of every result with the papers' numbers.
# Settings: config key `report` ({videos: [...], n_videos: 3, pr_tiou: 0.5}), optional.
import glob


rule report:
    """Per model and dataset: timelines (ground truth, each module's scores, detections) of a
    few test videos, per-class AP under both protocols, PR curves and the training curves."""
    input:
        model="results/{dataset}/{model}/model.pt",
        train_log="results/{dataset}/{model}/train.json",
        detections="results/{dataset}/{model}/detections.json",
        map_json="results/{dataset}/{model}/map.json",
        gt="work/{dataset}/gt.json",
        features=test_features,
    output:
        timelines=report(
            directory("results/{dataset}/{model}/report/timelines"),
            patterns=["{video}.png"],
            caption="../report/timeline.rst",
            category="Timelines",
            subcategory="{dataset} / {model}",
            labels={"dataset": "{dataset}", "model": "{model}", "video": "{video}"},
        ),
        ap=report(
            "results/{dataset}/{model}/report/ap_per_class.png",
            caption="../report/ap_per_class.rst",
            category="Detection quality",
            subcategory="{dataset} / {model}",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "AP per class"},
        ),
        pr=report(
            "results/{dataset}/{model}/report/pr_curves.png",
            caption="../report/pr_curves.rst",
            category="Detection quality",
            subcategory="{dataset} / {model}",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "PR curves"},
        ),
        loss=report(
            "results/{dataset}/{model}/report/loss.png",
            caption="../report/loss.rst",
            category="Training",
            subcategory="{dataset} / {model}",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "loss"},
        ),
        manifest="results/{dataset}/{model}/report/report.json",
    params:
        subset=lambda wildcards: evaluation_params(wildcards)["subset"],
        settings=config.get("report") or {},
        device=device(),
        version=stage_version("report"),
    threads: 1
    log:
        "logs/{dataset}/{model}/report.log",
    benchmark:
        "benchmarks/{dataset}/{model}/report.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=device_gpus,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/report.py"


rule summary:
    """Every map.json beside the papers' reported numbers: results/summary.md and .csv."""
    input:
        maps=lambda wildcards: sorted(glob.glob("results/*/*/map.json")),
    output:
        md="results/summary.md",
        csv=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "mAP of every model and dataset, and the papers'"},
        ),
    params:
        version=stage_version("report"),
    log:
        "logs/summary.log",
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/summary.py"
