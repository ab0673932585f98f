"""The VAE latent cache: one entry per sample, keyed by encoder, sample identity and geometry.

Each entry holds the ``latents`` tensor ``[C, H/8, W/8]`` and, in its metadata, the values an
SDXL-style trainer conditions on: original size, crop coordinates and target size.

Flags (dataset keys, ``vae_cache_ondemand`` falling back to the factory option):

* ``vae_cache_ondemand``: no precompute at start-up; :meth:`LatentCache.get_many` encodes
  what is missing and writes it.
* ``vae_cache_disable`` (implies ondemand): nothing is read or written; latents are encoded
  at batch time.
* ``vae_cache_clear_each_epoch``: :meth:`LatentCache.new_epoch` deletes every entry.

A missing or bad entry is recomputed when an encoder is given (a bad one is counted as a
repair); without an encoder it raises :class:`~databackend.errors.CacheError` naming the sample
and the cache file.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from itertools import chain
from typing import TYPE_CHECKING, Any

import attrs

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
from databackend.caches.decode import draft_request
from databackend.caches.fill import EncodeRunner, FillTimes
from databackend.caches.format import EXTENSION
from databackend.caches.imaging import SampleSource, batches_by_size
from databackend.caches.loaders import ThreadLoader, make_loader
from databackend.errors import CacheError

if TYPE_CHECKING:
    import torch

    from databackend.caches.encoders import ImageEncoder
    from databackend.geometry import SampleGeometry
    from databackend.storage.base import StorageBackend

__all__ = ["LatentCache", "LatentEntry"]

log = logging.getLogger(__name__)
Size = tuple[int, int]
#: What the memo holds per sample: geometry, content key, entry path, sample path.
_Located = tuple["SampleGeometry", str, str, str]


@attrs.frozen(eq=False)
class LatentEntry:
    """One sample's latents and its micro-conditioning values (sizes are ``(W, H)``;
    ``crop_coordinates`` is ``(top, left)``)."""

    latents: torch.Tensor
    original_size: Size
    crop_coordinates: Size
    target_size: Size
    path: str

    def time_ids(self) -> tuple[int, int, int, int, int, int]:
        """SDXL's ``add_time_ids`` order: original (h, w), crop (top, left), target (h, w)."""
        (ow, oh), (top, left), (tw, th) = (self.original_size, self.crop_coordinates,
                                           self.target_size)
        return (oh, ow, top, left, th, tw)


def _latent_problem(latents: Any, target: Size) -> str | None:
    """Why a stored latent cannot belong to a ``target``-sized image, or None."""
    shape: tuple[int, ...] = getattr(latents, "shape", ())
    if len(shape) != 3:
        return "no 3-d `latents` tensor"
    _, h, w = shape
    if not h or not w or target[1] % h or target[0] % w or target[0] // w != target[1] // h:
        return f"latents {tuple(latents.shape)} do not fit target size {target}"
    return None


class LatentCache(CacheBase):
    """VAE latents of one dataset on any storage backend.

    :param storage: where entries live (under ``prefix``).
    :param source: the dataset's metadata backend (index, ``load_image``, ``sample_key``).
    :param encoder: computes missing entries; None for a read-only cache, which then needs
        ``identity``.
    :param hash_filenames: file naming, see :mod:`databackend.caches.keys`.
    :param workers: decoder processes for ``precompute`` (None: one per core for large fills,
        threads for small ones; 0: threads only).
    :param draft: allow JPEG draft decoding where the first resize target is at most half the
        source (part of those samples' keys).
    """

    kind = "latent"

    def __init__(self, storage: StorageBackend, source: SampleSource, *,
                 encoder: ImageEncoder | None = None, identity: str | None = None,
                 prefix: str = "", hash_filenames: bool = True, compress: bool = False,
                 write_batch_size: int = 128, ondemand: bool = False, disable: bool = False,
                 clear_each_epoch: bool = False, batch_size: int = 8,
                 workers: int | None = None, read_workers: int = 1,
                 name: str = "latents", draft: bool = True) -> None:
        """Bind the cache; raises ``ValueError`` when neither encoder nor identity is given."""
        super().__init__(storage, encoder=encoder, identity=identity, prefix=prefix,
                         compress=compress, write_batch_size=write_batch_size,
                         ondemand=ondemand, disable=disable, read_workers=read_workers,
                         name=name)
        self.encoder: ImageEncoder | None = encoder
        self.source, self.hash_filenames, self.batch_size = source, hash_filenames, batch_size
        self.workers, self.draft = workers, draft
        self.clear_each_epoch = clear_each_epoch
        self.last_fill = FillTimes()
        self._memo_index: Any = None

    def _geometry(self, i: int) -> SampleGeometry:
        return self.source.index.geometry(i)  # type: ignore[no-any-return]

    def key(self, i: int) -> str:
        """The content key of sample ``i``'s latent."""
        return self._locate(i)[1]

    def path(self, i: int) -> str:
        """The storage key of sample ``i``'s entry."""
        return self._locate(i)[2]

    def _locate(self, i: int) -> _Located:
        """``(geometry, key, path, sample path)`` of sample ``i`` (memoised per index object)."""
        return self._locate_many([i])[0]

    def _locate_many(self, indices: Sequence[int]) -> list[_Located]:
        """``(geometry, key, path, sample path)`` of each index, memoised while the index object
        stays."""
        index = self.source.index
        if index is not self._memo_index:  # a rescan replaced it: other geometry, other keys
            self._memo.clear()
            self._memo_index = index
        memo = self._memo
        return [memo[i] for i in indices]

    def _compute_location(self, i: int) -> _Located:
        geometry = self._geometry(i)
        first = geometry.downsample_size or geometry.intermediary_size
        variant = ("draft" if self.draft and draft_request(geometry.original_size, first)
                   else None)
        key = keys.latent_key(self.identity, self.source.sample_key(i), geometry,
                              pixels=variant)
        name = str(self.source.index.paths[i])
        path = keys.latent_path(name, key, hash_filenames=self.hash_filenames)
        return geometry, key, keys.join(self.prefix, path), name

    def all_indices(self) -> list[int]:
        """Every bucketed sample of the index, sorted."""
        return sorted(int(i) for i in chain.from_iterable(self.source.index.buckets().values()))

    # --- reading ------------------------------------------------------------------------
    def get_many(self, indices: Sequence[int]) -> list[LatentEntry]:
        """Latents of the given samples with their sizes and paths, in order (CPU tensors).

        Entries are read in one batch and verified; missing or bad ones are encoded (and
        written unless the cache is disabled). Raises :class:`CacheError` when an entry is
        missing or bad and there is no encoder, or when a sample cannot be loaded.
        """
        tensors = self.tensors(indices)
        return [LatentEntry(t, g.original_size, g.crop_coordinates, g.target_size, name)
                for t, (g, _, _, name) in zip(tensors, self._locate_many(indices), strict=True)]

    def tensors(self, indices: Sequence[int]) -> list[torch.Tensor]:
        """Just the latents of the given samples, in order: :meth:`get_many` without the
        per-sample records (the runtime takes sizes from the index)."""
        unique = list(dict.fromkeys(indices))
        found = (self._encode_now(unique, write=False) if self.disable
                 else self._read_latents(unique))
        if len(unique) == len(indices):
            return found
        where = {i: k for k, i in enumerate(unique)}
        return [found[where[i]] for i in indices]

    def _read_latents(self, unique: list[int]) -> list[torch.Tensor]:
        """Read and check the entries of distinct samples; encode what is missing or bad."""
        located = self._locate_many(unique)
        entries = self._read([loc[2] for loc in located], [loc[1] for loc in located])
        out: list[Any] = []
        todo: list[int] = []  # places in ``out`` to encode
        for i, (geometry, _, path, _), entry in zip(unique, located, entries, strict=True):
            if isinstance(entry, tuple):
                latents = entry[0].get("latents")
                reason = self._problem(latents, geometry)
                if reason is None:
                    out.append(latents)
                    continue
            else:
                reason = entry
            self._miss(i, path, reason)
            todo.append(len(out))
            out.append(None)
        self.stats.hits += len(out) - len(todo)
        if todo:
            fresh = self._encode_now([unique[k] for k in todo], write=True)
            for k, latents in zip(todo, fresh, strict=True):
                out[k] = latents
        return out

    def _batch_shape(self, i: int) -> tuple[int, ...]:
        """What samples encoded in one call share (their target size; media: and length)."""
        return self._geometry(i).target_size

    def _problem(self, latents: Any, geometry: SampleGeometry) -> str | None:
        """Why ``latents`` cannot be an entry of a sample with ``geometry`` (None: it fits);
        caches of other layouts (video latents) override this."""
        return _latent_problem(latents, geometry.target_size)

    def _miss(self, i: int, path: str, reason: str | None) -> None:
        """Count a miss (and a repair for a bad file); raise without an encoder."""
        self._count_miss("latent cache", f"for sample {self.source.index.paths[i]!r}", path,
                         reason, "image encoder")

    # --- encoding -----------------------------------------------------------------------
    #: Images with more pixels are refused before decoding (a counted, named failure);
    #: the factory option ``max_image_pixels`` sets it.
    max_pixels: int | None = None
    #: Batches decoded ahead of the encoder, at least (and two images per decoder): batches of
    #: one bucket differ in decode cost; on the mixed benchmark set two left an encoder at 0.8x
    #: the decoders' rate waiting 7-10% of the time after the first batch, four 0-3.5%.
    prefetch_batches: int = 4

    # --- for engines that run the fill's stages elsewhere (engines/raystages.py) -------------
    def encode_runner(self) -> EncodeRunner:
        """The encoder call with this cache's output check and OOM halving."""
        return self._runner()

    def encode_decoded(self, runner: EncodeRunner, indices: list[int], arrays: list[Any]
                       ) -> list[torch.Tensor]:
        """The checked latents of samples ``indices`` from their decoded inputs (as a fill's
        decoders produce them), through ``runner`` (:meth:`encode_runner`)."""
        return self._encode_batch(runner, indices, arrays)

    def _runner(self) -> EncodeRunner:
        if self.encoder is None:
            raise CacheError(f"latent cache {self.describe()} is disabled and no image "
                             "encoder was given")
        return EncodeRunner(self.encoder, self._check_output)

    def _check_output(self, out: Any, count: int) -> None:
        """Raise ``TypeError`` unless ``out`` is ``[count, C, h, w]`` fitting the batch."""
        import torch

        if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != count:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TypeError(f"image encoder {self.identity!r} must return [B, C, h, w] with "
                            f"B={count}; got {shape}")
        h, w = out.shape[2], out.shape[3]
        if not h or not w:
            raise TypeError(f"image encoder {self.identity!r}: empty latents {tuple(out.shape)}")

    def _fit(self, batch: list[int], latents: list[torch.Tensor]) -> list[torch.Tensor]:
        problem = _latent_problem(latents[0], self._geometry(batch[0]).target_size)
        if problem:
            raise TypeError(f"image encoder {self.identity!r}: {problem}")
        self.stats.encoded += len(batch)
        return latents

    def _open_loader(self, count: int | None) -> Any:
        """Where the fill gets its inputs: ``count`` samples to decode ahead of the encoder
        (worker processes or threads), or None for one sample at a time in this thread.
        Caches that decode their own way (video windows, audio clips) override this and
        :meth:`_encode_batch`."""
        if count is None:
            return ThreadLoader(self.source, 1, draft=self.draft, max_pixels=self.max_pixels)
        return make_loader(self.source, count, workers=self.workers, draft=self.draft,
                           max_pixels=self.max_pixels)

    def _encode_batch(self, runner: EncodeRunner, batch: list[int], arrays: list[Any]
                      ) -> list[torch.Tensor]:
        """The checked latents of one batch of decoded inputs."""
        return self._fit(batch, runner(arrays, [self.key(i) for i in batch]))

    def _item(self, i: int, latents: torch.Tensor) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """``(path, tensors, meta)`` for the writer."""
        g, key, path, _ = self._locate(i)
        meta = {"key": key, "encoder": self.identity, "sample": self.source.sample_key(i),
                "original_size": g.original_size, "crop_coordinates": g.crop_coordinates,
                "target_size": g.target_size, "intermediary_size": g.intermediary_size}
        return path, {"latents": latents}, meta

    def _encode_now(self, indices: list[int], *, write: bool) -> list[torch.Tensor]:
        """Load and encode ``indices`` right away (batch time); load errors raise CacheError."""
        out: dict[int, torch.Tensor] = {}
        batches = self.encode_batches(dict.fromkeys(indices), self.batch_size)
        runner, loader = self._runner(), self._open_loader(None)
        for batch in batches:
            arrays = []
            for i in batch:
                try:
                    arrays.append(loader.load(i))
                except Exception as exc:
                    raise CacheError(f"latent cache {self.describe()}: cannot load sample "
                                     f"{self.source.index.paths[i]!r}: {exc}") from exc
            latents = self._encode_batch(runner, batch, arrays)
            out.update(zip(batch, latents, strict=True))
        if write and out:
            self._store_fresh(lambda: self.put_many(list(out), list(out.values())), len(out))
        return [out[i] for i in indices]

    def put_many(self, indices: Sequence[int], latents: Sequence[torch.Tensor]) -> None:
        """Store latents computed elsewhere (``[C, h, w]`` each); a no-op when disabled."""
        if len(indices) != len(latents):
            raise ValueError(f"{len(indices)} indices but {len(latents)} latents")
        for i, lat in zip(indices, latents, strict=True):
            problem = self._problem(lat, self._geometry(i))
            if problem:
                raise ValueError(f"sample {self.source.index.paths[i]!r}: {problem}")
        if not self.disable:
            self.stats.writes += write_entries(
                self.storage, (self._item(i, lat) for i, lat in zip(indices, latents, strict=True)),
                batch_size=self.write_batch_size, compress=self.compress)

    # --- precompute ---------------------------------------------------------------------
    def precompute(self, indices: Iterable[int] | None = None, *, rank: int = 0,
                   world_size: int = 1, batch_size: int | None = None,
                   progress: bool | None = None) -> PrecomputeReport:
        """Encode and store every sample not cached yet (this rank's share).

        ``indices`` defaults to every bucketed sample. Images are decoded, oriented, resized
        and cropped by worker processes (see ``workers``) ahead of the encoder, batches of one
        bucket go to the encoder as uint8 and are normalised on its device, and entries are
        written in the background. An out-of-memory error halves the batch (counted in
        ``oom_retries``). Samples that fail to load are reported in ``failed`` (and logged),
        not skipped silently; other encoder errors are raised.
        """
        if self.disable:
            return PrecomputeReport(skipped="vae_cache_disable")
        start = time.perf_counter()
        mine, todo = self.missing(indices, rank, world_size)
        if todo and self.encoder is None:
            raise CacheError(f"latent cache {self.describe()}: {len(todo)} samples are not "
                             "cached and no image encoder was given")
        failed = self._fill(todo, batch_size or self.batch_size, progress) if todo else []
        t = self.last_fill
        return PrecomputeReport(total=len(mine), cached=len(mine) - len(todo),
                                encoded=len(todo) - len(failed), failed=tuple(failed),
                                seconds=time.perf_counter() - start,
                                encode_seconds=t.encode_seconds, wait_seconds=t.wait_seconds,
                                oom_retries=t.oom_retries)

    def missing(self, indices: Iterable[int] | None = None, rank: int = 0,
                world_size: int = 1) -> tuple[list[int], list[int]]:
        """``(mine, todo)``: this rank's share of ``indices`` (default: every bucketed sample),
        sorted, and those of them without an entry yet."""
        mine = shard(sorted(self.all_indices() if indices is None else set(indices)),
                     rank, world_size)
        paths = {i: self.path(i) for i in mine}
        have = existing_paths(self.storage, list(paths.values()), self.prefix)
        return mine, [i for i in mine if paths[i] not in have]

    def encode_batches(self, todo: Iterable[int], batch_size: int) -> list[list[int]]:
        """``todo`` grouped into encoder calls of up to ``batch_size`` samples that share a
        shape (target size; media: and length)."""
        return batches_by_size(todo, self._batch_shape, batch_size)

    def _fill(self, todo: list[int], batch_size: int, progress: bool | None
              ) -> list[tuple[str, str]]:
        """The precompute pipeline: decoders -> encoder (this thread) -> writer thread."""
        batches = deque(self.encode_batches(todo, batch_size))
        runner, failed = self._runner(), list[tuple[str, str]]()
        self.last_fill = runner.times
        loader = self._open_loader(len(todo))
        ahead = max(self.prefetch_batches, -(-2 * loader.workers // max(1, batch_size)))
        start = time.perf_counter()
        try:
            with BatchWriter(self.storage, batch_size=min(self.write_batch_size, 2 * batch_size),
                             compress=self.compress) as writer, \
                    progress_bar(len(todo), f"latents {self.name}", progress) as bar:
                loads: deque[tuple[list[int], list[Future[Any]]]] = deque()
                while batches or loads:
                    while batches and len(loads) < ahead:
                        batch = batches.popleft()
                        loads.append((batch, [loader.submit(i) for i in batch]))
                    batch, futures = loads.popleft()
                    ok, arrays = self._collect(batch, futures, failed)
                    if ok:
                        latents = self._encode_batch(runner, ok, arrays)
                        writer.add(self._item(i, lat) for i, lat in zip(ok, latents, strict=True))
                    bar.update(len(batch))
                    _postfix(bar, runner.times, time.perf_counter() - start)
            self.stats.writes += writer.written
        finally:
            loader.close()
        return failed

    def _collect(self, batch: list[int], futures: list[Future[Any]],
                 failed: list[tuple[str, str]]) -> tuple[list[int], list[Any]]:
        """The decoded pixels of a batch; samples that failed to load go to ``failed``."""
        ok, arrays = [], []
        t0 = time.perf_counter()
        for i, future in zip(batch, futures, strict=True):
            try:
                arrays.append(future.result())
                ok.append(i)
            except Exception as exc:
                path = str(self.source.index.paths[i])
                log.error("latent cache %s: cannot load %r: %s", self.name, path, exc)
                failed.append((path, f"{type(exc).__name__}: {exc}"))
        waited = time.perf_counter() - t0
        self.last_fill.wait_seconds += waited
        if self.last_fill.first_wait_seconds is None:
            self.last_fill.first_wait_seconds = waited
        return ok, arrays

    # --- maintenance --------------------------------------------------------------------
    def clear(self) -> int:
        """Delete every entry under this cache's prefix; returns how many were deleted."""
        found = [f.path for f in self.storage.list(self.prefix, extensions=[EXTENSION])]
        for path in found:
            self.storage.delete(path)
        log.info("latent cache %s: cleared %d entries", self.name, len(found))
        return len(found)

    def new_epoch(self, epoch: int) -> None:
        """The epoch hook: with ``vae_cache_clear_each_epoch``, clear the cache."""
        if self.clear_each_epoch:
            log.info("latent cache %s: clearing for epoch %d", self.name, epoch)
            self.clear()


def _postfix(bar: Any, times: FillTimes, seconds: float) -> None:
    """Show images/s and the encoder's busy fraction on the progress bar."""
    if seconds > 0 and not bar.disable:
        bar.set_postfix(img_s=f"{times.images / seconds:.1f}",
                        busy=f"{100 * times.encode_seconds / seconds:.0f}%", refresh=False)
