"""``S3Backend``: the ``aws`` storage type over Amazon S3 and S3-compatible object stores.

Keys are relative to ``s3://{aws_bucket_name}/{aws_data_prefix}``; a ``root`` override (cache
folders) is joined under that prefix, or names its own location when it is an ``s3://`` URL.
Reads are ``GetObject`` (ranged for :meth:`read_range`, which metadata scans use to read image
headers only); writes are single ``PutObject`` calls, which S3 applies atomically, so a reader
never sees a partial object under the final key. Batches go through a bounded thread pool
sized like the HTTP connection pool (:attr:`io_concurrency`).
"""

from __future__ import annotations

import builtins
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from botocore import exceptions as bx

from databackend.pluginapi import FileInfo, StorageBackend
from databackend_aws.client import S3Metrics, make_client
from databackend_aws.config import AwsConfig, normalise_prefix, safe_url
from databackend_aws.errors import Breaker, S3StorageError, Where, translate
from databackend_aws.listing import Lister
from databackend_aws.pool import RequestPool
from databackend_aws.redact import install_log_redaction, register_secrets

__all__ = ["S3Backend", "resolve_location"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Failures while a response body streams in; botocore does not retry those, we do.
_STREAM_ERRORS = (bx.ResponseStreamingError, bx.IncompleteReadError, bx.ReadTimeoutError)


class _BrokenBody(Exception):
    """A GET's headers arrived but its body broke off (``cause`` says how)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def resolve_location(config: AwsConfig, root: str | None) -> tuple[str, str]:
    """``(bucket, key prefix)`` for a config and an optional root override.

    ``root=None``: the dataset, ``aws_data_prefix``. ``root="cache/vae"``: that folder under
    ``aws_data_prefix``. ``root="s3://bucket/some/prefix"``: exactly that location.
    """
    if root is not None and root.startswith("s3://"):
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        return bucket, normalise_prefix(prefix)
    return config.aws_bucket_name, normalise_prefix(config.aws_data_prefix, root)


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


class S3Backend(StorageBackend):
    """Objects under one bucket prefix, through one pooled, retrying boto3 client."""

    name = "aws"
    Config = AwsConfig
    io_concurrency = 64
    #: Header probes start with an 8 KiB ranged GET and grow only when a header runs on.
    probe_first_read = 8 * 1024

    def __init__(self, config: AwsConfig, *, dataset_id: str, root: str | None = None) -> None:
        """Check the config and resolve the location; no request is made until first use."""
        super().__init__(config, dataset_id=dataset_id, root=root)
        if not isinstance(config, AwsConfig):
            raise TypeError(f"dataset {dataset_id!r}: expected an AwsConfig, "
                            f"got {type(config).__name__}")
        problems = config.problems()
        if problems:
            raise ValueError(f"dataset {dataset_id!r}: " + "; ".join(problems))
        register_secrets(config.secrets())
        install_log_redaction()
        self.bucket, self.prefix = resolve_location(config, root)
        # Per instance: the pool and the connection pool grow together.
        self.io_concurrency = config.aws_max_pool_connections
        self._setup()

    def _setup(self) -> None:
        """Per-process state: client, thread pool, counters (new after fork or unpickle)."""
        self.metrics = S3Metrics()
        self._breaker = Breaker()
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._client: Any = None
        self._checked = False
        #: A read succeeded: a later denial is about one object (counted by the scan), not
        #: the whole prefix (fatal: the scan stops with one clear error).
        self._read_ok = False
        self._pool = RequestPool(self.io_concurrency, f"s3-{self.dataset_id}")

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the client, locks and threads (for DataLoader worker processes)."""
        state = dict(self.__dict__)
        for key in ("metrics", "_breaker", "_pid", "_lock", "_client", "_checked", "_pool"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore, then create fresh per-process state."""
        self.__dict__.update(state)
        self._setup()

    # --- plumbing ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use (and again in a forked child)."""
        if self._pid != os.getpid():
            self._setup()
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(self.config, self.metrics)
        return self._client

    @property
    def where(self) -> Where:
        """What error messages name: dataset, bucket, endpoint, attempts per request."""
        endpoint = safe_url(self.config.aws_endpoint_url)
        if endpoint is None:
            endpoint = safe_url(self.client.meta.endpoint_url) or "AWS S3"
        return Where(self.dataset_id, self.bucket, endpoint, self.config.aws_max_attempts)

    def _key(self, path: str) -> str:
        key = path.lstrip("/")
        if not key or key.endswith("/"):
            raise ValueError(f"dataset {self.dataset_id!r}: {path!r} is not an object key")
        return self.prefix + key

    def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run one S3 request; failures become clear, secret-free errors (see errors.py)."""
        self._ensure_bucket()
        self._breaker.check(op)
        try:
            return fn()
        except (bx.BotoCoreError, bx.ClientError) as exc:
            err = translate(exc, op, key, self.where)
        self._breaker.record(err, op)
        raise err

    def _ensure_bucket(self) -> None:
        """Once per process: ``HeadBucket``, so a missing bucket or endpoint fails first and
        clearly. A 403 is fine (credentials may allow objects but not the bucket)."""
        if self._checked:
            return
        with self._lock:
            if self._checked:
                return
            self._breaker.check("check")
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except (bx.BotoCoreError, bx.ClientError) as exc:
                err = translate(exc, "check", None, self.where)
                if not (isinstance(err, S3StorageError) and err.kind == "access_denied"):
                    self._breaker.record(err, "check")
                    raise err from None
                log.debug("dataset %r: HeadBucket denied; continuing", self.dataset_id)
            self._checked = True

    def _streamed(self, fn: Callable[[], bytes]) -> bytes:
        """Retry a GET whose body broke off mid-stream: botocore retries failed requests,
        not bodies that stop early (its Content-Length check raises instead)."""
        attempts = self.config.aws_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except _BrokenBody as broken:
                if attempt == attempts:
                    raise broken.cause from None
                self.metrics.add("stream_retries")
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
        raise AssertionError("unreachable")

    def _get(self, op: str, key: str, **extra: Any) -> bytes:
        def once() -> bytes:
            """One GET; a body that breaks off becomes _BrokenBody (retried by _streamed)."""
            body = self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
            try:
                return bytes(body.read())
            except _STREAM_ERRORS as exc:
                raise _BrokenBody(exc) from None
            finally:
                body.close()

        try:
            data = self._call(op, key, lambda: self._streamed(once))
        except S3StorageError as err:
            if err.kind == "access_denied" and self._read_ok:
                err.fatal = False  # other objects were readable: only this one is forbidden
                self._breaker.forget(op)
            raise
        self._read_ok = True
        self.metrics.add("bytes_read", len(data))
        return data

    # --- the storage interface ---------------------------------------------------------------
    def list(self, prefix: str = "", *, extensions: Iterable[str] | None = None
             ) -> Iterator[FileInfo]:
        """Every object under ``prefix`` in key order, with size, mtime and ETag.

        Paginated ``ListObjectsV2`` (``aws_list_page_size`` keys a page) restricted to the
        backend's prefix; sub-folders are listed concurrently (see ``listing.py``). Folder
        marker objects (keys ending in ``/``) are skipped.
        """
        exts = {e.lower().lstrip(".") for e in extensions} if extensions else None
        lister = self._lister()
        yield from self._infos(lister.walk(self.prefix + normalise_prefix(prefix)), exts)
        self.metrics.add("listed_folders_concurrently", lister.fanned_out)

    def list_share(self, rank: int, world: int, *, extensions: Iterable[str]
                   ) -> Iterator[FileInfo]:
        """Rank ``rank``'s share when ``world`` ranks split the listing: the sub-prefixes of
        the dataset's prefix (below any chain of lone sub-folders) dealt out as
        ``sorted(prefixes)[rank::world]``; rank 0 also takes the objects at that top level."""
        exts = {e.lower().lstrip(".") for e in extensions}
        return self._share(rank, world, exts)

    def _share(self, rank: int, world: int, exts: set[str]) -> Iterator[FileInfo]:
        lister = self._lister()
        files, folders = lister.top(self.prefix)
        if rank == 0:
            yield from self._infos(iter(files), exts)
        for folder in folders[rank::world]:
            yield from self._infos(lister.walk(folder), exts)
        log.info("rank %d listed %d of %d top-level prefix(es)", rank,
                 len(folders[rank::world]), len(folders))

    def _lister(self) -> Lister:
        submit = None if RequestPool.in_worker() else self._pool.submit
        return Lister(self._pages, submit, window=self.io_concurrency)

    def _infos(self, objects: Iterator[tuple[str, int, float, str | None]],
               exts: set[str] | None) -> Iterator[FileInfo]:
        """Listed objects as relative :class:`FileInfo`; folder markers and other extensions
        left out."""
        start = len(self.prefix)
        for key, size, mtime, etag in objects:
            if key.endswith("/") or (exts is not None
                                     and key.rpartition(".")[2].lower() not in exts):
                continue
            yield FileInfo(key[start:], size, mtime, etag)

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages through the boto3 paginator; each page fetch is one _call."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(
            Bucket=self.bucket, PaginationConfig={"PageSize": self.config.aws_list_page_size},
            **kwargs))
        while True:
            page = self._call("list", kwargs.get("Prefix"), lambda: next(pages, None))
            if page is None:
                return
            yield page

    def read(self, path: str) -> bytes:
        """The whole object; ``FileNotFoundError`` if it does not exist."""
        return self._get("read", self._key(path))

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` with one ranged GET (short or empty at the end)."""
        if start < 0 or length < 0:
            raise ValueError(f"invalid range start={start} length={length}")
        if length == 0:
            return b""
        try:
            return self._get("read", self._key(path), Range=f"bytes={start}-{start + length - 1}")
        except S3StorageError as exc:
            if exc.kind == "range":  # start at or past the end (or an empty object)
                return b""
            raise

    def write(self, path: str, data: bytes) -> None:
        """One ``PutObject``: readers see the old object or the new one, never a part."""
        key, body = self._key(path), bytes(data)
        self._call("write", key, lambda: self.client.put_object(Bucket=self.bucket, Key=key,
                                                                Body=body))
        self.metrics.add("bytes_written", len(body))

    def delete(self, path: str) -> None:
        """``DeleteObject``; a missing object is not an error."""
        key = self._key(path)
        self._call("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))

    def _head(self, key: str) -> dict[str, Any]:
        return self._call("stat", key, lambda: self.client.head_object(Bucket=self.bucket,
                                                                       Key=key))  # type: ignore[no-any-return]

    def exists(self, path: str) -> bool:
        """``HeadObject``: 404 is False; other failures raise."""
        try:
            self._head(self._key(path))
        except FileNotFoundError:
            return False
        return True

    def stat(self, path: str) -> FileInfo:
        """Size, mtime (``LastModified``) and ETag from ``HeadObject``."""
        head = self._head(self._key(path))
        return FileInfo(path, int(head["ContentLength"]), head["LastModified"].timestamp(),
                        _etag(head.get("ETag")))

    def read_many(self, paths: Sequence[str]) -> builtins.list[bytes | BaseException]:
        """Concurrent GETs on the backend's pool; order kept, failures returned in place."""
        return self._pool.map(self.read_or_error, paths)

    def write_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Concurrent PUTs on the backend's pool; the first failure is raised at the end."""
        def one(item: tuple[str, bytes]) -> BaseException | None:
            """Write one object; an error is returned, not raised."""
            try:
                self.write(*item)
            except Exception as exc:
                return exc
            return None

        for err in self._pool.map(one, items):
            if err is not None:
                raise err

    def describe(self) -> str:
        """``aws:s3://bucket/prefix`` plus the endpoint when one is set (never credentials)."""
        where = f"aws:s3://{self.bucket}/{self.prefix}"
        endpoint = safe_url(self.config.aws_endpoint_url)
        return f"{where} at {endpoint}" if endpoint else where

    def close(self) -> None:
        """Stop the thread pool and close the client's connections."""
        self._pool.close()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


# The declarations live on the registered type (light to import); the class gets them here too.
from databackend_aws import AWS  # noqa: E402

AWS.declare(S3Backend)
