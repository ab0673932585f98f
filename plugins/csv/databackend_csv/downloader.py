"""Reads of URL-backed samples: the bounded cache first, then the network, with quarantine.

* ``read`` returns the cached copy or downloads the whole file once, even when several threads
  ask for it at the same time, checks that it is an image and stores it in the cache.
* ``read_range`` serves the first bytes of a file (for header-only metadata probes) from the
  cache, or with an HTTP ``Range`` request, without downloading the whole image. When the
  server ignores the range (200) the whole body is cached, so nothing is downloaded twice.
* A failure (404, timeout, not an image, too large) quarantines the URL; later reads are
  refused without a request until the quarantine delay has passed.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from databackend.pluginapi import looks_like_container
from databackend_csv.cache import DiskCache
from databackend_csv.errors import DownloadError, FetchError, QuarantinedError
from databackend_csv.httpclient import FetchResult
from databackend_csv.quarantine import Quarantine
from databackend_csv.sources import Fetcher
from databackend_csv.stats import DownloadEvent, DownloadStats
from databackend_csv.urls import is_image_bytes, is_media_key, redact

__all__ = ["Downloader"]

logger = logging.getLogger(__name__)

#: A range read asking for at least this share of a file of known size downloads it whole.
WHOLE_FILE_SHARE = 0.5


def _check_image(data: bytes, key: str = "") -> None:
    """Raise ``not_image`` unless the bytes start like an image (or, for a video key, like a
    media container; the detail never quotes the content)."""
    if not data:
        raise FetchError("not_image", "empty response")
    if is_media_key(key):
        if not looks_like_container(data[:512]):
            raise FetchError("not_image", f"{len(data)} bytes without a media container signature")
        return
    if not is_image_bytes(data[:16]):
        raise FetchError("not_image", f"{len(data)} bytes without an image signature")


def _check_decodes(data: bytes) -> None:
    """Raise ``not_image`` (retried, then quarantined) unless Pillow can parse the image's
    structure: a body cut short or corrupted is never cached."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as exc:
        raise FetchError("not_image", f"does not decode ({type(exc).__name__})",
                         transient=True) from None


class Downloader:
    """Cache, quarantine and fetcher of one dataset; thread-safe."""

    def __init__(self, cache: DiskCache, quarantine: Quarantine, fetcher: Fetcher,
                 stats: DownloadStats) -> None:
        """Bind the parts; ``listeners`` receive a :class:`DownloadEvent` per finished read."""
        self.cache = cache
        self.quarantine = quarantine
        self.fetcher = fetcher
        self.stats = stats
        self.listeners: list[Callable[[DownloadEvent], None]] = []
        self._lock = threading.Lock()
        self._inflight: dict[str, Future[bytes]] = {}
        self._sizes: dict[str, int] = {}  # whole sizes learned from Content-Range

    def read(self, key: str, url: str) -> bytes:
        """The whole file: cached, or downloaded once (concurrent callers share it)."""
        data = self._cached(key)
        if data is not None:
            return data
        self._refuse_if_quarantined(key, url)
        with self._lock:
            future = self._inflight.get(key)
            owner = future is None
            if future is None:
                future = self._inflight[key] = Future()
        if not owner:
            return future.result()
        try:
            data = self._cached(key)
            if data is None:
                data = self._download(key, url)
            future.set_result(data)
            return data
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def read_range(self, key: str, url: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``: from the cache, with a range request, or (when most
        of the file is wanted or the server ignores ranges) from a whole download."""
        data = self.cache.read_range(key, start, length)
        if data is not None:
            self._hit(key, len(data))
            return data
        self._refuse_if_quarantined(key, url)
        total = self._sizes.get(key)
        if total is not None and start + length >= total * WHOLE_FILE_SHARE:
            return self.read(key, url)[start:start + length]
        try:
            result = self.fetcher.fetch(url, (start, length))
            if start == 0:
                _check_image(result.data, key)
        except FetchError as exc:
            raise self._failed(key, url, exc) from exc
        return self._ranged(key, url, result, start, length)

    # --- internals --------------------------------------------------------------------
    def _ranged(self, key: str, url: str, result: FetchResult, start: int,
                length: int) -> bytes:
        """Account a range response; a response holding the whole file is cached."""
        self.stats.add("bytes_downloaded", len(result.data))
        whole = result.complete or (start == 0 and result.total is not None
                                    and len(result.data) >= result.total)
        if whole:
            self._store(key, url, result.data)
            self._emit(DownloadEvent("download", key, len(result.data)))
            self.stats.add("downloads")
            return result.data[start:start + length] if result.complete else result.data
        if result.total is not None:
            self._sizes[key] = result.total
        self.stats.add("range_reads")
        self._emit(DownloadEvent("range", key, len(result.data)))
        return result.data

    def _cached(self, key: str) -> bytes | None:
        """The cached bytes, counting a hit."""
        data = self.cache.get(key)
        if data is not None:
            self._hit(key, len(data))
        return data

    def _hit(self, key: str, nbytes: int) -> None:
        self.stats.add("cache_hits")
        self._emit(DownloadEvent("cache_hit", key, nbytes))

    def _download(self, key: str, url: str) -> bytes:
        """Fetch the whole file, check it, cache it."""
        for attempt in range(2):  # a body that does not decode is fetched once more
            try:
                result = self.fetcher.fetch(url)
                _check_image(result.data, key)
                if not is_media_key(key):
                    _check_decodes(result.data)
                break
            except FetchError as exc:
                if attempt == 0 and exc.reason == "not_image" and exc.transient:
                    continue
                raise self._failed(key, url, exc) from exc
        self.stats.add("downloads")
        self.stats.add("bytes_downloaded", len(result.data))
        self._store(key, url, result.data)
        self._emit(DownloadEvent("download", key, len(result.data)))
        return result.data

    def _store(self, key: str, url: str, data: bytes) -> None:
        """Cache a whole file (not local ones) and lift any quarantine."""
        if self.fetcher.cacheable(url):
            self.cache.put(key, data)
        self._sizes.pop(key, None)
        self.quarantine.clear(key)

    def _refuse_if_quarantined(self, key: str, url: str) -> None:
        """Raise :class:`QuarantinedError` (no request) while the URL is quarantined."""
        entry = self.quarantine.blocked(key)
        if entry is not None:
            self.stats.add("refused_quarantined")
            raise QuarantinedError(key, redact(url), entry.reason,
                                   f"quarantined after: {entry.detail}")

    def _failed(self, key: str, url: str, exc: FetchError) -> DownloadError:
        """Quarantine the URL, count the failure, and build the error to raise."""
        shown = redact(url)
        self.quarantine.add(key, exc.reason, exc.detail, shown)
        self.stats.failure(exc.reason)
        self._emit(DownloadEvent("failure", key, 0, exc.reason))
        logger.info("csv: quarantined %s (%s: %s)", shown, exc.reason, exc.detail)
        return DownloadError(key, shown, exc.reason, exc.detail)

    def _emit(self, event: DownloadEvent) -> None:
        """Tell the listeners; a failing listener is logged, never raised."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("csv: a download listener failed")
