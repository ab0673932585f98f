"""A fault-injecting HTTP proxy for testing S3 clients against a flaky network (test utility).

Put it between a client and any S3 endpoint (moto, MinIO): it forwards requests and, for a
seeded fraction of them, answers ``500 InternalError``, ``503 SlowDown`` or
``503 ServiceUnavailable``, drops the connection before or after the request reached the
server, or cuts a response body short. A request (method, path, range, body) fails at most
``max_faults_per_request`` times in a row, so a client with more retry attempts than that
always gets through; the same seed makes the same requests fail. It can also answer ``403
AccessDenied`` for chosen path prefixes, and model a remote link for benchmarks: latency
added to every response and a bandwidth shared by all response bodies::

    with FaultProxy("127.0.0.1:5000", FaultPlan(seed=1, rate=0.2)) as proxy:
        ...  # point aws_endpoint_url at proxy.url
    print(proxy.stats())
"""

from __future__ import annotations

import hashlib
import http.client
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["FAULT_KINDS", "FaultPlan", "FaultProxy"]

FAULT_KINDS = ("500", "slowdown", "503", "drop", "drop_after", "truncate")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
               "trailer", "upgrade", "content-length"}
_ERRORS = {"500": (500, "InternalError", "We encountered an internal error."),
           "slowdown": (503, "SlowDown", "Please reduce your request rate."),
           "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
           "deny": (403, "AccessDenied", "Access Denied")}


@attrs.frozen(kw_only=True)
class FaultPlan:
    """Which requests fail and how; ``rate=0`` and no ``deny`` make a plain proxy."""

    seed: int = 0
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    max_faults_per_request: int = 2
    deny_prefixes: tuple[str, ...] = ()
    #: Seconds added before every response (a model of the round trip to a remote store).
    latency: float = 0.0
    #: Bytes/s of one link shared by all response bodies, first come first served (0: none).
    bandwidth: float = 0.0


class _State:
    """Shared between handler threads: the plan, per-request attempt counts, statistics."""

    def __init__(self, upstream: str, plan: FaultPlan) -> None:
        self.upstream = upstream
        self.plan = plan
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.streak: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.local = threading.local()
        self.link_free_at = 0.0

    def fault_for(self, identity: str) -> str | None:
        """The fault to inject for this request, or None. Deterministic per request identity:
        the n-th sending of the same request draws from ``Random((seed, identity, n))``, and
        after ``max_faults_per_request`` faults in a row it goes through."""
        plan = self.plan
        with self.lock:
            nth = self.seen[identity]
            self.seen[identity] += 1
            streak = self.streak[identity]
            self.stats["requests"] += 1
        rng = random.Random(f"{plan.seed}|{identity}|{nth}")
        fault = None
        if streak < plan.max_faults_per_request and rng.random() < plan.rate:
            fault = rng.choice(plan.kinds)
        with self.lock:
            self.streak[identity] = streak + 1 if fault else 0
        return fault

    def transmit(self, nbytes: int) -> None:
        """Wait until ``nbytes`` would have crossed the shared link (no-op without a limit)."""
        if self.plan.bandwidth <= 0 or nbytes <= 0:
            return
        with self.lock:
            start = max(time.monotonic(), self.link_free_at)
            self.link_free_at = start + nbytes / self.plan.bandwidth
            done = self.link_free_at
        time.sleep(max(0.0, done - time.monotonic()))

    def count(self, name: str) -> None:
        """Increase statistic ``name`` by one."""
        with self.lock:
            self.stats[name] += 1

    def connection(self) -> http.client.HTTPConnection:
        """This thread's keep-alive connection to the upstream server."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            host, _, port = self.upstream.rpartition(":")
            conn = self.local.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        return conn


def _error_xml(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>faultproxy</RequestId></Error>").encode()


class _Handler(BaseHTTPRequestHandler):
    """Forwards one request, or fails it as the plan says."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        state = self.server.state
        body = self._body()
        if state.plan.latency:
            time.sleep(state.plan.latency)
        if any(self.path.startswith(p) for p in state.plan.deny_prefixes):
            state.count("denied")
            return self._error("deny")
        identity = "|".join((self.command, self.path, self.headers.get("Range", ""),
                             hashlib.sha1(body).hexdigest()))
        fault = state.fault_for(identity)
        if fault is not None:
            state.count(f"fault.{fault}")
        if fault == "drop":
            self.close_connection = True
            return None
        status, headers, payload = self._forward(body)
        if fault in ("500", "slowdown", "503"):
            return self._error(fault)
        self._reply(status, headers, payload, fault)
        return None

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):  # a stale keep-alive connection gets one reconnect
            conn = self.server.state.connection()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes,
               fault: str | None) -> None:
        if fault == "drop_after" or (fault == "truncate" and len(payload) < 2):
            self.close_connection = True
            return
        self.send_response(status)
        length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP and key.lower() not in ("server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", length if self.command == "HEAD" else
                         str(len(payload)))
        self.end_headers()
        if self.command == "HEAD":
            return
        self.server.state.transmit(len(payload))
        if fault == "truncate":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def _error(self, kind: str) -> None:
        status, code, message = _ERRORS[kind]
        payload = b"" if self.command == "HEAD" else _error_xml(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class FaultProxy:
    """The proxy: ``start()``/``stop()`` or use as a context manager; ``url`` is its address."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        """``upstream`` is ``host:port`` of the real server; port 0 picks a free port."""
        self._server = _Server((host, port), _Handler)
        self._server.state = _State(upstream, plan or FaultPlan())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` to use as the client's endpoint."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def plan(self) -> FaultPlan:
        """The plan in force."""
        return self._server.state.plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """Switch plans (for example turn faults off) and forget per-request attempt counts."""
        state = self._server.state
        with state.lock:
            state.plan = plan
            state.seen.clear()
            state.streak.clear()

    def stats(self) -> dict[str, int]:
        """Requests seen and faults injected, by kind."""
        state = self._server.state
        with state.lock:
            return dict(state.stats)

    def start(self) -> FaultProxy:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="faultproxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
