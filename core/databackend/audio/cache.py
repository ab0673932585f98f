"""The audio latent cache: decode a clip's window, encode it, store it like image latents.

Per clip: the bucket duration ``t`` (:mod:`databackend.audio.buckets`), the window of ``t``
seconds in the clip's native samples (``truncation_mode``; ``random`` is a pure function of
``(seed, sample)``), decoded, mixed to the encoder's channels, resampled to its rate, cut or
zero-padded to ``round(t * rate)`` samples (:mod:`databackend.audio.decode`), and encoded by
an :class:`~databackend.audio.encoders.AudioEncoder`. Entries use the cache file format and
verification of the image latents (:mod:`databackend.caches.base`): content-addressed keys
(encoder identity, sample identity, bucket, window), the key stored inside, a bad or stale
entry recomputed and counted as a repair. Each entry keeps ``valid`` (the samples that are
audio, not padding) and ``total``, so batches carry each clip's true latent length.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from databackend.audio.buckets import crop_window
from databackend.audio.decode import decode_window
from databackend.caches import keys
from databackend.caches.base import (
    CacheBase,
    PrecomputeReport,
    existing_paths,
    progress_bar,
    shard,
    write_entries,
)
from databackend.errors import CacheError
from databackend.media.probe import ProbeSource, probe_local, probe_ranged
from databackend.media.windows import Window

if TYPE_CHECKING:
    import torch

    from databackend.audio.encoders import AudioEncoder
    from databackend.audio.metadata import AudioMetadataBackend
    from databackend.storage.base import StorageBackend

__all__ = ["AUDIO_PIPELINE_VERSION", "AudioCache", "AudioLatent"]

log = logging.getLogger(__name__)
#: bumped when decoding, mixing, resampling or padding changes
AUDIO_PIPELINE_VERSION = 1


class AudioLatent(NamedTuple):
    """One clip's latents ``[D, T]`` and how many of its ``total`` samples are audio."""

    latents: torch.Tensor
    valid: int
    total: int


class _Plan(NamedTuple):
    key: str
    path: str
    window: Window
    bucket_ms: int


class AudioCache(CacheBase):
    """Audio latents of one dataset (see the module docstring).

    :param meta: the dataset's scanned audio metadata backend.
    :param encoder: computes missing entries; None for a read-only cache (needs ``identity``).
    :param seed: seeds ``random`` windows.
    """

    kind = "audio latent"

    def __init__(self, storage: StorageBackend, meta: AudioMetadataBackend, *,
                 encoder: AudioEncoder | None = None, identity: str | None = None,
                 prefix: str = "", hash_filenames: bool = True, compress: bool = False,
                 write_batch_size: int = 128, ondemand: bool = False, disable: bool = False,
                 batch_size: int = 8, seed: int = 0, name: str = "audio") -> None:
        """Bind the cache; raises ``ValueError`` when neither encoder nor identity is given."""
        super().__init__(storage, encoder=encoder, identity=identity, prefix=prefix,
                         compress=compress, write_batch_size=write_batch_size,
                         ondemand=ondemand, disable=disable, read_workers=1, name=name)
        self.encoder: AudioEncoder | None = encoder
        self.meta, self.hash_filenames = meta, hash_filenames
        self.batch_size, self.seed = batch_size, seed
        self.mode = meta.audio.truncation_mode

    # --- locating ------------------------------------------------------------------------
    def _compute_location(self, i: int) -> _Plan:
        row = self.meta.index.row(i)
        sample = self.meta.sample_key(i)
        window = crop_window(row.frames, round(row.bucket_seconds * row.sample_rate),
                             self.mode, seed=self.seed, key=sample)
        doc = ["audio-latent", keys.KEY_VERSION, AUDIO_PIPELINE_VERSION, self.identity, sample,
               row.bucket_ms, window.start, window.length]
        key = hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()
        path = keys.latent_path(row.path, key, hash_filenames=self.hash_filenames)
        return _Plan(key, keys.join(self.prefix, path), window, row.bucket_ms)

    def plan(self, i: int) -> _Plan:
        """Key, entry path, window and bucket of clip ``i``."""
        return self._memo[i]  # type: ignore[no-any-return]

    def all_indices(self) -> list[int]:
        """Every clip of the index."""
        return list(range(len(self.meta.index)))

    # --- reading -------------------------------------------------------------------------
    def get_many(self, indices: Sequence[int]) -> list[AudioLatent]:
        """The latents of the given clips, in order; misses are encoded (and written unless
        the cache is disabled). Raises :class:`CacheError` without an encoder."""
        unique = list(dict.fromkeys(indices))
        found = self._encode_now(unique, write=False) if self.disable else self._read_all(unique)
        where = {i: k for k, i in enumerate(unique)}
        return [found[where[i]] for i in indices]

    def _read_all(self, unique: list[int]) -> list[AudioLatent]:
        plans = [self.plan(i) for i in unique]
        entries = self._read([p.path for p in plans], [p.key for p in plans])
        out: list[AudioLatent | None] = []
        todo: list[int] = []
        for i, plan, entry in zip(unique, plans, entries, strict=True):
            reason = entry if not isinstance(entry, tuple) else _problem(entry)
            if reason is None and isinstance(entry, tuple):
                meta = entry[1]
                out.append(AudioLatent(entry[0]["latents"], int(meta["valid"]),
                                       int(meta["total"])))
                continue
            self._miss(i, plan.path, reason)
            todo.append(len(out))
            out.append(None)
        self.stats.hits += len(out) - len(todo)
        if todo:
            fresh = self._encode_now([unique[k] for k in todo], write=True)
            for k, item in zip(todo, fresh, strict=True):
                out[k] = item
        return [o for o in out if o is not None]

    def _miss(self, i: int, path: str, reason: str | None) -> None:
        self.stats.misses += 1
        what = "missing" if reason is None else f"bad: {reason}"
        if self.encoder is None:
            raise CacheError(f"audio cache {self.describe()}: the entry for clip "
                             f"{self.meta.index.paths[i]!r} at {path!r} is {what}, and no "
                             "audio encoder was given to recompute it")
        if reason is not None:
            self.stats.repairs += 1
            log.warning("audio cache %s: recomputing %s (%s)", self.name, path, what)

    # --- encoding ------------------------------------------------------------------------
    def _source(self, path: str, size: int) -> ProbeSource:
        storage = self.meta.storage
        local = storage.local_path(path)
        if local is not None:
            return probe_local(local, path)
        return probe_ranged(lambda at, n: storage.read_range(path, at, n), path, size)

    def load(self, i: int) -> tuple[np.ndarray, int]:
        """Clip ``i``'s window as ``[channels, samples]`` at the encoder's rate, and the
        number of samples that are audio."""
        if self.encoder is None:
            raise CacheError(f"audio cache {self.describe()}: no audio encoder was given")
        row, plan = self.meta.index.row(i), self.plan(i)
        rate = self.encoder.sample_rate
        return decode_window(self._source(row.path, row.size), plan.window,
                             native_rate=row.sample_rate, target_rate=rate,
                             channels=self.encoder.channels,
                             target_samples=round(plan.bucket_ms * rate / 1000))

    def _encode(self, batch: list[int], audio: list[tuple[np.ndarray, int]]
                ) -> list[AudioLatent]:
        import torch

        assert self.encoder is not None
        out = self.encoder(torch.from_numpy(np.stack([a for a, _ in audio])))
        if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != len(batch):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"audio encoder {self.identity!r} must return [B, D, T] with "
                            f"B={len(batch)}; got {shape}")
        self.stats.encoded += len(batch)
        total = audio[0][0].shape[1]
        return [AudioLatent(t, valid, total)
                for t, (_, valid) in zip(out.detach().cpu(), audio, strict=True)]

    def _batches(self, indices: Iterable[int]) -> list[list[int]]:
        groups: dict[int, list[int]] = {}
        for i in indices:
            groups.setdefault(self.plan(i).bucket_ms, []).append(i)
        return [g[n:n + self.batch_size] for _, g in sorted(groups.items())
                for n in range(0, len(g), self.batch_size)]

    def _encode_now(self, indices: list[int], *, write: bool) -> list[AudioLatent]:
        out: dict[int, AudioLatent] = {}
        for batch in self._batches(indices):
            audio = []
            for i in batch:
                try:
                    audio.append(self.load(i))
                except CacheError:
                    raise
                except Exception as exc:
                    raise CacheError(f"audio cache {self.describe()}: cannot load clip "
                                     f"{self.meta.index.paths[i]!r}: {exc}") from exc
            out.update(zip(batch, self._encode(batch, audio), strict=True))
        if write and out and not self.disable:
            self._store_fresh(lambda: self._put(list(out.items())), len(out))
        return [out[i] for i in indices]

    def _item(self, i: int, item: AudioLatent) -> tuple[str, dict[str, Any], dict[str, Any]]:
        plan = self.plan(i)
        meta = {"key": plan.key, "encoder": self.identity, "sample": self.meta.sample_key(i),
                "window": [plan.window.start, plan.window.length], "valid": item.valid,
                "total": item.total, "bucket_ms": plan.bucket_ms}
        return plan.path, {"latents": item.latents}, meta

    def _put(self, items: list[tuple[int, AudioLatent]]) -> None:
        self.stats.writes += write_entries(self.storage, (self._item(i, a) for i, a in items),
                                           batch_size=self.write_batch_size,
                                           compress=self.compress)

    # --- precompute ----------------------------------------------------------------------
    def precompute(self, *, rank: int = 0, world_size: int = 1,
                   progress: bool | None = None) -> PrecomputeReport:
        """Encode and store every clip of this rank's share that is not cached yet; clips
        that fail to load are reported in ``failed``, encoder errors are raised."""
        if self.disable:
            return PrecomputeReport(skipped="vae_cache_disable")
        start = time.perf_counter()
        mine = shard(self.all_indices(), rank, world_size)
        paths = {i: self.plan(i).path for i in mine}
        have = existing_paths(self.storage, list(paths.values()), self.prefix)
        todo = [i for i in mine if paths[i] not in have]
        if todo and self.encoder is None:
            raise CacheError(f"audio cache {self.describe()}: {len(todo)} clips are not cached "
                             "and no audio encoder was given")
        failed: list[tuple[str, str]] = []
        encode_seconds = 0.0
        with progress_bar(len(todo), f"audio {self.name}", progress) as bar:
            for batch in self._batches(todo):
                ok, audio = [], []
                for i in batch:
                    try:
                        audio.append(self.load(i))
                        ok.append(i)
                    except Exception as exc:
                        path = str(self.meta.index.paths[i])
                        log.error("audio cache %s: cannot load %r: %s", self.name, path, exc)
                        failed.append((path, f"{type(exc).__name__}: {exc}"))
                if ok:
                    t0 = time.perf_counter()
                    latents = self._encode(ok, audio)
                    encode_seconds += time.perf_counter() - t0
                    self._put(list(zip(ok, latents, strict=True)))
                bar.update(len(batch))
        return PrecomputeReport(total=len(mine), cached=len(mine) - len(todo),
                                encoded=len(todo) - len(failed), failed=tuple(failed),
                                seconds=time.perf_counter() - start,
                                encode_seconds=encode_seconds)

    def new_epoch(self, epoch: int) -> None:
        """Audio latents are not cleared per epoch (windows depend on the seed only)."""


def _problem(entry: tuple[dict[str, Any], dict[str, Any]]) -> str | None:
    latents, meta = entry[0].get("latents"), entry[1]
    if getattr(latents, "ndim", 0) != 2:
        return "no 2-d `latents` tensor"
    if not isinstance(meta.get("valid"), int) or not isinstance(meta.get("total"), int):
        return "no `valid`/`total` sample counts"
    return None
