"""A small HTTP/1.1 client on ``http.client``: keep-alive pool, per-host limit, timeouts,
retries with exponential backoff and jitter, redirects, ranges, and size and content checks.

Only the standard library is used. Environment proxies (``http_proxy``, ``https_proxy``,
``no_proxy``) are honoured: plain HTTP goes through the proxy with absolute URIs, HTTPS through
a ``CONNECT`` tunnel.
"""

from __future__ import annotations

import http.client
import logging
import random
import re
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import attrs

from databackend_csv.config import CsvConfig
from databackend_csv.errors import FetchError
from databackend_csv.urls import is_text_content_type, redact

__all__ = ["FetchResult", "FetchSettings", "HttpClient"]

logger = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_MAX_REDIRECTS = 5
_MAX_BACKOFF = 60.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
Origin = tuple[str, str, int, "tuple[str, int] | None"]  # scheme, host, port, proxy


@attrs.frozen(kw_only=True)
class FetchSettings:
    """Network settings of one client (from the ``csv_*`` keys)."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    per_host_limit: int = 8
    max_bytes: int = 64 * 1024 * 1024
    user_agent: str = "databackend-csv/0.1"

    @classmethod
    def from_config(cls, config: CsvConfig) -> FetchSettings:
        """The settings a dataset config asks for."""
        return cls(timeout=config.csv_timeout, retries=config.csv_retries,
                   backoff=config.csv_backoff_seconds, per_host_limit=config.csv_per_host_limit,
                   max_bytes=config.csv_max_image_bytes, user_agent=config.csv_user_agent)


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


def _proxy_for(scheme: str, host: str, proxies: dict[str, str]) -> tuple[str, int] | None:
    """The ``(host, port)`` of the proxy for a URL, or None for a direct connection."""
    proxy = proxies.get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "//" in proxy else f"http://{proxy}")
    return parts.hostname or "", parts.port or 8080


def _connect(origin: Origin, timeout: float) -> http.client.HTTPConnection:
    """A new (not yet connected) connection for an origin, through its proxy if any."""
    scheme, host, port, proxy = origin
    if proxy is None:
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        return cls(host, port, timeout=timeout)
    if scheme == "https":
        conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout)
        conn.set_tunnel(host, port)
        return conn
    return http.client.HTTPConnection(proxy[0], proxy[1], timeout=timeout)


def _retry_after(resp: http.client.HTTPResponse) -> float | None:
    """The ``Retry-After`` header in seconds (the delta form only)."""
    value = resp.getheader("Retry-After", "")
    return float(value) if value and value.strip().isdigit() else None


def _status_error(status: int, resp: http.client.HTTPResponse) -> FetchError:
    """The error for a non-success status."""
    if status in (404, 410):
        return FetchError("not_found", f"HTTP {status}")
    return FetchError("http_error", f"HTTP {status}", transient=status in _TRANSIENT,
                      retry_after=_retry_after(resp))


def _set_deadline(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Give the socket the time left until ``deadline``; raise a timeout when none is left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("timeout", "no response within the timeout", transient=True)
    conn.timeout = left
    if conn.sock is not None:
        conn.sock.settimeout(left)


class HttpClient:
    """Thread-safe HTTP GETs with a keep-alive pool and at most ``per_host_limit`` concurrent
    requests per host. ``on_request`` is called once per request sent (for statistics)."""

    def __init__(self, settings: FetchSettings, *,
                 on_request: Callable[[], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """Create the client; no connection is opened before the first request."""
        self.settings = settings
        self._on_request = on_request or (lambda: None)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._idle: defaultdict[Origin, list[http.client.HTTPConnection]] = defaultdict(list)
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._proxies = urllib.request.getproxies()

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
        """Close every idle connection."""
        with self._lock:
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()

    # --- one request --------------------------------------------------------------------
    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential delay with jitter (x0.5-1.5), at least the server's Retry-After."""
        delay = float(self.settings.backoff * (2 ** attempt) * random.uniform(0.5, 1.5))
        return min(_MAX_BACKOFF, max(delay, retry_after or 0.0))

    def _follow(self, url: str, byte_range: tuple[int, int] | None) -> FetchResult:
        """One attempt, following redirects."""
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                return self._attempt(url, byte_range)
            except _Redirect as redirect:
                url = urljoin(url, redirect.location)
        raise FetchError("http_error", f"more than {_MAX_REDIRECTS} redirects")

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        """The semaphore limiting concurrent requests to ``host``."""
        with self._lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = threading.BoundedSemaphore(
                    self.settings.per_host_limit)
            return slot

    def _attempt(self, url: str, byte_range: tuple[int, int] | None) -> FetchResult:
        """One request (reusing a pooled connection, or a fresh one if that went stale)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("not_found", "not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        proxy = _proxy_for(parts.scheme, parts.hostname, self._proxies)
        origin: Origin = (parts.scheme, parts.hostname, port, proxy)
        absolute = proxy is not None and parts.scheme == "http"
        target = url.split("#", 1)[0] if absolute else (parts.path or "/") + (
            f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": self.settings.user_agent, "Accept": "image/*,*/*;q=0.5",
                   "Accept-Encoding": "identity"}
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[0] + byte_range[1] - 1}"
        with self._slot(parts.hostname):
            return self._send(origin, target, headers, byte_range is not None)

    def _send(self, origin: Origin, target: str, headers: dict[str, str],
              ranged: bool) -> FetchResult:
        """Send on a pooled connection; a stale keep-alive connection is replaced once."""
        deadline = time.monotonic() + self.settings.timeout
        conn, reused = self._checkout(origin)
        while True:
            try:
                result = self._exchange(conn, target, headers, deadline, ranged)
            except _STALE as exc:
                conn.close()
                if not reused:
                    raise FetchError("connection", str(exc) or type(exc).__name__,
                                     transient=True) from exc
                conn, reused = _connect(origin, self.settings.timeout), False
                continue
            except (_Redirect, FetchError):
                conn.close()
                raise
            except TimeoutError as exc:
                conn.close()
                raise FetchError("timeout", "no response within the timeout",
                                 transient=True) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise FetchError("connection", f"{type(exc).__name__}: {exc}",
                                 transient=True) from exc
            self._checkin(origin, conn)
            return result

    def _checkout(self, origin: Origin) -> tuple[http.client.HTTPConnection, bool]:
        """An idle pooled connection (reused=True) or a new one."""
        with self._lock:
            idle = self._idle.get(origin)
            if idle:
                return idle.pop(), True
        return _connect(origin, self.settings.timeout), False

    def _checkin(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        """Return a connection whose response was read completely to the pool."""
        if conn.sock is None:
            return
        with self._lock:
            idle = self._idle[origin]
            if len(idle) < self.settings.per_host_limit:
                idle.append(conn)
                return
        conn.close()

    def _exchange(self, conn: http.client.HTTPConnection, target: str,
                  headers: dict[str, str], deadline: float, ranged: bool) -> FetchResult:
        """Send the request and read the response: status, headers, then the body."""
        _set_deadline(conn, deadline)
        self._on_request()
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        status = resp.status
        if status in _REDIRECTS and resp.getheader("Location"):
            raise _Redirect(resp.getheader("Location", ""))
        if status == 416 and ranged:
            resp.read()
            return FetchResult(b"", complete=False)
        if status not in (200, 206):
            raise _status_error(status, resp)
        total = self._check_headers(resp, status == 206)
        data = self._read_body(conn, resp, deadline)
        if resp.will_close:
            conn.close()
        complete = status == 200
        return FetchResult(data, complete=complete, total=len(data) if complete else total)

    def _check_headers(self, resp: http.client.HTTPResponse, partial: bool) -> int | None:
        """Refuse text content and oversized files before reading the body; returns the
        whole size for a partial response, when the server says it."""
        content_type = resp.getheader("Content-Type")
        if is_text_content_type(content_type):
            raise FetchError("not_image", f"Content-Type {content_type}")
        length = resp.getheader("Content-Length", "")
        total: int | None = int(length) if length.isdigit() and not partial else None
        if partial:
            match = _CONTENT_RANGE.match(resp.getheader("Content-Range", ""))
            total = int(match.group(3)) if match and match.group(3) != "*" else None
        if total is not None and total > self.settings.max_bytes:
            raise FetchError("too_large", f"{total} bytes (limit {self.settings.max_bytes})")
        return total

    def _read_body(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                   deadline: float) -> bytes:
        """Read the body in chunks within the deadline and the size limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            _set_deadline(conn, deadline)
            chunk = resp.read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise FetchError("too_large", f"more than {self.settings.max_bytes} bytes")
            chunks.append(chunk)
