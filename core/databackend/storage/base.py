"""The storage backend interface every storage plugin implements.

Paths handed to a backend are *relative keys* with ``/`` separators (``"cats/01.jpg"``), resolved
against the backend's root (a folder, a bucket prefix, ...). A backend never sees absolute paths
from the caller, which keeps caches and indexes portable between machines.

Example plugin (complete)::

    import attrs
    from databackend import StorageBackend, hookimpl

    @attrs.frozen(kw_only=True)
    class MemoryConfig:
        pass

    class MemoryBackend(StorageBackend):
        name = "memory"
        Config = MemoryConfig
        ...  # implement list, read, write, delete, exists

    @hookimpl
    def databackend_register_backends():
        return [MemoryBackend]
"""

from __future__ import annotations

import builtins
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any, BinaryIO, ClassVar, NamedTuple

__all__ = ["FileInfo", "StorageBackend"]


class FileInfo(NamedTuple):
    """One listed file: its relative key, byte size, modification time and optional ETag.

    ``size`` is -1 when the store cannot tell without fetching (e.g. a CSV list of URLs not yet
    downloaded) and ``mtime`` is 0.0 when it has none; the scanner then reads the header by
    range and treats a later, known size as a change. A named tuple: listings make one per
    file, millions of them.
    """

    path: str
    size: int
    mtime: float
    etag: str | None = None


class StorageBackend(ABC):
    """Byte storage for one dataset or cache, addressed by relative keys.

    Subclasses set :attr:`name` (the config ``type``) and :attr:`Config` (an attrs class holding
    the backend's own config keys) and implement the abstract methods. Writes must be atomic: a
    reader sees the old content or the new content, never a partial file.
    """

    name: ClassVar[str]
    Config: ClassVar[type[Any]]
    #: How many concurrent requests :meth:`read_many` and the scanner use; remote backends
    #: raise it, per class or per instance (e.g. from a config key).
    io_concurrency: int = 8
    #: Bytes a remote header probe reads first (grown on demand); None: the scanner's default
    #: (64 KiB, which also brings whole small images in one request, e.g. into a URL cache).
    #: Object stores set it small: at 100M objects the bytes moved decide the cost.
    probe_first_read: int | None = None

    # --- declared capabilities (plugin API 1.0; see docs/plugins.md) ------------------------
    #: Every key is a file on the local filesystem (:meth:`local_path` returns it): readers may
    #: open files directly, and caches of such an entry default to the local cache folder.
    local_files: ClassVar[bool] = False
    #: The storage cannot be written: caches or outputs placed on it are config errors, and
    #: ``write``/``delete`` raise :class:`~databackend.errors.ReadOnlyStorageError`.
    read_only: ClassVar[bool] = False
    #: The caption strategy a dataset of this type uses when it sets no ``caption_strategy``
    #: (a backend holding captions, e.g. a CSV column, names the strategy it registers).
    default_caption_strategy: ClassVar[str | None] = None
    #: Extra ``metadata_backend`` values this type accepts (its metadata hook selects on them).
    metadata_backends: ClassVar[tuple[str, ...]] = ()
    #: Spellings of config keys accepted for this type: ``{alias: canonical key}``.
    key_aliases: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: Keys of other tools accepted for this type and ignored with a warning.
    ignored_keys: ClassVar[frozenset[str]] = frozenset()
    #: What to install when this type is missing or its dependencies are (``pip install ...``);
    #: None: the distribution that registered the class.
    install_hint: ClassVar[str | None] = None

    @classmethod
    def location(cls, config: Any) -> str | None:
        """Where a dataset of this type lives, for ``databackend validate`` (secret-free)."""
        return None

    def __init__(self, config: Any, *, dataset_id: str, root: str | None = None) -> None:
        """Create the backend for ``dataset_id`` from its config; ``root`` overrides the data root."""
        self.config = config
        self.dataset_id = dataset_id
        self.root_override = root

    # --- required -------------------------------------------------------------------------
    @abstractmethod
    def list(self, prefix: str = "", *, extensions: Iterable[str] | None = None) -> Iterator[FileInfo]:
        """Yield every file under ``prefix`` (recursively); ``extensions`` are lower-case, no dot."""

    @abstractmethod
    def read(self, path: str) -> bytes:
        """Return the whole content of ``path``; raise ``FileNotFoundError`` if it is absent."""

    @abstractmethod
    def write(self, path: str, data: bytes) -> None:
        """Atomically replace ``path`` with ``data``, creating parent folders as needed."""

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove ``path``; a missing file is not an error."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""

    # --- overridable defaults --------------------------------------------------------------
    def read_range(self, path: str, start: int, length: int) -> bytes:
        """Return up to ``length`` bytes of ``path`` from ``start`` (short at end of file)."""
        return self.read(path)[start : start + length]

    def stat(self, path: str) -> FileInfo:
        """Return the :class:`FileInfo` of one file."""
        data = self.read(path)
        return FileInfo(path=path, size=len(data), mtime=0.0)

    def open(self, path: str) -> BinaryIO:
        """Open ``path`` for binary reading."""
        return io.BytesIO(self.read(path))

    def caption(self, path: str) -> str | builtins.list[str] | None:
        """A caption the storage itself holds for ``path`` (a CSV or dataset column), if any.

        Used by storage caption strategies (:class:`~databackend.captionstrategy.StorageCaptions`,
        e.g. ``csv`` and ``huggingface``); file-based backends return None.
        """
        return None

    def lyrics(self, path: str) -> str | None:
        """Lyrics of an audio sample held by the storage itself (a table column, e.g. the
        Hugging Face ``lyrics_column``); None when it holds none, the default. Sidecar lyrics
        files are read by the core (docs/audio.md)."""
        return None

    def local_path(self, path: str) -> str | None:
        """The path on the local filesystem, if the file is local (enables zero-copy readers)."""
        return None

    def list_share(self, rank: int, world: int, *, extensions: Iterable[str]
                   ) -> Iterator[FileInfo] | None:
        """Rank ``rank``'s share of the whole listing when ``world`` ranks split it (one
        listing per job, :mod:`databackend.metadata.joblisting`), or None when this storage
        lists only as a whole (the default: rank 0 lists everything).

        The shares of ranks ``0..world-1`` must together hold every file :meth:`list` yields,
        each exactly once, and every rank must decide the same way (split or not, and where
        the split falls) from the same config and tree: a backend deals out its top-level
        folders or prefixes, for example. ``extensions`` as for :meth:`list`.
        """
        return None

    def read_many(self, paths: Sequence[str]) -> builtins.list[bytes | BaseException]:
        """Read many files with :attr:`io_concurrency` threads; failures are returned in
        place, order is kept."""
        if len(paths) <= 1:
            return [self.read_or_error(p) for p in paths]
        with ThreadPoolExecutor(min(self.io_concurrency, len(paths)),
                                thread_name_prefix=f"databackend-{self.name}") as pool:
            return list(pool.map(self.read_or_error, paths))

    def read_or_error(self, path: str) -> bytes | BaseException:
        """:meth:`read`, returning a failure instead of raising it (for batch readers)."""
        try:
            return self.read(path)
        except Exception as exc:  # returned to the caller, which decides
            return exc

    def write_chunks(self, path: str, chunks: Iterable[bytes | memoryview]) -> None:
        """Atomically replace ``path`` with the concatenation of ``chunks`` (a large file
        written from views of data already in memory). The default joins them and calls
        :meth:`write`; a backend that can stream (a local file) writes them one by one."""
        self.write(path, b"".join(chunks))

    def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Write many files concurrently; the first failure is raised after all finished."""
        if len(items) <= 1:
            for path, data in items:
                self.write(path, data)
            return
        with ThreadPoolExecutor(min(self.io_concurrency, len(items))) as pool:
            futures = [pool.submit(self.write, p, d) for p, d in items]
        for fut in futures:
            fut.result()

    def describe(self) -> str:
        """A short, secret-free description for logs and reports (``local:/data/cats``)."""
        return f"{self.name}:{self.root_override or ''}"

    def scan_summary(self) -> dict[str, Any]:
        """Backend-specific figures for scan reports (``databackend scan`` prints them after the
        bucket table and adds them to ``--json`` as ``"storage"``): JSON-ready values (numbers,
        strings, nested dicts), never credentials. The default has none (``{}``)."""
        return {}

    def add_listener(self, listener: Callable[[Any], None]) -> None:
        """Call ``listener(event)`` after every transfer, for progress displays (``databackend
        scan`` counts them). An event has ``kind`` (``"download"``, ``"range"``,
        ``"cache_hit"`` or ``"failure"``) and ``nbytes``. Listeners may run on reading threads
        and must be quick. The default has no transfers to report and ignores the listener."""

    def close(self) -> None:
        """Release connections or pools; the default holds none."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dataset_id!r} {self.describe()}>"
