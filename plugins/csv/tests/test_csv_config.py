"""Config keys, problems(), plugin registration and the config loader."""

from __future__ import annotations

from pathlib import Path

import pytest

import databackend_csv
import databackend_local
from databackend import ConfigError, load_config
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_csv import CsvBackend, CsvConfig


@pytest.fixture
def registry() -> PluginRegistry:
    """Built-ins plus this plugin only."""
    return PluginRegistry.collect(make_plugin_manager(
        entrypoints=False, extra=[databackend_csv, databackend_local]))


def test_defaults_have_no_problems() -> None:
    """The SimpleTuner keys alone make a valid config with documented defaults."""
    cfg = CsvConfig(csv_file="list.csv", csv_cache_dir="/tmp/c")
    assert cfg.problems() == []
    assert (cfg.csv_url_column, cfg.csv_caption_column) == ("url", None)
    assert cfg.csv_concurrency >= 4 * 1 and cfg.csv_per_host_limit >= 1


def test_problems_are_listed_together() -> None:
    """Every bad value is one line."""
    cfg = CsvConfig(csv_file=" ", csv_cache_dir="c", csv_url_column="u", csv_caption_column="u",
                    csv_cache_max_bytes=0, csv_timeout=0, csv_retries=-1, csv_concurrency=0,
                    csv_per_host_limit=0, csv_quarantine_seconds=-1, csv_max_image_bytes=0)
    problems = cfg.problems()
    for key in ("csv_file", "csv_caption_column", "csv_cache_max_bytes", "csv_timeout",
                "csv_retries", "csv_concurrency", "csv_per_host_limit",
                "csv_quarantine_seconds", "csv_max_image_bytes"):
        assert any(f"`{key}`" in p for p in problems), key
    with pytest.raises(ValueError, match="dataset 'd'"):
        CsvBackend(cfg, dataset_id="d")


def test_registered_as_csv(registry: PluginRegistry) -> None:
    """The hook registers the ``csv`` type with its config class."""
    assert registry.backends["csv"] is CsvBackend
    assert CsvBackend.Config is CsvConfig


def test_loader_routes_csv_keys(registry: PluginRegistry, tmp_path: Path) -> None:
    """A SimpleTuner csv entry loads; its csv_* keys land in CsvConfig."""
    plan = load_config([
        {"id": "web", "type": "csv", "csv_file": "list.csv", "csv_cache_dir": str(tmp_path),
         "csv_caption_column": "caption", "csv_url_column": "image_url",
         "caption_strategy": "csv", "csv_per_host_limit": 4},
        {"id": "text-embeds", "type": "local", "dataset_type": "text_embeds", "default": True,
         "cache_dir": str(tmp_path / "text")},
    ], registry)
    (storage,) = [e.storage for e in plan.entries if e.id == "web"]
    assert isinstance(storage, CsvConfig)
    assert (storage.csv_url_column, storage.csv_per_host_limit) == ("image_url", 4)


def test_loader_reports_bad_csv_values(registry: PluginRegistry, tmp_path: Path) -> None:
    """Missing required keys, wrong types and problems() lines are config errors."""
    with pytest.raises(ConfigError) as info:
        load_config([{"id": "web", "type": "csv", "csv_cache_dir": str(tmp_path),
                      "csv_timeout": "30", "csv_retries": -2, "caption_strategy": "csv"}],
                     registry)
    text = str(info.value)
    assert "csv_file" in text and "csv_timeout" in text
