"""Fixtures: a misbehaving local image server and a factory of csv backends pointing at it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from csvhelpers import IMAGES, SLOW_SECONDS, TIMEOUT, MakeBackend, write_csv

from databackend_csv import CsvBackend, CsvConfig
from databackend_csv.testing import ImageServer, make_image

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 must not go to a proxy of the machine running the tests."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="session")
def image_bytes() -> dict[str, bytes]:
    """The encoded test images by name."""
    return {name: make_image(w, h, fmt, seed=k)
            for k, (name, (w, h, fmt)) in enumerate(sorted(IMAGES.items()))}


@pytest.fixture
def server(image_bytes: dict[str, bytes]) -> Iterator[ImageServer]:
    """A fresh server (fresh counters) holding every test image."""
    with ImageServer(slow_seconds=SLOW_SECONDS, flaky_failures=1) as srv:
        for name, data in image_bytes.items():
            srv.add(name, data)
        yield srv


@pytest.fixture
def make_backend(tmp_path: Path, server: ImageServer) -> Iterator[MakeBackend]:
    """``make_backend(paths, **config)``: a backend over server paths (``/img/i0.png``...),
    captioned ``caption of <path>``, with fast test settings; closed after the test."""
    made: list[CsvBackend] = []

    def make(paths: Sequence[str], **overrides: Any) -> CsvBackend:
        rows = [(server.url(p), f"caption of {p}") for p in paths]
        csv_file = write_csv(tmp_path / "list.csv", rows)
        settings: dict[str, Any] = {
            "csv_file": str(csv_file), "csv_cache_dir": str(tmp_path / "cache"),
            "csv_caption_column": "caption", "csv_timeout": TIMEOUT, "csv_retries": 1,
            "csv_backoff_seconds": 0.01, "csv_quarantine_seconds": 3600.0,
            "csv_allow_private_addresses": True}  # the test server is on 127.0.0.1
        settings.update(overrides)
        backend = CsvBackend(CsvConfig(**settings), dataset_id="web")
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
