rule synth_demo:
    """Generate the embedded synthetic demo dataset (videos, trimmed clips, annotations)."""
    output:
        directory("work/{dataset}/raw"),
    params:
        synthetic=synthetic_params,
    log:
        "logs/{dataset}/synth_demo.log",
    benchmark:
        "benchmarks/{dataset}/synth_demo.tsv"
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/synth_demo.py"
