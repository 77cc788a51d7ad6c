"""Snakemake wrapper of the report stage (wtal.report.make_report)."""
from pathlib import Path

from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.report import make_report  # noqa: E402

settings = dict(snakemake.params.settings)  # noqa: F821 - the config's `report` block
make_report(
    model_path=snakemake.input.model,  # noqa: F821
    train_log_path=snakemake.input.train_log,  # noqa: F821
    detections_path=snakemake.input.detections,  # noqa: F821
    map_path=snakemake.input.map_json,  # noqa: F821
    gt_path=snakemake.input.gt,  # noqa: F821
    feature_paths=list(snakemake.input.features),  # noqa: F821
    out_dir=Path(snakemake.output.manifest).parent,  # noqa: F821
    subset=snakemake.params.subset,  # noqa: F821
    videos=list(settings.get("videos") or []) or None,
    n_videos=int(settings.get("n_videos", 3)),
    pr_tiou=float(settings.get("pr_tiou", 0.5)),
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
