"""The metadata backend of ``huggingface`` datasets, built on the plugin API's building blocks.

:class:`~databackend.pluginapi.IndexedMetadataBackend` gives what is not about files (geometry
parameters, fingerprints, the persisted :class:`DatasetIndex` under
``{cache_root}/metadata/{id}/index.dbi``, bucket tables, the index property); this class adds
one pass over the dataset's rows (:class:`~databackend_huggingface.scan.ScanPass`) instead of
a file listing. It reads its storage but never changes it: the storage finds the row store the
pass writes into its ``rows_folder`` itself.

* the index's ``params_fingerprint`` covers the geometry, the caption settings and the Hugging
  Face settings (columns, filters and the predicate's code, composite, ``max_num_samples``);
  ``meta["hf"]["dataset_fingerprint"]`` identifies the data. A scan reuses the stored index only
  when both match (and, streaming, when its row store is complete); otherwise it makes a new pass;
* filters are counted in ``ScanReport.skipped`` (``collection``, ``quality``,
  ``filter_function``, ``min_size``) next to the core reasons, and stored in the index meta so a
  reused index reports them again;
* ``load_image(i)`` decodes the row's bytes, applies EXIF orientation, crops the composite tile
  and converts to RGB;
* several ranks: rank 0 scans; the others open the dataset, wait for ``done.json`` naming this
  scan, and load the index (and, streaming, the row store) from the shared index folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from databackend.pluginapi import (
    ConfigError,
    DatabackendError,
    DatasetIndex,
    IndexedMetadataBackend,
    ScanReport,
    StorageError,
    combined_fingerprint,
)
from databackend_huggingface.backend import HuggingfaceBackend
from databackend_huggingface.captions import CaptionPicker
from databackend_huggingface.config import load_predicate, predicate_identity
from databackend_huggingface.filters import RowFilter
from databackend_huggingface.paths import parse_path
from databackend_huggingface.placement import build_index, place_samples
from databackend_huggingface.rowstore import RowStore, RowStoreWriter
from databackend_huggingface.scan import ScanPass
from databackend_huggingface.validate import check_columns

if TYPE_CHECKING:
    from PIL import Image

    from databackend.pluginapi import BuildContext, ImageBackendConfig, StorageBackend

__all__ = ["HuggingfaceMetadataBackend"]

log = logging.getLogger(__name__)
INDEX_KEY, DONE_KEY = "index.dbi", "done.json"
_STRATEGIES = ("huggingface", "instanceprompt")
_FAILED = (0, -1, -1, 0, 0, 0, 0, 0, 0, -1, -1)  # code, original, target, inter., crop, down


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


class HuggingfaceMetadataBackend(IndexedMetadataBackend):
    """Scans a Hugging Face dataset's rows into the standard index (see the module docstring)."""

    def __init__(self, dataset: ImageBackendConfig, storage: StorageBackend,
                 context: BuildContext, *, index_storage: StorageBackend | None = None) -> None:
        """Resolve settings and fingerprints; nothing is read until :meth:`scan`."""
        if not isinstance(storage, HuggingfaceBackend):
            raise TypeError(f"dataset {dataset.id!r}: the huggingface metadata backend needs a "
                            f"huggingface storage backend, got {type(storage).__name__}")
        super().__init__(dataset, storage, context, index_storage=index_storage)
        self.hf_storage = storage
        self.hf = storage.settings
        if self.caption_settings.strategy not in _STRATEGIES:
            raise ConfigError([f"dataset {dataset.id!r}: a huggingface dataset takes its captions "
                               f"from columns (caption_strategy huggingface) or instanceprompt; "
                               f"got {self.caption_settings.strategy!r}"])
        self.picker = CaptionPicker(self.hf, self.caption_settings, dataset.id,
                                    context.options.seed)
        self.predicate = self._predicate()
        self.hf_fp = _hash(self.hf.fingerprint(predicate_identity(self.predicate)
                                               if self.predicate else ""),
                           self.settings.max_num_samples)
        self.fingerprint = combined_fingerprint(self.geometry_fp, _hash(self.caption_fp, self.hf_fp))
        if self.hf.streaming and not storage.rows_folder:
            raise ConfigError([f"dataset {dataset.id!r}: a streaming huggingface storage needs "
                               "a rows_folder (build it through databackend_make_backend)"])
        self.rows_folder = storage.rows_folder or os.path.join(self.index_folder, "rows")

    def _predicate(self) -> Any:
        spec = self.hf.filters.function
        if not spec:
            return None
        try:
            return load_predicate(spec)
        except ValueError as exc:
            raise ConfigError([f"dataset {self.dataset.id!r}: {exc}"]) from None

    # --- scanning ------------------------------------------------------------------------------
    def scan(self, *, progress: bool = True, rank: int = 0, world_size: int = 1) -> ScanReport:
        """One pass over the rows, or the stored index when nothing changed (module docstring)."""
        started = time.perf_counter()
        report = ScanReport(dataset_id=self.dataset.id, params_fingerprint=self.fingerprint,
                            index_location=f"{self.index_storage.describe()}/{INDEX_KEY}")
        data_fp = self.hf_storage.opened.fingerprint
        tag = _hash(data_fp, self.fingerprint)
        if world_size > 1 and rank != 0:
            index = self._await_rank0(tag)
            report.source = "rank-merge"
        else:
            index = self._reuse(report, data_fp, tag) or self._full_scan(report, data_fp, tag,
                                                                         progress)
            if world_size > 1:
                self.index_storage.write(DONE_KEY, json.dumps({"tag": tag}).encode())
        self.set_index(index)
        self._finish_report(report, index, started)
        return report

    def _reuse(self, report: ScanReport, data_fp: str, tag: str) -> DatasetIndex | None:
        old = DatasetIndex.load(self.index_storage, INDEX_KEY)
        if old is None:
            return None
        hf = old.meta.get("hf") or {}
        same = old.params_fingerprint == self.fingerprint and \
            hf.get("dataset_fingerprint") == data_fp
        store_ok = not self.hf.streaming or RowStore.exists(self.rows_folder, hf.get("row_store", ""))
        if self.settings.use_persisted and store_ok:
            if not same:
                report.warnings.append("skip_file_discovery: using the stored index although the "
                                       "dataset or its settings changed since it was made")
            report.source = "persisted"
        elif not (same and store_ok):
            log.info("dataset %r: the stored index is for other data or settings; rescanning",
                     self.dataset.id)
            return None
        report.counts["listed"] = int(hf.get("rows", 0))
        report.counts["unchanged"] = len(old) + len(old.skipped)
        return old

    def _filter(self) -> RowFilter:
        names = self.hf_storage.opened.column_names
        quality = self.hf.filters.quality_column
        return RowFilter(self.hf.filters, dataset_id=self.dataset.id,
                         quality_struct=names is None or quality in names,
                         predicate=self.predicate,
                         exclude={self.hf.image_column, self.hf.source_column})

    def _full_scan(self, report: ScanReport, data_fp: str, tag: str, progress: bool
                   ) -> DatasetIndex:
        row_filter = self._filter()
        check_columns(self.hf_storage, self.picker, row_filter)
        writer = RowStoreWriter(self.rows_folder, tag) if self.hf.streaming else None
        work = ScanPass(self.hf_storage, self.picker, row_filter,
                        max_samples=self.settings.max_num_samples, progress=progress, writer=writer)
        try:
            work.run()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.commit()  # the storage finds the committed store in its rows_folder
        index = self._assemble(work, data_fp, tag if writer is not None else None)
        index.save(self.index_storage, INDEX_KEY)
        c = report.counts
        c["listed"], c["not_selected"] = work.counts["rows"], work.counts["not_selected"]
        c["new"], c["probed"], c["captioned"] = len(work.paths), work.counts["probed"], \
            work.counts["captioned"]
        return index

    def _assemble(self, work: ScanPass, data_fp: str, store_tag: str | None) -> DatasetIndex:
        n = len(work.paths)
        status = np.asarray(work.status, np.int64)
        sizes = np.stack([np.asarray(work.width, np.int64), np.asarray(work.height, np.int64)],
                         axis=1).reshape(n, 2)
        ints = np.tile(np.asarray(_FAILED, np.int64), (n, 1))
        ints[:, 0], ints[:, 1:3] = status, sizes
        aspect = np.zeros(n)
        ok = np.flatnonzero(status == 0)
        ints[ok], aspect[ok] = place_samples([work.paths[int(k)] for k in ok], sizes[ok],
                                             self.params, self.settings.seed,
                                             workers=self.settings.workers)
        kept = np.flatnonzero(ints[:, 0] == 0)
        meta = {"dataset_id": self.dataset.id, "geometry_fp": self.geometry_fp,
                "caption_fp": self.caption_fp, "aspect_rounding": self.params.rounding,
                "generation": uuid.uuid4().hex, "created": time.time(),
                "storage": self.storage.describe(),
                "hf": {"dataset_fingerprint": data_fp, "settings_fingerprint": self.hf_fp,
                       "rows": work.counts["rows"], "not_selected": work.counts["not_selected"],
                       "filtered": work.filtered, "filter_examples": work.filter_examples,
                       "row_store": store_tag, "streaming": self.hf.streaming}}
        captions = [work.captions[int(k)] or () for k in kept]
        return build_index(work.paths, np.asarray(work.file_size, np.int64), ints, aspect,
                           captions, fingerprint=self.fingerprint, meta=meta)

    def _await_rank0(self, tag: str) -> DatasetIndex:
        """Wait for rank 0's index (logging every 30 s); fail after ``rank_timeout_s``."""
        from databackend.pluginapi import PeerTimeoutError, wait_for

        found: list[DatasetIndex] = []

        def ready() -> bool:
            """Whether rank 0's index for ``tag`` is there (kept in ``found``)."""
            try:
                done = json.loads(self.index_storage.read(DONE_KEY)).get("tag")
            except (FileNotFoundError, ValueError):
                return False
            index = DatasetIndex.load(self.index_storage, INDEX_KEY) if done == tag else None
            found.extend([index] if index is not None else [])
            return bool(found)

        try:
            wait_for(ready, f"rank 0's index of dataset {self.dataset.id!r}",
                     timeout_s=self.rank_timeout_s, poll_s=self.rank_poll_s)
        except PeerTimeoutError as exc:
            raise StorageError(f"dataset {self.dataset.id!r}: {exc}; do all ranks share the "
                               "cache folder and see the same dataset?") from None
        return found[0]

    def _finish_report(self, report: ScanReport, index: DatasetIndex, started: float) -> None:
        hf = index.meta.get("hf") or {}
        report.buckets = self.bucket_rows()
        report.counts["kept"] = len(index)
        filtered = {str(k): int(v) for k, v in (hf.get("filtered") or {}).items()}
        report.counts["skipped"] = len(index.skipped) + sum(filtered.values())
        report.skipped = {**index.skipped.counts(), **filtered}
        report.examples = {**index.skipped.examples(), **(hf.get("filter_examples") or {})}
        report.counts["not_selected"] = report.counts["not_selected"] or int(hf.get("not_selected", 0))
        if self.settings.delete_problematic or self.settings.delete_unwanted:
            report.warnings.append("huggingface datasets are read-only: delete_problematic_images"
                                   " / delete_unwanted_images are ignored")
        dropped = [b for b in report.buckets if b.dropped]
        if dropped:
            text = (f"{len(dropped)} bucket(s) lose {sum(b.dropped for b in dropped)} sample(s) "
                    f"per pass to short_bucket_policy 'drop': "
                    + ", ".join(f"{b.target[0]}x{b.target[1]} -{b.dropped}" for b in dropped))
            report.warnings.append(text)
            log.warning("dataset %r: %s", self.dataset.id, text)
        report.elapsed = time.perf_counter() - started
        self.report = report
        log.info("%s", report.format_table())

    # --- samples -------------------------------------------------------------------------------
    def sample_key(self, i: int) -> str:
        """``path|size|hf:{dataset fingerprint}``: a changed dataset never reuses cache entries."""
        idx = self.index
        data_fp = (idx.meta.get("hf") or {}).get("dataset_fingerprint", "")
        return f"{idx.paths[i]}|{idx.file_size[i]}|hf:{data_fp}"

    def load_image(self, i: int) -> Image.Image:
        """Decode sample ``i``: EXIF orientation, composite tile crop, RGB (see docs)."""
        from PIL import Image as PILImage
        from PIL import ImageOps

        idx = self.index
        path = str(idx.paths[i])
        parsed = parse_path(path)
        if parsed is None:
            raise DatabackendError(f"dataset {self.dataset.id!r}: {path!r} is not a row path")
        row, tile = parsed
        with PILImage.open(io.BytesIO(self.hf_storage.row_bytes(row))) as raw:
            image = ImageOps.exif_transpose(raw).convert("RGB")
        comp = self.hf.composite
        if comp.enabled:
            k = tile if tile is not None else comp.tiles[0]
            tw = image.size[0] // comp.image_count
            image = image.crop((k * tw, 0, (k + 1) * tw, image.size[1]))
        return self._checked(image, (int(idx.original[i, 0]), int(idx.original[i, 1])), path)

    def _checked(self, image: Image.Image, expected: tuple[int, int], path: str) -> Image.Image:
        """The image at its scanned size: equal, or rescaled when only the scale differs (width
        and height columns that describe the original of a resized image)."""
        if image.size == expected:
            return image
        w, h = image.size
        ew, eh = expected
        if ew > 0 and eh > 0 and abs(w / h - ew / eh) <= 0.01 * (ew / eh):
            log.debug("dataset %r: %s is %dx%d, scanned as %dx%d; rescaling", self.dataset.id,
                      path, w, h, ew, eh)
            from PIL import Image as PILImage

            return image.resize(expected, PILImage.Resampling.LANCZOS)
        raise StorageError(f"dataset {self.dataset.id!r}: {path} is {w}x{h} but was scanned as "
                           f"{ew}x{eh}; check width_column/height_column or rescan")
