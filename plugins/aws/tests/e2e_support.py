"""Helpers for the end-to-end tests: a small image dataset on S3 and factories over it."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import databackend_aws
from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.factory import DataBackendFactory
from databackend.plugins import make_plugin_manager
from databackend_aws import S3Backend

SIZES = ((96, 64), (64, 96), (80, 80), (128, 64))
OPTIONS = {"resolution": 64, "resolution_type": "pixel_area", "aspect_bucket_alignment": 16,
           "train_batch_size": 2, "seed": 11}


def image_bytes(width: int, height: int, seed: int, fmt: str) -> bytes:
    """A small noisy RGB image encoded as ``fmt`` (JPEG or PNG)."""
    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def dataset_objects(n: int, folder: str = "", start: int = 0) -> list[tuple[str, bytes]]:
    """``n`` images (every third a PNG) with ``.txt`` captions, plus one broken ``.jpg``."""
    items = []
    for i in range(start, start + n):
        w, h = SIZES[i % len(SIZES)]
        ext, fmt = ("png", "PNG") if i % 3 == 0 else ("jpg", "JPEG")
        items.append((f"{folder}img_{i:03d}.{ext}", image_bytes(w, h, i, fmt)))
        items.append((f"{folder}img_{i:03d}.txt", f"{folder} thing {i}\n".encode()))
    if start == 0:
        items.append((f"{folder}broken.jpg", b"\xff\xd8\xff\xe0 truncated"))
    return items


def aws_keys(bucket: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    """The aws keys of a config entry (with throwaway credentials)."""
    return {"type": "aws", "aws_bucket_name": bucket, "aws_endpoint_url": endpoint,
            "aws_region_name": "us-east-1", "aws_access_key_id": "e2e-key",
            "aws_secret_access_key": "e2e-secret", **extra}


def entries(bucket: str, endpoint: str, cache: str = "cache", **extra: Any
            ) -> list[dict[str, Any]]:
    """Two image datasets on S3, with their text and latent caches on S3 as well."""
    keys = aws_keys(bucket, endpoint, **extra)
    return [
        {"id": "photos", **keys, "aws_data_prefix": "data/photos",
         "caption_strategy": "textfile", "image_embeds": "vae"},
        {"id": "art", **keys, "aws_data_prefix": "data/art", "caption_strategy": "textfile",
         "image_embeds": "vae", "probability": 0.5},
        {"id": "text", "dataset_type": "text_embeds", **keys, "cache_dir": f"{cache}/text",
         "default": True},
        {"id": "vae", "dataset_type": "image_embeds", **keys, "cache_dir": f"{cache}/vae"},
    ]


def upload(backend: S3Backend, photos: int = 12, art: int = 6) -> None:
    """Put the two datasets under ``data/photos/`` and ``data/art/``."""
    backend.write_many(dataset_objects(photos, "data/photos/")
                       + dataset_objects(art, "data/art/sub/"))


def factory(config: Sequence[dict[str, Any]], out: Path, **kw: Any) -> DataBackendFactory:
    """A factory with the aws plugin only and the CPU reference encoders."""
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_aws])
    return DataBackendFactory(list(config), plugin_manager=pm,
                              options={**OPTIONS, "output_dir": str(out)},
                              text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                              image_encoder=ReferenceVAE(), **kw)


def encoded(f: DataBackendFactory) -> dict[str, tuple[int, int]]:
    """``{"latents": (cached, encoded), "text": (...)}`` summed over the precompute runs."""
    out: dict[str, tuple[int, int]] = {}
    for run in f.cache_runs:
        cached, done = out.get(run.kind, (0, 0))
        out[run.kind] = (cached + run.report.cached, done + run.report.encoded)
    return out


def take(f: DataBackendFactory, n: int) -> list[Any]:
    """The first ``n`` batches of a fresh iterator (prefetch thread closed afterwards)."""
    it = f.iterator()
    try:
        return [next(it) for _ in range(n)]
    finally:
        f.close()


def listing(admin: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """``{key below prefix: (size, etag)}`` straight from S3."""
    out = {}
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            out[obj["Key"][len(prefix):]] = (obj["Size"], obj["ETag"])
    return out
