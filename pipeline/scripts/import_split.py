"""Snakemake wrapper of the batched import stage (wtal.byof.import_split)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.byof import import_split  # noqa: E402
from wtal.datasets import load_index  # noqa: E402

import_split(
    load_index(snakemake.input.index),  # noqa: F821
    snakemake.wildcards.split,  # noqa: F821
    snakemake.output.folder,  # noqa: F821
    snippet_seconds=snakemake.params.snippet_seconds,  # noqa: F821
    streams=snakemake.params.streams,  # noqa: F821
    unpacked=snakemake.input.get("unpacked"),  # noqa: F821
)
