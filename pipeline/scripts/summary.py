"""Snakemake wrapper of the summary (wtal.report.write_summary)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.report import write_summary  # noqa: E402

records = write_summary(
    list(snakemake.input.maps),  # noqa: F821
    snakemake.output.md,  # noqa: F821
    snakemake.output.csv,  # noqa: F821
)
print(f"{len(snakemake.input.maps)} map.json file(s), {len(records)} rows")  # noqa: F821
