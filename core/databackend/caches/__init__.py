"""Text-embedding and VAE-latent caches: content-addressed, verified, on any storage backend.

Importing this package does not import torch; tensors are created only when entries are read
or encoded. See ``docs/caches.md``.

Public API::

    from databackend.caches import (TextEmbedCache, LatentCache, LatentEntry,
        open_text_cache, open_latent_cache, precompute_plan,
        TextEncoder, ImageEncoder, ReferenceTextEncoder, ReferenceVAE)
"""

from __future__ import annotations

from databackend.caches.base import CacheStats, PrecomputeReport
from databackend.caches.encoders import (
    ImageEncoder,
    ReferenceTextEncoder,
    ReferenceVAE,
    TextEncoder,
    load_encoder,
)
from databackend.caches.format import FormatError, pack, unpack
from databackend.caches.latents import LatentCache, LatentEntry
from databackend.caches.precompute import CacheRun, precompute_plan
from databackend.caches.stores import (
    latent_cache_location,
    open_latent_cache,
    open_text_cache,
    open_text_cache_entry,
    text_cache_location,
)
from databackend.caches.text import TextEmbedCache

__all__ = [
    "CacheRun",
    "CacheStats",
    "FormatError",
    "ImageEncoder",
    "LatentCache",
    "LatentEntry",
    "PrecomputeReport",
    "ReferenceTextEncoder",
    "ReferenceVAE",
    "TextEmbedCache",
    "TextEncoder",
    "latent_cache_location",
    "load_encoder",
    "open_latent_cache",
    "open_text_cache",
    "open_text_cache_entry",
    "pack",
    "precompute_plan",
    "text_cache_location",
    "unpack",
]
