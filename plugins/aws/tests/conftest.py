"""Fixtures: a real S3 API (moto's threaded server) on 127.0.0.1, buckets, and backends.

Nothing is patched: the backends talk HTTP to the server exactly as they would to S3.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_values import KEY_ID, SECRET, TOKEN
from moto.server import ThreadedMotoServer

from databackend_aws import AwsConfig, S3Backend


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server running for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Any:
    """A plain boto3 client for test setup (creating buckets, checking objects)."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                        aws_access_key_id="admin", aws_secret_access_key="admin-secret")


@pytest.fixture
def make_bucket(s3_admin: Any) -> Callable[[], str]:
    """``make_bucket(name=None)`` creates a fresh, empty bucket (a random name unless given;
    tests whose fault schedule hashes the request path need a fixed one) and returns its name."""
    def make(name: str | None = None) -> str:
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        s3_admin.create_bucket(Bucket=name)
        return name
    return make


@pytest.fixture
def bucket(make_bucket: Callable[[], str]) -> str:
    """A fresh, empty bucket for one test."""
    return make_bucket()


@pytest.fixture
def aws_config(bucket: str, s3_endpoint: str) -> Callable[..., AwsConfig]:
    """``aws_config(**overrides)``: a config for the test bucket with distinctive secrets."""
    def make(**overrides: Any) -> AwsConfig:
        values: dict[str, Any] = {
            "aws_bucket_name": bucket, "aws_endpoint_url": s3_endpoint,
            "aws_region_name": "us-east-1", "aws_access_key_id": KEY_ID,
            "aws_secret_access_key": SECRET, "aws_session_token": TOKEN,
            "aws_max_attempts": 3,
        }
        values.update(overrides)
        return AwsConfig(**values)
    return make


@pytest.fixture
def make_backend(aws_config: Callable[..., AwsConfig]) -> Iterator[Callable[..., S3Backend]]:
    """``make_backend(root=None, dataset_id="ds", **config_overrides)``; closed afterwards."""
    made: list[S3Backend] = []

    def make(root: str | None = None, dataset_id: str = "ds", **overrides: Any) -> S3Backend:
        backend = S3Backend(aws_config(**overrides), dataset_id=dataset_id, root=root)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
