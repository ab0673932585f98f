"""AwsConfig: SimpleTuner keys, problems(), secret hiding, registration, config loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_values import KEY_ID, SECRET, TOKEN

import databackend_aws
from databackend.config.loader import load_config
from databackend.errors import ConfigError
from databackend.plugins import make_plugin_manager, make_registry
from databackend.registry import PluginRegistry
from databackend_aws import AwsConfig, S3Backend
from databackend_aws.backend import resolve_location
from databackend_aws.config import normalise_prefix, safe_url


@pytest.fixture
def registry() -> PluginRegistry:
    """Built-ins plus this plugin only."""
    return PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                      extra=[databackend_aws]))


def test_registered_through_the_entry_point() -> None:
    """The installed distribution provides the ``aws`` type."""
    registry = make_registry()
    assert registry.backends["aws"] is S3Backend
    assert S3Backend.Config is AwsConfig


def test_defaults_and_minimal_config() -> None:
    """Only the bucket is required; no endpoint, region or keys (default chain)."""
    cfg = AwsConfig(aws_bucket_name="bucket")
    assert cfg.problems() == []
    assert cfg.aws_endpoint_url is None and cfg.aws_max_pool_connections == 64
    assert resolve_location(cfg, None) == ("bucket", "")


@pytest.mark.parametrize(("values", "expected"), [
    ({"aws_bucket_name": " "}, "`aws_bucket_name` must be a non-empty"),
    ({"aws_bucket_name": "s3://b/p"}, "\"aws_data_prefix\": 'p'"),
    ({"aws_access_key_id": KEY_ID}, "`aws_access_key_id` is set but `aws_secret_access_key`"),
    ({"aws_secret_access_key": SECRET}, "`aws_secret_access_key` is set but"),
    ({"aws_session_token": TOKEN}, "`aws_session_token` needs"),
    ({"aws_secret_access_key": 12345678}, "`aws_secret_access_key` must be a string"),
    ({"aws_endpoint_url": "minio:9000"}, "`aws_endpoint_url` must be an http(s) URL"),
    ({"aws_retry_mode": "fast"}, "`aws_retry_mode` must be one of"),
    ({"aws_max_pool_connections": 0}, "`aws_max_pool_connections` must be >= 1"),
    ({"aws_max_attempts": 0}, "`aws_max_attempts` must be >= 1"),
    ({"aws_read_timeout": 0.0}, "`aws_read_timeout` must be > 0"),
    ({"aws_list_page_size": 5000}, "`aws_list_page_size` must be 1..1000"),
])
def test_problems(values: dict[str, Any], expected: str) -> None:
    """Each invalid value gives one line; secret values are never quoted."""
    cfg = AwsConfig(**{"aws_bucket_name": "bucket", **values})
    problems = cfg.problems()
    assert len(problems) == 1 and expected in problems[0], problems
    for secret in (KEY_ID, SECRET, TOKEN, "12345678"):
        assert secret not in problems[0]


def test_repr_hides_secrets() -> None:
    """attrs repr leaves the three credential fields out; describe() too."""
    cfg = AwsConfig(aws_bucket_name="bucket", aws_access_key_id=KEY_ID,
                    aws_secret_access_key=SECRET, aws_session_token=TOKEN,
                    aws_endpoint_url="https://user:pw@minio.local:9000")
    backend = S3Backend(cfg, dataset_id="ds")
    for text in (repr(cfg), str(cfg), repr(backend), backend.describe()):
        assert KEY_ID not in text and SECRET not in text and TOKEN not in text
        assert "pw@" not in text
    assert cfg.secrets() == [KEY_ID, SECRET, TOKEN, "pw"]
    assert backend.describe() == "aws:s3://bucket/ at https://minio.local:9000"


def test_prefix_and_root_resolution() -> None:
    """Prefixes normalise to ``a/b/``; roots join under the data prefix; s3:// is absolute."""
    assert normalise_prefix("") == normalise_prefix(None) == ""
    assert normalise_prefix("/images//x/") == "images/x/"
    cfg = AwsConfig(aws_bucket_name="b", aws_data_prefix="data")
    assert resolve_location(cfg, None) == ("b", "data/")
    assert resolve_location(cfg, "cache/vae") == ("b", "data/cache/vae/")
    assert resolve_location(cfg, "s3://other/te/") == ("other", "te/")
    assert safe_url("http://u:p@h:1/x") == "http://h:1/x"
    assert safe_url("http://h") == "http://h"


def _write(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    path = tmp_path / "multidatabackend.json"
    path.write_text(json.dumps(entries))
    return path


def test_loads_from_a_simpletuner_config(registry: PluginRegistry, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """SimpleTuner keys route to AwsConfig; env placeholders fill the secrets."""
    monkeypatch.setenv("DB_KEY", KEY_ID)
    monkeypatch.setenv("DB_SECRET", SECRET)
    path = _write(tmp_path, [
        {"id": "photos", "type": "aws", "aws_bucket_name": "train", "aws_data_prefix": "p/",
         "aws_access_key_id": "{env:DB_KEY}", "aws_secret_access_key": "{env:DB_SECRET}",
         "aws_max_pool_connections": 16, "resolution": 512, "resolution_type": "pixel"},
        {"id": "te", "type": "aws", "dataset_type": "text_embeds", "aws_bucket_name": "train",
         "cache_dir": "cache/te", "default": True},
    ])
    plan = load_config(path, registry)
    photos = next(e for e in plan.entries if e.id == "photos")
    assert isinstance(photos.storage, AwsConfig)
    assert photos.storage.aws_secret_access_key == SECRET
    assert photos.storage.aws_max_pool_connections == 16


def test_loader_reports_problems_without_secrets(registry: PluginRegistry,
                                                 tmp_path: Path) -> None:
    """problems() runs inside the loader; the ConfigError never quotes a secret."""
    path = _write(tmp_path, [
        {"id": "a", "type": "aws", "aws_bucket_name": "b", "aws_secret_access_key": SECRET},
        {"id": "b", "type": "aws", "aws_bucket_name": "b", "aws_access_key_id": KEY_ID,
         "aws_secret_access_key": 987654321},
    ])
    with pytest.raises(ConfigError) as info:
        load_config(path, registry)
    text = str(info.value)
    assert "dataset 'a': `aws_secret_access_key` is set but `aws_access_key_id` is not" in text
    assert "dataset 'b': `aws_secret_access_key` must be a string" in text
    assert SECRET not in text and KEY_ID not in text and "987654321" not in text
