"""Logging set-up shared by the Snakemake scripts and the command line."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from types import FrameType
from typing import TextIO


def to_log_file(path: str) -> TextIO:
    """Send stderr and the logging module to ``path`` (a rule's ``log:``); returns the stream.

    Every stage script starts with this, so it also makes SIGTERM end the script as an
    exception would (:func:`exit_on_sigterm`).
    """
    stream = open(path, "w", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    exit_on_sigterm()
    return stream


def exit_on_sigterm() -> None:
    """Turn SIGTERM (Snakemake cancelling a job, SLURM's scancel or time limit, ``kill``) into
    ``SystemExit(143)`` raised in the main thread, so that ``with`` blocks and ``finally``
    clauses run: temporary folders (the ablation stage's variants, half-written outputs beside
    their final names) are removed instead of left behind. The termination is logged. No-op
    outside the main thread."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        del frame
        logging.getLogger(__name__).error("terminated by signal %d", signum)
        raise SystemExit(128 + signum)

    with contextlib.suppress(ValueError):  # ValueError: not the main thread
        signal.signal(signal.SIGTERM, _exit)


def interactive() -> bool:
    """Whether progress bars should be shown (stderr is a terminal, not a log file)."""
    return sys.stderr.isatty()
