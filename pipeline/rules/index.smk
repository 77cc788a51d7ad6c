checkpoint index:
    """Videos, subsets, durations, video-level labels; ground truth in the ActivityNet schema."""
    input:
        index_inputs,
    output:
        index="work/{dataset}/index.json",
        gt="work/{dataset}/gt.json",
    params:
        index=index_params,
        version=stage_version("index"),
    log:
        "logs/{dataset}/index.log",
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/index.py"
