"""Virtual paths of Hugging Face samples: ``{row}.{ext}`` and ``{row}_{tile}.{ext}``.

``row`` is the row's position in the *unfiltered* split (filters and ``max_num_samples`` never
shift the path of another row), so a path stays valid as long as the dataset itself is unchanged.
When the dataset changes (other files, another revision), its fingerprint changes, the stored
index is discarded and the cache keys change with it (see ``docs/huggingface.md``).

Composite datasets whose every tile is a sample (``split_composite_images``) use
``{row}_{tile}.{ext}``; with one selected tile the path is ``{row}.{ext}``.
"""

from __future__ import annotations

import posixpath

__all__ = ["parse_path", "virtual_path"]


def virtual_path(row: int, ext: str, tile: int | None = None) -> str:
    """The path of ``row`` (and ``tile`` when every tile is a sample)."""
    return f"{row}.{ext}" if tile is None else f"{row}_{tile}.{ext}"


def parse_path(path: str) -> tuple[int, int | None] | None:
    """``(row, tile or None)`` of a virtual path, or None when it is not one."""
    if "/" in path:
        return None
    stem = posixpath.splitext(path)[0]
    head, sep, tail = stem.partition("_")
    if not head.isdigit() or (sep and not tail.isdigit()):
        return None
    return int(head), (int(tail) if sep else None)
