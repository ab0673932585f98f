"""The metadata backend of audio datasets: list, probe, filter, caption and bucket clips.

:meth:`AudioMetadataBackend.scan`:

1. lists the storage for audio files (the video containers for ``source_from_video`` sets)
   and applies ``max_num_samples`` as image scans do;
2. reuses the stored rows of unchanged files (same size and mtime, same settings);
3. probes the others without decoding (:mod:`databackend.audio.probe`) in threads, local
   files by path and remote ones through ranged reads; failures are skipped and counted by
   reason (``not_media``: not audio or no audio stream, ``corrupt``, ``unreadable``);
4. filters by ``min_duration_seconds``/``max_duration_seconds`` (``too_short``/``too_long``);
5. finds captions (the dataset's ``caption_strategy``; a clip without one is ``no_caption``,
   except for ``source_from_video`` sets, which borrow the video's) and lyrics sidecars;
6. buckets by duration (:mod:`databackend.audio.buckets`) and writes the index (rank 0).

Every rank computes the same index from the same listing (probes are cheap and
deterministic), so no rank waits for another; only rank 0 writes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

from databackend.audio.buckets import bucket_key, bucket_seconds, filter_reason
from databackend.audio.config import settings_of
from databackend.audio.index import AudioIndex, AudioRow
from databackend.audio.lyrics import lyrics_format, read_lyrics
from databackend.audio.report import AudioScanReport
from databackend.errors import DatabackendError, StorageError
from databackend.media.kinds import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, extension_of
from databackend.media.probe import DEFAULT_PROBES, ProbeRegistry, ProbeSource, probe_ranged
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia
from databackend.metadata import params as cfg
from databackend.metadata.backend import MetadataBackend
from databackend.metadata.captions import CaptionSource, is_caption_file
from databackend.storage.localdir import LocalDirectory

if TYPE_CHECKING:
    from PIL import Image

    from databackend.config.models import ImageBackendConfig
    from databackend.context import BuildContext
    from databackend.geometry import GeometryParams
    from databackend.storage.base import FileInfo, StorageBackend

__all__ = ["AudioMetadataBackend"]

log = logging.getLogger(__name__)
Probed = tuple[MediaInfo | None, str | None]


class AudioMetadataBackend(MetadataBackend):
    """Duration-bucketed index of an audio dataset (see the module docstring)."""

    probe_workers: int = 8
    #: the media probes (``"audio"`` is used); replace to probe other formats
    probes: ProbeRegistry = DEFAULT_PROBES

    def __init__(self, dataset: ImageBackendConfig, storage: StorageBackend,
                 context: BuildContext, *, index_storage: StorageBackend | None = None) -> None:
        """Resolve the settings; nothing is read until :meth:`scan` or :attr:`index`."""
        super().__init__(dataset, storage, context)
        opts = context.options
        self.audio = settings_of(dataset)
        self.caption_settings = cfg.caption_settings(dataset, opts)
        self.lyrics_fmt = lyrics_format(self.audio, model_family=opts.model_family,
                                        caption_strategy=self.caption_settings.strategy)
        self.index_storage = index_storage or LocalDirectory(
            root=cfg.index_folder(dataset, opts), dataset_id=dataset.id)
        self.fingerprint = _hash({"audio": self.audio.fingerprint_doc(),
                                  "captions": self.caption_settings.fingerprint(),
                                  "lyrics": self.lyrics_fmt, "max": dataset.max_num_samples})
        self._index: AudioIndex | None = None
        self.report: AudioScanReport | None = None

    @property
    def params(self) -> GeometryParams:
        """Geometry parameters (unused by audio; kept for the interface)."""
        return cfg.geometry_params(self.dataset, self.context.options)

    @property
    def index(self) -> AudioIndex:  # type: ignore[override]
        """The last scan's index, else the stored one (which must match the settings)."""
        if self._index is None:
            found = AudioIndex.load(self.index_storage)
            if found is None or found.fingerprint != self.fingerprint:
                raise DatabackendError(f"dataset {self.dataset.id!r} has no audio index for "
                                       "its current settings yet; run a scan first")
            self._index = found
        return self._index

    def load_image(self, i: int) -> Image.Image:
        """Audio datasets have no images."""
        raise DatabackendError(f"dataset {self.dataset.id!r} is an audio dataset; it has no "
                               "images to load")

    def sample_key(self, i: int) -> str:
        """``path|size|mtime`` of clip ``i``."""
        r = self.index.row(i)
        return f"{r.path}|{r.size}|{r.mtime}"

    # --- scan --------------------------------------------------------------------------
    def scan(self, *, progress: bool = True, rank: int = 0,  # type: ignore[override]
             world_size: int = 1) -> AudioScanReport:
        """Scan the dataset (see the module docstring) and return what happened."""
        started = time.perf_counter()
        report = AudioScanReport(dataset_id=self.dataset.id)
        listing, caption_files = self._list()
        report.counts["listed"] = len(listing)
        old = AudioIndex.load(self.index_storage)
        reuse = {r.path: r for r in old.rows} if old and old.fingerprint == self.fingerprint \
            else {}
        kept: list[tuple[FileInfo, MediaInfo]] = []
        skipped: dict[str, list[str]] = {}
        todo = []
        for info in listing:
            row = reuse.get(info.path)
            if row is not None and row.size == info.size and row.mtime == info.mtime:
                kept.append((info, _reused(row)))
            else:
                todo.append(info)
        report.counts["reused"] = len(kept)
        report.counts["probed"] = len(todo)
        for info, (probed, reason) in zip(todo, self._probe_all(todo, progress), strict=True):
            if probed is None:
                skipped.setdefault(reason or "corrupt", []).append(info.path)
            else:
                report.counts["counted_probe"] += int(probed.counted)
                kept.append((info, probed))
        index = self._finish(kept, skipped, caption_files)
        report.finish(index, time.perf_counter() - started)
        if rank == 0 and (old is None or old.to_bytes() != index.to_bytes()):
            index.save(self.index_storage)
        self._index, self.report = index, report
        log.info("%s", report.format_table())
        return report

    def _list(self) -> tuple[list[FileInfo], dict[str, FileInfo]]:
        exts = VIDEO_EXTENSIONS if self.audio.source_from_video else AUDIO_EXTENSIONS
        want = set(exts) | ({"txt"} if self.caption_settings.strategy == "textfile" else set())
        listed = list(self.storage.list("", extensions=sorted(want)))
        captions = {f.path: f for f in listed if is_caption_file(f.path)}
        media = sorted((f for f in listed if extension_of(f.path) in exts),
                       key=lambda f: f.path)
        limit = self.dataset.max_num_samples
        if limit is not None and len(media) > limit:
            random.Random(self.dataset.id).shuffle(media)
            media = sorted(media[:limit], key=lambda f: f.path)
        return media, captions

    def _probe_one(self, info: FileInfo) -> Probed:
        local = self.storage.local_path(info.path)
        try:
            if local is not None:
                source = ProbeSource(info.path, info.size, _opener(local), local)
            else:
                size = info.size if info.size >= 0 else self.storage.stat(info.path).size
                source = probe_ranged(partial(self.storage.read_range, info.path), info.path,
                                      size)
            return self.probes.probe("audio", source), None
        except NotMedia:
            return None, "not_media"
        except CorruptMedia:
            return None, "corrupt"
        except StorageError as exc:
            if exc.fatal:
                raise
            return None, "unreadable"
        except Exception as exc:  # a read failure, or a probe bug: skip and count the file
            log.debug("probing %s failed: %r", info.path, exc)
            return None, "unreadable"

    def _probe_chunk(self, chunk: Sequence[FileInfo]) -> list[Probed]:
        return [self._probe_one(info) for info in chunk]

    def _probe_all(self, todo: Sequence[FileInfo], progress: bool) -> list[Probed]:
        """Probe in threads (libsndfile and FFmpeg release the GIL), a chunk of files per
        task so the pool's own overhead stays small."""
        from tqdm import tqdm

        workers = min(self.probe_workers, os.cpu_count() or 1, max(1, len(todo) // 64))
        if workers <= 1:
            return self._probe_chunk(todo)
        size = max(16, -(-len(todo) // (workers * 8)))
        chunks = [todo[n:n + size] for n in range(0, len(todo), size)]
        show = progress and sys.stderr.isatty()
        out: list[Probed] = []
        with ThreadPoolExecutor(workers, thread_name_prefix="databackend-audio-probe") as pool, \
                tqdm(total=len(todo), desc=f"probe {self.dataset.id}", disable=not show) as bar:
            for part in pool.map(self._probe_chunk, chunks):
                out.extend(part)
                bar.update(len(part))
        return out

    def _finish(self, kept: list[tuple[FileInfo, MediaInfo]], skipped: dict[str, list[str]],
                caption_files: dict[str, FileInfo]) -> AudioIndex:
        a = self.audio
        passed = []
        for info, probed in kept:
            reason = filter_reason(probed.duration, minimum=a.min_duration_seconds,
                                   maximum=a.max_duration_seconds)
            if reason is None and probed.samples <= 0:
                reason = "corrupt"
            if reason:
                skipped.setdefault(reason, []).append(info.path)
            else:
                passed.append((info, probed))
        paths = [info.path for info, _ in passed]
        captions = self._captions(paths, caption_files)
        lyrics = read_lyrics(self.storage, paths, a, self.lyrics_fmt)
        rows = []
        for (info, probed), caps, text in zip(passed, captions, lyrics, strict=True):
            if caps is None:
                skipped.setdefault("no_caption", []).append(info.path)
                continue
            seconds = bucket_seconds(probed.duration, a.duration_interval)
            rows.append(AudioRow(path=info.path, size=info.size, mtime=info.mtime,
                                 frames=probed.samples, sample_rate=probed.sample_rate,
                                 channels=probed.channels,
                                 bucket_ms=bucket_key(seconds)[0], captions=caps,
                                 lyrics=text))
        return AudioIndex(rows, fingerprint=self.fingerprint, skipped=skipped)

    def _captions(self, paths: list[str], caption_files: dict[str, FileInfo]
                  ) -> list[tuple[str, ...] | None]:
        source = CaptionSource(self.caption_settings, self.storage, caption_files)
        found = source.captions_for(paths)
        if self.audio.source_from_video:  # captions come with the video sample
            return [c or () for c in found]
        return found


def _opener(path: str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")


def _reused(row: AudioRow) -> MediaInfo:
    return MediaInfo(kind="audio", samples=row.frames, sample_rate=row.sample_rate,
                     channels=row.channels, duration=row.duration)


def _hash(doc: Any) -> str:
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
