"""Snakemake wrapper of the decode stage (extractors.decode.decode)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from extractors.decode import decode  # noqa: E402

decode(snakemake.input.video, snakemake.output.plan, fps=snakemake.params.fps)  # noqa: F821
