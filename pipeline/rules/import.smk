rule unpack_joint:
    """W-TALC's single *-JOINTFeatures.npy → one .npy per video (read once, not once per video)."""
    input:
        unpack(joint_inputs),
    output:
        folder=directory("work/{dataset}/features/joint"),
    log:
        "logs/{dataset}/unpack_joint.log",
    benchmark:
        "benchmarks/{dataset}/unpack_joint.tsv"
    resources:
        mem_mb=16000,
        runtime=30,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/unpack_joint.py"


rule import_features:
    """Bring-your-own features of one video → the project's .npy + sidecar (grid from
    snippet_seconds, streams), checked (shape, finite values) on the way in."""
    input:
        unpack(import_inputs),
        index=index_json,
    output:
        features="work/{dataset}/features/imported/{video}.npy",
        sidecar="work/{dataset}/features/imported/{video}.json",
    params:
        snippet_seconds=lambda wc: import_params(wc)["snippet_seconds"],
        version=FEATURES_VERSION,
        streams=lambda wc: import_params(wc)["streams"],
    log:
        "logs/{dataset}/features/imported/{video}.log",
    benchmark:
        "benchmarks/{dataset}/features/imported/{video}.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/import_features.py"


rule import_split:
    """Bring-your-own features of every video of {split} (the trimmed clips: UCF101 has 13,320)
    in ONE job → ``imported_{split}/<video>.npy`` + sidecars, checked as in import_features;
    one job per clip would spend more on scheduling than on copying."""
    input:
        unpack(split_import_inputs),
        index=index_json,
    output:
        folder=directory("work/{dataset}/features/imported_{split}"),
    params:
        snippet_seconds=lambda wc: import_params(wc)["snippet_seconds"],
        version=FEATURES_VERSION,
        streams=lambda wc: import_params(wc)["streams"],
    wildcard_constraints:
        split="trimmed",
    log:
        "logs/{dataset}/features/imported_{split}.log",
    benchmark:
        "benchmarks/{dataset}/features/imported_{split}.tsv"
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        "../../envs/wtal.yaml"
    script:
        "../scripts/import_split.py"
