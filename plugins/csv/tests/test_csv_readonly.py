"""The core's read-only conformance suite on the csv backend (URLs served by a local server)."""

from __future__ import annotations

import pytest
from csvhelpers import MakeBackend, key_of

from databackend.testing import ReadOnlyStorageConformance
from databackend_csv import CsvBackend
from databackend_csv.testing import ImageServer

PATHS = ["/img/i0.png", "/img/i1.png", "/img/i2.png"]


class TestCsvReadOnly(ReadOnlyStorageConformance):
    """Listing (sizes unknown: -1), downloads, ranges, refused writes."""

    @pytest.fixture
    def expected_files(self, server: ImageServer,
                       image_bytes: dict[str, bytes]) -> dict[str, bytes]:
        return {key_of(server, p): image_bytes[p.rpartition("/")[2]] for p in PATHS}

    @pytest.fixture
    def backend(self, make_backend: MakeBackend) -> CsvBackend:
        return make_backend(PATHS)
