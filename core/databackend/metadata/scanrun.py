"""One scan of the discovery metadata backend: the work table over the listed files and
the steps that fill it (see :mod:`databackend.metadata.discovery` for the overview)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from databackend.errors import StorageError
from databackend.metadata import params as cfg
from databackend.metadata.captions import CaptionBook, CaptionSource, is_caption_file
from databackend.metadata.index import PROBE_FAILURES, REASON_CODES, REASONS, DatasetIndex
from databackend.metadata.indexed import INDEX_KEY
from databackend.metadata.joblisting import remove_parts, shared_listing
from databackend.metadata.report import ProgressBar, ScanReport
from databackend.metadata.scanner import (
    ROW_WIDTH,
    Chunk,
    Known,
    Listing,
    Prober,
    assemble,
    path_order,
    stored_listing,
)
from databackend.runtime.distributed import PeerTimeoutError, broadcast_token, wait_for
from databackend.storage.base import FileInfo
from databackend.storage.localdir import LocalDirectory

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from databackend.metadata.indexed import IndexedMetadataBackend

__all__ = ["CHECKPOINT_KEY", "DONE_KEY", "INDEX_KEY", "ScanRun"]

log = logging.getLogger(__name__)
_PROBLEMATIC = ("corrupt", "not_an_image")
_UNWANTED = ("too_small", "aspect_out_of_range")
CHECKPOINT_KEY, DONE_KEY = "checkpoint.dbi", "done.json"
_NO_CAPTION = REASON_CODES["no_caption"]
_STICKY = [REASON_CODES[r] for r in PROBE_FAILURES]  # a bad file stays bad while unchanged
_UNREADABLE = REASON_CODES["unreadable"]  # (denied, timed out) is probed again by each scan


class ScanRun:
    """One scan: a work table over the listed files and the steps that fill it.

    Rows are in listing order. Per row: ``pos`` (its unchanged stored row, or -1), ``ints``
    (code, sizes, geometry; see ``scanner.ROW_WIDTH``), ``aspect``, ``valid`` (geometry is
    final). New files are sent to the prober while the listing is still running.
    """

    def __init__(self, backend: IndexedMetadataBackend, *, progress: bool, rank: int,
                 world_size: int) -> None:
        self.b = backend
        self.rank, self.world = rank, world_size
        self.store = backend.index_storage
        self.report = ScanReport(dataset_id=backend.dataset.id,
                                 params_fingerprint=backend.fingerprint,
                                 index_location=f"{self.store.describe()}/{INDEX_KEY}")
        self.source = CaptionSource(backend.caption_settings, backend.storage)
        self.counts = self.report.counts
        self.bar = ProgressBar(progress, f"scan {backend.dataset.id}")
        self.ck_time, self.ck_count, self.ck_written = time.monotonic(), 0, False
        self.ints = np.zeros((0, ROW_WIDTH), np.int32)
        self.listed = False  # the work table exists once the listing is complete
        self.stash: list[Chunk] = []
        self.streamed: list[int] = []
        self.delivered = 0
        self.drop: list[int] = []
        self.parts_token = ""  # set when the ranks split the listing

    def execute(self) -> DatasetIndex:
        """Run every step; returns the new (or unchanged) index."""
        old = DatasetIndex.load(self.store, INDEX_KEY)
        if self.b.settings.use_persisted or self._trusted(old):
            if old is not None:
                return self._persisted(old)
            log.warning("dataset %r: skip_file_discovery is set but there is no stored index "
                        "yet; scanning", self.b.dataset.id)
        checkpoint = DatasetIndex.load(self.store, CHECKPOINT_KEY) if self.world == 1 else None
        self.table_stamp = self.source.table_stamp()
        self.known = Known(self._sources(old, checkpoint))
        b = self.b
        with Prober(b.storage, b.params, b.settings.seed, self._on_chunk,
                    workers=b.settings.workers, start_method=b.start_method,
                    remote_processes=b.settings.remote_processes,
                    executor=b.probe_executor) as self.prober:
            try:
                self.listing = self._list(old)
                self.tag = self._tag(old) if self.world > 1 else ""
                self._classify()
                self._probe_rest()
                if self.world > 1 and self.rank != 0:
                    return self._await_final()
                self._place_rest()
            finally:
                self.bar.close()
        self.book.settle(self.ints, self.pos, self.known)
        self.counts["captioned"] = self.book.looked_up
        self._delete()
        return self._finish(old, checkpoint)

    def _trusted(self, old: DatasetIndex | None) -> bool:
        """``rescan: never``: a stored index made with the current settings is used as is."""
        return (self.b.settings.rescan == "never" and old is not None
                and old.params_fingerprint == self.b.fingerprint)

    def _persisted(self, old: DatasetIndex) -> DatasetIndex:
        self.report.source = "persisted"
        self.counts["unchanged"] = len(old) + len(old.skipped)
        if old.params_fingerprint != self.b.fingerprint:
            self.report.warnings.append("skip_file_discovery: using the stored index although "
                                        "bucketing or caption settings changed since it was made")
        return old

    # --- listing ---------------------------------------------------------------------------
    def _list(self, old: DatasetIndex | None) -> Listing:
        s = self.b.settings
        if (s.preserve_listing or s.rescan == "never") and old is not None:
            listing, texts = stored_listing(self.known)
        else:
            exts = cfg.IMAGE_EXTENSIONS | ({"txt"} if self.source.uses_files else set())
            stream = (self.world == 1 and s.max_num_samples is None
                      and self.source.settings.table is None)  # a table may hold the sizes
            names_only = ((stream and not old) or s.rescan == "changed") and self.world == 1
            listing, texts = Listing.collect(self._job_listed(exts, names_only),
                                             is_caption_file if self.source.uses_files else None,
                                             self._stream if stream else None)
            if s.rescan == "changed":
                self._trust_known_stats(listing)
        self.source.caption_files = texts
        self.full_paths = listing.paths
        self.counts["listed"] = len(listing)
        if s.max_num_samples is None or len(listing) <= s.max_num_samples:
            return listing
        order = path_order(listing.paths)
        shuffled = list(range(len(listing)))
        random.Random(self.b.dataset.id).shuffle(shuffled)
        self.counts["not_selected"] = len(listing) - s.max_num_samples
        return listing.take(np.sort(order[shuffled[:s.max_num_samples]]))

    def _job_listed(self, exts: Iterable[str], names_only: bool) -> Iterator[FileInfo]:
        """Several ranks with a process group split a local listing (one listing per job, see
        :mod:`databackend.metadata.joblisting`); otherwise this rank lists everything."""
        token = broadcast_token(self.world) if self.world > 1 else None  # every rank calls it
        lister = self.b.shard_lister
        if token is None and lister is not None:
            shards = lister(self.b.storage, frozenset(exts))  # e.g. shares on Ray
            if shards is not None:
                return shards
        share = (self.b.storage.list_share(self.rank, self.world, extensions=exts)
                 if token is not None else None)
        if token is None or share is None:
            return self._listed(exts, cold=names_only)
        self.parts_token = token
        return shared_listing(share, self.store, token=token, rank=self.rank, world=self.world,
                              wait=self._wait)

    def _listed(self, exts: Iterable[str], *, cold: bool) -> Iterator[FileInfo]:
        """The storage listing; a cold local scan (nothing known) lists images without a stat
        and its probes ``fstat`` the files they open instead."""
        storage = self.b.storage
        changed = self.b.settings.rescan == "changed"
        if (cold and (changed or not self.known.pos) and isinstance(storage, LocalDirectory)
                and type(storage).list is LocalDirectory.list  # not a subclass's own listing
                and storage.local_path("") is not None):  # probes open the files themselves
            return storage.list(extensions=exts, unstatted=cfg.IMAGE_EXTENSIONS)
        return storage.list(extensions=exts)

    def _trust_known_stats(self, listing: Listing) -> None:
        """``rescan: changed``: a listed name the index knows takes its stored size, mtime and
        ETag (no stat: in-place rewrites go unnoticed); new names are stat'ed by their probe."""
        unknown = listing.size < 0
        pos = np.fromiter((self.known.pos.get(p, -1) for p in listing.paths), np.int64,
                          len(listing))
        take = unknown & (pos >= 0)
        listing.size[take], listing.mtime[take] = (self.known.size[pos[take]],
                                                   self.known.mtime[pos[take]])

    def _table_sizes(self) -> bool:
        table = self.source.table if self.source.settings.table is not None else None
        return table is not None and table.has_sizes

    def _stream(self, first: int, infos: list[FileInfo]) -> None:
        """Listing hook: files never seen before go to the prober at once."""
        known = self.known.pos
        new = [(row, path, size) for row, (path, size, _, _) in enumerate(infos, first)
               if path not in known]
        self.streamed.extend(row for row, _, _ in new)
        self.counts["probed"] += len(new)
        self.prober.add_many(new)

    def _sources(self, *found: DatasetIndex | None) -> list[tuple[DatasetIndex, bool, bool]]:
        out = []
        for idx in found:
            if idx is not None:
                meta = idx.meta
                out.append((idx, meta.get("geometry_fp") == self.b.geometry_fp,
                            meta.get("caption_fp") == self.b.caption_fp
                            and meta.get("table_stamp") == self.table_stamp))
        return out

    def _tag(self, old: DatasetIndex | None) -> str:
        """Identifies this scan across ranks: same stored index, settings and listing."""
        h = hashlib.sha256(f"{old.meta.get('generation') if old else ''}|{self.b.fingerprint}"
                           .encode())
        order = path_order(self.listing.paths)
        h.update("\0".join(self.listing.paths[int(r)] for r in order).encode(
            "utf-8", "surrogateescape"))
        h.update(self.listing.size[order].tobytes())
        h.update(self.listing.mtime[order].tobytes())
        return h.hexdigest()[:16]

    def _classify(self) -> None:
        L, K = self.listing, self.known
        n = len(L)
        by_path, self.pos = K.match(L)
        retry = self.pos >= 0
        retry[retry] = K.ints[self.pos[retry], 0] == _UNREADABLE
        self.pos[retry] = -1  # probed again, counted as changed
        pos, hit = self.pos, self.pos >= 0
        ints = np.zeros((n, ROW_WIDTH), np.int32)
        self.aspect, self.valid = np.zeros(n), np.zeros(n, np.bool_)
        self.book = CaptionBook(self.source, L.paths, _NO_CAPTION)
        ints[hit], self.aspect[hit] = K.ints[pos[hit]], K.aspect[pos[hit]]
        fresh = np.zeros(n, np.bool_)
        fresh[hit] = K.fresh[pos[hit]]
        code = ints[:, 0]
        self.valid[:] = hit & (np.isin(code, _STICKY) | (fresh & (code != _NO_CAPTION)))
        self.ints, self.listed = ints, True
        for chunk in self.stash:
            self._on_chunk(chunk)
        self.stash = []
        self.counts["new"] = int((by_path < 0).sum())
        self.counts["changed"] = int(((by_path >= 0) & ~hit).sum())
        self.counts["unchanged"] = int(hit.sum())
        present = (n - self.counts["new"] if self.full_paths is L.paths
                   else sum(1 for p in self.full_paths if p in K.pos))
        self.counts["removed"] = len(K.pos) - present

    # --- reading headers -------------------------------------------------------------------
    def _on_chunk(self, chunk: Chunk) -> None:
        """A finished chunk of probes or placements (stashed until the listing is done)."""
        if not self.listed:
            self.stash.append(chunk)
            return
        rows, ints, aspects, stats = chunk
        if stats is not None:  # a names-only listing left size -1: take the probe's fstat
            unstatted = self.listing.size[rows] < 0
            at = rows[unstatted]
            self.listing.size[at], self.listing.mtime[at] = stats[unstatted, 0], stats[unstatted, 1]
        self.ints[rows], self.aspect[rows], self.valid[rows] = ints, aspects, True
        self.delivered += len(rows)
        self.bar.update(len(rows))
        self.book.look_up(rows[(ints[:, 0] == 0) & (self.pos[rows] < 0)], self.ints)
        self._maybe_checkpoint()

    def _probe_rest(self) -> None:
        """Queue every new or changed file not streamed yet; wait for all results."""
        paths = self.listing.paths
        rows = np.flatnonzero(self.pos < 0)
        rows = rows[~np.isin(rows, np.asarray(self.streamed, np.int64))]
        rows = self._place_table_sized(rows)
        if self.world > 1:
            rows = rows[path_order([paths[int(r)] for r in rows])]
            mine, others = rows[self.rank::self.world], np.setdiff1d(rows, rows[self.rank::self.world])
        else:
            mine, others = rows, rows[:0]
        for r in mine:
            self.prober.add(int(r), paths[int(r)], int(self.listing.size[r]))
        self.counts["probed"] += len(mine)
        self.bar.set_total(self.counts["probed"] + self.counts["rederived"])
        self.prober.finish()
        if self.world > 1 and self.rank != 0:
            self._snapshot(mine, f"partial-{self.tag}-{self.rank}.dbi", {"rank": self.rank})
        elif self.world > 1:
            self._merge_partials(others)

    def _place_table_sized(self, rows: np.ndarray) -> np.ndarray:
        """Rows whose sizes the caption table gives are placed, not probed; returns the rest."""
        if not len(rows) or not self._table_sizes():  # (loads the table only when needed)
            return rows
        keep = []
        for r in rows:
            path = self.listing.paths[int(r)]
            size = self.source.table_size(path)
            if size is None:
                keep.append(r)
                continue
            self.ints[r, 1:3] = size
            self.counts["rederived"] += 1
            self.prober.add(int(r), path, size)
        return np.asarray(keep, np.int64)

    def _place_rest(self) -> None:
        """Bucket known files whose stored geometry is stale, from their stored size."""
        rows = np.flatnonzero(~self.valid)
        for r in rows:
            w, h = self.ints[r, 1:3]
            self.prober.add(int(r), self.listing.paths[int(r)], (int(w), int(h)))
        self.counts["rederived"] += len(rows)
        self.prober.finish()

    def _maybe_checkpoint(self) -> None:
        b, now = self.b, time.monotonic()
        if self.world > 1 or (now - self.ck_time < b.checkpoint_interval_s
                              and self.delivered - self.ck_count < b.checkpoint_files):
            return
        self._snapshot(np.flatnonzero(self.valid), CHECKPOINT_KEY, {"checkpoint": True})
        self.ck_time, self.ck_count, self.ck_written = now, self.delivered, True
        log.debug("dataset %r: checkpoint after %d files", b.dataset.id, self.delivered)

    def _snapshot(self, rows: np.ndarray, key: str, meta: dict[str, Any]) -> None:
        """Save probed rows (without captions) for a resume or for rank 0 to merge."""
        ints = self.ints[rows]
        n = len(rows)
        index = assemble(self.listing.take(rows), ints, self.aspect[rows],
                         np.full((n, 2), -1.0), [()] * int((ints[:, 0] == 0).sum()),
                         fingerprint="", meta={"geometry_fp": self.b.geometry_fp,
                                               "caption_fp": "", "tag": self.tag, **meta})
        index.save(self.store, key)

    # --- ranks -----------------------------------------------------------------------------
    def _wait(self, ready: Any, what: str) -> None:
        """Wait for another rank's files; logs every 30 s, fails after ``rank_timeout_s``."""
        try:
            wait_for(ready, f"{what} (dataset {self.b.dataset.id!r}, this is rank {self.rank})",
                     timeout_s=self.b.rank_timeout_s, poll_s=self.b.rank_poll_s)
        except PeerTimeoutError as exc:
            raise StorageError(f"dataset {self.b.dataset.id!r}: rank {self.rank} {exc}") from None

    def _merge_partials(self, others: np.ndarray) -> None:
        """Rank 0: take the other ranks' rows; probe whatever they did not deliver."""
        parts = []
        for r in range(1, self.world):
            key = f"partial-{self.tag}-{r}.dbi"
            self._wait(lambda key=key: self.store.exists(key), f"rank {r}'s results")
            part = DatasetIndex.load(self.store, key)
            if part is not None:
                parts.append((part, part.meta.get("geometry_fp") == self.b.geometry_fp, False))
            self.store.delete(key)
        known = Known(parts)
        pos = known.match(self.listing.take(others))[1]
        hit = (pos >= 0) & known.fresh[np.where(pos >= 0, pos, 0)] if len(known) else pos >= 0
        got = others[hit]
        self.ints[got], self.aspect[got] = known.ints[pos[hit]], known.aspect[pos[hit]]
        self.valid[got] = True
        self.counts["probed"] += len(got)
        if (~hit).any():
            log.warning("dataset %r: %d file(s) missing from the other ranks' results; rank 0 "
                        "reads them", self.b.dataset.id, int((~hit).sum()))
            for r in others[~hit]:
                self.prober.add(int(r), self.listing.paths[int(r)], int(self.listing.size[r]))
            self.prober.finish()

    def _done_tag(self) -> str | None:
        try:
            return str(json.loads(self.store.read(DONE_KEY)).get("tag"))
        except (FileNotFoundError, ValueError):
            return None

    def _await_final(self) -> DatasetIndex:
        self._wait(lambda: self._done_tag() == self.tag, "rank 0 to write the merged index")
        index = DatasetIndex.load(self.store, INDEX_KEY)
        if index is None:
            raise StorageError(f"dataset {self.b.dataset.id!r}: the merged index is missing")
        self.report.source = "rank-merge"
        return index

    # --- captions, deletion, result --------------------------------------------------------
    def _delete(self) -> None:
        """Delete skipped files only when the config asks; every deletion is counted."""
        s = self.b.settings
        reasons = (_PROBLEMATIC if s.delete_problematic else ()) + (
            _UNWANTED if s.delete_unwanted else ())
        rows = np.flatnonzero(np.isin(self.ints[:, 0], [REASON_CODES[r] for r in reasons]))
        for r in rows:
            path, reason = self.listing.paths[int(r)], REASONS[int(self.ints[r, 0])]
            try:
                self.b.storage.delete(path)
            except Exception as exc:
                self.report.warnings.append(f"could not delete {path} ({reason}): {exc}")
                continue
            log.info("dataset %r: deleted %s (%s)", self.b.dataset.id, path, reason)
            self.report.deleted[reason] = self.report.deleted.get(reason, 0) + 1
            self.drop.append(int(r))
        self.counts["deleted"] = len(self.drop)

    def _unchanged(self, old: DatasetIndex | None, checkpoint: DatasetIndex | None) -> bool:
        c = self.counts
        work = c["probed"] + c["rederived"] + self.book.looked_up + c["deleted"]
        return (old is not None and checkpoint is None and not self.ck_written and work == 0
                and old.params_fingerprint == self.b.fingerprint
                and old.meta.get("table_stamp") == self.table_stamp
                and len(self.listing) == len(old) + len(old.skipped))

    def _finish(self, old: DatasetIndex | None, checkpoint: DatasetIndex | None) -> DatasetIndex:
        index = old if old is not None and self._unchanged(old, checkpoint) else None
        if index is None:
            keep = np.ones(len(self.listing), np.bool_)
            keep[self.drop] = False
            rows = np.flatnonzero(keep)
            paths = self.listing.paths
            rows = rows[path_order(paths if len(rows) == len(paths) else
                                   [paths[r] for r in rows.tolist()])]
            kept = rows[self.ints[rows, 0] == 0]
            captions = self.book.captions(kept, self.known)
            meta = {"dataset_id": self.b.dataset.id, "geometry_fp": self.b.geometry_fp,
                    "caption_fp": self.b.caption_fp, "table_stamp": self.table_stamp,
                    "aspect_rounding": self.b.params.rounding, "generation": uuid.uuid4().hex,
                    "created": time.time(), "storage": self.b.storage.describe()}
            index = assemble(self.listing.take(rows), self.ints[rows], self.aspect[rows],
                             self.book.stamps[rows], captions, fingerprint=self.b.fingerprint,
                             meta=meta)
            index.save(self.store, INDEX_KEY)
        if checkpoint is not None or self.ck_written:
            self.store.delete(CHECKPOINT_KEY)
        if self.world > 1:
            self.store.write(DONE_KEY, json.dumps({"tag": self.tag}).encode())
        if self.parts_token:  # every rank has read the listing parts (they sent their results)
            remove_parts(self.store, self.parts_token, self.world)
        return index
