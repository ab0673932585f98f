"""Hostile URLs and servers for the csv backend: a body trickled one byte a second, bodies
shorter than their Content-Length or that do not decode, redirects to other schemes or to
internal addresses. Each is a failed download (retried, then quarantined), never a cached file,
and the quarantine never stores file contents."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from advhelpers import snapshot

pytest.importorskip("databackend_csv")
from databackend_csv import CsvBackend, CsvConfig
from databackend_csv.errors import DownloadError, FetchError
from databackend_csv.httpclient import FetchSettings, HttpClient
from databackend_csv.testing import make_image

PNG = make_image(24, 24)
SECRET_BYTES = b"\x89PNG\r\n\x1a\nTOP-SECRET-CONTENT"


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1  # type: ignore[attr-defined]
        kind = self.path.strip("/").split("/")[0]
        if kind == "trickle":
            self._head(200, len(PNG))
            for byte in PNG:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        elif kind == "short":
            self._head(200, len(PNG) + 500)
            self.wfile.write(PNG)
            self.wfile.flush()
            self.close_connection = True
        elif kind == "garbage":
            self._head(200, len(SECRET_BYTES))
            self.wfile.write(SECRET_BYTES)
        elif kind == "redirect":
            target = self.path.split("/", 2)[2]
            self.send_response(302)
            self.send_header("Location", target.replace("SELF", self.headers["Host"]))
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._head(200, len(PNG))
            self.wfile.write(PNG)

    def _head(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    server.hits = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _client(**kw: Any) -> HttpClient:
    return HttpClient(FetchSettings(allow_private=True, **{"retries": 1, "backoff": 0.01,
                                                           "timeout": 1.0, **kw}))


@pytest.mark.timeout(60)
def test_trickling_body_hits_the_deadline(hostile: str) -> None:
    """24x24 PNG at 5 bytes/s would take minutes; the 1 s deadline covers the whole body."""
    for path in ("/trickle/a.png", "/trickle/b.png"):
        with pytest.raises(FetchError) as info:
            _client(retries=0).fetch(hostile + path)
        assert info.value.reason == "timeout" and info.value.transient


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/short/a.png", "/short/b/c.png"])
def test_body_shorter_than_content_length_is_truncated(hostile: str, path: str) -> None:
    with pytest.raises(FetchError) as info:
        _client().fetch(hostile + path)
    assert info.value.reason == "truncated" and info.value.transient


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://SELF/x.png",
                                    "gopher://SELF/x", "data:image/png;base64,AAAA"])
def test_redirects_only_to_http(hostile: str, target: str) -> None:
    with pytest.raises(FetchError) as info:
        _client().fetch(f"{hostile}/redirect/{target}")
    assert info.value.reason == "forbidden" and "only http and https" in info.value.detail


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x.png", "http://localhost:9/x.png",
                                 "http://10.1.2.3/x.png", "http://169.254.169.254/latest",
                                 "http://[::1]:9/x.png", "http://192.168.0.1/x.png",
                                 "http://[::ffff:127.0.0.1]:9/x.png"])
def test_internal_addresses_are_refused_by_default(url: str) -> None:
    with pytest.raises(FetchError) as info:
        HttpClient(FetchSettings(retries=0, timeout=1.0)).fetch(url)
    assert info.value.reason == "forbidden" and "csv_allow_private_addresses" in info.value.detail


def test_redirect_into_the_network_is_refused(hostile: str) -> None:
    """A public-looking first hop cannot bounce to an internal address: the connected peer is
    checked (here the first hop is loopback too, so it is refused at once)."""
    with pytest.raises(FetchError, match="forbidden"):
        HttpClient(FetchSettings(retries=0, timeout=1.0)).fetch(
            f"{hostile}/redirect/http://169.254.169.254/latest/meta-data")


def _backend(tmp_path: Path, hostile: str, paths: list[str]) -> CsvBackend:
    table = tmp_path / "list.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["url", "caption"])
        writer.writerows([(hostile + p, "x") for p in paths])
    return CsvBackend(CsvConfig(csv_file=str(table), csv_cache_dir=str(tmp_path / "cache"),
                                csv_caption_column="caption", csv_timeout=1.0, csv_retries=1,
                                csv_backoff_seconds=0.01, csv_allow_private_addresses=True),
                      dataset_id="web")


@pytest.mark.timeout(120)
def test_failed_downloads_are_quarantined_never_cached(tmp_path: Path, hostile: str) -> None:
    bad = ["/short/1.png", "/garbage/2.png", "/trickle/3.png", "/redirect/file:///etc/passwd"]
    backend = _backend(tmp_path, hostile, [*bad, "/ok/4.png"])
    keys = [info.path for info in backend.list()]
    before = snapshot(tmp_path / "cache")
    results = backend.read_many(keys)
    errors = [r for r in results if isinstance(r, DownloadError)]
    assert len(errors) == 4 and [r for r in results if isinstance(r, bytes)] == [PNG], results
    cached = [p for p, kind in snapshot(tmp_path / "cache").items()
              if kind[0] == "file" and p.startswith("objects") and p not in before]
    assert len(cached) == 1  # only the good image
    quarantine = (tmp_path / "cache" / "quarantine.json").read_bytes()
    assert b"TOP-SECRET" not in quarantine and b"PNG" not in quarantine
    reasons = {r.reason for r in errors}
    assert reasons == {"truncated", "not_image", "timeout", "forbidden"}
    backend.close()


def test_cache_limit_holds_across_processes(tmp_path: Path) -> None:
    """Two processes filling one download cache: the folder never holds more than the limit."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    limit = 20_000
    procs = [ctx.Process(target=_fill, args=(str(tmp_path / "objects"), limit, n))
             for n in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    held = sum(f.stat().st_size for f in (tmp_path / "objects").rglob("*") if f.is_file())
    assert 0 < held <= limit


def _fill(root: str, limit: int, n: int) -> None:
    from filelock import FileLock

    from databackend_csv.cache import DiskCache

    cache = DiskCache(root, limit)
    for k in range(60):
        cache.put(f"{n}{k % 10}/{k}.png", bytes([k]) * 900)
        with FileLock(f"{root}.lock"):  # a consistent view: no put half done while we count
            held = sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file())
        assert held <= limit, held
