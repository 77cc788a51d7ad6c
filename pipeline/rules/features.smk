from wtalio import check_sources

from extractors.catalog import BACKBONES


rule features:
    """Snippet features of one video with the dataset's backbone (features.extractor), RGB
    columns first, and a provenance sidecar (backbone, weights and sha256, grid, geometry, flow
    settings, frame count, code version, stream columns)."""
    input:
        # first, so that it runs when the DAG is built, before any job: the dataset's folders
        # and weights files exist (wtalio.check_sources; not in a dry run, which only plans)
        checked=lambda wc: (
            [] if workflow.dryrun else check_sources(dataset_config(wc.dataset), wc.dataset)
        ),
        video=video_file,
        plan="work/{dataset}/decode/{video}.json",
        flow=features_flow_input,
    output:
        features="work/{dataset}/features/{extractor}/{video}.npy",
        sidecar="work/{dataset}/features/{extractor}/{video}.json",
    wildcard_constraints:
        # the backbones this rule makes (imported features have their own rule)
        extractor="|".join(BACKBONES),
    params:
        settings=feature_params,
        device=device(),
        version=FEATURES_VERSION,
    threads: 1
    log:
        "logs/{dataset}/features/{extractor}/{video}.log",
    benchmark:
        "benchmarks/{dataset}/features/{extractor}/{video}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=device_gpus,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/features.py"
