rule decode:
    """Probe a video with decord; write its resampling plan to the dataset's fps."""
    input:
        video=video_file,
    output:
        plan="work/{dataset}/decode/{video}.json",
    params:
        decode=decode_params,
    log:
        "logs/{dataset}/decode/{video}.log",
    benchmark:
        "benchmarks/{dataset}/decode/{video}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/decode.py"
