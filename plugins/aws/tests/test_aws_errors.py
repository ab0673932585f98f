"""Clear errors: missing bucket, access denied, unreachable endpoint, throttling, not found.

Each names the dataset id, the bucket and the endpoint, and is raised once: non-retryable
errors make one request, connection errors make ``aws_max_attempts``, and requests queued
behind a fatal error fail at once without touching the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from databackend.errors import StorageError
from databackend_aws import S3Backend, S3StorageError
from databackend_aws.errors import Breaker
from databackend_aws.faultproxy import FaultPlan, FaultProxy


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the moto server (no faults until a test sets a plan)."""
    with FaultProxy(s3_endpoint.removeprefix("http://")) as running:
        yield running


def _names_location(err: BaseException, dataset: str, bucket: str, endpoint: str) -> None:
    text = str(err)
    assert f"dataset {dataset!r}" in text
    assert bucket in text and endpoint in text


def test_missing_bucket_is_one_request_and_one_clear_error(
        make_backend: Callable[..., S3Backend], s3_endpoint: str) -> None:
    """NoSuchBucket is not retried; later calls and whole batches fail fast, offline."""
    backend = make_backend(dataset_id="cats", aws_bucket_name="no-such-bucket-here")
    with pytest.raises(S3StorageError) as info:
        list(backend.list())
    err = info.value
    assert err.kind == "no_bucket" and isinstance(err, StorageError)
    _names_location(err, "cats", "no-such-bucket-here", s3_endpoint)
    assert "does not exist" in str(err)
    assert err.__cause__ is None and err.__suppress_context__
    assert backend.metrics.snapshot()["requests"] == 1
    results = backend.read_many([f"{i}.jpg" for i in range(50)])
    assert all(isinstance(r, S3StorageError) and r.kind == "no_bucket" for r in results)
    assert backend.metrics.snapshot()["requests"] == 1


def test_bucket_deleted_while_running(make_backend: Callable[..., S3Backend], s3_admin: Any,
                                      bucket: str) -> None:
    """A bucket that disappears later still gives the no-bucket error (from GetObject)."""
    backend = make_backend(dataset_id="dogs")
    backend.write("a.jpg", b"1")
    backend.delete("a.jpg")
    s3_admin.delete_bucket(Bucket=bucket)
    with pytest.raises(S3StorageError, match="does not exist") as info:
        backend.read("a.jpg")
    assert info.value.kind == "no_bucket"


def test_access_denied(make_backend: Callable[..., S3Backend], proxy: FaultProxy,
                       bucket: str) -> None:
    """403 names dataset, bucket and endpoint, is not retried, and fails its op fast."""
    backend = make_backend(dataset_id="secret-set", aws_endpoint_url=proxy.url)
    backend.write("private/a.jpg", b"1")
    backend.write("public/b.jpg", b"2")
    proxy.plan = FaultPlan(deny_prefixes=(f"/{bucket}/private/",))
    before = backend.metrics.snapshot()["requests"]
    with pytest.raises(S3StorageError) as info:
        backend.read("private/a.jpg")
    err = info.value
    assert err.kind == "access_denied" and err.status == 403
    _names_location(err, "secret-set", bucket, proxy.url)
    assert "access denied" in str(err)
    assert backend.metrics.snapshot()["requests"] - before == 1
    assert proxy.stats()["denied"] == 1
    # Other reads fail fast (no request) for the breaker window; writes are unaffected.
    with pytest.raises(S3StorageError, match="access denied"):
        backend.read("public/b.jpg")
    assert proxy.stats()["denied"] == 1
    backend.write("public/c.jpg", b"3")


def test_listing_denied(make_backend: Callable[..., S3Backend], proxy: FaultProxy,
                        bucket: str) -> None:
    """A denied ListObjectsV2 (every path under the bucket) is one clear error."""
    proxy.plan = FaultPlan(deny_prefixes=(f"/{bucket}?list-type", f"/{bucket}?delimiter",
                                          f"/{bucket}?prefix"))
    backend = make_backend(dataset_id="ls", aws_endpoint_url=proxy.url)
    with pytest.raises(S3StorageError, match="access denied") as info:
        list(backend.list())
    _names_location(info.value, "ls", bucket, proxy.url)


def test_unreachable_endpoint_limited_retries(make_backend: Callable[..., S3Backend],
                                              closed_port: int, bucket: str) -> None:
    """Connection refused: ``aws_max_attempts`` tries, one clear error, then fail fast."""
    endpoint = f"http://127.0.0.1:{closed_port}"
    backend = make_backend(dataset_id="remote", aws_endpoint_url=endpoint,
                           aws_max_attempts=2, aws_connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(S3StorageError) as info:
        backend.read("x.jpg")
    err = info.value
    assert err.kind == "unreachable"
    _names_location(err, "remote", bucket, endpoint)
    assert "cannot reach" in str(err) and "after 2 attempts" in str(err)
    assert backend.metrics.snapshot()["requests"] == 2
    assert time.monotonic() - started < 10
    results = backend.read_many(["a", "b", "c"])
    assert all(isinstance(r, S3StorageError) and r.kind == "unreachable" for r in results)
    assert backend.metrics.snapshot()["requests"] == 2


def test_breaker_window_expires() -> None:
    """A tripped error is forgotten after its window, so a recovered store is used again."""
    breaker = Breaker(window=0.05)
    breaker.record(S3StorageError("gone", kind="no_bucket"), "read")
    with pytest.raises(S3StorageError, match="gone"):
        breaker.check("write")
    time.sleep(0.06)
    breaker.check("write")
    breaker.record(S3StorageError("no", kind="access_denied"), "read")
    breaker.check("write")
    with pytest.raises(S3StorageError):
        breaker.check("read")
    breaker.record(S3StorageError("transient", kind="server"), "read")


def test_throttling_retries_with_backoff_then_one_error(
        make_backend: Callable[..., S3Backend], proxy: FaultProxy) -> None:
    """Persistent SlowDown: exactly ``aws_max_attempts`` requests, then a throttled error."""
    backend = make_backend(dataset_id="busy", aws_endpoint_url=proxy.url, aws_max_attempts=3)
    backend.write("a.jpg", b"1")
    proxy.plan = FaultPlan(rate=1.0, kinds=("slowdown",), max_faults_per_request=99)
    before = backend.metrics.snapshot()["requests"]
    with pytest.raises(S3StorageError) as info:
        backend.read("a.jpg")
    assert info.value.kind == "throttled" and info.value.code == "SlowDown"
    assert "after 3 attempts" in str(info.value)
    assert backend.metrics.snapshot()["requests"] - before == 3


def test_transient_faults_are_retried(make_backend: Callable[..., S3Backend],
                                      proxy: FaultProxy) -> None:
    """Two faults per request (every kind) are absorbed by three attempts."""
    backend = make_backend(aws_endpoint_url=proxy.url, aws_max_attempts=3)
    backend.write("t.bin", b"y" * 5000)
    for kind in ("500", "slowdown", "503", "drop", "drop_after", "truncate"):
        proxy.plan = FaultPlan(rate=1.0, kinds=(kind,), max_faults_per_request=2)
        assert backend.read("t.bin") == b"y" * 5000, kind
        assert backend.read_range("t.bin", 10, 100) == b"y" * 100, kind
        backend.write(f"w-{kind}.bin", kind.encode())
        proxy.plan = FaultPlan()
        assert backend.read(f"w-{kind}.bin") == kind.encode()
    assert backend.metrics.snapshot().get("stream_retries", 0) >= 2


def test_truncated_bodies_past_the_budget_raise(make_backend: Callable[..., S3Backend],
                                                proxy: FaultProxy) -> None:
    """A body that always breaks off ends in one StorageError, not a hang or partial data."""
    backend = make_backend(dataset_id="cut", aws_endpoint_url=proxy.url, aws_max_attempts=2)
    backend.write("t.bin", b"z" * 5000)
    proxy.plan = FaultPlan(rate=1.0, kinds=("truncate",), max_faults_per_request=99)
    with pytest.raises(S3StorageError) as info:
        backend.read("t.bin")
    assert info.value.kind == "connection" and "dataset 'cut'" in str(info.value)


def test_missing_key_is_file_not_found(make_backend: Callable[..., S3Backend],
                                       bucket: str) -> None:
    """A missing object is FileNotFoundError naming the dataset and the s3:// key."""
    backend = make_backend(dataset_id="ds1", aws_data_prefix="p")
    with pytest.raises(FileNotFoundError) as info:
        backend.read("x/y.jpg")
    assert f"s3://{bucket}/p/x/y.jpg" in str(info.value) and "'ds1'" in str(info.value)
    with pytest.raises(FileNotFoundError):
        backend.stat("x/y.jpg")
    assert not backend.exists("x/y.jpg")


def test_invalid_config_is_rejected_at_construction(
        aws_config: Callable[..., Any]) -> None:
    """Problems found by AwsConfig.problems() stop the backend from being built."""
    with pytest.raises(ValueError, match="aws_retry_mode"):
        S3Backend(aws_config(aws_retry_mode="bogus"), dataset_id="bad")
