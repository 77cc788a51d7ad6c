"""Snakemake wrapper of the index stage (wtal.datasets.index_from_config)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.datasets import index_from_config  # noqa: E402

index_from_config(snakemake.output.index, snakemake.output.gt, dict(snakemake.params.index))  # noqa: F821
