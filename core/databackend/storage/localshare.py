"""A rank's share of a local folder's listing: its top-level folders dealt out over the ranks.

Rank ``r`` of ``world`` lists the top-level folders ``sorted(folders)[r::world]``; rank 0 also
lists the files at the top level. Names, special files and unreadable entries follow the rules
of :meth:`~databackend.storage.localdir.LocalDirectory.list` (skipped and counted, never opened).
Used by :meth:`LocalDirectory.list_share <databackend.storage.localdir.LocalDirectory.list_share>`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from databackend.storage.base import FileInfo

if TYPE_CHECKING:
    from databackend.storage.localdir import LocalDirectory

__all__ = ["local_share"]

log = logging.getLogger(__name__)


def _top(root: str, exts: frozenset[str], skipped: dict[str, int]
         ) -> tuple[list[str], list[FileInfo]]:
    """The top level of ``root``: folder names (sorted) and matching files (statted)."""
    from databackend.storage.localdir import IGNORED_DIRS, _bad_name, _skip

    folders, files = [], []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return [], []
    for entry in entries:
        if not entry.name.isascii() and _bad_name(entry.name):
            _skip(skipped, "file name is not UTF-8", entry.name)
            continue
        try:
            if entry.is_dir():
                if entry.name not in IGNORED_DIRS:
                    folders.append(entry.name)
                continue
            ext = entry.name.rpartition(".")[2].lower()
            if ext not in exts:
                continue
            if not entry.is_file():
                _skip(skipped, "not a regular file", entry.name)
                continue
            st = entry.stat()
        except OSError as exc:  # a symlink loop, a vanished or unreadable entry
            _skip(skipped, f"unreadable entry ({exc.strerror or type(exc).__name__})",
                  entry.name)
            continue
        files.append(FileInfo(entry.name, st.st_size, st.st_mtime, None))
    return folders, files


def local_share(storage: LocalDirectory, exts: frozenset[str], rank: int,
                world: int) -> Iterator[FileInfo]:
    """Rank ``rank``'s files of ``storage`` (see the module docstring)."""
    folders, files = _top(storage.local_path("") or "", exts, storage.skipped)
    mine = folders[rank::world]
    if rank == 0:
        yield from files
    count = len(files) if rank == 0 else 0
    for folder in mine:
        for info in storage.list(prefix=folder, extensions=exts):
            count += 1
            yield info
    log.info("rank %d listed %d file(s) in %d of %d top-level folder(s)", rank, count,
             len(mine), len(folders))
