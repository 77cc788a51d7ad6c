"""Snakemake wrapper of the evaluate stage (wtal.evaluate.evaluate)."""
from wtal.logs import to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from wtal.evaluate import evaluate, training_record  # noqa: E402
from wtalio import read_json, write_json  # noqa: E402

ev = snakemake.params.evaluation  # noqa: F821
result = evaluate(
    snakemake.input.gt,  # noqa: F821
    snakemake.input.detections,  # noqa: F821
    subset=ev["subset"],
    tious=ev["tiou"],
    protocol=ev["protocol"],
    protocols=ev.get("protocols", []),
    dataset=snakemake.params.dataset,  # noqa: F821
    model=snakemake.params.model,  # noqa: F821
    strict=True,  # a detection file that no model of this dataset can write is an error
)
result.update(training_record(
    read_json(snakemake.input.train_log),  # noqa: F821
    learns_from_trimmed=snakemake.params.learns_from_trimmed,  # noqa: F821
))
if snakemake.params.model_settings_of:  # noqa: F821
    result["model_settings_of"] = snakemake.params.model_settings_of  # noqa: F821
write_json(snakemake.output.map_json, result)  # noqa: F821
