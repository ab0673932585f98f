"""HTTP(S) GETs on urllib3: keep-alive pools, a per-host limit, a deadline per attempt,
retries with exponential backoff and jitter, guarded redirects, ranges, and size checks.

Every URL is untrusted (it comes from a CSV a stranger may have written):

* an attempt (connect, headers and the whole body) ends at ``timeout`` seconds, however slowly
  the server trickles its body;
* a body shorter (or longer) than its ``Content-Length`` is a ``truncated`` failure, retried,
  then quarantined, never returned as a file;
* redirects are followed only to ``http``/``https`` URLs, at most :data:`MAX_REDIRECTS` times;
* loopback, private and link-local addresses are refused (checked on the connected socket,
  so DNS tricks do not help) unless ``allow_private`` (``csv_allow_private_addresses``).

Environment proxies (``http_proxy``, ``https_proxy``, ``no_proxy``) are honoured.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from databackend_csv.config import CsvConfig
from databackend_csv.errors import FetchError
from databackend_csv.httpguard import GUARDED_POOLS, check_host
from databackend_csv.urls import is_text_content_type, redact

__all__ = ["MAX_REDIRECTS", "FetchResult", "FetchSettings", "HttpClient"]

logger = logging.getLogger(__name__)

_CHUNK = 256 * 1024
MAX_REDIRECTS = 5
_MAX_BACKOFF = 60.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@attrs.frozen(kw_only=True)
class FetchSettings:
    """Network settings of one client (from the ``csv_*`` keys)."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    per_host_limit: int = 8
    max_bytes: int = 64 * 1024 * 1024
    user_agent: str = "databackend-csv/0.1"
    allow_private: bool = False

    @classmethod
    def from_config(cls, config: CsvConfig) -> FetchSettings:
        """The settings a dataset config asks for."""
        return cls(timeout=config.csv_timeout, retries=config.csv_retries,
                   backoff=config.csv_backoff_seconds, per_host_limit=config.csv_per_host_limit,
                   max_bytes=config.csv_max_image_bytes, user_agent=config.csv_user_agent,
                   allow_private=config.csv_allow_private_addresses)


@attrs.frozen(slots=True)
class FetchResult:
    """What a fetch returned: the bytes, whether they are the whole file, and the whole size
    when known (from ``Content-Range`` or the body itself)."""

    data: bytes
    complete: bool
    total: int | None = None


class _Redirect(Exception):
    """Internal: the response is a redirect to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; a timeout failure when none are left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("timeout", "no complete response within the timeout", transient=True)
    return left


def _status_error(status: int, resp: Any) -> FetchError:
    """The error for a non-success status."""
    if status in (404, 410):
        return FetchError("not_found", f"HTTP {status}")
    value = resp.headers.get("Retry-After", "")
    retry_after = float(value) if value and value.strip().isdigit() else None
    return FetchError("http_error", f"HTTP {status}", transient=status in _TRANSIENT,
                      retry_after=retry_after)


def _wire_error(exc: BaseException) -> FetchError:
    """A transport failure as a :class:`FetchError` (all transient)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (Urllib3Timeout, TimeoutError)) and not isinstance(exc, NewConnectionError):
        return FetchError("timeout", "no complete response within the timeout", transient=True)
    if "IncompleteRead" in text or "prematurely" in text:
        return FetchError("truncated", "the body is shorter than its Content-Length",
                          transient=True)
    return FetchError("connection", text, transient=True)


class HttpClient:
    """Thread-safe HTTP GETs with keep-alive pools and at most ``per_host_limit`` concurrent
    requests per host. ``on_request`` is called once per request sent (for statistics)."""

    def __init__(self, settings: FetchSettings, *,
                 on_request: Callable[[], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """Create the client; no connection is opened before the first request."""
        self.settings = settings
        self._on_request = on_request or (lambda: None)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._proxies = urllib.request.getproxies()
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._direct = urllib3.PoolManager(num_pools=64, maxsize=settings.per_host_limit,
                                           retries=False)
        if not settings.allow_private:
            self._direct.pool_classes_by_scheme = dict(GUARDED_POOLS)

    def fetch(self, url: str, byte_range: tuple[int, int] | None = None) -> FetchResult:
        """GET ``url`` (or ``byte_range`` = ``(start, length)`` of it), retrying transient
        failures with exponential backoff and jitter; raises :class:`FetchError`."""
        for attempt in range(self.settings.retries + 1):
            try:
                return self._follow(url, byte_range)
            except FetchError as exc:
                if not exc.transient or attempt == self.settings.retries:
                    raise
                delay = self._backoff(attempt, exc.retry_after)
                logger.debug("csv: %s: %s, retry %d in %.2fs", redact(url), exc, attempt + 1,
                             delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        with self._lock:
            managers = list(self._proxied.values())
        for manager in managers:
            manager.clear()

    # --- one attempt --------------------------------------------------------------------
    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential delay with jitter (x0.5-1.5), at least the server's Retry-After."""
        delay = float(self.settings.backoff * (2 ** attempt) * random.uniform(0.5, 1.5))
        return min(_MAX_BACKOFF, max(delay, retry_after or 0.0))

    def _follow(self, url: str, byte_range: tuple[int, int] | None) -> FetchResult:
        """One attempt within one deadline, following (guarded) redirects."""
        deadline = time.monotonic() + self.settings.timeout
        for _ in range(MAX_REDIRECTS + 1):
            try:
                return self._attempt(url, byte_range, deadline)
            except _Redirect as redirect:
                url = urljoin(url, redirect.location)
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    raise FetchError("forbidden", f"redirect to a {urlsplit(url).scheme or '?'}"
                                     ": URL refused (only http and https)") from None
        raise FetchError("http_error", f"more than {MAX_REDIRECTS} redirects")

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        """The semaphore limiting concurrent requests to ``host``."""
        with self._lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = threading.BoundedSemaphore(
                    self.settings.per_host_limit)
            return slot

    def _manager(self, scheme: str, host: str) -> tuple[urllib3.PoolManager, bool]:
        """The pool manager for a URL: a proxy's (proxied=True) or the direct, guarded one."""
        proxy = self._proxies.get(scheme)
        if not proxy or urllib.request.proxy_bypass(host):
            return self._direct, False
        with self._lock:
            manager = self._proxied.get(proxy)
            if manager is None:
                manager = self._proxied[proxy] = urllib3.ProxyManager(
                    proxy if "//" in proxy else f"http://{proxy}",
                    maxsize=self.settings.per_host_limit, retries=False)
            return manager, True

    def _attempt(self, url: str, byte_range: tuple[int, int] | None,
                 deadline: float) -> FetchResult:
        """One request and its response."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise FetchError("not_found", "not an http(s) URL")
        manager, proxied = self._manager(parts.scheme.lower(), parts.hostname)
        if not self.settings.allow_private and not proxied:
            check_host(parts.hostname)
        headers = {"User-Agent": self.settings.user_agent, "Accept": "image/*,*/*;q=0.5",
                   "Accept-Encoding": "identity"}
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[0] + byte_range[1] - 1}"
        with self._slot(parts.hostname):
            try:
                return self._exchange(manager, url.split("#", 1)[0], headers, deadline,
                                      byte_range is not None)
            except (Urllib3Error, OSError) as exc:
                raise _wire_error(exc) from exc

    def _exchange(self, manager: urllib3.PoolManager, url: str, headers: dict[str, str],
                  deadline: float, ranged: bool) -> FetchResult:
        """Send the request and read the response: status, headers, then the body."""
        left = _left(deadline)
        self._on_request()
        resp = manager.request("GET", url, headers=headers, redirect=False,
                               preload_content=False, decode_content=False,
                               timeout=urllib3.Timeout(connect=left, read=left))
        done = False
        try:
            status = resp.status
            if status in _REDIRECTS and resp.headers.get("Location"):
                raise _Redirect(resp.headers["Location"])
            if status == 416 and ranged:
                return FetchResult(b"", complete=False)
            if status not in (200, 206):
                raise _status_error(status, resp)
            total = self._check_headers(resp, status == 206)
            data = self._read_body(resp, deadline)
            done = True
        finally:
            if not done:  # an unread body must not be left on a pooled connection
                resp.close()
            resp.release_conn()
        complete = status == 200
        return FetchResult(data, complete=complete, total=len(data) if complete else total)

    def _check_headers(self, resp: Any, partial: bool) -> int | None:
        """Refuse text content and oversized files before reading the body; returns the
        whole size for a partial response, when the server says it."""
        content_type = resp.headers.get("Content-Type")
        if is_text_content_type(content_type):
            raise FetchError("not_image", f"Content-Type {content_type}")
        length = resp.headers.get("Content-Length", "")
        total: int | None = int(length) if length.isdigit() and not partial else None
        if partial:
            match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            total = int(match.group(3)) if match and match.group(3) != "*" else None
        if total is not None and total > self.settings.max_bytes:
            raise FetchError("too_large", f"{total} bytes (limit {self.settings.max_bytes})")
        return total

    def _read_body(self, resp: Any, deadline: float) -> bytes:
        """Read the body within the deadline (one ``recv`` at a time, so a trickling server
        cannot stretch it) and the size limit; check it against ``Content-Length``."""
        chunks: list[bytes] = []
        size = 0
        while True:
            sock = getattr(resp.connection, "sock", None)
            if sock is not None:
                sock.settimeout(min(_left(deadline), self.settings.timeout))
            chunk = resp.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise FetchError("too_large", f"more than {self.settings.max_bytes} bytes")
            chunks.append(chunk)
        _left(deadline)
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) != size:
            raise FetchError("truncated", f"{size} of {length} bytes (Content-Length)",
                             transient=True)
        return b"".join(chunks)
