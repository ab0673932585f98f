"""Test helpers for plugin authors, shipped as a pytest plugin (``pytest11`` entry point).

Fixtures:

* ``plugin_manager`` -- a plugin manager with the built-ins only (no installed entry points).
* ``register_plugin`` -- ``register_plugin(obj)`` registers a plugin for one test.

Conformance suites: subclass :class:`StorageConformance` in your tests and provide a
``backend`` fixture returning an empty, writable backend; every storage rule is checked::

    class TestMyBackend(StorageConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            return MyBackend(MyConfig(...), dataset_id="t", root=str(tmp_path))

A backend that declares ``read_only`` subclasses :class:`ReadOnlyStorageConformance` instead
and provides ``backend`` (holding some files) and ``expected_files`` (``{key: bytes}``, every
file it holds, at least two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pluggy
import pytest

from databackend.errors import ReadOnlyStorageError
from databackend.plugins import make_plugin_manager
from databackend.storage.base import StorageBackend

__all__ = ["ReadOnlyStorageConformance", "StorageConformance", "plugin_manager",
           "register_plugin"]


@pytest.fixture
def plugin_manager() -> pluggy.PluginManager:
    """Built-in plugins only; never the user's installed ones."""
    return make_plugin_manager(entrypoints=False)


@pytest.fixture
def register_plugin(plugin_manager: pluggy.PluginManager) -> Iterator[Callable[[Any], str]]:
    """Register plugin objects for the duration of one test; always unregistered afterwards."""
    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> str:
        """Register ``plugin`` until the end of the test; returns its name."""
        registered = plugin_manager.register(plugin, name=name)
        assert registered is not None
        names.append(registered)
        return registered

    try:
        yield register
    finally:
        for name in names:
            plugin_manager.unregister(name=name)


class StorageConformance:
    """Behaviour every storage backend must have; subclass and provide ``backend``."""

    def test_write_read_roundtrip(self, backend: StorageBackend) -> None:
        """Bytes written come back unchanged; nested keys create their folders."""
        backend.write("a/b/c.bin", b"hello")
        assert backend.read("a/b/c.bin") == b"hello"
        assert backend.exists("a/b/c.bin")

    def test_overwrite_is_whole(self, backend: StorageBackend) -> None:
        """A rewrite replaces the content entirely."""
        backend.write("x.bin", b"long content here")
        backend.write("x.bin", b"short")
        assert backend.read("x.bin") == b"short"

    def test_read_range(self, backend: StorageBackend) -> None:
        """Ranged reads return the slice, short at the end of the file."""
        backend.write("r.bin", bytes(range(100)))
        assert backend.read_range("r.bin", 10, 5) == bytes(range(10, 15))
        assert backend.read_range("r.bin", 95, 50) == bytes(range(95, 100))

    def test_list_sizes_and_extensions(self, backend: StorageBackend) -> None:
        """Listing is recursive, reports sizes, filters by extension, leaves no temp files."""
        backend.write("d/one.jpg", b"1")
        backend.write("d/sub/two.PNG", b"22")
        backend.write("d/three.txt", b"333")
        found = {f.path: f.size for f in backend.list("d", extensions=["jpg", "png"])}
        assert found == {"d/one.jpg": 1, "d/sub/two.PNG": 2}
        assert all("tmp" not in f.path for f in backend.list())

    def test_missing_file(self, backend: StorageBackend) -> None:
        """Reading a missing key raises FileNotFoundError; deleting one is not an error."""
        assert not backend.exists("nope.bin")
        with pytest.raises(FileNotFoundError):
            backend.read("nope.bin")
        backend.delete("nope.bin")

    def test_delete(self, backend: StorageBackend) -> None:
        """Deleted files are gone from reads and listings."""
        backend.write("gone.bin", b"x")
        backend.delete("gone.bin")
        assert not backend.exists("gone.bin")
        assert "gone.bin" not in {f.path for f in backend.list()}

    def test_many(self, backend: StorageBackend) -> None:
        """Batched writes and reads keep order; failures are returned in place."""
        backend.write_many([(f"m/{i}.bin", bytes([i])) for i in range(10)])
        got = backend.read_many([f"m/{i}.bin" for i in range(10)] + ["m/missing.bin"])
        assert got[:10] == [bytes([i]) for i in range(10)]
        assert isinstance(got[10], Exception)

    def test_stat(self, backend: StorageBackend) -> None:
        """``stat`` reports the size."""
        backend.write("s.bin", b"12345")
        assert backend.stat("s.bin").size == 5


class ReadOnlyStorageConformance:
    """Behaviour every read-only backend must have; subclass and provide ``backend`` and
    ``expected_files`` (``{key: bytes}``: all files the backend holds, at least two)."""

    def test_declares_read_only(self, backend: StorageBackend) -> None:
        """The class declares ``read_only`` (the config stage relies on it)."""
        assert type(backend).read_only is True

    def test_lists_every_file(self, backend: StorageBackend,
                              expected_files: dict[str, bytes]) -> None:
        """The listing has exactly the files, with their size or -1 (unknown)."""
        assert len(expected_files) >= 2, "expected_files needs at least two files"
        listed = {f.path: f.size for f in backend.list()}
        assert set(listed) == set(expected_files)
        assert all(size in (-1, len(expected_files[p])) for p, size in listed.items())

    def test_reads(self, backend: StorageBackend, expected_files: dict[str, bytes]) -> None:
        """Whole and ranged reads return the bytes; ranges are short at the end."""
        for path, data in expected_files.items():
            assert backend.read(path) == data
            assert backend.read_range(path, 1, 4) == data[1:5]
            assert backend.read_range(path, len(data) - 2, 50) == data[-2:]
            assert backend.exists(path)
            assert backend.stat(path).size in (-1, len(data))

    def test_missing_file(self, backend: StorageBackend) -> None:
        """A missing key does not exist and reading it raises FileNotFoundError."""
        assert not backend.exists("no/such/file.bin")
        with pytest.raises(FileNotFoundError):
            backend.read("no/such/file.bin")

    def test_read_many_keeps_order(self, backend: StorageBackend,
                                   expected_files: dict[str, bytes]) -> None:
        """Batched reads keep order; a missing key is returned in place as an exception."""
        paths = sorted(expected_files)
        got = backend.read_many([*paths, "no/such/file.bin"])
        assert got[:-1] == [expected_files[p] for p in paths]
        assert isinstance(got[-1], Exception)

    def test_refuses_writes(self, backend: StorageBackend,
                            expected_files: dict[str, bytes]) -> None:
        """``write`` and ``delete`` raise ReadOnlyStorageError (a PermissionError) naming the
        dataset, and change nothing."""
        path = sorted(expected_files)[0]
        for key in (path, "new.bin"):
            with pytest.raises(ReadOnlyStorageError, match=backend.dataset_id):
                backend.write(key, b"x")
        with pytest.raises(ReadOnlyStorageError, match=backend.dataset_id):
            backend.delete(path)
        assert backend.read(path) == expected_files[path]
        assert not backend.exists("new.bin")

    def test_describe_is_plain(self, backend: StorageBackend) -> None:
        """``describe()`` and ``repr`` are short strings."""
        assert isinstance(backend.describe(), str) and backend.dataset_id in repr(backend)
