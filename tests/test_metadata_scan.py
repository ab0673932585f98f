"""Discovery scans over real files: sizes, buckets, skipped files, rescans, settings changes."""

from __future__ import annotations

import os
import random
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from imagefiles import write_image
from test_metadata_support import files_under, make_meta, remote_storage

from databackend.geometry import compute_geometry
from databackend.registry import PluginRegistry

MakeImages = Callable[..., Path]
SPECS = [("a/wide.jpg", 640, 320), ("a/tall.png", 300, 600), ("b/square.jpg", 400, 400),
         ("b/c/land.webp", 800, 600), ("b/c/port.jpg", 480, 640), ("d.jpg", 641, 320)]


def test_sizes_after_exif_orientation(registry: PluginRegistry, tmp_path: Path) -> None:
    root = tmp_path / "images"
    write_image(root / "rot6.jpg", 300, 200, exif_orientation=6)
    write_image(root / "rot3.jpg", 300, 200, exif_orientation=3)
    write_image(root / "rot8.png", 120, 90, exif_orientation=8)
    meta = make_meta(registry, tmp_path / "out", root)
    meta.scan(progress=False)
    idx = meta.index
    sizes = {p: tuple(idx.original[i]) for i, p in enumerate(idx.paths)}
    assert sizes == {"rot3.jpg": (300, 200), "rot6.jpg": (200, 300), "rot8.png": (90, 120)}
    for i in range(len(idx)):
        image = meta.load_image(i)
        assert image.mode == "RGB" and image.size == tuple(idx.original[i])


def test_geometry_and_buckets(registry: PluginRegistry, tmp_path: Path,
                              make_images: MakeImages) -> None:
    root = make_images(SPECS)
    meta = make_meta(registry, tmp_path / "out", root, resolution=256, resolution_type="pixel",
                     crop=True, crop_style="random", crop_aspect="preserve",
                     options={"seed": 5})
    report = meta.scan(progress=False)
    idx = meta.index
    assert idx.paths == sorted(p for p, _, _ in SPECS)
    for i, path in enumerate(idx.paths):
        w, h = next((w, h) for p, w, h in SPECS if p == path)
        assert idx.geometry(i) == compute_geometry(w, h, meta.params, seed=5, key=path)
    buckets = idx.buckets()
    assert list(buckets) == sorted(buckets)
    for target, members in buckets.items():
        assert list(members) == sorted(members)
        assert all(tuple(idx.target[m]) == target for m in members)
    assert sum(map(len, buckets.values())) == len(idx) == report.counts["kept"] == 6
    assert {tuple(r.target) for r in report.buckets} == set(buckets)
    assert idx.captions_of(idx.position("a/wide.jpg") or 0) == ("wide",)  # filename strategy


def _write_problems(root: Path) -> None:
    write_image(root / "good.jpg", 320, 320)
    write_image(root / "small.jpg", 40, 40)
    write_image(root / "banner.png", 900, 100)
    (root / "empty.jpg").write_bytes(b"")
    whole = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(whole[:30])
    (root / "notes.png").write_text("this is text, not a PNG\n")


def test_every_skip_reason_is_counted_and_nothing_deleted(registry: PluginRegistry,
                                                          tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_problems(root)
    before = files_under(root)
    meta = make_meta(registry, tmp_path / "out", root, minimum_image_size=64,
                     resolution=256, resolution_type="pixel", maximum_aspect_ratio=4.0)
    report = meta.scan(progress=False)
    assert report.skipped == {"too_small": 1, "aspect_out_of_range": 1, "corrupt": 1,
                              "not_an_image": 2}  # zero bytes is "not an image" for the probe
    assert report.examples["corrupt"] == ["truncated.jpg"]
    assert report.examples["not_an_image"] == ["empty.jpg", "notes.png"]
    assert report.counts["kept"] == 1 and meta.index.paths == ["good.jpg"]
    assert report.counts["deleted"] == 0 and files_under(root) == before
    text = report.format_table()
    assert "skipped corrupt: 1" in text and "skipped not_an_image: 2" in text


def test_unreadable_permissions(registry: PluginRegistry, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A file without read permission is skipped as ``unreadable`` and kept on disk. Root reads
    whatever the mode says (as in CI), so there the kernel's refusal is stood in for by an
    ``os.open`` that raises the same ``PermissionError`` for that one file."""
    root = tmp_path / "images"
    write_image(root / "ok.jpg", 64, 64)
    write_image(root / "locked.jpg", 64, 64)
    (root / "locked.jpg").chmod(0)
    if os.geteuid() == 0:
        real_open = os.open

        def refusing_open(path: str, flags: int, *args: int) -> int:
            if str(path).endswith("locked.jpg"):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", refusing_open)
    report = make_meta(registry, tmp_path / "out", root).scan(progress=False)
    assert report.skipped == {"unreadable": 1} and report.counts["kept"] == 1
    assert (root / "locked.jpg").exists()


def test_unreadable_through_storage(registry: PluginRegistry, tmp_path: Path) -> None:
    """A storage that refuses a read (permissions, network) gives ``unreadable``."""
    root = tmp_path / "images"
    write_image(root / "ok.jpg", 64, 64)
    write_image(root / "locked.jpg", 64, 64)
    meta = make_meta(registry, tmp_path / "out", root, storage=remote_storage(root))
    report = meta.scan(progress=False)
    assert report.skipped == {"unreadable": 1} and report.examples["unreadable"] == ["locked.jpg"]
    assert meta.index.paths == ["ok.jpg"]


def test_file_gone_before_its_read_is_unreadable(registry: PluginRegistry,
                                                 tmp_path: Path) -> None:
    """A local file listed, then gone (or refused) when its header is read: ``unreadable``."""
    from databackend.storage.base import FileInfo
    from databackend_local import LocalBackend, LocalConfig

    class Vanishing(LocalBackend):
        def list(self, prefix: str = "", *, extensions: object = None) -> Iterator[FileInfo]:
            yield from super().list(prefix, extensions=extensions)  # type: ignore[arg-type]
            yield FileInfo("ghost.jpg", 1234, 1.0)

    root = tmp_path / "images"
    write_image(root / "ok.jpg", 64, 64)
    storage = Vanishing(LocalConfig(instance_data_dir=str(root)), dataset_id="ds")
    report = make_meta(registry, tmp_path / "out", root, storage=storage).scan(progress=False)
    assert report.skipped == {"unreadable": 1} and report.counts["kept"] == 1


def test_delete_problematic_images(registry: PluginRegistry, tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_problems(root)
    meta = make_meta(registry, tmp_path / "out", root, minimum_image_size=64,
                     resolution=256, resolution_type="pixel", delete_problematic_images=True)
    report = meta.scan(progress=False)
    assert report.deleted == {"corrupt": 1, "not_an_image": 2}
    assert report.counts["deleted"] == 3
    assert files_under(root) == {"good.jpg", "small.jpg", "banner.png"}
    assert report.skipped == {"too_small": 1}  # kept on disk, still counted


def test_delete_unwanted_images(registry: PluginRegistry, tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_problems(root)
    meta = make_meta(registry, tmp_path / "out", root, minimum_image_size=64,
                     resolution=256, resolution_type="pixel", maximum_aspect_ratio=4.0,
                     delete_unwanted_images=True)
    report = meta.scan(progress=False)
    assert report.deleted == {"too_small": 1, "aspect_out_of_range": 1}
    assert "small.jpg" not in files_under(root) and "empty.jpg" in files_under(root)


def _bump(path: Path, width: int, height: int) -> None:
    write_image(path, width, height, seed=9)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_incremental_rescan(registry: PluginRegistry, tmp_path: Path,
                            make_images: MakeImages) -> None:
    root = make_images(SPECS)
    (root / "junk.jpg").write_bytes(b"nope")
    out = tmp_path / "out"
    first = make_meta(registry, out, root).scan(progress=False)
    assert first.counts["probed"] == 7 and first.counts["new"] == 7
    (root / "a" / "wide.jpg").unlink()
    _bump(root / "b" / "square.jpg", 500, 250)
    write_image(root / "e" / "new1.jpg", 100, 200)
    write_image(root / "e" / "new2.png", 200, 100)
    meta = make_meta(registry, out, root)
    second = meta.scan(progress=False)
    c = second.counts
    assert (c["probed"], c["new"], c["changed"], c["removed"], c["unchanged"]) == (3, 2, 1, 1, 5)
    assert second.skipped == {"not_an_image": 1}  # remembered, not probed again
    idx = meta.index
    assert "a/wide.jpg" not in idx.paths and "e/new1.jpg" in idx.paths
    assert tuple(idx.original[idx.position("b/square.jpg")]) == (500, 250)
    index_file = out / "cache" / "metadata" / "ds" / "index.dbi"
    stamp = index_file.stat().st_mtime_ns
    third = make_meta(registry, out, root).scan(progress=False)
    assert third.counts["probed"] == 0 and third.counts["unchanged"] == 8
    assert index_file.stat().st_mtime_ns == stamp  # nothing changed: not rewritten


def test_geometry_change_recomputes_without_probing(registry: PluginRegistry, tmp_path: Path,
                                                    make_images: MakeImages) -> None:
    root = make_images(SPECS)
    out = tmp_path / "out"
    base = {"resolution": 256, "resolution_type": "pixel", "minimum_image_size": 450}
    first = make_meta(registry, out, root, **base).scan(progress=False)
    assert first.counts["kept"] == 2 and first.skipped == {"too_small": 4}
    meta = make_meta(registry, out, root, **{**base, "minimum_image_size": 100,
                                               "resolution": 128})
    second = meta.scan(progress=False)
    assert second.counts["probed"] == 0 and second.counts["rederived"] == 6
    assert second.counts["kept"] == 6 and second.params_fingerprint != first.params_fingerprint
    for i, path in enumerate(meta.index.paths):
        w, h = meta.index.original[i]
        assert meta.index.geometry(i) == compute_geometry(int(w), int(h), meta.params, key=path)


def test_seed_change_redraws_random_crops(registry: PluginRegistry, tmp_path: Path,
                                          make_images: MakeImages) -> None:
    root = make_images(SPECS)
    out = tmp_path / "out"
    keys = {"resolution": 128, "resolution_type": "pixel", "crop": True}
    make_meta(registry, out, root, options={"seed": 1}, **keys).scan(progress=False)
    meta = make_meta(registry, out, root, options={"seed": 2}, **keys)
    report = meta.scan(progress=False)
    assert report.counts["probed"] == 0 and report.counts["rederived"] == 6
    i = meta.index.position("b/c/land.webp")
    assert i is not None
    assert meta.index.geometry(i) == compute_geometry(800, 600, meta.params, seed=2,
                                                       key="b/c/land.webp")


def test_max_num_samples_is_a_deterministic_subset(registry: PluginRegistry, tmp_path: Path,
                                                   make_images: MakeImages) -> None:
    specs = [(f"img_{i:02d}.png", 32 + i, 32) for i in range(20)]
    root = make_images(specs)
    order = sorted(p for p, _, _ in specs)
    random.Random("ds").shuffle(order)
    expected = sorted(order[:7])
    for out in ("out1", "out2"):
        meta = make_meta(registry, tmp_path / out, root, max_num_samples=7)
        report = meta.scan(progress=False)
        assert meta.index.paths == expected
        assert report.counts["not_selected"] == 13 and report.counts["listed"] == 20


def test_max_num_samples_before_filtering(registry: PluginRegistry, tmp_path: Path) -> None:
    root = tmp_path / "images"
    for i in range(10):
        write_image(root / f"{i}.png", 16 if i % 2 else 64, 64)
    meta = make_meta(registry, tmp_path / "out", root, max_num_samples=6,
                     minimum_image_size=32, resolution=64, resolution_type="pixel")
    report = meta.scan(progress=False)
    assert report.counts["kept"] + report.counts["skipped"] == 6


def test_read_only_dataset_folder(registry: PluginRegistry, tmp_path: Path,
                                  make_images: MakeImages) -> None:
    root = make_images(SPECS)
    before = files_under(root)
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        meta = make_meta(registry, tmp_path / "out", root)
        meta.scan(progress=False)
    finally:
        for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)
    assert files_under(root) == before  # nothing written into the dataset
    assert (tmp_path / "out" / "cache" / "metadata" / "ds" / "index.dbi").is_file()
    assert len(meta.index) == 6


def test_skip_file_discovery_uses_the_stored_index(registry: PluginRegistry, tmp_path: Path,
                                                   make_images: MakeImages) -> None:
    root = make_images(SPECS)
    out = tmp_path / "out"
    make_meta(registry, out, root).scan(progress=False)
    write_image(root / "later.jpg", 64, 64)
    meta = make_meta(registry, out, root, skip_file_discovery="vae metadata")
    report = meta.scan(progress=False)
    assert report.source == "persisted" and report.counts["probed"] == 0
    assert "later.jpg" not in meta.index.paths and len(meta.index) == 6


def test_skip_file_discovery_without_index_scans(registry: PluginRegistry, tmp_path: Path,
                                                 make_images: MakeImages) -> None:
    root = make_images(SPECS[:2])
    report = make_meta(registry, tmp_path / "out", root,
                       skip_file_discovery="aspect").scan(progress=False)
    assert report.source == "scan" and report.counts["kept"] == 2


def test_preserve_data_backend_cache_keeps_the_listing(registry: PluginRegistry,
                                                       tmp_path: Path,
                                                       make_images: MakeImages) -> None:
    root = make_images(SPECS)
    out = tmp_path / "out"
    make_meta(registry, out, root).scan(progress=False)
    write_image(root / "later.jpg", 64, 64)
    meta = make_meta(registry, out, root, preserve_data_backend_cache=True, resolution=128,
                     resolution_type="pixel")
    report = meta.scan(progress=False)
    assert report.counts["listed"] == 6 and "later.jpg" not in meta.index.paths
    assert report.counts["rederived"] == 6  # new bucketing still applies


@pytest.mark.parametrize("start_method", [None, "forkserver"])
def test_process_pool_matches_in_process(registry: PluginRegistry, tmp_path: Path,
                                         start_method: str | None) -> None:
    root = tmp_path / "images"
    rng = random.Random(3)
    for i in range(1100):
        write_image(root / f"{i % 7}" / f"{i:04d}.{'png' if i % 3 else 'jpg'}",
                    rng.randrange(8, 64), rng.randrange(8, 64), seed=i)
    (root / "0" / "bad.jpg").write_bytes(b"\xff\xd8\xff")
    serial = make_meta(registry, tmp_path / "out1", root, resolution=64, resolution_type="pixel")
    pooled = make_meta(registry, tmp_path / "out2", root, resolution=64, resolution_type="pixel",
                       options={"scan_workers": 2})
    pooled.start_method = start_method
    a, b = serial.scan(progress=False), pooled.scan(progress=False)
    assert a.counts == b.counts and a.counts["probed"] == 1101
    assert serial.index.paths == pooled.index.paths
    for name in ("original", "target", "intermediary", "crop", "downsample", "aspect"):
        assert np.array_equal(getattr(serial.index, name), getattr(pooled.index, name)), name


def test_remote_storage_reads_headers_by_range(registry: PluginRegistry, tmp_path: Path) -> None:
    """Without local paths the scan uses read_range, growing the read for long headers."""
    root = tmp_path / "images"
    from PIL import Image

    root.mkdir()
    Image.new("RGB", (320, 240), (9, 9, 9)).save(root / "icc.jpg",
                                                  icc_profile=os.urandom(150_000))
    write_image(root / "small.png", 50, 70, exif_orientation=6)
    storage = remote_storage(root)
    local = make_meta(registry, tmp_path / "out1", root)
    remote = make_meta(registry, tmp_path / "out2", root, storage=storage)
    local.scan(progress=False)
    remote.scan(progress=False)
    assert remote.index.paths == local.index.paths == ["icc.jpg", "small.png"]
    assert np.array_equal(remote.index.original, local.index.original)
    assert type(storage).reads >= 3  # the 150 kB header needed a second read
    assert remote.load_image(0).size == (320, 240)


def test_index_property_loads_the_stored_index(registry: PluginRegistry, tmp_path: Path,
                                               make_images: MakeImages) -> None:
    root = make_images(SPECS)
    out = tmp_path / "out"
    fresh = make_meta(registry, out, root)
    with pytest.raises(Exception, match="no index yet"):
        _ = fresh.index
    fresh.scan(progress=False)
    again = make_meta(registry, out, root)
    assert again.index.paths == fresh.index.paths
    assert again.sample_key(0).startswith(f"{again.index.paths[0]}|")
    other = make_meta(registry, out, root, resolution=128, resolution_type="pixel")
    with pytest.raises(Exception, match="rescan"):
        _ = other.index


def test_index_lives_outside_the_dataset(registry: PluginRegistry, tmp_path: Path,
                                         make_images: MakeImages) -> None:
    root = make_images(SPECS[:1])
    meta = make_meta(registry, tmp_path / "out", root, cache_file_suffix="my/suffix")
    meta.scan(progress=False)
    assert files_under(root) == {"a/wide.jpg"}
    assert (tmp_path / "out" / "cache" / "metadata" / "my_suffix" / "index.dbi").is_file()
    shutil.rmtree(tmp_path / "out")
    assert make_meta(registry, tmp_path / "out", root).scan(progress=False).counts["probed"] == 1


def test_local_probe_reads_past_a_large_header(tmp_path: Path) -> None:
    """A JPEG whose frame header sits behind 40 KB of comment is sized right: the local probe
    reads a small first block and grows it as the parser asks."""
    from PIL import Image

    from databackend.metadata.scanner import LOCAL_FIRST_READ, probe_local

    path = tmp_path / "big-header.jpg"
    Image.new("RGB", (321, 123), (9, 9, 9)).save(path, comment=b"c" * 40_000)
    assert path.read_bytes().find(b"\xff\xc0") > 4 * LOCAL_FIRST_READ
    assert probe_local(str(path), path.stat().st_size) == (None, 321, 123)
    assert probe_local(str(path)) == (None, 321, 123)  # size unknown


@pytest.mark.parametrize("workers", [1, 2])
def test_cold_scan_records_real_sizes_and_mtimes(registry: PluginRegistry, tmp_path: Path,
                                                 workers: int) -> None:
    """A cold local scan lists names only and stats where it opens each file; the index still
    holds every file's real size and mtime, so the next scan finds all of them unchanged."""
    root = tmp_path / "images"
    for i in range(1100):  # above the in-process limit, so workers=2 uses the process pool
        write_image(root / f"{i % 7}" / f"{i:05d}.png", 16 + i % 9, 16, seed=i)
    (root / "0" / "bad.png").write_bytes(b"not a png")
    options = {"scan_workers": workers}
    meta = make_meta(registry, tmp_path / "out", root, options=options)
    report = meta.scan(progress=False)
    assert report.counts["kept"] == 1100 and report.skipped == {"not_an_image": 1}
    index = meta.index
    for k in range(0, len(index), 97):
        st = os.stat(root / index.paths[k])
        assert (int(index.file_size[k]), float(index.mtime[k])) == (st.st_size, st.st_mtime)
    again = make_meta(registry, tmp_path / "out", root, options=options).scan(progress=False)
    assert again.counts["probed"] == 0 and again.counts["unchanged"] == 1101


def test_geometry_for_one_image_matches_the_scan(registry: PluginRegistry,
                                                 tmp_path: Path) -> None:
    """``geometry_for(W, H, dataset, options, key=path)`` gives what the scan stored, random
    crops included, so one image's placement can be checked in isolation."""
    from databackend.metadata.params import geometry_for

    root = tmp_path / "images"
    for i, (w, h) in enumerate([(640, 480), (480, 640), (1000, 333), (512, 512)]):
        write_image(root / f"{i}.png", w, h, seed=i)
    options = {"seed": 7}
    meta = make_meta(registry, tmp_path / "out", root, options=options, crop=True,
                     crop_style="random", crop_aspect="preserve", resolution=256,
                     resolution_type="pixel")
    meta.scan(progress=False)
    index = meta.index
    assert len(index) == 4
    for i in range(len(index)):
        w, h = index.geometry(i).original_size
        got = geometry_for(w, h, meta.dataset, meta.context.options, key=index.paths[i])
        assert got == index.geometry(i)
