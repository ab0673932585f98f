"""The boto3 S3 client of a backend: pool size, retry mode, timeouts, request counters."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from databackend_aws.config import AwsConfig

__all__ = ["S3Metrics", "make_client"]

USER_AGENT = "databackend-aws/0.1"


class S3Metrics:
    """Thread-safe counters: HTTP attempts per operation, bytes moved, retries.

    ``requests.<Operation>`` counts every HTTP attempt botocore sends (retries included), so
    ``requests`` minus calls is the retry count. Holds numbers only, never config values.
    """

    def __init__(self) -> None:
        """Start all counters at zero."""
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        """Increase counter ``name`` by ``n``."""
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter, plus ``requests`` (all HTTP attempts)."""
        with self._lock:
            out = dict(self._counts)
        out["requests"] = sum(v for k, v in out.items() if k.startswith("requests."))
        return out


def boto_config(config: AwsConfig) -> BotoConfig:
    """botocore settings: pool, retries with backoff, timeouts, S3-compatible defaults.

    With ``aws_endpoint_url`` (MinIO, R2, Ceph, ...) addressing is path-style and checksums
    are only sent where the API requires them, which S3-compatible servers accept.
    """
    extra: dict[str, Any] = {}
    if config.aws_endpoint_url:
        extra = {"s3": {"addressing_style": "path"},
                 "request_checksum_calculation": "when_required",
                 "response_checksum_validation": "when_required"}
    retries: Any = {"mode": config.aws_retry_mode, "total_max_attempts": config.aws_max_attempts}
    return BotoConfig(
        max_pool_connections=config.aws_max_pool_connections,
        retries=retries,
        connect_timeout=config.aws_connect_timeout,
        read_timeout=config.aws_read_timeout,
        tcp_keepalive=True,
        user_agent_extra=USER_AGENT,
        **extra,
    )


def make_client(config: AwsConfig, metrics: S3Metrics) -> Any:
    """A new S3 client (thread-safe; one per backend) that counts its HTTP attempts.

    Keys given in the config are passed explicitly; when absent, boto3 resolves credentials
    through its default chain (environment, shared files, SSO, container or instance role).
    """
    session = boto3.session.Session(
        aws_access_key_id=config.aws_access_key_id or None,
        aws_secret_access_key=config.aws_secret_access_key or None,
        aws_session_token=config.aws_session_token or None,
        region_name=config.aws_region_name or None,
    )
    client = session.client("s3", endpoint_url=config.aws_endpoint_url or None,
                            config=boto_config(config))

    def count(event_name: str, **_: Any) -> None:
        """Count one HTTP attempt (``before-send.s3.GetObject`` -> ``requests.GetObject``)."""
        metrics.add(f"requests.{event_name.rsplit('.', 1)[-1]}")

    client.meta.events.register("before-send.s3.*", count)
    return client
