"""Snakemake wrapper of the flow stage (extractors.flowstage.flow_stage)."""
from wtal.logs import interactive, to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from extractors.flowstage import flow_stage  # noqa: E402

settings = dict(snakemake.params.flow)  # noqa: F821
settings.pop("code_version")
flow_stage(
    snakemake.input.plan,  # noqa: F821
    snakemake.output.flow,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    progress=interactive(),
    **settings,
)
