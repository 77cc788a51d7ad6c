"""Snakemake wrapper of the train stage (wtal.train.train)."""
from wtal.logs import interactive, to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.settings import train_settings  # noqa: E402
from wtal.train import train  # noqa: E402

train(
    snakemake.input.index,  # noqa: F821
    list(snakemake.input.features),  # noqa: F821
    snakemake.output.model,  # noqa: F821
    snakemake.output.log_json,  # noqa: F821
    model=snakemake.params.model,  # noqa: F821
    model_args=dict(snakemake.params.args),  # noqa: F821
    settings=train_settings(snakemake.params.train),  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    progress=interactive(),
    trimmed_paths=list(snakemake.input.trimmed),  # noqa: F821
)
