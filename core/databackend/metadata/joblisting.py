"""One listing per job: the ranks of a scan list disjoint shares of a local tree and share them.

Each rank lists the top-level folders ``sorted(folders)[rank::world]`` (rank 0 also the files at
the top level), writes its part to ``listing-{token}-{rank}.dbi`` in the index folder (the
memory-mapped container of :mod:`databackend.metadata.indexfile`), waits for every other part
and yields the concatenation of all parts in rank order: every rank ends with the same listing
while each listed only its share. The token comes from rank 0 over ``torch.distributed``
(:func:`databackend.runtime.distributed.broadcast_token`), so parts left by an earlier job are
never mistaken for this one's; without a process group, or on a storage that is not a plain
local folder, each rank lists the whole tree as before. Rank 0 deletes the parts once the index
is written (:func:`remove_parts`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from databackend.metadata import indexfile
from databackend.storage.base import FileInfo, StorageBackend
from databackend.storage.localdir import IGNORED_DIRS, LocalDirectory, _bad_name, _skip

__all__ = ["list_share", "part_key", "remove_parts", "shared_listing", "splittable"]

log = logging.getLogger(__name__)


def splittable(storage: StorageBackend) -> bool:
    """Whether ``storage`` is a plain local folder whose top level can be dealt out."""
    return (isinstance(storage, LocalDirectory) and type(storage).list is LocalDirectory.list
            and storage.local_path("") is not None)


def part_key(token: str, rank: int) -> str:
    """The index-folder key of rank ``rank``'s listing part."""
    return f"listing-{token}-{rank}.dbi"


def _top(root: str, exts: frozenset[str], skipped: dict[str, int]
         ) -> tuple[list[str], list[FileInfo]]:
    """The top level of ``root``: folder names (sorted) and image/caption files (statted),
    by the rules of :meth:`LocalDirectory.list` (non-UTF-8 names, special files such as FIFOs
    and unreadable entries are skipped and counted in ``skipped``, never opened)."""
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


def _mine(storage: LocalDirectory, exts: frozenset[str], rank: int,
          world: int) -> list[FileInfo]:
    folders, files = _top(storage.local_path("") or "", exts, storage.skipped)
    out = files if rank == 0 else []
    for folder in folders[rank::world]:
        out.extend(storage.list(prefix=folder, extensions=exts))
    log.info("rank %d listed %d file(s) in %d of %d top-level folder(s)", rank, len(out),
             len(folders[rank::world]), len(folders))
    return out


def list_share(storage: LocalDirectory, extensions: Iterable[str], share: int, shares: int
               ) -> list[FileInfo]:
    """Share ``share`` of ``shares`` of a local tree's listing (its top-level folders
    ``[share::shares]``, share 0 also the top-level files): shares concatenated in order are
    the listing :func:`shared_listing` yields. Skipped entries count in ``storage.skipped``."""
    exts = frozenset(e.lower().lstrip(".") for e in extensions)
    return _mine(storage, exts, share, shares)


def _write(store: StorageBackend, key: str, infos: list[FileInfo]) -> None:
    arrays = {"size": np.fromiter((i.size for i in infos), np.int64, len(infos)),
              "mtime": np.fromiter((i.mtime for i in infos), np.float64, len(infos))}
    texts = {"paths": [i.path for i in infos]}
    store.write(key, bytes(indexfile.pack_sections({"format": "databackend-listing"}, arrays,
                                                   texts)))


def _read(store: StorageBackend, key: str) -> Iterator[FileInfo]:
    local = store.local_path(key)
    found = indexfile.open_sections(local) if local else indexfile.open_sections(
        data=store.read(key))
    paths, size, mtime = found.strings("paths"), found.array("size"), found.array("mtime")
    for k in range(len(paths)):
        yield FileInfo(paths[k], int(size[k]), float(mtime[k]), None)


def shared_listing(storage: LocalDirectory, store: StorageBackend, extensions: Iterable[str],
                   *, token: str, rank: int, world: int,
                   wait: Callable[[Callable[[], bool], str], None]) -> Iterator[FileInfo]:
    """List this rank's share, publish it, wait for the others (``wait(ready, what)``), and
    yield every rank's files in rank order (the same sequence on every rank)."""
    exts = frozenset(e.lower().lstrip(".") for e in extensions)
    _write(store, part_key(token, rank), _mine(storage, exts, rank, world))
    for r in range(world):
        key = part_key(token, r)
        wait(lambda key=key: store.exists(key), f"rank {r}'s listing")  # type: ignore[misc]
        yield from _read(store, key)


def remove_parts(store: StorageBackend, token: str, world: int) -> None:
    """Delete the listing parts of ``token`` (rank 0, once every rank has read them)."""
    for r in range(world):
        store.delete(part_key(token, r))
