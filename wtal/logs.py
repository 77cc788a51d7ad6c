"""Logging set-up shared by the Snakemake scripts and the command line."""

from __future__ import annotations

import logging
import sys
from typing import TextIO


def to_log_file(path: str) -> TextIO:
    """Send stderr and the logging module to ``path`` (a rule's ``log:``); returns the stream."""
    stream = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    return stream


def interactive() -> bool:
    """Whether progress bars should be shown (stderr is a terminal, not a log file)."""
    return sys.stderr.isatty()
