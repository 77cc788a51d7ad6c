"""Snakemake wrapper of the features stage (extractors.features.extract_features)."""
from wtal.logs import interactive, to_log_file

to_log_file(snakemake.log[0])  # noqa: F821 - injected by Snakemake
from extractors.features import FeatureSettings, extract_features  # noqa: E402

extract_features(
    snakemake.input.plan,  # noqa: F821
    snakemake.input.flow,  # noqa: F821
    snakemake.output.features,  # noqa: F821
    settings=FeatureSettings(**snakemake.params.settings),  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    progress=interactive(),
)
