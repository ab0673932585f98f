"""End to end on S3: scan (header-only), caches written to and read from S3, batches,
incremental rescans, all through databackend's config loading and factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    OPTIONS,
    encoded,
    entries,
    factory,
    image_bytes,
    listing,
    take,
    upload,
)

import databackend_aws
from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.imageprobe import HEADER_BYTES
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_aws import S3Backend


@pytest.fixture
def loaded(make_backend: Callable[..., S3Backend]) -> S3Backend:
    """The test bucket with the two datasets uploaded (an unprefixed backend on it)."""
    backend = make_backend(dataset_id="uploader")
    upload(backend)
    return backend


def test_scan_cache_and_batches(loaded: S3Backend, bucket: str, s3_endpoint: str,
                                s3_admin: Any, tmp_path: Path) -> None:
    """Build from an aws config: scan both datasets, fill both caches on S3, serve batches."""
    f = factory(entries(bucket, s3_endpoint), tmp_path / "out").build()
    scans = f.metrics.counters["scan"]
    assert scans["photos"]["kept"] == 12 and scans["art"]["kept"] == 6
    assert scans["photos"]["skipped"] == {"corrupt": 1}
    assert encoded(f) == {"latents": (0, 18), "text": (0, 19)}  # 18 captions + ""
    latents = listing(s3_admin, bucket, "cache/vae/")
    texts = listing(s3_admin, bucket, "cache/text/")
    assert len(latents) == 18 and len(texts) == 19
    batches = take(f, 200)
    assert {b.dataset_id for b in batches} == {"photos", "art"}
    assert all(b.latents.shape[0] == 2 for b in batches)
    stats = f.cache_stats()
    assert stats["latents:photos"]["misses"] == stats["text:text"]["misses"] == 0
    assert stats["latents:photos"]["hits"] > 0
    assert all(isinstance(s, S3Backend) for s in f.storages.values())


def test_second_build_reads_caches_from_s3(loaded: S3Backend, bucket: str, s3_endpoint: str,
                                           tmp_path: Path) -> None:
    """A second factory (same output dir) rescans nothing and encodes nothing."""
    config = entries(bucket, s3_endpoint)
    first = take(factory(config, tmp_path / "out").build(), 20)
    again = factory(config, tmp_path / "out").build()
    assert encoded(again) == {"latents": (18, 0), "text": (19, 0)}
    second = take(again, 20)
    assert [b.sample_ids for b in first] == [b.sample_ids for b in second]
    assert all((a.latents == b.latents).all() for a, b in zip(first, second, strict=True))


def test_header_only_scan(make_backend: Callable[..., S3Backend], bucket: str,
                          s3_endpoint: str, tmp_path: Path) -> None:
    """The scan reads a ranged header of a 2 MB image, never the whole object."""
    backend = make_backend()
    big = image_bytes(1024, 768, 1, "PNG")  # noise: ~2.3 MB, header in the first bytes
    assert len(big) > 4 * HEADER_BYTES
    backend.write("big/huge.png", big)
    backend.write("big/huge.txt", b"a big one")
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_aws]))
    options = FactoryOptions(**OPTIONS, output_dir=str(tmp_path / "out"))
    plan = load_config([{"id": "big", "type": "aws", "aws_bucket_name": bucket,
                         "aws_endpoint_url": s3_endpoint, "aws_data_prefix": "big",
                         "aws_access_key_id": "k", "aws_secret_access_key": "s3cr3t-value",
                         "caption_strategy": "textfile"}], registry, options)
    context = BuildContext(options=options, registry=registry)
    dataset = plan.datasets[0]
    storage = build_storage(dataset, context)
    assert isinstance(storage, S3Backend)
    report = build_metadata(dataset, storage, context).scan(progress=False)
    assert report.counts["kept"] == 1 and report.counts["probed"] == 1
    assert 0 < storage.metrics.snapshot()["bytes_read"] <= HEADER_BYTES + len(b"a big one")
    storage.close()


def test_rescan_after_adding_changing_and_deleting(loaded: S3Backend, bucket: str,
                                                   s3_endpoint: str, tmp_path: Path) -> None:
    """Incremental rescans: ETag/size/mtime decide; only new or changed objects are read."""
    f = factory(entries(bucket, s3_endpoint), tmp_path / "out").build()
    meta, storage = f.metadata["photos"], f.storages["photos"]
    assert isinstance(storage, S3Backend)
    loaded.write_many([("data/photos/new_a.jpg", image_bytes(96, 64, 100, "JPEG")),
                       ("data/photos/new_a.txt", b"new a"),
                       ("data/photos/new_b.png", image_bytes(64, 96, 101, "PNG")),
                       ("data/photos/new_b.txt", b"new b")])
    loaded.write("data/photos/img_001.jpg", image_bytes(128, 64, 102, "JPEG"))  # changed
    loaded.delete("data/photos/img_002.jpg")
    loaded.delete("data/photos/img_002.txt")
    before = storage.metrics.snapshot().get("requests.GetObject", 0)
    report = meta.scan(progress=False)
    counts = report.counts
    assert (counts["new"], counts["changed"], counts["removed"]) == (2, 1, 1)
    assert counts["unchanged"] == 11 and counts["probed"] == 3 and counts["kept"] == 13
    # three header reads and three caption reads; nothing unchanged is fetched
    assert storage.metrics.snapshot()["requests.GetObject"] - before == 3 + 3
    again = meta.scan(progress=False)
    assert again.counts["probed"] == 0 and again.counts["unchanged"] == 14
    rebuilt = factory(entries(bucket, s3_endpoint), tmp_path / "out").build()
    assert encoded(rebuilt) == {"latents": (16, 3), "text": (18, 2)}
    assert len(rebuilt.metadata["photos"].index) == 13


def test_a_failed_scan_is_not_remembered(loaded: S3Backend, bucket: str, s3_endpoint: str,
                                          s3_admin: Any, tmp_path: Path) -> None:
    """Objects that could not be read during a scan are recorded as ``unreadable`` and read
    again by the next scan once the store serves them, although they did not change.

    Archived (GLACIER) objects answer GetObject with 403 ``InvalidObjectState``: a failure of
    those objects only, not fatal (a denied or unreachable store stops the scan instead, see
    test_aws_scan_errors.py)."""
    archived = ["data/photos/img_001.jpg", "data/photos/img_002.jpg"]
    for key in archived:
        s3_admin.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                             StorageClass="GLACIER")
    config = [{k: v for k, v in entries(bucket, s3_endpoint)[0].items()
               if k not in ("image_embeds", "text_embeds")}]  # the scan alone
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_aws]))
    options = FactoryOptions(**OPTIONS, output_dir=str(tmp_path / "out"))
    context = BuildContext(options=options, registry=registry)
    dataset = load_config(config, registry, options).datasets[0]

    def scan() -> Any:
        storage = build_storage(dataset, context)
        try:
            return build_metadata(dataset, storage, context).scan(progress=False)
        finally:
            storage.close()

    first = scan()
    assert first.counts["kept"] == 10 and first.skipped == {"corrupt": 1, "unreadable": 2}
    def stamps() -> list[tuple[Any, ...]]:
        heads = [s3_admin.head_object(Bucket=bucket, Key=k) for k in archived]
        return [(h["ContentLength"], h["LastModified"], h["ETag"]) for h in heads]

    before = stamps()
    for key in archived:
        s3_admin.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
    assert stamps() == before  # unchanged for the scan: read again because unreadable
    report = scan()
    assert report.counts["kept"] == 12, str(report.skipped)
    assert report.counts["probed"] == 2 and report.counts["changed"] == 2
    assert report.skipped == {"corrupt": 1}
