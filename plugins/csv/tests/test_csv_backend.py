"""CsvBackend against a real HTTP server: listing, reads, ranges, captions, read-only."""

from __future__ import annotations

import io
import threading

import pytest
from csvhelpers import IMAGES, MakeBackend, key_of
from PIL import Image

from databackend import FileInfo
from databackend.imageprobe import probe_bytes
from databackend_csv import CsvBackend, DownloadEvent, ReadOnlyError, key_for_url
from databackend_csv.testing import ImageServer

OK = [f"/img/i{n}.png" for n in range(12)]


def test_list_is_sorted_with_stable_entries(make_backend: MakeBackend,
                                            server: ImageServer) -> None:
    """Every row is listed once, sorted, size -1 (unknown), mtime constant, etag = URL hash;
    no request."""
    backend = make_backend(OK)
    infos = list(backend.list())
    assert [i.path for i in infos] == sorted(key_of(server, p) for p in OK)
    assert all(i.size == -1 and i.mtime == 0.0 for i in infos)
    assert all(i.path.startswith(f"{i.etag[:2]}/{i.etag}.") for i in infos if i.etag)
    assert infos == list(backend.list())
    assert sum(server.requests.values()) == 0


def test_list_prefix_and_extensions(make_backend: MakeBackend, server: ImageServer) -> None:
    """Prefix and extension filters apply to the virtual keys."""
    backend = make_backend([*OK[:3], "/img/photo.jpg"])
    assert [i.path for i in backend.list(extensions=["JPG"])] == [key_of(server,
                                                                         "/img/photo.jpg")]
    first = next(iter(backend.list()))
    assert first.path in {i.path for i in backend.list(first.path[:3])}
    assert list(backend.list("zz-none/")) == []


def test_read_downloads_once(make_backend: MakeBackend, server: ImageServer,
                             image_bytes: dict[str, bytes]) -> None:
    """The bytes are the server's; a second read comes from the cache."""
    backend = make_backend(OK[:2])
    key = key_of(server, OK[0])
    assert backend.read(key) == image_bytes["i0.png"]
    assert backend.read(key) == image_bytes["i0.png"]
    assert backend.open(key).read() == image_bytes["i0.png"]
    assert server.requests[OK[0]] == 1
    summary = backend.scan_summary()
    assert summary["downloads"] == 1 and summary["cache_hits"] == 2


def test_cache_survives_a_new_backend(make_backend: MakeBackend, server: ImageServer) -> None:
    """Downloads are reused by the next run over the same cache folder."""
    first = make_backend(OK[:4])
    keys = [i.path for i in first.list()]
    assert all(isinstance(d, bytes) for d in first.read_many(keys))
    first.close()
    second = make_backend(OK[:4])
    assert all(isinstance(d, bytes) for d in second.read_many(keys))
    assert all(server.requests[p] == 1 for p in OK[:4])


def _probe(backend: CsvBackend, key: str) -> tuple[int, int]:
    """What the metadata scan does: a header read, grown on NeedMoreData."""
    from databackend.imageprobe import NeedMoreData

    want = 4096
    data = backend.read_range(key, 0, want)
    while True:
        try:
            info = probe_bytes(data, eof=len(data) < want)
            return info.width, info.height
        except NeedMoreData as more:
            want = max(more.needed, 2 * len(data))
            data += backend.read_range(key, len(data), want - len(data))


def test_read_range_uses_http_ranges(make_backend: MakeBackend, server: ImageServer,
                                     image_bytes: dict[str, bytes]) -> None:
    """A header read of an uncached image is a 206 of the first bytes: no full download."""
    backend = make_backend(["/img/big.png"])
    key = key_of(server, "/img/big.png")
    assert backend.read_range(key, 0, 100) == image_bytes["big.png"][:100]
    assert _probe(backend, key) == IMAGES["big.png"][:2]
    assert server.full["/img/big.png"] == 0 and server.ranged["/img/big.png"] == 2
    assert backend.read_range(key, 50, 10) == image_bytes["big.png"][50:60]
    assert backend.scan_summary()["range_reads"] == 3


def test_scan_twice_downloads_nothing_twice(make_backend: MakeBackend,
                                            server: ImageServer) -> None:
    """Probe + full read of every image, twice: one full download per image, ever."""
    paths = [*OK, "/img/big.png", "/img/photo.jpg", "/img/small.gif"]
    backend = make_backend(paths)
    after_first: dict[str, int] = {}
    for _ in range(2):
        keys = [i.path for i in backend.list()]
        sizes = [_probe(backend, k) for k in keys]
        assert all(isinstance(d, bytes) for d in backend.read_many(keys))
        after_first = after_first or dict(server.requests)
    assert sorted(sizes) == sorted(IMAGES[p.rsplit("/", 1)[1]][:2] for p in paths)
    assert dict(server.requests) == after_first  # the second pass made no request at all
    assert all(server.full[p] <= 1 for p in paths)
    assert server.full["/img/big.png"] == 1  # big: one header range, then one full download


def test_small_file_range_is_cached_whole(make_backend: MakeBackend, server: ImageServer,
                                          image_bytes: dict[str, bytes]) -> None:
    """A range covering a whole small file stores it: the full read needs no request."""
    backend = make_backend(["/img/small.gif"])
    key = key_of(server, "/img/small.gif")
    data = backend.read_range(key, 0, 65536)
    assert data == image_bytes["small.gif"]
    assert backend.read(key) == data
    assert server.requests["/img/small.gif"] == 1


def test_range_fallback_when_server_ignores_ranges(make_backend: MakeBackend,
                                                   server: ImageServer,
                                                   image_bytes: dict[str, bytes]) -> None:
    """A 200 answer to a range request is the whole file: cached, sliced, never refetched."""
    backend = make_backend(["/norange/big.png"])
    key = key_of(server, "/norange/big.png")
    assert backend.read_range(key, 10, 20) == image_bytes["big.png"][10:30]
    assert backend.read(key) == image_bytes["big.png"]
    assert _probe(backend, key) == IMAGES["big.png"][:2]
    assert server.requests["/norange/big.png"] == 1


def test_range_growth_switches_to_whole_download(make_backend: MakeBackend,
                                                 server: ImageServer,
                                                 image_bytes: dict[str, bytes]) -> None:
    """Asking for most of a file of known size downloads it whole (and caches it)."""
    backend = make_backend(["/img/big.png"])
    key = key_of(server, "/img/big.png")
    size = len(image_bytes["big.png"])
    backend.read_range(key, 0, 1000)
    assert backend.read_range(key, 1000, size) == image_bytes["big.png"][1000:]
    assert server.full["/img/big.png"] == 1
    assert backend.read(key) == image_bytes["big.png"]
    assert server.requests["/img/big.png"] == 2


def test_read_many_keeps_order_and_returns_failures(make_backend: MakeBackend,
                                                    server: ImageServer,
                                                    image_bytes: dict[str, bytes]) -> None:
    """Results are in input order; a bad URL and an unknown key are exceptions in place."""
    backend = make_backend([*OK[:5], "/missing/x.png"])
    keys = [key_of(server, p) for p in [*OK[:5], "/missing/x.png"]] + ["zz/unknown.jpg"]
    got = backend.read_many(keys)
    assert got[:5] == [image_bytes[f"i{n}.png"] for n in range(5)]
    assert isinstance(got[5], OSError) and isinstance(got[6], FileNotFoundError)


def test_concurrent_reads_of_one_file_download_once(make_backend: MakeBackend,
                                                    server: ImageServer) -> None:
    """Threads asking for the same uncached image share one download."""
    server.latency = 0.1
    backend = make_backend(OK[:1])
    key = key_of(server, OK[0])
    got = backend.read_many([key] * 12)
    assert len(set(got)) == 1 and isinstance(got[0], bytes)  # type: ignore[arg-type]
    assert server.requests[OK[0]] == 1


def test_per_host_limit_is_respected(make_backend: MakeBackend, server: ImageServer) -> None:
    """With 16 threads and a per-host limit of 3 the server never sees more than 3 at once."""
    server.latency = 0.05
    backend = make_backend(OK, csv_concurrency=16, csv_per_host_limit=3)
    assert backend.io_concurrency == 16
    assert all(isinstance(d, bytes) for d in backend.read_many([i.path for i in backend.list()]))
    assert 2 <= server.max_in_flight <= 3


def test_keep_alive_reuses_connections(make_backend: MakeBackend, server: ImageServer) -> None:
    """Sequential downloads share one connection."""
    backend = make_backend(OK)
    for info in backend.list():
        backend.read(info.path)
    assert len(server.connections) == 1


def test_redirects_and_retries(make_backend: MakeBackend, server: ImageServer,
                               image_bytes: dict[str, bytes]) -> None:
    """A 302 is followed; a 503 is retried (Retry-After honoured) and then succeeds."""
    backend = make_backend(["/redirect/i1.png", "/flaky/i2.png"])
    assert backend.read(key_of(server, "/redirect/i1.png")) == image_bytes["i1.png"]
    assert backend.read(key_of(server, "/flaky/i2.png")) == image_bytes["i2.png"]
    assert server.requests["/flaky/i2.png"] == 2
    assert backend.quarantine_report()["total"] == 0


def test_captions(tmp_path: pytest.TempPathFactory, make_backend: MakeBackend,
                  server: ImageServer) -> None:
    """The caption column of each row; unknown paths have none."""
    backend = make_backend(OK[:3])
    for path in OK[:3]:
        assert backend.caption(key_of(server, path)) == f"caption of {path}"
    assert backend.caption("zz/nothing.jpg") is None


def test_read_only(make_backend: MakeBackend, server: ImageServer) -> None:
    """Writes and deletes raise a clear error; nothing changes."""
    backend = make_backend(OK[:1])
    key = key_of(server, OK[0])
    for call in (lambda: backend.write(key, b"x"), lambda: backend.delete(key),
                 lambda: backend.write_many([(key, b"x"), ("b", b"y")])):
        with pytest.raises(ReadOnlyError, match="read-only"):
            call()
    with pytest.raises(PermissionError):
        backend.write("new.jpg", b"x")
    assert backend.exists(key)


def test_missing_keys(make_backend: MakeBackend) -> None:
    """Unknown paths: FileNotFoundError for read, read_range and stat; exists is False."""
    backend = make_backend(OK[:1])
    for call in (lambda: backend.read("ab/nope.jpg"), lambda: backend.stat("ab/nope.jpg"),
                 lambda: backend.read_range("ab/nope.jpg", 0, 10)):
        with pytest.raises(FileNotFoundError, match="web"):
            call()
    assert not backend.exists("ab/nope.jpg")


def test_stat_and_url_make_no_request(make_backend: MakeBackend, server: ImageServer) -> None:
    """``stat`` is the listing entry; ``url`` the row's URL."""
    backend = make_backend(OK[:1])
    key = key_of(server, OK[0])
    assert backend.stat(key) == FileInfo(key, -1, 0.0, key[3:].split(".")[0])
    assert backend.url(key) == server.url(OK[0])
    assert backend.read_range(key, 0, 0) == b""
    assert sum(server.requests.values()) == 0


def test_listener_events(make_backend: MakeBackend, server: ImageServer) -> None:
    """Listeners see downloads, ranges, cache hits and failures; a failing one is harmless."""
    backend = make_backend([OK[0], "/img/big.png", "/missing/a.png"])
    seen: list[DownloadEvent] = []
    lock = threading.Lock()

    def listen(event: DownloadEvent) -> None:
        with lock:
            seen.append(event)

    def broken(event: DownloadEvent) -> None:
        raise RuntimeError("listener bug")

    backend.add_listener(listen)
    backend.add_listener(broken)
    backend.read_many([key_of(server, OK[0]), key_of(server, "/missing/a.png")])
    backend.read(key_of(server, OK[0]))
    backend.read_range(key_of(server, "/img/big.png"), 0, 100)
    kinds = sorted(e.kind for e in seen)
    assert kinds == ["cache_hit", "download", "failure", "range"]
    assert next(e for e in seen if e.kind == "failure").reason == "not_found"


def test_jpeg_and_decode(make_backend: MakeBackend, server: ImageServer) -> None:
    """Downloaded bytes decode with PIL to the served size."""
    backend = make_backend(["/img/photo.jpg"])
    with Image.open(io.BytesIO(backend.read(key_of(server, "/img/photo.jpg")))) as im:
        assert im.size == IMAGES["photo.jpg"][:2]


def test_describe_hides_secrets(tmp_path: pytest.TempPathFactory,
                                make_backend: MakeBackend) -> None:
    """describe() names the CSV and the row count without credentials or query strings."""
    backend = make_backend(OK[:2])
    assert backend.describe().startswith("csv:") and "(2 urls)" in backend.describe()
    from databackend_csv.urls import redact

    assert redact("https://user:pw@host.example:8443/a/b.csv?sig=SECRET") == \
        "https://host.example:8443/a/b.csv?..."
    assert key_for_url("https://h/a.png?sig=1") != key_for_url("https://h/a.png?sig=2")
