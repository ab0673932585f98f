"""Content-addressed cache keys and the file names built from them.

A key is the SHA-256 of a canonical JSON list naming everything the cached tensor depends
on, so an entry is either right for the current request or never found:

* **latents**: the image encoder's ``identity``, the sample identity (``path|size|mtime`` from
  :meth:`MetadataBackend.sample_key`), the sample's geometry (original, intermediary, target,
  crop and downsample sizes), :data:`~databackend.geometry.GEOMETRY_VERSION` and
  :data:`IMAGE_PIPELINE_VERSION` (resampling and normalisation);
* **text embeddings**: the text encoder's ``identity`` and the caption text.

File names (relative to the cache's root and prefix):

* latents, ``hash_filenames=True`` (the default): ``{dir of the sample}/{key}.dbt``. Entries
  for different geometries or encoders live side by side, so switching settings back and forth
  never recomputes.
* latents, ``hash_filenames=False``: ``{dir of the sample}/{file name of the sample}.dbt``
  (``cats/x.jpg`` -> ``cats/x.jpg.dbt``): readable, one entry per sample, and ``x.png`` and
  ``x.jpg`` do not collide. The key is stored inside the entry, so an entry written for other
  settings is a miss and is overwritten when recomputed.
* text: ``{key[:2]}/{key}.dbt`` (256 fan-out folders).

Sample keys come from data: an unsafe one (absolute, ``..``, NUL) is spelled safely first, so
a latent never lands outside its cache folder. Every entry also stores its key in its metadata
and readers compare it, whatever the name.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from databackend.caches.format import EXTENSION
from databackend.geometry import GEOMETRY_VERSION, SampleGeometry
from databackend.safepath import neutralise_key

__all__ = ["IMAGE_PIPELINE_VERSION", "KEY_VERSION", "join", "latent_key", "latent_path",
           "text_key", "text_path"]

#: Bumped when the key documents change.
KEY_VERSION = 1
#: Bumped when the pixel pipeline (resampling, normalisation to [-1, 1]) changes.
IMAGE_PIPELINE_VERSION = 1


def _digest(doc: list[Any]) -> str:
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def geometry_doc(geometry: SampleGeometry) -> list[Any]:
    """The parts of a sample's geometry that change its pixels, in a fixed order: original,
    intermediary, target, crop, downsample (``None`` when there is none)."""
    return [geometry.original_size, geometry.intermediary_size, geometry.target_size,
            geometry.crop_coordinates, geometry.downsample_size]


def latent_key(encoder_identity: str, sample_key: str, geometry: SampleGeometry, *,
               pixels: str | None = None) -> str:
    """The 64-hex-digit key of one sample's latent; ``pixels`` names a variant of the pixel
    pipeline (``"draft"``: JPEG draft decoding) and is left out of the key when None."""
    doc = ["latent", KEY_VERSION, GEOMETRY_VERSION, IMAGE_PIPELINE_VERSION,
           encoder_identity, sample_key, geometry_doc(geometry)]
    return _digest(doc if pixels is None else [*doc, pixels])


def text_key(encoder_identity: str, caption: str) -> str:
    """The 64-hex-digit key of one caption's embeddings."""
    return _digest(["text", KEY_VERSION, encoder_identity, caption])


def join(prefix: str, path: str) -> str:
    """``prefix/path`` with ``/`` separators; an empty prefix leaves ``path`` alone."""
    return posixpath.join(prefix, path) if prefix else path


def latent_path(sample_path: str, key: str, *, hash_filenames: bool = True) -> str:
    """Where the latent of the sample at ``sample_path`` (a relative key) is stored. A key
    that would leave the cache folder (absolute, ``..``, NUL: a hostile object key) is
    neutralised first (:func:`~databackend.safepath.neutralise_key`)."""
    folder, name = posixpath.split(neutralise_key(sample_path))
    return posixpath.join(folder, f"{key if hash_filenames else name}.{EXTENSION}")


def text_path(key: str) -> str:
    """Where a caption's embeddings are stored."""
    return f"{key[:2]}/{key}.{EXTENSION}"
