rule flow:
    """TV-L1 optical flow between consecutive resampled frames, quantised like denseflow."""
    input:
        video=video_file,
        plan="work/{dataset}/decode/{video}.json",
    output:
        flow="work/{dataset}/flow/{video}.zip",
    params:
        flow=flow_params,
    threads: 1
    log:
        "logs/{dataset}/flow/{video}.log",
    benchmark:
        "benchmarks/{dataset}/flow/{video}.tsv"
    resources:
        mem_mb=2000,
        runtime=240,
        gpu=flow_gpus,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/flow.py"
