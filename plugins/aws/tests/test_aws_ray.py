"""The S3 scan on a local Ray cluster against the local S3 server: the same index as a local
scan, and the credentials in no Ray log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import aws_keys, upload

import databackend_aws
from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_aws import S3Backend

ray = pytest.importorskip("ray")

from databackend.engines.ray import use_ray  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    """A 2-CPU local cluster; yields its session folder."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    node = ray._private.worker._global_node
    yield Path(node.get_session_dir_path())
    ray.shutdown()


def _scan(bucket: str, endpoint: str, out: Path, on_ray: bool) -> Any:
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_aws]))
    options = FactoryOptions(output_dir=str(out), resolution=64, resolution_type="pixel_area",
                             aspect_bucket_alignment=16)
    plan = load_config([{"id": "photos", **aws_keys(bucket, endpoint),
                         "aws_data_prefix": "data/photos", "caption_strategy": "textfile"}],
                       registry, options)
    context = BuildContext(options=options, registry=registry)
    dataset = plan.datasets[0]
    meta = build_metadata(dataset, build_storage(dataset, context), context)
    if on_ray:
        use_ray(meta)
    meta.scan(progress=False)
    index = meta.index
    index.meta.update(generation="g", created=0.0)
    return index


def test_s3_scan_on_ray_equals_the_local_scan(cluster: Path, make_backend: Callable[...,
                                              S3Backend], bucket: str, s3_endpoint: str,
                                              tmp_path: Path) -> None:
    upload(make_backend(dataset_id="uploader"))
    local = _scan(bucket, s3_endpoint, tmp_path / "local", on_ray=False)
    remote = _scan(bucket, s3_endpoint, tmp_path / "ray", on_ray=True)
    assert len(local) == 12 and local.skipped.counts() == {"corrupt": 1}
    assert remote.to_bytes() == local.to_bytes()
    logs = [p for p in (cluster / "logs").rglob("*") if p.is_file()]
    assert logs  # Ray wrote its logs ...
    for path in logs:  # ... and no credential is in any of them
        text = path.read_bytes()
        assert b"e2e-secret" not in text, path


def _objects(admin: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` (key relative to it) with its bytes."""
    pages = admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {k[len(prefix):]: admin.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_s3_cache_on_ray_writes_the_local_entries(cluster: Path, make_backend: Callable[...,
                                                  S3Backend], bucket: str, s3_endpoint: str,
                                                  s3_admin: Any, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``databackend cache --engine ray``: images read from S3 by the decode actors, latents
    and text embeddings written to S3, the same objects as a local run, no key in Ray's logs."""
    import json

    from e2e_support import entries

    from databackend.cli import main

    upload(make_backend(dataset_id="uploader"))
    options = ["--option", "resolution=64", "--option", "resolution_type=pixel_area",
               "--option", "aspect_bucket_alignment=16", "--no-progress"]
    for name, engine in (("local", []), ("ray", ["--engine", "ray"])):
        config = tmp_path / f"{name}.json"
        config.write_text(json.dumps(entries(bucket, s3_endpoint, cache=f"cache-{name}")))
        out = ["--option", f"output_dir={tmp_path / name}"]
        assert main(["cache", str(config), *out, *options, *engine]) == 0
    printed = capsys.readouterr().out
    local, remote = (_objects(s3_admin, bucket, f"cache-{n}/") for n in ("local", "ray"))
    assert len(local) > 18 and remote == local
    assert printed.count("photos: 12 entries, 0 already cached, 12 encoded") == 2
    assert printed.count("photos: ") == 4 and "images/s" in printed.rpartition("latents")[2]
    logs = [p for p in (cluster / "logs").rglob("*") if p.is_file()]
    for path in logs:
        assert b"e2e-secret" not in path.read_bytes(), path
