"""Listing a bucket prefix: paginated ``ListObjectsV2``, fanned out over sub-folders.

A flat listing is one request per 1000 keys, one after the other. When a prefix holds a few
sub-folders (``train/cats/``, ``train/dogs/``, ...), each sub-folder is listed on its own
thread instead; the results are merged back into exact key order, so callers cannot tell the
two apart. The plan costs one extra request: a delimited listing of the prefix's first page.
Fan-out is used only when that page is complete and names 2..:data:`MAX_FANOUT` sub-folders,
so a bucket of many tiny folders never turns into many tiny requests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from functools import partial
from typing import Any

__all__ = ["MAX_FANOUT", "Lister"]

#: Most sub-folders listed concurrently for one prefix (more: one flat listing instead).
MAX_FANOUT = 256
#: How many levels of single sub-folders (``data/train/...``) are descended to find a fan-out.
MAX_DEPTH = 4

#: Most sub-folder listings held ahead of the consumer (bounds the memory of buffered results).
MAX_WINDOW = 16

Page = dict[str, Any]
Pages = Callable[..., Iterator[Page]]
#: One listed object: ``(key, size, mtime, etag)`` (compact: whole folders are buffered).
Obj = tuple[str, int, float, "str | None"]
Submit = Callable[[Callable[[], list[Obj]]], "Future[list[Obj]]"]


def _obj(record: Page) -> Obj:
    etag = record.get("ETag")
    return (record["Key"], int(record["Size"]), record["LastModified"].timestamp(),
            etag.strip('"') if etag else None)


class Lister:
    """Yields ``(key, size, mtime, etag)`` of every object under a prefix, in key order.

    :param pages: ``pages(Prefix=..., Delimiter=...)`` yields ListObjectsV2 response pages
        (errors already translated).
    :param submit: runs a task on the backend's thread pool; None lists sequentially.
    :param window: sub-folder listings kept in flight ahead of the consumer (at most
        :data:`MAX_WINDOW`).
    """

    def __init__(self, pages: Pages, submit: Submit | None, window: int) -> None:
        """Bind the page source and the thread pool."""
        self.pages = pages
        self.submit = submit
        self.window = max(1, min(window, MAX_WINDOW))
        self.fanned_out = 0  # sub-folders listed concurrently (for tests and metrics)

    def flat(self, prefix: str) -> Iterator[Obj]:
        """Every object under ``prefix``, one page after the other."""
        for page in self.pages(Prefix=prefix):
            for record in page.get("Contents", ()):
                yield _obj(record)

    def walk(self, prefix: str, depth: int = 0) -> Iterator[Obj]:
        """Every object under ``prefix``; sub-folders are listed concurrently when worth it."""
        if self.submit is None or depth > MAX_DEPTH:
            yield from self.flat(prefix)
            return
        first = next(self.pages(Prefix=prefix, Delimiter="/"), {})
        files = [_obj(r) for r in first.get("Contents", ())]
        folders = [p["Prefix"] for p in first.get("CommonPrefixes", ())]
        if first.get("IsTruncated") or len(folders) > MAX_FANOUT:
            yield from self.flat(prefix)
        elif not folders:
            yield from files
        elif len(folders) == 1 and not files:
            yield from self.walk(folders[0], depth + 1)
        else:
            yield from self._merge(files, folders)

    def top(self, prefix: str) -> tuple[list[Obj], list[str]]:
        """The objects directly under ``prefix`` and its sub-folder prefixes (all pages of a
        delimited listing); a chain of lone sub-folders (``data/train/``) is descended up to
        :data:`MAX_DEPTH` levels, so the folders returned are the first level worth dealing
        out to several ranks."""
        for _ in range(MAX_DEPTH + 1):
            files: list[Obj] = []
            folders: list[str] = []
            for page in self.pages(Prefix=prefix, Delimiter="/"):
                files.extend(_obj(r) for r in page.get("Contents", ()))
                folders.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
            if len(folders) != 1 or files:
                break
            prefix = folders[0]
        return files, sorted(folders)

    def _collect(self, prefix: str) -> list[Obj]:
        """A whole flat listing as a list (runs on a pool thread)."""
        return list(self.flat(prefix))

    def _merge(self, files: list[Obj], folders: list[str]) -> Iterator[Obj]:
        """Files and concurrently listed folders, in key order (a folder sorts at ``a/``)."""
        assert self.submit is not None
        submit: Submit = self.submit
        entries: list[tuple[str, Obj | None]] = [(f[0], f) for f in files]
        entries += [(folder, None) for folder in folders]
        entries.sort(key=lambda e: e[0])
        queue = deque(sorted(folders))
        running: deque[Future[list[Obj]]] = deque()
        self.fanned_out += len(folders)

        def fill() -> None:
            """Keep up to ``window`` folder listings running ahead of the consumer."""
            while queue and len(running) < self.window:
                running.append(submit(partial(self._collect, queue.popleft())))

        try:
            fill()
            for _, record in entries:
                if record is not None:
                    yield record
                    continue
                done = running.popleft()
                fill()
                yield from done.result()
        finally:
            for fut in running:
                fut.cancel()
