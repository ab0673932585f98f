"""Bad URLs: 404, timeouts, non-images, oversized files; quarantine with reason and delay."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from csvhelpers import TIMEOUT, MakeBackend, key_of

from databackend_csv import DownloadError, QuarantinedError
from databackend_csv.testing import ImageServer

GOOD = [f"/img/i{n}.png" for n in range(4)]
BAD = {"/missing/a.png": "not_found", "/slow/i5.png": "timeout", "/html/b.png": "not_image",
       "/disguised/c.png": "not_image"}


@pytest.mark.parametrize(("path", "reason"), sorted(BAD.items()))
def test_bad_url_is_quarantined_with_reason(make_backend: MakeBackend, server: ImageServer,
                                            path: str, reason: str) -> None:
    """The read raises DownloadError(reason); the next one is refused without a request."""
    backend = make_backend([path])
    key = key_of(server, path)
    with pytest.raises(DownloadError) as info:
        backend.read(key)
    assert info.value.reason == reason and not isinstance(info.value, QuarantinedError)
    sent = server.requests[path]
    assert sent == (2 if reason == "timeout" else 1)  # timeouts are retried (csv_retries=1)
    with pytest.raises(QuarantinedError, match=reason):
        backend.read(key)
    with pytest.raises(QuarantinedError):
        backend.read_range(key, 0, 100)
    assert server.requests[path] == sent
    assert list(backend.list()) == [] and not backend.exists(key)
    assert backend.quarantine_report() == {"total": 1, "by_reason": {reason: 1}, "due": 0}


def test_slow_response_times_out(make_backend: MakeBackend, server: ImageServer) -> None:
    """A response slower than csv_timeout fails after about the timeout per attempt."""
    backend = make_backend(["/slow/i1.png"], csv_retries=0)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="timeout"):
        backend.read(key_of(server, "/slow/i1.png"))
    assert time.monotonic() - start < TIMEOUT + 0.5


def test_too_large_is_refused(make_backend: MakeBackend, server: ImageServer) -> None:
    """Content-Length (or Content-Range) above csv_max_image_bytes: refused, quarantined."""
    backend = make_backend(["/img/big.png", "/norange/i6.png"], csv_max_image_bytes=2000)
    for path in ("/img/big.png", "/norange/i6.png"):
        with pytest.raises(DownloadError, match="too_large"):
            backend.read_range(key_of(server, path), 0, 100)
    assert backend.quarantine_report()["by_reason"] == {"too_large": 2}


def test_scan_with_bad_urls_never_breaks(make_backend: MakeBackend,
                                        server: ImageServer) -> None:
    """read_many over good and bad URLs: good bytes, bad errors in place, counts reported."""
    backend = make_backend([*GOOD, *BAD])
    keys = [i.path for i in backend.list()]
    results = backend.read_many(keys)
    assert sum(isinstance(r, bytes) for r in results) == len(GOOD)
    assert sum(isinstance(r, DownloadError) for r in results) == len(BAD)
    summary = backend.scan_summary()
    assert summary["failures"] == {"not_found": 1, "not_image": 2, "timeout": 1}
    assert summary["quarantine"]["total"] == len(BAD)
    assert len(list(backend.list())) == len(GOOD)
    assert backend.scan_summary()["skipped_quarantined"] == len(BAD)


def test_quarantine_persists_across_runs(make_backend: MakeBackend,
                                         server: ImageServer) -> None:
    """A later run skips quarantined URLs without requesting them (file in csv_cache_dir)."""
    first = make_backend([*GOOD, *BAD])
    first.read_many([i.path for i in first.list()])
    first.close()
    stored = json.loads(Path(first.downloader.quarantine.path).read_text())
    assert {e["reason"] for e in stored["entries"].values()} == {"not_found", "not_image",
                                                                 "timeout"}
    before = dict(server.requests)
    second = make_backend([*GOOD, *BAD])
    keys = [i.path for i in second.list()]
    assert len(keys) == len(GOOD)
    second.read_many([key_of(server, p) for p in BAD])
    second.read_many(keys)
    assert all(server.requests[p] == before[p] for p in BAD)


def test_quarantine_expires_and_url_is_retried(make_backend: MakeBackend,
                                               server: ImageServer,
                                               image_bytes: dict[str, bytes]) -> None:
    """After csv_quarantine_seconds the URL is listed again (with a changed mtime, so an
    incremental scan re-probes it) and requested again; a success lifts the quarantine."""
    backend = make_backend(["/flaky/i3.png"], csv_quarantine_seconds=0.3, csv_retries=0)
    key = key_of(server, "/flaky/i3.png")
    with pytest.raises(DownloadError, match="http_error"):
        backend.read(key)
    with pytest.raises(QuarantinedError):
        backend.read(key)
    assert list(backend.list()) == [] and server.requests["/flaky/i3.png"] == 1
    time.sleep(0.35)
    (info,) = backend.list()
    assert info.mtime > 0  # changed since the failed scan: the scan probes it again
    assert backend.quarantine_report() == {"total": 0, "by_reason": {}, "due": 1}
    assert backend.read(key) == image_bytes["i3.png"]
    assert server.requests["/flaky/i3.png"] == 2
    assert backend.quarantine_report()["due"] == 0
    assert next(iter(backend.list())).mtime == 0.0


def test_failed_again_after_the_delay(make_backend: MakeBackend, server: ImageServer) -> None:
    """A URL still bad after the delay is quarantined again, its failures counted."""
    backend = make_backend(["/missing/z.png"], csv_quarantine_seconds=0.2)
    key = key_of(server, "/missing/z.png")
    for _ in range(2):
        with pytest.raises(DownloadError):
            backend.read(key)
        time.sleep(0.25)
    assert server.requests["/missing/z.png"] == 2
    assert backend.downloader.quarantine.get(key).failures == 2  # type: ignore[union-attr]
