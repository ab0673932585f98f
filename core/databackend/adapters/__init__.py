"""Adapters from real model libraries to the cache encoder protocols.

* :class:`~databackend.adapters.diffusers_vae.DiffusersVAE`: diffusers VAEs (image and video),
  extra ``databackend[diffusers]``;
* :class:`~databackend.adapters.transformers_text.TransformersTextEncoder` and
  :class:`~databackend.adapters.transformers_text.TextEncoderSet`: transformers text encoders,
  extra ``databackend[transformers]``;
* :func:`~databackend.adapters.folders.load_folder`: either, from a ``save_pretrained`` folder.

Importing this package imports neither library (nor torch); the adapters import what they use
when they are built. See ``docs/encoders.md``.
"""

from __future__ import annotations

__all__: list[str] = []
