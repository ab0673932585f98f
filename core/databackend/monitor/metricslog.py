"""``databackend run --metrics-out FILE``: scalar metrics as JSON lines, every N steps.

The file starts with one ``{"kind": "build", ...}`` line (startup stages, peak memory, the
policy and each dataset's weights), then one ``{"kind": "step", "step": n, "time": s,
"metrics": {...}}`` line every ``every`` steps and a last one when the run ends. Each step line
holds :func:`databackend.monitor.scalars.factory_scalars` plus ``data/wait_ms_interval``, the
mean consumer wait over the steps since the previous line. ``databackend report --metrics FILE``
draws it. With ``tensorboard_dir`` (and ``tensorboard`` installed) the same scalars also go to
a TensorBoard event file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from databackend.factory import DataBackendFactory

__all__ = ["MetricsLog", "read_metrics"]

log = logging.getLogger(__name__)


class MetricsLog:
    """Writes a factory's scalars to ``path`` every ``every`` consumed steps."""

    def __init__(self, path: str | Path, *, every: int = 10,
                 tensorboard_dir: str | Path | None = None) -> None:
        """Open ``path`` for writing (truncates it); ``every`` must be >= 1."""
        if every < 1:
            raise ValueError(f"metrics interval must be >= 1; got {every}")
        self.path, self.every = Path(path), every
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("w", encoding="utf-8")
        self._start = time.perf_counter()
        self._last: tuple[int, float] = (0, 0.0)  # (batches, total wait) at the last line
        self._last_step = -1
        self._tb = _tensorboard(tensorboard_dir) if tensorboard_dir else None

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def build(self, factory: DataBackendFactory) -> None:
        """The first line: what the build did and what the mix is meant to be."""
        summary = factory.summary()
        self._write({"kind": "build", "stages": summary["stages"],
                     "total_seconds": summary.total_seconds, "peak_rss_mb": summary.peak_rss_mb,
                     "policy": summary.policy, "precompute": summary.precompute,
                     "datasets": [{"id": d.id, "target": d.target, "epoch_share": d.epoch_share,
                                   "batches_per_epoch": d.batches_per_epoch}
                                  for d in summary.datasets]})

    def step(self, factory: DataBackendFactory, step: int, *, force: bool = False) -> bool:
        """Write a line when ``step`` is a multiple of ``every`` (or ``force``); True if so."""
        if not force and step % self.every:
            return False
        if step == self._last_step:
            return False
        metrics = factory.scalars()
        fetch = factory.metrics.fetch
        batches, waited = fetch.batches, fetch.wait_total
        n = batches - self._last[0]
        metrics["data/wait_ms_interval"] = (waited - self._last[1]) / n * 1e3 if n > 0 else 0.0
        self._last, self._last_step = (batches, waited), step
        self._write({"kind": "step", "step": step,
                     "time": round(time.perf_counter() - self._start, 4), "metrics": metrics})
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(name, value, step)
        return True

    def close(self) -> None:
        """Close the file (and the TensorBoard writer)."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tensorboard(logdir: str | Path) -> Any:
    """A ``SummaryWriter`` for ``logdir``, or None (with a warning) without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        log.warning("TensorBoard output skipped: %s (pip install tensorboard)", exc)
        return None
    return SummaryWriter(log_dir=str(logdir))


def read_metrics(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a metrics file, in order; a line that is not JSON raises ``ValueError``
    naming the file and line."""
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"metrics file {path}: line {n} is not JSON ({exc.msg})"
                                 ) from None
