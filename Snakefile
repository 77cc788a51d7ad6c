# Raw video → decode → TV-L1 flow → two-stream features → train → infer → evaluate.
# Targets: results/{dataset}/{model}/map.json, e.g. results/demo/cas_baseline/map.json.
# Settings: pipeline/config/ (config.yaml, datasets/*.yaml, models/*.yaml), validated against
# pipeline/schemas/; see the README for overriding them.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: str(Path(workflow.basedir) / "pipeline" / "config" / "config.yaml")


report: "pipeline/report/workflow.rst"


include: "pipeline/rules/common.smk"
include: "pipeline/rules/demo.smk"
include: "pipeline/rules/index.smk"
include: "pipeline/rules/decode.smk"
include: "pipeline/rules/flow.smk"
include: "pipeline/rules/features.smk"
include: "pipeline/rules/import.smk"
include: "pipeline/rules/train.smk"
include: "pipeline/rules/infer.smk"
include: "pipeline/rules/evaluate.smk"
include: "pipeline/rules/report.smk"
include: "pipeline/rules/ablation.smk"


localrules:
    all,


rule all:
    input:
        default_targets(),
