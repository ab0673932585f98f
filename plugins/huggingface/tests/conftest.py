"""Fixtures: real ``datasets`` datasets built in a temp dir, and configured backends.

The hub is never contacted: ``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE`` are set before
``datasets`` is imported, and its cache lives in a temporary folder.
"""

from __future__ import annotations

import atexit
import io
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
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

import databackend_huggingface
import databackend_local
from databackend.build import build_metadata, build_storage
from databackend.config.loader import parse_entries
from databackend.context import BuildContext
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry

Image = Any


def encode(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30), *,
           fmt: str = "PNG", orientation: int | None = None, noise: int = 0) -> bytes:
    """An encoded RGB image (optionally noisy, optionally with an EXIF orientation)."""
    from PIL import Image as PILImage

    img = PILImage.new("RGB", (width, height), color)
    if noise:
        rng = random.Random(noise)
        for _ in range(50):
            img.putpixel((rng.randrange(width), rng.randrange(height)),
                         (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    kwargs: dict[str, Any] = {}
    if orientation is not None:
        exif = PILImage.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def composite(colors: Sequence[tuple[int, int, int]], tile: tuple[int, int]) -> bytes:
    """A PNG of ``len(colors)`` tiles of ``tile`` size side by side, each one color."""
    from PIL import Image as PILImage

    w, h = tile
    img = PILImage.new("RGB", (w * len(colors), h))
    for k, color in enumerate(colors):
        img.paste(PILImage.new("RGB", (w, h), color), (k * w, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def make_dataset(columns: dict[str, list[Any]], *, image_feature: bool = True) -> Any:
    """A ``datasets.Dataset``; ``image`` bytes become an ``Image`` feature when asked."""
    import datasets

    cols = dict(columns)
    if image_feature and "image" in cols:
        cols["image"] = [None if b is None else {"bytes": b, "path": None} for b in cols["image"]]
    ds = datasets.Dataset.from_dict(cols)
    if image_feature and "image" in cols:
        ds = ds.cast_column("image", datasets.Image())
    return ds


SIZES = [(96, 64), (64, 96), (80, 80), (128, 64), (64, 64), (112, 80)]


def basic_columns(n: int = 12, **extra: list[Any]) -> dict[str, list[Any]]:
    """``image`` (PNG/JPEG of SIZES), ``caption``, ``width``, ``height`` and extra columns."""
    sizes = [SIZES[k % len(SIZES)] for k in range(n)]
    return {"image": [encode(w, h, (k * 20 % 256, 60, 90), fmt="JPEG" if k % 2 else "PNG")
                      for k, (w, h) in enumerate(sizes)],
            "caption": [f"a photo number {k}" for k in range(n)],
            "width": [w for w, _ in sizes], "height": [h for _, h in sizes], **extra}


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
