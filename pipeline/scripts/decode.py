"""Snakemake wrapper of the decode stage (extractors.decode.decode)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from extractors.decode import decode  # noqa: E402

settings = dict(snakemake.params.decode)  # noqa: F821
settings.pop("plan_version")  # in the params so that a new plan format reruns decode
decode(snakemake.input.video, snakemake.output.plan, **settings)  # noqa: F821
