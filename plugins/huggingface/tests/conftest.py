"""Fixtures: real ``datasets`` datasets built in a temp dir, and configured backends.

The hub is never contacted: ``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE`` are set before
``datasets`` is imported, and its cache lives in a temporary folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
if "HF_DATASETS_CACHE" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="hf-datasets-cache-")
    os.environ["HF_DATASETS_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import pytest
from hf_support import make_dataset

import databackend_huggingface
import databackend_local
from databackend.build import build_metadata, build_storage
from databackend.config.loader import parse_entries
from databackend.context import BuildContext
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry


@pytest.fixture
def write_parquet(tmp_path: Path) -> Callable[..., Path]:
    """``write_parquet(columns, name="data")`` -> a folder holding ``train-00000.parquet``."""
    def write(columns: dict[str, list[Any]], name: str = "data", *,
              image_feature: bool = True, shards: int = 1) -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        ds = make_dataset(columns, image_feature=image_feature)
        for k in range(shards):
            ds.shard(shards, k, contiguous=True).to_parquet(
                str(folder / f"train-{k:05d}-of-{shards:05d}.parquet"))
        return folder
    return write


@pytest.fixture
def registry() -> PluginRegistry:
    """Built-ins plus the local and huggingface plugins (no installed entry points)."""
    return PluginRegistry.collect(make_plugin_manager(
        entrypoints=False, extra=[databackend_local, databackend_huggingface]))


@pytest.fixture
def options(tmp_path: Path) -> FactoryOptions:
    """Small buckets, everything under tmp_path."""
    return FactoryOptions(output_dir=str(tmp_path / "out"), resolution=64,
                          resolution_type="pixel_area", aspect_bucket_alignment=16, seed=7)


@pytest.fixture
def open_hf(registry: PluginRegistry, options: FactoryOptions, tmp_path: Path
            ) -> Callable[..., tuple[Any, Any]]:
    """``open_hf(**keys)`` -> (storage, metadata backend) of one huggingface dataset entry."""
    def open_(options_: FactoryOptions | None = None, **keys: Any) -> tuple[Any, Any]:
        opts = options_ or options
        entry = {"id": keys.pop("id", "hf"), "type": "huggingface", **keys}
        entry.setdefault("huggingface", {})
        entry["huggingface"] = {"cache_dir": str(tmp_path / "hf-cache"), **entry["huggingface"]}
        plan = parse_entries([entry], registry, opts)
        dataset = plan.datasets[0]
        context = BuildContext(options=opts, registry=registry)
        storage = build_storage(dataset, context)
        return storage, build_metadata(dataset, storage, context)
    return open_
