"""Progress lines for log files: a long stage writes one line per chunk of work (items done,
rate, ETA) to its logger, so a job on a cluster can be followed with ``tail -f`` on its log;
a terminal also gets the tqdm bar."""

from __future__ import annotations

import logging
import time


def eta(seconds: float) -> str:
    """``h:mm:ss`` of a non-negative number of seconds."""
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLog:
    """Counts items and logs a line every ``every`` of them (and at the ``total``).

    Args:
        logger: where the lines go (INFO).
        what: what is being done (``"features v1.mp4"``).
        unit: the items' name (``"snippets"``, ``"flows"``).
        total: the number of items, when known (gives the ETA).
        every: items between lines (default: a twentieth of ``total``, or 500).
    """

    def __init__(self, logger: logging.Logger, what: str, *, unit: str,
                 total: int | None = None, every: int | None = None) -> None:
        self.logger, self.what, self.unit, self.total = logger, what, unit, total
        self.every = every or (max(1, total // 20) if total else 500)
        self.done = 0
        self._last = 0
        self._t0 = time.monotonic()

    def update(self, n: int = 1) -> None:
        """``n`` more items done."""
        self.done += n
        if self.done - self._last >= self.every or (self.total and self.done >= self.total):
            self._last = self.done
            elapsed = max(time.monotonic() - self._t0, 1e-9)
            rate = self.done / elapsed
            line = f"{self.what}: {self.done}"
            if self.total:
                line += f"/{self.total}"
            line += f" {self.unit}, {rate:.1f} {self.unit}/s"
            if self.total:
                line += f", ETA {eta((self.total - self.done) / rate)}"
            self.logger.info("%s", line)
