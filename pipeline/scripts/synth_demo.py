"""Snakemake wrapper: generate the synthetic demo dataset (wtal.demo.synthesize_demo)."""
from pathlib import Path

from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.demo import synthesize_demo  # noqa: E402

args = dict(snakemake.params.synthetic)  # noqa: F821
for key in ("duration_range",):
    args[key] = tuple(args[key])
print(synthesize_demo(Path(snakemake.output[0]), **args))  # noqa: F821
