"""The text-embedding cache: caption -> the text encoder's named tensors, one file per caption.

Flags (from the ``text_embeds`` entry):

* ``text_cache_ondemand``: no precompute at start-up (:attr:`TextEmbedCache.precompute_at_startup`
  is False); :meth:`TextEmbedCache.get_many` encodes what is missing and writes it.
* ``text_cache_disable`` (implies ondemand): nothing is read or written; every
  :meth:`~TextEmbedCache.get_many` encodes its captions.

Without either flag a missing or bad entry is still recomputed when an encoder is given (and
counted as a miss, plus a repair for a bad file); without an encoder it raises
:class:`~databackend.errors.CacheError` naming the caption and the file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from databackend.caches import keys
from databackend.caches.base import (
    BatchWriter,
    CacheBase,
    PrecomputeReport,
    existing_paths,
    progress_bar,
    shard,
    write_entries,
)
from databackend.errors import CacheError

if TYPE_CHECKING:
    import torch

    from databackend.caches.encoders import TextEncoder
    from databackend.storage.base import StorageBackend

__all__ = ["TextEmbedCache"]

log = logging.getLogger(__name__)
Embeds = dict[str, "torch.Tensor"]


def _short(caption: str) -> str:
    return repr(caption if len(caption) <= 60 else caption[:57] + "...")


class TextEmbedCache(CacheBase):
    """Caption embeddings on any storage backend, content-addressed by encoder and caption.

    :param storage: where entries live (files go under ``prefix``).
    :param encoder: computes missing entries; may be None for a read-only cache, which then
        needs ``identity`` (the encoder identity the entries were written with).
    :param write_batch_size: entries per ``write_many`` call.

    See :class:`~databackend.caches.base.CacheBase` for the other parameters.
    """

    kind = "text"

    def __init__(self, storage: StorageBackend, *, encoder: TextEncoder | None = None,
                 identity: str | None = None, prefix: str = "", compress: bool = False,
                 write_batch_size: int = 128, ondemand: bool = False, disable: bool = False,
                 read_workers: int = 1, name: str = "text") -> None:
        """Bind the cache; raises ``ValueError`` when neither encoder nor identity is given."""
        super().__init__(storage, encoder=encoder, identity=identity, prefix=prefix,
                         compress=compress, write_batch_size=write_batch_size,
                         ondemand=ondemand, disable=disable, read_workers=read_workers,
                         name=name)
        self.encoder: TextEncoder | None = encoder

    def key(self, caption: str) -> str:
        """The content key of a caption's embeddings."""
        return self._locate(caption)[0]

    def path(self, caption: str) -> str:
        """The storage key of a caption's entry."""
        return self._locate(caption)[1]

    def _locate(self, caption: str) -> tuple[str, str]:
        """``(key, path)`` of a caption (memoised)."""
        return self._memo[caption]  # type: ignore[no-any-return]

    def _compute_location(self, caption: str) -> tuple[str, str]:
        key = keys.text_key(self.identity, caption)
        return key, keys.join(self.prefix, keys.text_path(key))

    # --- reading ------------------------------------------------------------------------
    def get_many(self, captions: Sequence[str]) -> list[Embeds]:
        """Embeddings for each caption, in order (CPU tensors, first dimension removed).

        Entries are read in one batch and verified; missing or bad ones are encoded together
        (and written unless the cache is disabled). Raises :class:`CacheError` when an entry is
        missing or bad and there is no encoder.
        """
        unique = list(dict.fromkeys(captions))
        if self.disable:
            got = dict(zip(unique, self._encode(unique), strict=True))
            return [got[c] for c in captions]
        memo = self._memo
        located = [memo[c] for c in unique]
        keys_, paths = [k for k, _ in located], [p for _, p in located]
        found: dict[str, Embeds] = {}
        todo: list[str] = []
        entries = self._read(paths, keys_)
        for caption, path, entry in zip(unique, paths, entries, strict=True):
            if isinstance(entry, tuple):
                found[caption] = entry[0]
                continue
            self._miss(caption, path, entry)
            todo.append(caption)
        self.stats.hits += len(found)
        if todo:
            fresh = self._encode(todo)
            found.update(zip(todo, fresh, strict=True))
            self._store_fresh(lambda: self.put_many(todo, fresh), len(todo))
        return [found[c] for c in captions]

    def _miss(self, caption: str, path: str, reason: str | None) -> None:
        """Count a miss (and a repair for a bad file); raise without an encoder."""
        self._count_miss("text cache", f"for caption {_short(caption)}", path, reason,
                         "text encoder")

    # --- encoding -----------------------------------------------------------------------
    def _encode(self, captions: list[str]) -> list[Embeds]:
        """Run the encoder once over ``captions``; split the batch into per-caption CPU dicts."""
        if self.encoder is None:
            raise CacheError(f"text cache {self.describe()} is disabled and no text encoder "
                             "was given")
        out = self.encoder(list(captions))
        self.stats.encoded += len(captions)
        return split_batch(out, len(captions), f"text encoder {self.identity!r}")

    def _item(self, caption: str, embeds: Embeds) -> tuple[str, Embeds, dict[str, Any]]:
        """``(path, tensors, meta)`` for the writer."""
        key = self.key(caption)
        meta = {"key": key, "encoder": self.identity, "caption": caption}
        return keys.join(self.prefix, keys.text_path(key)), embeds, meta

    def put_many(self, captions: Sequence[str], embeds: Sequence[Embeds]) -> None:
        """Store embeddings computed elsewhere (one dict of unbatched tensors per caption);
        a no-op when the cache is disabled."""
        if len(captions) != len(embeds):
            raise ValueError(f"{len(captions)} captions but {len(embeds)} embeddings")
        if not self.disable:
            self.stats.writes += write_entries(
                self.storage, (self._item(c, e) for c, e in zip(captions, embeds, strict=True)),
                batch_size=self.write_batch_size, compress=self.compress)

    # --- precompute ---------------------------------------------------------------------
    def precompute(self, captions: Iterable[str], *, rank: int = 0, world_size: int = 1,
                   batch_size: int = 32, progress: bool | None = None) -> PrecomputeReport:
        """Encode and store every caption not cached yet (this rank's share of them).

        Captions are deduplicated and sorted so every rank agrees on the split. Presence is
        checked once up front; the entries themselves are verified when read.
        """
        if self.disable:
            return PrecomputeReport(skipped="text_cache_disable")
        start = time.perf_counter()
        mine = shard(sorted(set(captions)), rank, world_size)
        paths = {c: self.path(c) for c in mine}
        have = existing_paths(self.storage, list(paths.values()), self.prefix)
        todo = [c for c in mine if paths[c] not in have]
        if todo and self.encoder is None:
            raise CacheError(f"text cache {self.describe()}: {len(todo)} captions are not cached "
                             "and no text encoder was given")
        encode_seconds = self._fill(todo, batch_size, progress)
        return PrecomputeReport(total=len(mine), cached=len(mine) - len(todo), encoded=len(todo),
                                seconds=time.perf_counter() - start,
                                encode_seconds=encode_seconds)

    def _fill(self, todo: list[str], batch_size: int, progress: bool | None) -> float:
        """Encode ``todo`` in batches, writing in the background; returns the encoder time."""
        encode_seconds = 0.0
        step = max(1, batch_size)
        with BatchWriter(self.storage, batch_size=self.write_batch_size,
                         compress=self.compress) as writer, \
                progress_bar(len(todo), f"text {self.name}", progress) as bar:
            for n in range(0, len(todo), step):
                chunk = todo[n:n + step]
                t0 = time.perf_counter()
                embeds = self._encode(chunk)
                encode_seconds += time.perf_counter() - t0
                writer.add(self._item(c, e) for c, e in zip(chunk, embeds, strict=True))
                bar.update(len(chunk))
        self.stats.writes += writer.written
        return encode_seconds


def split_batch(out: Any, count: int, who: str) -> list[Embeds]:
    """``{name: [B, ...]}`` -> B dicts ``{name: [...]}`` on the CPU; checks the contract."""
    import torch

    if not isinstance(out, dict) or not out:
        raise TypeError(f"{who} must return a non-empty dict of tensors; got {type(out).__name__}")
    for name, tensor in out.items():
        if not isinstance(tensor, torch.Tensor) or tensor.ndim < 1 or tensor.shape[0] != count:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
            raise TypeError(f"{who}: output {name!r} must be a tensor with first dimension "
                            f"{count}; got {shape}")
    cpu = {name: tensor.detach().cpu() for name, tensor in out.items()}
    return [{name: tensor[j] for name, tensor in cpu.items()} for j in range(count)]
