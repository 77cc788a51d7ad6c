"""Snakemake wrapper of W-TALC joint-file unpacking (wtal.byof.unpack_joint)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.byof import unpack_joint  # noqa: E402

n = unpack_joint(snakemake.input.joint, snakemake.input.annotations, snakemake.output.folder)  # noqa: F821
print(f"unpacked {n} videos")
