"""The bounded download cache: LRU order, the size limit under concurrency, restarts."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest
from csvhelpers import MakeBackend

from databackend_csv import DiskCache
from databackend_csv.testing import ImageServer


def _disk_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (temporary files included)."""
    total = 0
    for f in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # renamed or evicted while we looked
            total += f.stat().st_size if f.is_file() else 0
    return total


def test_lru_eviction_order(tmp_path: Path) -> None:
    """The least recently *used* (not written) entry goes first."""
    cache = DiskCache(str(tmp_path), 300)
    for name in ("aa/1.jpg", "bb/2.jpg", "cc/3.jpg"):
        assert cache.put(name, b"x" * 100)
    assert cache.get("aa/1.jpg") == b"x" * 100  # 1 is now the most recent
    assert cache.put("dd/4.jpg", b"y" * 100)
    assert "bb/2.jpg" not in cache and "aa/1.jpg" in cache
    assert not (tmp_path / "bb" / "2.jpg").exists()
    assert cache.total_bytes == 300 == _disk_bytes(tmp_path) and cache.evictions == 1


def test_range_hits_count_as_use(tmp_path: Path) -> None:
    """read_range serves slices and refreshes the entry."""
    cache = DiskCache(str(tmp_path), 200)
    cache.put("aa/1.jpg", bytes(range(100)))
    cache.put("bb/2.jpg", b"z" * 100)
    assert cache.read_range("aa/1.jpg", 95, 10) == bytes(range(95, 100))
    cache.put("cc/3.jpg", b"w" * 100)
    assert "aa/1.jpg" in cache and "bb/2.jpg" not in cache


def test_oversized_entry_is_not_cached(tmp_path: Path) -> None:
    """An entry larger than the whole cache is refused and evicts nothing."""
    cache = DiskCache(str(tmp_path), 100)
    cache.put("aa/1.jpg", b"x" * 60)
    assert not cache.put("bb/big.jpg", b"x" * 101)
    assert "aa/1.jpg" in cache and cache.get("bb/big.jpg") is None


def test_restart_keeps_lru_order(tmp_path: Path) -> None:
    """A new cache over the folder rebuilds the index, oldest use first, and enforces a
    smaller limit at once; stale temporary files are removed."""
    cache = DiskCache(str(tmp_path), 1000)
    for k in range(4):
        cache.put(f"0{k}/{k}.jpg", b"x" * 100)
        os.utime(cache.path(f"0{k}/{k}.jpg"), (1000.0 + k, 1000.0 + k))
    cache.get("00/0.jpg")  # used now: the newest
    stale = tmp_path / "01" / ".junk.part"
    stale.write_bytes(b"partial")
    os.utime(stale, (1.0, 1.0))
    again = DiskCache(str(tmp_path), 250)
    assert sorted(again._entries) == ["00/0.jpg", "03/3.jpg"]
    assert again.total_bytes == 200 and not stale.exists()


def test_file_deleted_behind_our_back(tmp_path: Path) -> None:
    """A cached file removed by someone else is a miss, not an error."""
    cache = DiskCache(str(tmp_path), 1000)
    cache.put("aa/1.jpg", b"x" * 10)
    os.unlink(cache.path("aa/1.jpg"))
    assert cache.get("aa/1.jpg") is None and cache.read_range("aa/1.jpg", 0, 1) is None
    assert cache.total_bytes == 0


class _Accounting:
    """Bytes on disk as the cache changes them: a write counts before its temporary file is
    created, an eviction after its file is gone, so ``current`` never under-counts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def change(self, n: int) -> None:
        with self.lock:
            self.current += n
            self.peak = max(self.peak, self.current)


def test_limit_holds_under_concurrent_writes(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """16 threads writing and reading: the bytes on disk never exceed the limit."""
    limit = 5000
    acct = _Accounting()
    real_unlink, real_write = os.unlink, DiskCache._write

    def unlink(path: str | Path, *args: object, **kwargs: object) -> None:
        size = os.stat(path).st_size if str(path).startswith(str(tmp_path)) else 0
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]
        acct.change(-size)

    def write(self: DiskCache, key: str, data: bytes) -> None:
        acct.change(len(data))
        real_write(self, key, data)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(DiskCache, "_write", write)
    cache = DiskCache(str(tmp_path), limit)

    def work(t: int) -> None:
        for k in range(40):
            cache.put(f"{t:02d}/{k}.jpg", bytes([k]) * (100 + 13 * k))
            cache.get(f"{t:02d}/{max(0, k - 1)}.jpg")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert acct.peak <= limit and cache.evictions > 0
    assert acct.current == cache.total_bytes == _disk_bytes(tmp_path) <= limit


def test_backend_cache_never_exceeds_limit(make_backend: MakeBackend, server: ImageServer,
                                           image_bytes: dict[str, bytes],
                                           tmp_path: Path) -> None:
    """Reading more images than fit: the cache folder stays under csv_cache_max_bytes, the
    most recently used images stay, and evicted ones are downloaded again when read."""
    paths = [f"/img/i{n}.png" for n in range(12)]
    sizes = [len(image_bytes[f"i{n}.png"]) for n in range(12)]
    limit = sum(sorted(sizes)[-4:])  # room for about four images
    backend = make_backend(paths, csv_cache_max_bytes=limit)
    objects = tmp_path / "cache" / "objects"
    keys = [i.path for i in backend.list()]
    for key in keys:
        backend.read(key)
        assert _disk_bytes(objects) <= limit
    backend.read_many(keys)
    assert _disk_bytes(objects) <= limit
    summary = backend.scan_summary()["cache"]
    assert summary["evictions"] > 0 and summary["bytes"] <= limit == summary["max_bytes"]
    backend.read(keys[0])
    before = sum(server.requests.values())
    backend.read(keys[0])  # the most recently used image is still cached
    assert sum(server.requests.values()) == before


def test_shared_folder_resync(tmp_path: Path) -> None:
    """Two caches over one folder: before evicting, a cache rescans the folder (at most every
    RESYNC_SECONDS), so files the other one wrote count against the limit."""
    import databackend_csv.cache as cache_mod

    a = DiskCache(str(tmp_path), 300)
    b = DiskCache(str(tmp_path), 300)
    b.put("bb/1.jpg", b"b" * 200)
    a._synced = time.monotonic() - cache_mod.RESYNC_SECONDS - 1
    a.put("aa/1.jpg", b"a" * 150)
    assert _disk_bytes(tmp_path) <= 300
