"""The stages of the latent fill on Ray Data: decode (CPU), encode (GPU or CPU), write (CPU).

Each stage is a callable class that Ray Data runs as a pool of actors over batches of one row
(``batch_size=1``); a row is one encoder batch of one dataset, exactly as the single-machine
fill groups it (same target size, ``--batch-size`` samples), named by the rows of the
persisted index the driver's scan wrote:

* :class:`DecodeStage` decodes, orients, resizes and crops each sample to uint8 pixels with
  the single-machine loader (:class:`~databackend.caches.loaders.ThreadLoader`, i.e.
  :func:`~databackend.caches.decode.decode`); samples that fail are dropped from the batch and
  reported, as the local fill does;
* :class:`EncodeStage` runs the image encoder through the cache's own encoder side (device
  transfer, OOM halving, output checks) and ships the latents as raw bytes;
* :class:`WriteStage` stores them with :meth:`~databackend.caches.latents.LatentCache.put_many`,
  the cache's own writer, so every entry is the file a local fill writes.

Every stage opens the dataset's cache on its worker from the command line's settings (config
path, ``--var``, ``--option``), which reach it through the object store: a settings reference
wrapped in a list, so Ray never puts the values into task arguments or logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from databackend.caches.latents import LatentCache

__all__ = ["DecodeStage", "EncodeStage", "WriteStage", "from_wire", "to_wire"]

log = logging.getLogger(__name__)
Batch = dict[str, Any]


def open_cache(settings: dict[str, Any], dataset_id: str, encoder: Any = None) -> LatentCache:
    """Dataset ``dataset_id``'s latent cache on a worker, over its persisted index (no scan);
    read-only (the encoder's ``identity`` only) unless ``encoder`` is given."""
    from databackend.build import build_metadata, build_storage
    from databackend.caches.stores import open_latent_cache
    from databackend.commands.common import load_plan

    plan, context = load_plan(argparse.Namespace(**settings))
    dataset: Any = plan.by_id[dataset_id]  # an image dataset: the driver planned it
    meta = build_metadata(dataset, build_storage(dataset, context), context)
    _ = meta.index  # the index the driver's scan wrote
    return open_latent_cache(plan, dataset, meta, context, encoder,
                             identity=settings["identity"], batch_size=settings["batch_size"])


def to_wire(latents: list[torch.Tensor]) -> tuple[Any, str, list[int]]:
    """Same-shape latents as ``(uint8 [B, nbytes] array, dtype name, [C, h, w])``: raw bytes
    survive any dtype (bfloat16 has no NumPy type)."""
    import torch

    stacked = torch.stack(latents).contiguous()
    raw = stacked.view(torch.uint8).reshape(len(latents), -1).numpy()
    return raw, str(stacked.dtype).removeprefix("torch."), list(stacked.shape[1:])


def from_wire(raw: Any, dtype: str, shape: list[int]) -> list[torch.Tensor]:
    """The tensors :func:`to_wire` shipped, bit for bit."""
    import numpy as np
    import torch

    u8 = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.uint8))
    return list(u8.view(getattr(torch, dtype)).reshape(len(raw), *shape))


class _Stage:
    """What the stages share: the settings, the caches opened on this worker, the counter."""

    stage = "stage"

    def __init__(self, settings: list[Any], counter: Any, encoder: list[Any] | None = None
                 ) -> None:
        """``settings`` and ``encoder``: one-element lists of object references."""
        import ray

        self.settings: dict[str, Any] = ray.get(settings[0])
        self.encoder = ray.get(encoder[0]) if encoder else None
        self.counter = counter
        self.caches: dict[str, LatentCache] = {}

    def cache(self, dataset_id: str) -> LatentCache:
        """This worker's cache object of ``dataset_id`` (opened on first use)."""
        if dataset_id not in self.caches:
            self.caches[dataset_id] = open_cache(self.settings, dataset_id, self.encoder)
        return self.caches[dataset_id]

    def begin(self, batch: Batch) -> tuple[str, list[int], LatentCache]:
        """Register this attempt (for the retry count); ``(dataset id, indices, cache)``."""
        from databackend.engines.rayretry import started

        dataset_id, indices = str(batch["dataset"][0]), [int(i) for i in batch["indices"][0]]
        started(self.counter, f"fill:{dataset_id}:{self.stage}:{batch['batch'][0]}")
        return dataset_id, indices, self.cache(dataset_id)


def _row(batch: Batch, indices: list[int], **columns: Any) -> Batch:
    """A one-row output batch: the input's ids and ``columns``."""
    import numpy as np

    out = {"dataset": batch["dataset"], "batch": batch["batch"],
           "indices": np.array([np.array(indices, dtype=np.int64)], dtype=object)}
    for name, value in columns.items():
        column = np.empty(1, dtype=object)
        column[0] = value
        out[name] = column
    return out


class DecodeStage(_Stage):
    """Decode one encoder batch to uint8 pixels ``[B, H, W, 3]`` (a CPU actor)."""

    stage = "decode"

    def __init__(self, settings: list[Any], counter: Any, threads: int = 2) -> None:
        """``threads`` decode at once (Pillow releases the GIL while decoding)."""
        super().__init__(settings, counter)
        self.threads = threads

    def __call__(self, batch: Batch) -> Batch:
        """The batch's decoded pixels; samples that failed go to the ``failed`` column."""
        import numpy as np

        from databackend.caches.loaders import ThreadLoader

        dataset_id, indices, cache = self.begin(batch)
        loader = ThreadLoader(cache.source, self.threads, draft=cache.draft,
                              max_pixels=cache.max_pixels)
        ok, arrays, failed = [], [], []
        try:
            for i, future in [(i, loader.submit(i)) for i in indices]:
                try:
                    arrays.append(future.result())
                    ok.append(i)
                except Exception as exc:
                    path = str(cache.source.index.paths[i])
                    log.error("latent cache %s: cannot load %r: %s", dataset_id, path, exc)
                    failed.append((path, f"{type(exc).__name__}: {exc}"))
        finally:
            loader.close()
        pixels = np.stack(arrays) if arrays else np.zeros((0, 1, 1, 3), dtype=np.uint8)
        return _row(batch, ok, pixels=pixels, failed=json.dumps(failed))


class EncodeStage(_Stage):
    """Encode one batch of pixels with the image encoder (an actor with ``num_gpus``)."""

    stage = "encode"

    def __init__(self, settings: list[Any], counter: Any, encoder: list[Any]) -> None:
        """Load the encoder from the object store once per actor."""
        super().__init__(settings, counter, encoder)
        self.runners: dict[str, Any] = {}

    def __call__(self, batch: Batch) -> Batch:
        """The batch's latents as raw bytes (``latents``, ``dtype``, ``shape``) and the
        seconds spent in the encoder."""
        import numpy as np

        dataset_id, indices, cache = self.begin(batch)
        if not indices:
            return _row(batch, [], latents=np.zeros((0, 0), dtype=np.uint8), dtype="uint8",
                        shape=np.zeros(3, dtype=np.int64), encode_s=0.0,
                        failed=batch["failed"][0])
        runner = self.runners.get(dataset_id)
        if runner is None:
            runner = self.runners[dataset_id] = cache.encode_runner()
        start = time.perf_counter()
        pixels = batch["pixels"][0]
        latents = cache.encode_decoded(runner, indices, [pixels[n] for n in range(len(pixels))])
        raw, dtype, shape = to_wire(latents)
        return _row(batch, indices, latents=raw, dtype=dtype, shape=np.array(shape, np.int64),
                    encode_s=time.perf_counter() - start, failed=batch["failed"][0])


class WriteStage(_Stage):
    """Write one batch's entries through the cache's storage backend (a CPU actor)."""

    stage = "write"

    def __call__(self, batch: Batch) -> Batch:
        """What was written: ``written`` entries, the ``failed`` samples, ``encode_s``."""
        _, indices, cache = self.begin(batch)
        if indices:
            latents = from_wire(batch["latents"][0], str(batch["dtype"][0]),
                                [int(n) for n in batch["shape"][0]])
            cache.put_many(indices, latents)
        return _row(batch, indices, written=len(indices), failed=batch["failed"][0],
                    encode_s=float(batch["encode_s"][0]))
