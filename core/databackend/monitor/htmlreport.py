"""Write the HTML data report of a built factory (``databackend report``, ``make demo``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from databackend.monitor.htmlpage import render_html
from databackend.monitor.reportdata import collect_report

if TYPE_CHECKING:
    from databackend.factory import DataBackendFactory

__all__ = ["write_report"]


def write_report(factory: DataBackendFactory, path: str | Path, *,
                 metrics: str | Path | None = None, coverage: bool = True,
                 progress: bool | None = False) -> Path:
    """Collect, render and atomically write the report of ``factory`` to ``path``; with
    ``metrics`` (a ``--metrics-out`` file) the run's mix and wait are drawn too."""
    page = render_html(collect_report(factory.build(), metrics=metrics, coverage=coverage,
                                      progress=progress))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
