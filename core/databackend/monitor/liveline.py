"""The live line of ``databackend run``: step, batches/s and consumer wait, on a tqdm bar."""

from __future__ import annotations

import sys
import time
from typing import Any

from databackend.metrics import FetchStats

__all__ = ["LiveLine"]


class LiveLine:
    """A tqdm bar over ``total`` steps whose postfix shows the wait of the last interval.

    ``enabled=None`` shows it only when stderr is a terminal; the line is refreshed at most
    every ``interval`` seconds, so it costs nothing measurable per step.
    """

    def __init__(self, total: int, fetch: FetchStats, *, enabled: bool | None = None,
                 interval: float = 0.5) -> None:
        """Start the bar (hidden when disabled)."""
        from tqdm import tqdm

        show = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = tqdm(total=total, desc="run", unit="batch", disable=not show,
                             leave=False, mininterval=interval)
        self.fetch, self.interval = fetch, interval
        self._mark = (time.perf_counter(), 0, 0.0)
        self.text = ""

    def update(self, step: int) -> None:
        """Step ``step`` (1-based) was consumed."""
        self.bar.update(1)
        now = time.perf_counter()
        t0, n0, w0 = self._mark
        if now - t0 < self.interval:
            return
        n = self.fetch.batches - n0
        wait = (self.fetch.wait_total - w0) / n * 1e3 if n else 0.0
        self.text = f"step {step}, {n / (now - t0):.1f} batches/s, wait {wait:.2f} ms"
        self.bar.set_postfix_str(self.text, refresh=False)
        self._mark = (now, self.fetch.batches, self.fetch.wait_total)

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()
