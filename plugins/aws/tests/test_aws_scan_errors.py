"""A scan on a store that denies reads or cannot be reached stops with the backend's one clear
error (dataset, bucket, endpoint; never a secret) instead of recording every file as
``unreadable``; a later scan, once the store is back, picks up where things were."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_values import KEY_ID, SECRET, TOKEN
from e2e_support import OPTIONS, entries, upload

import databackend_aws
from databackend.build import build_metadata, build_storage
from databackend.cli import main
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.errors import StorageError
from databackend.metadata.report import ScanReport
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_aws import S3Backend
from databackend_aws.errors import FATAL_KINDS, Breaker, S3StorageError
from databackend_aws.faultproxy import FaultPlan, FaultProxy

SECRETS = (KEY_ID, SECRET, TOKEN)


@pytest.fixture
def loaded(make_backend: Callable[..., S3Backend]) -> S3Backend:
    """The test bucket with the end-to-end datasets uploaded (12 photos and a broken file)."""
    backend = make_backend(dataset_id="uploader")
    upload(backend)
    return backend


def photos(bucket: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    """The ``photos`` dataset entry (scan only) with the distinctive test credentials."""
    entry = entries(bucket, endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                    aws_session_token=TOKEN, aws_max_attempts=2, **extra)[0]
    return {k: v for k, v in entry.items() if k != "image_embeds"}


def scan(entry: dict[str, Any], out: Path) -> ScanReport:
    """Scan one dataset entry through config loading and the build functions."""
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_aws]))
    options = FactoryOptions(**OPTIONS, output_dir=str(out))
    context = BuildContext(options=options, registry=registry)
    dataset = load_config([entry], registry, options).datasets[0]
    storage = build_storage(dataset, context)
    try:
        return build_metadata(dataset, storage, context).scan(progress=False)
    finally:
        storage.close()


def logged(text: str, caplog: pytest.LogCaptureFixture) -> int:
    """How many log records a user sees (INFO and above) contain ``text``."""
    return sum(text in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


def assert_secret_free(*texts: str) -> None:
    """None of the test credentials appears in any of ``texts``."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def archive(s3_admin: Any, bucket: str, key: str) -> None:
    """Move an object to GLACIER: GetObject answers 403 InvalidObjectState (not fatal)."""
    s3_admin.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                         StorageClass="GLACIER")


def test_fatal_kinds() -> None:
    """Storage errors are not fatal unless the backend says so; S3 marks whole-store kinds,
    also on the errors its breaker replays."""
    assert not StorageError("x").fatal and StorageError("x", fatal=True).fatal
    assert {k for k in ("no_bucket", "credentials", "access_denied", "unreachable", "server",
                        "throttled", "client", "connection", "range")
            if S3StorageError("m", kind=k).fatal} == FATAL_KINDS
    breaker = Breaker()
    breaker.record(S3StorageError("dataset 'd': access denied", kind="access_denied"), "read")
    with pytest.raises(S3StorageError) as replayed:
        breaker.check("read")
    assert replayed.value.fatal


def test_denied_reads_stop_the_scan_with_one_clear_error(
        loaded: S3Backend, bucket: str, s3_endpoint: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """GetObject denied (403): the scan raises the access-denied error after one request and
    does not log it as well; once reads are allowed the next scan keeps everything."""
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    with FaultProxy(s3_endpoint.removeprefix("http://"),
                    FaultPlan(deny_prefixes=(f"/{bucket}/data/",))) as proxy:
        with pytest.raises(S3StorageError) as caught:
            scan(photos(bucket, proxy.url), out)
        denied = proxy.stats().get("denied", 0)
        proxy.plan = FaultPlan()
        report = scan(photos(bucket, proxy.url), out)
    err = caught.value
    message = str(err)
    assert err.kind == "access_denied" and err.fatal
    assert message.startswith(f"dataset 'photos': access denied (AccessDenied) to read "
                              f"s3://{bucket}/data/photos/")
    assert f" at {proxy.url};" in message and "bucket policy" in message
    assert denied == 1  # the first denial stops the scan: no request storm
    assert logged("access denied", caplog) == 0  # raised once, not also logged
    assert_secret_free(message, repr(err), caplog.text)
    assert report.counts["kept"] == 12 and report.skipped == {"corrupt": 1}


def test_scan_command_prints_the_denial_once(
        loaded: S3Backend, bucket: str, s3_endpoint: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """``databackend scan`` on a store that denies reads: exit status 1 and the clear
    message exactly once on stderr, without credentials."""
    caplog.set_level(logging.INFO)
    with FaultProxy(s3_endpoint.removeprefix("http://"),
                    FaultPlan(deny_prefixes=(f"/{bucket}/data/",))) as proxy:
        config = tmp_path / "config.json"
        config.write_text(json.dumps([photos(bucket, proxy.url)]))
        status = main(["scan", str(config), "--no-progress",
                       "--option", f"output_dir={tmp_path / 'out'}"])
    stdout, stderr = capsys.readouterr()
    assert status == 1
    assert stderr.count("access denied") == 1, stderr
    assert f"error: dataset 'photos': access denied (AccessDenied) to read s3://{bucket}/" in stderr
    assert proxy.url in stderr
    assert logged("access denied", caplog) == 0
    assert_secret_free(stdout, stderr, caplog.text)


def test_unreachable_endpoint_stops_the_scan(
        loaded: S3Backend, bucket: str, s3_endpoint: str, s3_admin: Any, closed_port: int,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The endpoint is gone when a scan reads headers (the stored listing is reused, so the
    header read is its first request): the scan raises the unreachable error once, keeps the
    stored index, and a scan on the working endpoint reads the unreadable object again."""
    out, key = tmp_path / "out", "data/photos/img_001.jpg"
    archive(s3_admin, bucket, key)
    first = scan(photos(bucket, s3_endpoint), out)
    assert first.counts["kept"] == 11 and first.skipped == {"corrupt": 1, "unreadable": 1}
    dead = f"http://127.0.0.1:{closed_port}"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(S3StorageError) as caught:
        scan(photos(bucket, dead, preserve_data_backend_cache=True), out)
    err = caught.value
    message = str(err)
    assert err.kind == "unreachable" and err.fatal
    assert message.startswith(f"dataset 'photos': cannot reach the S3 endpoint {dead} for "
                              f"bucket {bucket!r} after 2 attempts (")
    assert logged("cannot reach", caplog) == 0
    assert_secret_free(message, repr(err), caplog.text)
    s3_admin.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
    again = scan(photos(bucket, s3_endpoint), out)
    assert again.counts["probed"] == 1 and again.counts["kept"] == 12
    assert again.skipped == {"corrupt": 1}
