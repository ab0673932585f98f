"""Conditioning image embeddings (CLIP-vision style): one cache per dataset that sets
``conditioning_image_embeds`` (docs/conditioning.md, "Conditioning image embeddings").

The trainer passes the image encoder (``DataBackendFactory(conditioning_image_encoder=...)``):
any object with an ``identity`` string (what the entries are keyed by) that maps a list of RGB
PIL images (full resolution, EXIF applied: the encoder does its own preprocessing, as CLIP's
processor does) to a non-empty dict of tensors with first dimension ``B``.
:class:`ReferenceImageEmbedder` is a deterministic CPU stand-in for tests and the demo.

Entries are content-addressed like the latent cache's: key = SHA-256 of the encoder identity
and the sample's identity (path, size, mtime); the file sits at the sample's relative folder,
``{folder}/{key}.dbt``, under the dataset id. Reads verify each entry (container checksums and
the stored key); a missing or bad entry is recomputed when an encoder is given, else a
:class:`~databackend.errors.CacheError` naming the sample and the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from databackend.caches import keys
from databackend.caches.base import (
    BatchWriter,
    CacheBase,
    PrecomputeReport,
    existing_paths,
    progress_bar,
    shard,
)
from databackend.caches.text import split_batch
from databackend.errors import CacheError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from databackend.storage.base import StorageBackend

__all__ = ["ConditioningImageEncoder", "ImageEmbedCache", "ReferenceImageEmbedder",
           "image_embed_key"]

log = logging.getLogger(__name__)
Embeds = dict[str, "torch.Tensor"]


@runtime_checkable
class ConditioningImageEncoder(Protocol):
    """What the factory's ``conditioning_image_encoder`` must be (see the module doc)."""

    identity: str

    def __call__(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """``{name: [B, ...]}`` for ``B`` RGB images."""
        ...


class ReferenceImageEmbedder:
    """A deterministic stand-in image encoder: the image resized to ``grid x grid`` (bilinear),
    scaled to ``[-1, 1]`` and projected by a fixed matrix; ``image_embeds [B, dim]``."""

    def __init__(self, dim: int = 32, grid: int = 8) -> None:
        """``dim``: embedding width; ``grid``: side of the pooled image."""
        import torch

        self.dim, self.grid = dim, grid
        gen = torch.Generator().manual_seed(1234)
        self.projection = torch.randn(3 * grid * grid, dim, generator=gen) / (3 * grid * grid) ** .5
        self.identity = f"databackend-reference-image-embedder-v1-{dim}-{grid}"

    def __call__(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """``{"image_embeds": [B, dim]}`` float32."""
        import numpy as np
        import torch
        from PIL import Image as PILImage

        rows = [np.asarray(im.convert("RGB").resize((self.grid, self.grid),
                                                    PILImage.Resampling.BILINEAR),
                           dtype=np.float32).reshape(-1) / 127.5 - 1.0 for im in images]
        return {"image_embeds": torch.from_numpy(np.stack(rows)) @ self.projection}


def image_embed_key(encoder_identity: str, sample_key: str) -> str:
    """The 64-hex-digit key of one sample's image embeddings."""
    doc = ["conditioning_image_embeds", keys.KEY_VERSION, encoder_identity, sample_key]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


class ImageEmbedCache(CacheBase):
    """Image embeddings of one dataset's samples (rows of its scanned metadata backend
    ``source``: ``index.paths``, ``load_image(i)``, ``sample_key(i)``)."""

    kind = "conditioning_image_embeds"

    def __init__(self, storage: StorageBackend, source: Any, *, encoder: Any = None,
                 identity: str | None = None, prefix: str = "", compress: bool = False,
                 write_batch_size: int = 128, batch_size: int = 8,
                 name: str = "conditioning_image_embeds") -> None:
        """Bind the cache; raises ``ValueError`` when neither encoder nor identity is given."""
        super().__init__(storage, encoder=encoder, identity=identity, prefix=prefix,
                         compress=compress, write_batch_size=write_batch_size, ondemand=False,
                         disable=False, read_workers=1, name=name)
        self.source, self.batch_size = source, max(1, batch_size)

    def _compute_location(self, row: int) -> tuple[str, str]:
        key = image_embed_key(self.identity, self.source.sample_key(row))
        path = keys.latent_path(str(self.source.index.paths[row]), key)
        return key, keys.join(self.prefix, path)

    def get_many(self, rows: Sequence[int]) -> list[Embeds]:
        """The embeddings of ``rows``, in order (verified; misses encoded once and written)."""
        unique = list(dict.fromkeys(int(r) for r in rows))
        located = [self._memo[r] for r in unique]
        entries = self._read([p for _, p in located], [k for k, _ in located])
        found: dict[int, Embeds] = {}
        todo: list[int] = []
        for row, (_, path), entry in zip(unique, located, entries, strict=True):
            if isinstance(entry, tuple):
                found[row] = entry[0]
                continue
            self._miss(row, path, entry)
            todo.append(row)
        self.stats.hits += len(found)
        if todo:
            fresh = self._encode(todo)
            found.update(zip(todo, fresh, strict=True))
            self._store_fresh(lambda: self._write(todo, fresh), len(todo))
        return [found[int(r)] for r in rows]

    def _miss(self, row: int, path: str, reason: str | None) -> None:
        self._count_miss("conditioning image embed cache",
                         f"of sample {self.source.index.paths[row]!r}", path, reason,
                         "conditioning image encoder")

    def _encode(self, rows: list[int]) -> list[Embeds]:
        if self.encoder is None:
            raise CacheError(f"conditioning image embed cache {self.describe()}: no "
                             "conditioning image encoder was given")
        images = [self.source.load_image(r) for r in rows]
        out = split_batch(self.encoder(images), len(rows),
                          f"conditioning image encoder {self.identity!r}")
        self.stats.encoded += len(rows)
        return out

    def _item(self, row: int, embeds: Embeds) -> tuple[str, Embeds, dict[str, Any]]:
        key, path = self._memo[row]
        meta = {"key": key, "encoder": self.identity, "path": str(self.source.index.paths[row])}
        return path, embeds, meta

    def _write(self, rows: list[int], embeds: list[Embeds]) -> None:
        with BatchWriter(self.storage, batch_size=self.write_batch_size,
                         compress=self.compress) as writer:
            writer.add(self._item(r, e) for r, e in zip(rows, embeds, strict=True))
        self.stats.writes += writer.written

    def precompute(self, *, rank: int = 0, world_size: int = 1, progress: bool | None = None
                   ) -> PrecomputeReport:
        """Encode and store this rank's share of the samples not cached yet; images that fail
        to load are reported in ``failed`` (never a crash)."""
        start = time.perf_counter()
        mine = shard(list(range(len(self.source.index))), rank, world_size)
        paths = {r: self._memo[r][1] for r in mine}
        have = existing_paths(self.storage, list(paths.values()), self.prefix)
        todo = [r for r in mine if paths[r] not in have]
        if todo and self.encoder is None:
            raise CacheError(f"conditioning image embed cache {self.describe()}: {len(todo)} "
                             "samples are not cached and no conditioning image encoder was given")
        failed: list[tuple[str, str]] = []
        encode_seconds = 0.0
        with progress_bar(len(todo), f"image embeds {self.name}", progress) as bar:
            for n in range(0, len(todo), self.batch_size):
                chunk, good = todo[n:n + self.batch_size], []
                for r in chunk:
                    try:
                        good.append((r, self.source.load_image(r)))
                    except Exception as exc:  # a corrupt file: counted, never fatal
                        failed.append((str(self.source.index.paths[r]),
                                       f"{type(exc).__name__}: {exc}"))
                t0 = time.perf_counter()
                embeds = split_batch(self.encoder([im for _, im in good]), len(good),
                                     f"conditioning image encoder {self.identity!r}") \
                    if good else []
                encode_seconds += time.perf_counter() - t0
                self.stats.encoded += len(good)
                self._write([r for r, _ in good], embeds)
                bar.update(len(chunk))
        return PrecomputeReport(total=len(mine), cached=len(mine) - len(todo),
                                encoded=len(todo) - len(failed), failed=tuple(failed),
                                seconds=time.perf_counter() - start,
                                encode_seconds=encode_seconds)
