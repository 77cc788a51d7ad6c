"""Snakemake wrapper of the infer stage (wtal.infer.infer)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.infer import infer  # noqa: E402
from wtal.settings import infer_settings  # noqa: E402

settings, model_options = infer_settings(snakemake.params.infer)  # noqa: F821
infer(
    snakemake.input.model,  # noqa: F821
    list(snakemake.input.features),  # noqa: F821
    snakemake.output.detections,  # noqa: F821
    snakemake.output.cas,  # noqa: F821
    settings=settings,
    model_options=model_options,
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    thumos14_out=snakemake.output.thumos14,  # noqa: F821
)
