from wtal.io import check_sources


rule features:
    """Two-stream snippet features (RGB columns first, then flow) with a provenance sidecar."""
    input:
        # first, so that it runs when the DAG is built, before any job: the dataset's folders
        # and weights files exist (wtal.io.check_sources; not in a dry run, which only plans)
        checked=lambda wc: (
            [] if workflow.dryrun else check_sources(dataset_config(wc.dataset), wc.dataset)
        ),
        video=video_file,
        plan="work/{dataset}/decode/{video}.json",
        flow="work/{dataset}/flow/{video}.zip",
    output:
        features="work/{dataset}/features/{extractor}/{video}.npy",
        sidecar="work/{dataset}/features/{extractor}/{video}.json",
    params:
        settings=feature_params,
        device=device(),
    threads: 1
    log:
        "logs/{dataset}/features/{extractor}/{video}.log",
    benchmark:
        "benchmarks/{dataset}/features/{extractor}/{video}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/features.py"
