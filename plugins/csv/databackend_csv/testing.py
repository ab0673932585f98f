"""A local image server for tests and benchmarks of URL-backed datasets.

:class:`ImageServer` is a ``ThreadingHTTPServer`` on ``127.0.0.1`` (port 0) that serves
registered images and misbehaves on purpose, by path prefix:

* ``/img/<name>``: the image, honouring ``Range`` requests (206 + ``Content-Range``);
* ``/norange/<name>``: the image, ignoring ``Range`` (always 200, the whole body);
* ``/slow/<name>``: the image after sleeping ``slow_seconds`` (beyond a client's timeout);
* ``/flaky/<name>``: 503 for the first ``flaky_failures`` requests, then the image;
* ``/redirect/<name>``: 302 to ``/img/<name>``;
* ``/html/<name>``: an HTML page with ``Content-Type: text/html``;
* ``/disguised/<name>``: an HTML page sent as ``application/octet-stream``;
* anything else, and unknown names: 404.

Every request waits ``latency`` seconds first (a model of network round trips). The server
counts requests per path (``requests``), whole-file responses (``full``), ranged responses
(``ranged``), client connections (``connections``) and the largest number of requests in
progress at once (``max_in_flight``).
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ImageServer", "make_image"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_HTML = b"<!doctype html><html><body><h1>Not here</h1></body></html>"


def make_image(width: int, height: int, fmt: str = "PNG", *, seed: int = 0) -> bytes:
    """Encode a noisy RGB image (noise keeps sizes realistic) in ``fmt`` (PIL format name)."""
    from PIL import Image

    rng = random.Random(seed)
    pixels = rng.randbytes(width * height * 3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buf, format=fmt)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    """Dispatches on the first path segment; see the module docstring."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        """Serve one request, tracking concurrency and counts."""
        owner = self.server.owner
        path = urlsplit(self.path).path  # absolute URIs arrive through a proxy
        owner._enter(path, self.path != path, self.client_address)
        try:
            time.sleep(owner.latency)
            self._dispatch(owner, path)
        finally:
            owner._leave()

    def _dispatch(self, owner: ImageServer, path: str) -> None:
        kind, _, name = path.lstrip("/").partition("/")
        data = owner.images.get(name)
        if kind == "html":
            return self._send(200, _HTML, "text/html; charset=utf-8")
        if kind == "disguised":
            return self._send(200, _HTML, "application/octet-stream")
        if kind == "redirect":
            return self._send(302, b"", "text/plain", {"Location": f"/img/{name}"})
        if data is None or kind not in ("img", "norange", "slow", "flaky"):
            return self._send(404, _HTML, "text/html")
        if kind == "slow":
            time.sleep(owner.slow_seconds)
        if kind == "flaky" and owner._flake(path):
            return self._send(503, b"busy", "text/plain", {"Retry-After": "0"})
        self._send_image(owner, path, data, ranged=kind != "norange")

    def _send_image(self, owner: ImageServer, path: str, data: bytes, *, ranged: bool) -> None:
        match = _RANGE.match(self.headers.get("Range", "")) if ranged else None
        if match is None:
            owner._count(owner.full, path)
            return self._send(200, data, "image/png", {"Accept-Ranges": "bytes"})
        start = int(match.group(1))
        end = min(int(match.group(2) or len(data) - 1), len(data) - 1)
        if start >= len(data):
            return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
        owner._count(owner.ranged, path)
        self._send(206, data[start:end + 1], "image/png",
                   {"Content-Range": f"bytes {start}-{end}/{len(data)}"})

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ImageServer


class ImageServer:
    """A misbehaving image server on 127.0.0.1; use as a context manager."""

    def __init__(self, *, latency: float = 0.0, slow_seconds: float = 2.0,
                 flaky_failures: int = 1) -> None:
        """Configure the server; :meth:`start` (or ``with``) binds a free port."""
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.flaky_failures = flaky_failures
        self.images: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.full: Counter[str] = Counter()
        self.ranged: Counter[str] = Counter()
        self.proxied = 0
        self.connections: set[tuple[Any, ...]] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def add(self, name: str, data: bytes) -> str:
        """Register an image under ``name``; returns its ``/img/`` URL."""
        self.images[name] = data
        return self.url(f"/img/{name}")

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def reset_counts(self) -> None:
        """Zero every counter."""
        with self._lock:
            for counter in (self.requests, self.full, self.ranged):
                counter.clear()
            self.proxied = self.max_in_flight = 0
            self.connections.clear()

    def start(self) -> ImageServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- bookkeeping (called by the handler threads) -----------------------------------
    def _enter(self, path: str, proxied: bool, client: Any) -> None:
        with self._lock:
            self.requests[path] += 1
            self.connections.add(tuple(client))
            self.proxied += proxied
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _count(self, counter: Counter[str], path: str) -> None:
        with self._lock:
            counter[path] += 1

    def _flake(self, path: str) -> bool:
        with self._lock:
            return self.requests[path] <= self.flaky_failures
