"""Interrupted scans (killed mid-way) and scans shared between ranks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from imagefiles import write_image
from test_metadata_support import make_meta

from databackend.metadata.discovery import DiscoveryMetadataBackend
from databackend.metadata.index import DatasetIndex
from databackend.registry import PluginRegistry
from databackend.storage.localdir import LocalDirectory

TESTS = Path(__file__).parent

SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import databackend_local
    from databackend.metadata.discovery import DiscoveryMetadataBackend
    from databackend.plugins import make_plugin_manager
    from databackend.registry import PluginRegistry
    from databackend_local import LocalBackend, LocalConfig
    from test_metadata_support import RemoteLike, make_meta
    from pathlib import Path

    class Slow(RemoteLike, LocalBackend):
        def read_range(self, path, start, length):
            time.sleep(0.004)
            return super().read_range(path, start, length)

    DiscoveryMetadataBackend.checkpoint_files = 100
    DiscoveryMetadataBackend.checkpoint_interval_s = 0.1
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_local]))
    root = Path({root!r})
    storage = Slow(LocalConfig(instance_data_dir=str(root)), dataset_id="ds")
    make_meta(registry, Path({out!r}), root, storage=storage).scan(progress=False)
    print("finished")
""")


def tiny_images(root: Path, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        write_image(root / f"{i % 10}" / f"{i:05d}.png", 8 + i % 5, 8, seed=i)


def kill_at_first_checkpoint(root: Path, out: Path) -> None:
    script = SCRIPT.format(tests=str(TESTS), root=str(root), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    checkpoint = out / "cache" / "metadata" / "ds" / "checkpoint.dbi"
    deadline = time.monotonic() + 60
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_killed_first_scan_resumes(registry: PluginRegistry, tmp_path: Path) -> None:
    root, out = tmp_path / "img", tmp_path / "out"
    tiny_images(root, 1500)
    kill_at_first_checkpoint(root, out)
    store = LocalDirectory(root=str(out / "cache" / "metadata" / "ds"))
    assert not store.exists("index.dbi")  # no index rather than a broken one
    partial = DatasetIndex.load(store, "checkpoint.dbi")
    assert partial is not None and 0 < len(partial) < 1500
    meta = make_meta(registry, out, root)
    report = meta.scan(progress=False)
    assert report.counts["kept"] == 1500
    assert report.counts["probed"] <= 1500 - len(partial)  # the checkpoint was used
    assert not store.exists("checkpoint.dbi")
    fresh = make_meta(registry, tmp_path / "out2", root)
    fresh.scan(progress=False)
    assert meta.index.paths == fresh.index.paths
    assert np.array_equal(meta.index.crop, fresh.index.crop)


def test_killed_rescan_keeps_the_old_index(registry: PluginRegistry, tmp_path: Path) -> None:
    root, out = tmp_path / "img", tmp_path / "out"
    tiny_images(root, 300)
    make_meta(registry, out, root).scan(progress=False)
    tiny_images(root, 1200, start=300)
    kill_at_first_checkpoint(root, out)
    store = LocalDirectory(root=str(out / "cache" / "metadata" / "ds"))
    old = DatasetIndex.load(store, "index.dbi")
    assert old is not None and len(old) == 300  # still the complete previous index
    report = make_meta(registry, out, root).scan(progress=False)
    assert report.counts["kept"] == 1500 and report.counts["probed"] < 1200


def test_damaged_checkpoint_is_ignored(registry: PluginRegistry, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    root, out = tmp_path / "img", tmp_path / "out"
    tiny_images(root, 20)
    folder = out / "cache" / "metadata" / "ds"
    folder.mkdir(parents=True)
    (folder / "checkpoint.dbi").write_bytes(b"DBIDX\x00\x01\n garbage")
    report = make_meta(registry, out, root).scan(progress=False)
    assert report.counts["kept"] == 20 and "damaged index" in caplog.text


def test_checkpoints_during_a_normal_scan(registry: PluginRegistry, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root, out = tmp_path / "img", tmp_path / "out"
    tiny_images(root, 600)
    monkeypatch.setattr(DiscoveryMetadataBackend, "checkpoint_files", 100)
    written: list[int] = []
    original = DatasetIndex.save

    def spy(self: DatasetIndex, storage: object, key: str) -> None:
        if key == "checkpoint.dbi":
            written.append(len(self) + len(self.skipped))
        original(self, storage, key)  # type: ignore[arg-type]

    monkeypatch.setattr(DatasetIndex, "save", spy)
    report = make_meta(registry, out, root).scan(progress=False)
    assert report.counts["kept"] == 600 and len(written) >= 2 and written == sorted(written)
    assert not (out / "cache" / "metadata" / "ds" / "checkpoint.dbi").exists()


def test_two_ranks_share_a_scan(registry: PluginRegistry, tmp_path: Path) -> None:
    root = tmp_path / "img"
    tiny_images(root, 120)
    (root / "0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "shared"
    metas = [make_meta(registry, out, root) for _ in range(2)]
    for meta in metas:
        meta.rank_poll_s = 0.02
    reports: dict[int, object] = {}

    def run(rank: int) -> None:
        reports[rank] = metas[rank].scan(progress=False, rank=rank, world_size=2)

    threads = [threading.Thread(target=run, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(reports) == {0, 1}
    single = make_meta(registry, tmp_path / "single", root)
    single.scan(progress=False)
    for meta in metas:
        assert meta.index.paths == single.index.paths
        assert np.array_equal(meta.index.crop, single.index.crop)
        assert meta.index.skipped.paths == ["0/broken.png"]
    assert reports[1].source == "rank-merge"  # type: ignore[attr-defined]
    assert 50 <= reports[1].counts["probed"] <= 71  # type: ignore[attr-defined]
    names = set(os.listdir(out / "cache" / "metadata" / "ds"))
    assert names == {"index.dbi", "done.json"}  # partial files were merged and removed
