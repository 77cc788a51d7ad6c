"""Snakemake wrapper of the ablation stage (wtal.ablation.run_ablation)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.ablation import run_ablation  # noqa: E402

params = snakemake.params  # noqa: F821
run_ablation(
    snakemake.input.index,  # noqa: F821
    list(snakemake.input.train),  # noqa: F821
    list(snakemake.input.test),  # noqa: F821
    snakemake.input.gt,  # noqa: F821
    snakemake.output.table,  # noqa: F821
    snakemake.output.json,  # noqa: F821
    model=params.model,
    settings=params.ablation["settings"],
    variants=params.ablation["variants"],
    evaluation=params.evaluation,
    trimmed_paths=list(snakemake.input.trimmed),  # noqa: F821
    dataset=params.dataset,
    device=params.device,
    threads=snakemake.threads,  # noqa: F821
)
