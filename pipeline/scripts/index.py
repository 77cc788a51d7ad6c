"""Snakemake wrapper of the index stage (wtal.datasets.index_dataset)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.datasets import index_dataset  # noqa: E402

index_dataset(snakemake.output.index, snakemake.output.gt, **snakemake.params.index)  # noqa: F821
