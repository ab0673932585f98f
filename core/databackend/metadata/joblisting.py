"""One listing per job: the ranks of a scan list disjoint shares of a tree and share them.

A storage that can split its listing says so through
:meth:`~databackend.storage.base.StorageBackend.list_share` (a local folder deals out its
top-level folders, S3 its top-level prefixes). Each rank lists its share, writes it to
``listing-{token}-{rank}.dbi`` in the index folder (the memory-mapped container of
:mod:`databackend.metadata.indexfile`), waits for every other part and yields the
concatenation of all parts in rank order: every rank ends with the same listing while each
listed only its share. The token comes from rank 0 over ``torch.distributed``
(:func:`databackend.runtime.distributed.broadcast_token`), so parts left by an earlier job are
never mistaken for this one's; without a process group, or on a storage that lists only as a
whole, each rank lists the whole tree as before. Rank 0 deletes the parts once the index is
written (:func:`remove_parts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from databackend.metadata import indexfile
from databackend.storage.base import FileInfo, StorageBackend

__all__ = ["part_key", "remove_parts", "shared_listing"]

log = logging.getLogger(__name__)


def part_key(token: str, rank: int) -> str:
    """The index-folder key of rank ``rank``'s listing part."""
    return f"listing-{token}-{rank}.dbi"


def _write(store: StorageBackend, key: str, infos: list[FileInfo]) -> None:
    arrays = {"size": np.fromiter((i.size for i in infos), np.int64, len(infos)),
              "mtime": np.fromiter((i.mtime for i in infos), np.float64, len(infos))}
    texts = {"paths": [i.path for i in infos]}
    store.write_chunks(key, indexfile.section_chunks({"format": "databackend-listing"}, arrays,
                                                     texts))


def _read(store: StorageBackend, key: str) -> Iterator[FileInfo]:
    local = store.local_path(key)
    found = indexfile.open_sections(local) if local else indexfile.open_sections(
        data=store.read(key))
    paths, size, mtime = found.strings("paths"), found.array("size"), found.array("mtime")
    for k in range(len(paths)):
        yield FileInfo(paths[k], int(size[k]), float(mtime[k]), None)


def shared_listing(share: Iterable[FileInfo], store: StorageBackend, *, token: str, rank: int,
                   world: int, wait: Callable[[Callable[[], bool], str], None]
                   ) -> Iterator[FileInfo]:
    """Publish this rank's ``share`` (from :meth:`StorageBackend.list_share`), wait for the
    others (``wait(ready, what)``), and yield every rank's files in rank order (the same
    sequence on every rank)."""
    _write(store, part_key(token, rank), list(share))
    for r in range(world):
        key = part_key(token, r)
        wait(lambda key=key: store.exists(key), f"rank {r}'s listing")  # type: ignore[misc]
        yield from _read(store, key)


def remove_parts(store: StorageBackend, token: str, world: int) -> None:
    """Delete the listing parts of ``token`` (rank 0, once every rank has read them)."""
    for r in range(world):
        store.delete(part_key(token, r))
