"""Snakemake wrapper of the infer stage (wtal.infer.infer)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.infer import InferSettings, infer  # noqa: E402

settings = dict(snakemake.params.infer)  # noqa: F821
settings["cas_thresholds"] = tuple(settings["cas_thresholds"])
infer(
    snakemake.input.model,  # noqa: F821
    list(snakemake.input.features),  # noqa: F821
    snakemake.output.detections,  # noqa: F821
    snakemake.output.cas,  # noqa: F821
    settings=InferSettings(**settings),
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    thumos14_out=snakemake.output.thumos14,  # noqa: F821
)
