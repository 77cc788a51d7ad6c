"""Snakemake wrapper of the import stage (wtal.byof.import_features)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.byof import import_features  # noqa: E402
from wtal.datasets import load_index  # noqa: E402

video = snakemake.wildcards.video  # noqa: F821
record = load_index(snakemake.input.index)["videos"][video]  # noqa: F821
import_features(
    video,
    record,
    snakemake.output.features,  # noqa: F821
    snippet_seconds=snakemake.params.snippet_seconds,  # noqa: F821
    streams=snakemake.params.streams,  # noqa: F821
    unpacked=snakemake.input.get("unpacked"),  # noqa: F821
)
