"""Caption names derived from sample paths (``filename`` strategy, ``.txt`` caption files).

Kept apart from :mod:`databackend.metadata.captions` so the scanner can use them without
importing the caption machinery (no import circle).
"""

from __future__ import annotations

import posixpath

__all__ = ["caption_file_of", "filename_caption", "is_caption_file"]


def filename_caption(path: str) -> str:
    """The ``filename`` strategy: stem of the file name, ``_`` -> space."""
    name = path.rpartition("/")[2]
    stem = name.rpartition(".")[0]
    if not stem.strip("."):  # ".hidden" or no extension: the whole name, as splitext does
        stem = name
    return stem.replace("_", " ").strip()


def is_caption_file(path: str) -> bool:
    """Whether a listed path is a ``.txt`` caption file."""
    return path[-4:].lower() == ".txt"


def caption_file_of(path: str) -> str:
    """``a/b/img.jpg`` -> ``a/b/img.txt``."""
    return f"{posixpath.splitext(path)[0]}.txt"
