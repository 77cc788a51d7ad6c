"""Output versions of the video stages, and the code's provenance (no torch, no cv2).

Each stage's version is a rule parameter of its Snakemake rule: bump it deliberately when a
change alters what that stage writes, and exactly that stage and those after it rerun (a
change that does not alter the outputs bumps nothing). The decode stage's version is
``extractors.decode.PLAN_VERSION``.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import extractors

#: The flow caches (TV-L1, quantisation, archive layout).
FLOW_VERSION = "0.1.0"
#: The feature files and their sidecars (backbones, snippet grid, imported features).
FEATURES_VERSION = "0.1.0"


@functools.cache
def git_commit() -> str | None:
    """The commit of the checkout the code runs from, ``+dirty`` with local changes; None
    outside a git checkout (an installed package)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                 "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def provenance(stage_version: str) -> dict[str, str | None]:
    """What a sidecar records of the code that wrote it: the stage's output version, the
    package version and the git commit (None outside a checkout)."""
    return {"stage_version": stage_version, "package": f"extractors {extractors.__version__}",
            "commit": git_commit()}
