"""Snakemake wrapper of the features stage (extractors.features.extract_i3d)."""
from wtal.logs import interactive, to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from extractors.features import I3DSettings, extract_i3d  # noqa: E402

extract_i3d(
    snakemake.input.plan,  # noqa: F821
    snakemake.input.flow,  # noqa: F821
    snakemake.output.features,  # noqa: F821
    settings=I3DSettings(**snakemake.params.settings),  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    progress=interactive(),
)
