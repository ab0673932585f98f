"""Secrets never appear in logs (botocore DEBUG included), reprs, errors, metrics or the CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aws_values import KEY_ID, SECRET, TOKEN

from databackend import cli
from databackend_aws import S3Backend
from databackend_aws.faultproxy import FaultPlan, FaultProxy
from databackend_aws.redact import redact

SECRETS = (KEY_ID, SECRET, TOKEN)


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    """A proxy that fails some requests, so retries and errors are logged too."""
    plan = FaultPlan(seed=3, rate=0.3, max_faults_per_request=2)
    with FaultProxy(s3_endpoint.removeprefix("http://"), plan) as running:
        yield running


def _exercise(backend: S3Backend, failures: list[BaseException]) -> None:
    """Successful and failing operations of every kind."""
    backend.write_many([(f"d/{i}.bin", bytes([i]) * 100) for i in range(20)])
    assert len(list(backend.list("d"))) == 20
    backend.read_many([f"d/{i}.bin" for i in range(20)] + ["d/missing.bin"])
    backend.read_range("d/1.bin", 0, 10)
    backend.stat("d/2.bin")
    backend.exists("nope")
    for call in (lambda: backend.read("missing.bin"), lambda: backend.stat("missing.bin")):
        try:
            call()
        except Exception as exc:
            failures.append(exc)


def test_secrets_absent_everywhere(make_backend: Callable[..., S3Backend], proxy: FaultProxy,
                                   closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    """DEBUG logging of everything while working, failing, retrying; grep for the secrets."""
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []
    backend = make_backend(aws_endpoint_url=proxy.url)
    _exercise(backend, failures)
    broken = [make_backend(aws_bucket_name="no-such-bucket-xyz"),
              make_backend(aws_endpoint_url=f"http://127.0.0.1:{closed_port}",
                           aws_max_attempts=2)]
    for other in broken:
        try:
            other.read("x")
        except Exception as exc:
            failures.append(exc)
    assert len(failures) == 4
    texts = [caplog.text, *(r.getMessage() for r in caplog.records),
             *(str(e) for e in failures), *(repr(e) for e in failures),
             *(repr(e.__cause__) for e in failures), repr(backend.config), repr(backend),
             backend.describe(), json.dumps(backend.metrics.snapshot())]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
    # The test is only meaningful if botocore really logged signed requests and tokens.
    sent = [r for r in caplog.records if r.name.startswith("botocore")
            and "X-Amz-Security-Token" in r.getMessage()]
    assert sent and all("***" in r.getMessage() for r in sent)
    assert proxy.stats().get("requests", 0) > 40


def test_redact_masks_headers_and_values() -> None:
    """Registered values and credential headers are masked in free text."""
    text = (f"headers={{'Authorization': b'AWS4-HMAC-SHA256 Credential={KEY_ID}/x, "
            f"Signature=ab', 'X-Amz-Security-Token': b'{TOKEN}'}} secret={SECRET}")
    clean = redact(text)
    assert all(s not in clean for s in SECRETS) and "Signature=ab" not in clean


def test_validate_json_output_has_no_secrets(tmp_path: Path, s3_endpoint: str,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``databackend validate --json`` prints locations, never credentials (ok or failing)."""
    monkeypatch.setenv("DB_TEST_TOKEN", TOKEN)
    good = [{"id": "photos", "type": "aws", "aws_bucket_name": "train",
             "aws_data_prefix": "p", "aws_endpoint_url": s3_endpoint,
             "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
             "aws_session_token": "{env:DB_TEST_TOKEN}"}]
    bad = [{**good[0], "aws_access_key_id": None, "aws_max_attempts": 0}]
    outputs = []
    for name, entries in (("good", good), ("bad", bad)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(entries))
        status = cli.main(["-vv", "validate", "--json", str(path)])
        captured = capsys.readouterr()
        outputs.append((status, captured.out + captured.err))
    assert outputs[0][0] == 0 and json.loads(outputs[0][1])["entries"][0]["location"] == \
        "train/p"
    assert outputs[1][0] == 1 and "aws_secret_access_key` is set" in outputs[1][1]
    for _, text in outputs:
        for secret in SECRETS:
            assert secret not in text
