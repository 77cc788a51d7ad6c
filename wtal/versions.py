"""Output versions of the localisation stages, and the code's provenance (no torch).

Each stage's version is the ``version`` parameter of its Snakemake rule (see
``pipeline/rules/common.smk``, :func:`stage_version`): bump a stage's version deliberately
when a change alters what that stage writes, and exactly that stage and those after it rerun
(Snakemake reruns a job whose parameters changed; later jobs follow their inputs). A refactor
that leaves the outputs as they were bumps nothing. The video stages' versions are in
:mod:`extractors.versions` and ``extractors.decode.PLAN_VERSION``.
"""

from __future__ import annotations

import wtal
from extractors.versions import git_commit

#: Stage name → output version.
STAGE_VERSIONS: dict[str, str] = {
    "index": "0.1.0",  # index.json, gt.json
    "train": "0.1.0",  # model.pt, train.json
    "infer": "0.1.0",  # detections.json, the THUMOS14 text files, the CAS
    "evaluate": "0.1.0",  # map.json
    "report": "0.1.0",  # the report folder, summary.md / summary.csv
    "ablation": "0.2.0",  # ablation.md, ablation.json (0.2: shares_training_with)
}


def stage_version(stage: str) -> str:
    """The output version of ``stage``.

    Raises:
        KeyError: an unknown stage.
    """
    if stage not in STAGE_VERSIONS:
        raise KeyError(f"no output version for stage {stage!r}; known: {sorted(STAGE_VERSIONS)}")
    return STAGE_VERSIONS[stage]


def provenance(stage: str) -> dict[str, str | None]:
    """What a checkpoint or result records of the code that wrote it: the stage's output
    version, the package version and the git commit (None outside a checkout)."""
    return {"stage_version": stage_version(stage), "package": f"wtal {wtal.__version__}",
            "commit": git_commit()}
