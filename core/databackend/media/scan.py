"""One scan of a media dataset: list, probe (or reuse), filter, bucket, window, caption, save.

The steps follow the image scan (docs/metadata.md) on a smaller scale: media datasets hold
thousands of clips, not millions of images, so every kept sample is re-planned from its probed
metadata on each scan (cheap; no file is read again unless it changed) and captions are looked
up for every kept sample. Rank 0 scans and writes; other ranks wait for its ``done.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from typing import Any

import numpy as np

from databackend.errors import StorageError
from databackend.media.index import MediaIndex, ProbeTable, _columns
from databackend.media.probing import Outcome, probe_files
from databackend.media.report import MediaScanReport
from databackend.metadata.captions import CaptionSource, is_caption_file
from databackend.metadata.index import REASON_CODES, DatasetIndex
from databackend.metadata.placement import EMPTY_GEOMETRY, place
from databackend.metadata.report import ProgressBar
from databackend.metadata.scanner import ROW_WIDTH
from databackend.metadata.scanrun import DONE_KEY, INDEX_KEY
from databackend.storage.base import FileInfo

__all__ = ["MediaScan"]

log = logging.getLogger(__name__)
_PROBLEMATIC = ("corrupt", "not_media")
_UNWANTED = ("too_small", "aspect_out_of_range", "too_few_frames", "too_many_frames",
             "too_short", "too_long")


class MediaScan:
    """One scan of a :class:`~databackend.media.backend.MediaMetadataBackend`."""

    def __init__(self, backend: Any, *, progress: bool, rank: int,
                 world_size: int) -> None:
        """Bind the scan to its backend; nothing runs until :meth:`execute`."""
        self.b, self.rank, self.world = backend, rank, world_size
        self.store = backend.index_storage
        self.report = MediaScanReport(dataset_id=backend.dataset.id, kind=backend.spec.kind,
                                      params_fingerprint=backend.fingerprint,
                                      index_location=f"{self.store.describe()}/{INDEX_KEY}")
        self.counts = self.report.counts
        self.bar = ProgressBar(progress, f"scan {backend.dataset.id}")
        self.source = CaptionSource(backend.caption_settings, backend.storage)
        #: the probe that reads the files (a spec's ``probe_kind``, else its kind)
        self.probe_kind: str = getattr(backend.spec, "probe_kind", backend.spec.kind)

    def execute(self) -> MediaIndex:
        """Run every step; returns the new (or unchanged) index."""
        old = MediaIndex.load(self.store, INDEX_KEY)
        if self.b.settings.use_persisted and old is not None:
            self.report.source = "persisted"
            self.counts["unchanged"] = len(old) + len(old.skipped)
            return old
        files = self._list()
        tag = self._tag(files)
        if self.world > 1 and self.rank != 0:
            return self._await(tag)
        if old is not None and old.meta.get("probe", old.meta.get("kind")) != self.probe_kind:
            old = None  # probed by another probe (an audio set that now follows a video set)
        try:
            outcomes, probed = probe_files(
                self.b.storage, self.b.probes, self.probe_kind, files,
                old.probes if old is not None else None, workers=self.b.settings.workers,
                on_done=self.bar.update)
        finally:
            self.bar.close()
        self.counts["probed"] = probed
        self._count_changes(files, old.probes if old is not None else None)
        self.report.counted = sum(1 for _, info in outcomes if info is not None and info.counted)
        index = self._build(files, outcomes, old, tag)
        if self.world > 1:
            self.store.write(DONE_KEY, json.dumps({"tag": tag}).encode())
        return index

    # --- listing ---------------------------------------------------------------------------
    def _list(self) -> list[tuple[str, int, float]]:
        exts = set(self.b.spec.extensions()) | ({"txt"} if self.source.uses_files else set())
        media: list[FileInfo] = []
        texts: dict[str, FileInfo] = {}
        for info in self.b.storage.list(extensions=exts):
            if self.source.uses_files and is_caption_file(info.path):
                texts[info.path] = info
            else:
                media.append(info)
        self.source.caption_files = texts
        media.sort(key=lambda f: f.path)
        self.counts["listed"] = len(media)
        limit = self.b.settings.max_num_samples
        if limit is not None and len(media) > limit:
            order = list(range(len(media)))
            random.Random(self.b.dataset.id).shuffle(order)
            self.counts["not_selected"] = len(media) - limit
            media = [media[k] for k in sorted(order[:limit])]
        return [(f.path, f.size, f.mtime) for f in media]

    def _tag(self, files: list[tuple[str, int, float]]) -> str:
        """What this scan's result depends on: settings, listing, captions."""
        h = hashlib.sha256(self.b.fingerprint.encode())
        h.update(json.dumps([files, self.source.table_stamp(),
                             sorted((k, v.size, v.mtime) for k, v in
                                    self.source.caption_files.items())]).encode(
            "utf-8", "surrogateescape"))
        return h.hexdigest()[:16]

    def _await(self, tag: str) -> MediaIndex:
        deadline = time.monotonic() + self.b.rank_timeout_s
        while True:
            try:
                if json.loads(self.store.read(DONE_KEY)).get("tag") == tag:
                    found = MediaIndex.load(self.store, INDEX_KEY)
                    if found is not None:
                        self.report.source = "rank-merge"
                        return found
            except (FileNotFoundError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise StorageError(f"dataset {self.b.dataset.id!r}: rank {self.rank} gave up "
                                   f"waiting for rank 0's scan after {self.b.rank_timeout_s:.0f}s")
            time.sleep(self.b.rank_poll_s)

    def _count_changes(self, files: list[tuple[str, int, float]], known: ProbeTable | None
                       ) -> None:
        """new / changed / unchanged / removed against the stored probe table."""
        paths = set(known.paths) if known is not None else set()
        new = sum(1 for f in files if f[0] not in paths)
        same = sum(1 for f in files if known is not None and known.lookup(*f, "") is not None)
        self.counts.update(new=new, changed=len(files) - new - same, unchanged=same,
                           removed=len(paths - {f[0] for f in files}))

    # --- planning --------------------------------------------------------------------------
    def _plan(self, key: str, outcome: Outcome) -> tuple[list[int], float, Any]:
        """The work row (code, sizes, geometry), aspect, and (window, bucket) of one file."""
        reason, info = outcome
        if info is None:
            return [REASON_CODES[reason], -1, -1, *EMPTY_GEOMETRY], 0.0, None
        plan = self.b.spec.plan(info, key, self.b.settings.seed)
        if plan.reason is not None:
            return [REASON_CODES[plan.reason], info.width, info.height, *EMPTY_GEOMETRY], 0.0, None
        window = plan.window
        assert window is not None
        span = (window.start, window.length, window.stride)
        if not self.b.spec.spatial:  # no picture: the kind's own key parts are the bucket,
            # and its own sizes stand where images keep pixel sizes (audio: samples, channels)
            (ow, oh), (tw, th) = plan.sizes or ((0, 0), (0, 0))
            return [0, ow, oh, tw, th, tw, th, 0, 0, -1, -1], 0.0, (span, plan.bucket)
        ints, aspect = place(info.width, info.height, key, self.b.params, self.b.settings.seed)
        return list(ints), aspect, (span, (ints[3], ints[4], *plan.bucket))

    def _build(self, files: list[tuple[str, int, float]], outcomes: list[Outcome],
               old: MediaIndex | None, tag: str) -> MediaIndex:
        plans = [self._plan(key, o) for (key, _, _), o in zip(files, outcomes, strict=True)]
        ints = np.array([p[0] for p in plans], np.int32).reshape(len(files), ROW_WIDTH)
        self._caption(files, ints)
        drop = self._delete(files, ints)
        if old is not None and old.meta.get("media_tag") == tag and not drop \
                and not self.counts["probed"]:
            return old
        keep = [k for k in range(len(files)) if k not in drop]
        kept = [k for k in keep if ints[k, 0] == 0]
        return self._save(files, outcomes, plans, ints, keep, kept, tag)

    def _caption(self, files: list[tuple[str, int, float]], ints: np.ndarray) -> None:
        rows = np.flatnonzero(ints[:, 0] == 0).tolist()
        found = self.source.captions_for([files[r][0] for r in rows])
        self.captions = {r: c for r, c in zip(rows, found, strict=True) if c is not None}
        ints[[r for r, c in zip(rows, found, strict=True) if c is None], 0] = \
            REASON_CODES["no_caption"]
        self.counts["captioned"] = len(rows)

    def _delete(self, files: list[tuple[str, int, float]], ints: np.ndarray) -> set[int]:
        s = self.b.settings
        reasons = (_PROBLEMATIC if s.delete_problematic else ()) + (
            _UNWANTED if s.delete_unwanted else ())
        codes = [REASON_CODES[r] for r in reasons]
        drop = set()
        for r in np.flatnonzero(np.isin(ints[:, 0], codes)).tolist():
            path, reason = files[r][0], next(n for n in reasons if REASON_CODES[n] == ints[r, 0])
            try:
                self.b.storage.delete(path)
            except Exception as exc:
                self.report.warnings.append(f"could not delete {path} ({reason}): {exc}")
                continue
            self.report.deleted[reason] = self.report.deleted.get(reason, 0) + 1
            drop.add(r)
        self.counts["deleted"] = len(drop)
        return drop

    def _save(self, files: list[tuple[str, int, float]], outcomes: list[Outcome],
              plans: list[tuple[list[int], float, Any]], ints: np.ndarray, keep: list[int],
              kept: list[int], tag: str) -> MediaIndex:
        b = self.b
        meta = {"dataset_id": b.dataset.id, "kind": b.spec.kind, "probe": self.probe_kind,
                "media_tag": tag,
                "aspect_rounding": b.params.rounding, "generation": uuid.uuid4().hex,
                "created": time.time(), "storage": b.storage.describe()}
        at = np.asarray(keep, np.int64)
        stamps = np.array([self.source.stamp(files[k][0]) for k in keep], np.float64)
        base = DatasetIndex.from_rows(
            [files[k][0] for k in keep], np.array([files[k][1] for k in keep], np.int64),
            np.array([files[k][2] for k in keep], np.float64), None, ints[at],
            np.array([plans[k][1] for k in keep], np.float64), stamps.reshape(len(keep), 2),
            [self.captions[k] for k in kept], fingerprint=b.fingerprint, meta=meta)
        probes = ProbeTable.build([(*files[k], outcomes[k][0], outcomes[k][1]) for k in keep])
        width = max((len(plans[k][2][1]) for k in kept), default=2)
        index = MediaIndex(base, b.spec.kind, _columns([outcomes[k][1] for k in kept]),
                           [plans[k][2][0] for k in kept] or np.zeros((0, 3)),
                           np.array([plans[k][2][1] for k in kept], np.int32).reshape(
                               len(kept), width), probes)
        index.save(self.store, INDEX_KEY)
        return index
