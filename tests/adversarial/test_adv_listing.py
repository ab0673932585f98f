"""Hostile dataset folders: FIFOs, sockets, device files, dangling links, symlink loops and
non-UTF-8 names are skipped and counted, never opened; the scan finishes and changes nothing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from advhelpers import dataset, image_folder, snapshot
from imagefiles import write_image

from databackend.storage.localdir import LocalDirectory


def _hostile_folder(root: Path) -> Path:
    image_folder(root, 3)
    os.mkfifo(root / "pipe.png")
    os.mkfifo(root / "sub_pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.png"))
    sock.close()
    (root / "dangling.png").symlink_to(root / "missing.png")
    (root / "self.png").symlink_to(root / "self.png")
    (root / "loopdir").mkdir()
    (root / "loopdir" / "again").symlink_to(root / "loopdir", target_is_directory=True)
    (root / "ring_a.jpg").symlink_to(root / "ring_b.jpg")
    (root / "ring_b.jpg").symlink_to(root / "ring_a.jpg")
    write_image(root / "tmp.png", 32, 32)
    os.rename(root / "tmp.png", os.fsencode(root) + b"/caf\xe9-latin1.png")
    return root


@pytest.mark.timeout(120)
def test_listing_skips_and_counts_special_entries(tmp_path: Path) -> None:
    root = _hostile_folder(tmp_path / "data")
    before = snapshot(root)
    store = LocalDirectory(root=str(root), dataset_id="ds")
    listed = sorted(info.path for info in store.list(extensions=["png", "jpg"]))
    assert listed == ["img0.png", "img1.png", "img2.png"]
    skipped = store.scan_summary()["skipped"]
    assert skipped["not a regular file"] == 4  # 2 FIFOs, a socket, a dangling link
    assert skipped["unreadable entry (Too many levels of symbolic links)"] == 3
    assert skipped["file name is not UTF-8"] == 1
    assert snapshot(root) == before


@pytest.mark.timeout(120)
def test_scan_of_a_hostile_folder_finishes(tmp_path: Path, make_context: object) -> None:
    """The whole scan (cold, then warm) finishes; FIFOs are never opened (that would block)."""
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import load_config

    root = _hostile_folder(tmp_path / "data")
    (root / "dev_null.png").symlink_to("/dev/zero")
    before = snapshot(root)
    context = make_context()  # type: ignore[operator]
    plan = load_config([dataset(root)], context.registry, context.options)
    for _ in range(2):
        storage = build_storage(plan.datasets[0], context)
        meta = build_metadata(plan.datasets[0], storage, context)
        meta.scan(progress=False)
        assert len(meta.index) == 3
        assert sum(storage.scan_summary()["skipped"].values()) == 9
    assert snapshot(root) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
def test_unreadable_folder_is_counted(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "data", 2)
    locked = root / "locked"
    locked.mkdir()
    write_image(locked / "hidden.png", 8, 8)
    locked.chmod(0)
    try:
        store = LocalDirectory(root=str(root), dataset_id="ds")
        assert len(list(store.list())) == 2
        assert store.scan_summary()["skipped"] == {"unreadable folder (PermissionError)": 1}
    finally:
        locked.chmod(0o755)
