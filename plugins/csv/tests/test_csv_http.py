"""The HTTP client on its own: backoff schedule, stale keep-alive connections, proxies."""

from __future__ import annotations

import socket

import pytest

from databackend_csv.errors import FetchError
from databackend_csv.httpclient import FetchSettings, HttpClient
from databackend_csv.testing import ImageServer


def test_backoff_is_exponential_with_jitter(server: ImageServer) -> None:
    """Transient failures are retried ``retries`` times with delays b*2^k*[0.5, 1.5]."""
    server.flaky_failures = 100
    delays: list[float] = []
    client = HttpClient(FetchSettings(allow_private=True, retries=3, backoff=0.1), sleep=delays.append)
    with pytest.raises(FetchError) as info:
        client.fetch(server.url("/flaky/i0.png"))
    assert info.value.reason == "http_error" and info.value.transient
    assert server.requests["/flaky/i0.png"] == 4 and len(delays) == 3
    for k, delay in enumerate(delays):
        assert 0.1 * 2 ** k * 0.5 <= delay <= 0.1 * 2 ** k * 1.5
    client.close()


def test_permanent_errors_are_not_retried(server: ImageServer) -> None:
    """404 is final at once."""
    delays: list[float] = []
    client = HttpClient(FetchSettings(allow_private=True, retries=3), sleep=delays.append)
    with pytest.raises(FetchError, match="not_found"):
        client.fetch(server.url("/missing/x.png"))
    assert delays == [] and server.requests["/missing/x.png"] == 1


def test_stale_pooled_connection_is_replaced(server: ImageServer,
                                             image_bytes: dict[str, bytes]) -> None:
    """A pooled connection the peer dropped is replaced transparently, not a failure."""
    client = HttpClient(FetchSettings(allow_private=True, retries=0))
    assert client.fetch(server.url("/img/i0.png")).data == image_bytes["i0.png"]
    pool = client._direct.connection_from_url(server.url("/img/i0.png"))
    (idle,) = [c for c in list(pool.pool.queue) if c is not None]  # type: ignore[union-attr]
    assert idle.sock is not None
    idle.sock.shutdown(socket.SHUT_RDWR)
    assert client.fetch(server.url("/img/i1.png")).data == image_bytes["i1.png"]
    assert len(server.connections) == 2
    client.close()


def test_http_proxy_from_environment(server: ImageServer, image_bytes: dict[str, bytes],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``http_proxy`` is honoured: the request goes to the proxy with an absolute URI."""
    monkeypatch.setenv("http_proxy", server.url(""))
    client = HttpClient(FetchSettings(allow_private=True, retries=0))
    result = client.fetch("http://images.example.invalid/img/i2.png")
    assert result.data == image_bytes["i2.png"] and server.proxied == 1
    monkeypatch.setenv("no_proxy", "images.example.invalid")
    with pytest.raises(FetchError, match="connection"):
        HttpClient(FetchSettings(allow_private=True, retries=0, timeout=2)).fetch(
            "http://images.example.invalid/img/i2.png")
    client.close()


def test_range_past_the_end_is_empty(server: ImageServer, image_bytes: dict[str, bytes]
                                     ) -> None:
    """416 for a range starting past the end is an empty partial result."""
    client = HttpClient(FetchSettings(allow_private=True))
    size = len(image_bytes["i0.png"])
    result = client.fetch(server.url("/img/i0.png"), (size + 10, 100))
    assert result.data == b"" and not result.complete
    part = client.fetch(server.url("/img/i0.png"), (size - 5, 100))
    assert part.data == image_bytes["i0.png"][-5:] and part.total == size
    client.close()


def test_non_http_url_is_refused() -> None:
    """The HTTP client only speaks http(s)."""
    with pytest.raises(FetchError, match="not an http"):
        HttpClient(FetchSettings(allow_private=True)).fetch("ftp://example.invalid/x.png")
