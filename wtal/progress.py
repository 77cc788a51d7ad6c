"""Progress bars for the long stages: shown on a terminal, silent in log files.

Every long loop (decode, flow, features, training, detection) wraps its iterable in
:func:`progress_bar`. The bar writes to the *current* ``sys.stderr`` and disables itself
unless that stream is a terminal, so the same code shows a bar when run by hand (``wtal flow``)
and writes nothing into a Snakemake rule's log (the rule's script points stderr at the log
file, :func:`wtal.logs.to_log_file`) or into captured test output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: the current ``sys.stderr``) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def progress_bar(
    iterable: Iterable[T] | None = None,
    *,
    desc: str | None = None,
    unit: str = "it",
    total: int | None = None,
    show: bool = True,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on the current stderr, disabled unless ``show`` and stderr is a terminal.

    Use like ``tqdm``: wrap an iterable (``for x in progress_bar(xs, desc="flow")``) or use it
    as a context manager and call ``update`` (``with progress_bar(total=n) as bar``).

    Args:
        iterable: what to iterate over (None for a manual bar).
        desc: label in front of the bar.
        unit: what one step is (``"flow"``, ``"batch"``, ``"epoch"``).
        total: number of steps, when ``iterable`` has no length.
        show: the caller's wish (for example a ``progress`` argument); a bar is still only
            drawn on a terminal.
        **kwargs: further tqdm arguments.
    """
    stream = sys.stderr
    return tqdm(iterable, desc=desc, unit=unit, total=total, file=stream,
                disable=not (show and is_terminal(stream)), dynamic_ncols=True, **kwargs)
