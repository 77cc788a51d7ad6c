rule features:
    """Two-stream snippet features (RGB columns first, then flow) with a provenance sidecar."""
    input:
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
