"""Helpers shared by the csv plugin tests (a uniquely named module: ``conftest`` is not)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

from databackend_csv import CsvBackend, key_for_url
from databackend_csv.testing import ImageServer

#: name -> (width, height, PIL format) of the images the server holds.
IMAGES = {f"i{n}.png": (40 + 7 * n, 30 + 5 * n, "PNG") for n in range(12)}
IMAGES.update({"big.png": (300, 300, "PNG"), "photo.jpg": (120, 80, "JPEG"),
               "small.gif": (9, 7, "GIF")})
SLOW_SECONDS = 1.5
TIMEOUT = 0.4

MakeBackend = Callable[..., CsvBackend]


def write_csv(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str] = ("url",
                                                                                  "caption"),
              *, delimiter: str = ",") -> Path:
    """Write a CSV (or TSV) file."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def key_of(server: ImageServer, path: str) -> str:
    """The virtual key of a server path."""
    return key_for_url(server.url(path))
