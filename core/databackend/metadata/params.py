"""The settings a scan runs with, resolved from the dataset config over the factory options.

Three groups, each with a fingerprint so a rescan knows what it must redo:

* :func:`geometry_params` -> :class:`~databackend.geometry.GeometryParams` (bucketing); with the
  seed it decides every sample's target size and crop, so both go into the geometry fingerprint.
* :class:`CaptionSettings` (``caption_strategy`` and friends, the ``parquet`` block).
* :class:`ScanSettings` (batch size, repeats, short-bucket policy, deletion, discovery switches):
  these do not change what is stored per sample, so they are not fingerprinted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from databackend.config.models import ImageBackendConfig
from databackend.config.settings import resolve_settings
from databackend.errors import ConfigError
from databackend.geometry import GeometryConfigError, GeometryParams, SampleGeometry, compute_geometry
from databackend.options import FactoryOptions

__all__ = [
    "IMAGE_EXTENSIONS", "CaptionSettings", "ScanSettings", "TableSettings",
    "caption_settings", "combined_fingerprint", "geometry_fingerprint", "geometry_for",
    "geometry_params",
    "index_folder", "scan_settings",
]

#: File extensions the scan lists (the formats ``imageprobe`` reads), lower case, no dot.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {"jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff"})
_GEOMETRY_KEYS = ("crop", "crop_style", "crop_aspect", "crop_aspect_buckets",
                  "minimum_image_size", "maximum_image_size", "target_downsample_size",
                  "minimum_aspect_ratio", "maximum_aspect_ratio")


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def geometry_params(dataset: ImageBackendConfig, options: FactoryOptions) -> GeometryParams:
    """The dataset's bucketing parameters: its own keys, else the factory options.

    Raises :class:`ConfigError` naming the dataset for invalid values.
    """
    s = resolve_settings(dataset, options)
    kw: dict[str, Any] = {k: getattr(dataset, k) for k in _GEOMETRY_KEYS}
    kw["crop_aspect_buckets"] = kw["crop_aspect_buckets"] or None
    kw.update(alignment=s.aspect_bucket_alignment, rounding=s.aspect_bucket_rounding,
              maximum_canvas_size=s.maximum_canvas_size)
    try:
        return GeometryParams.create(resolution=s.resolution, resolution_type=s.resolution_type,
                                     **kw)
    except GeometryConfigError as exc:
        raise ConfigError([f"dataset {dataset.id!r}: {p}" for p in exc.problems]) from None


def geometry_for(width: int, height: int, dataset: ImageBackendConfig, options: FactoryOptions,
                 *, key: str = "") -> SampleGeometry:
    """One image's geometry exactly as a scan of ``dataset`` places it: its ``width x height``
    (after EXIF orientation), the dataset's keys over the factory ``options``, and ``key`` (the
    sample's relative path, which seeds random crops together with ``options.seed``)."""
    return compute_geometry(width, height, geometry_params(dataset, options), seed=options.seed,
                            key=key)


def geometry_fingerprint(params: GeometryParams, seed: int) -> str:
    """What stored geometry depends on: the parameters and the crop seed."""
    return _hash({"geometry": params.fingerprint(), "seed": seed})


@attrs.frozen(kw_only=True)
class TableSettings:
    """The ``parquet`` block: a parquet, CSV, JSON or JSONL table of captions (and sizes)."""

    path: str
    filename_column: str = "id"
    caption_column: tuple[str, ...] = ("description",)
    fallback_caption_column: str | None = None
    width_column: str = "width"
    height_column: str = "height"
    identifier_includes_extension: bool = False

    @classmethod
    def from_block(cls, block: Mapping[str, Any], dataset_id: str) -> TableSettings:
        """Read the block; ``caption_column`` may be a string or a list of columns."""
        path = block.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError([f"dataset {dataset_id!r}: `parquet.path` is required"])
        columns = block.get("caption_column") or "description"
        columns = (columns,) if isinstance(columns, str) else tuple(str(c) for c in columns)
        return cls(path=path, filename_column=str(block.get("filename_column") or "id"),
                   caption_column=columns,
                   fallback_caption_column=block.get("fallback_caption_column"),
                   width_column=str(block.get("width_column") or "width"),
                   height_column=str(block.get("height_column") or "height"),
                   identifier_includes_extension=bool(
                       block.get("identifier_includes_extension", False)))


@attrs.frozen(kw_only=True)
class CaptionSettings:
    """How captions are found: ``strategy`` plus the instance-prompt switches and the table."""

    strategy: str
    instance_prompt: str | None = None
    prepend_instance_prompt: bool = False
    only_instance_prompt: bool = False
    disable_multiline_split: bool = False
    table: TableSettings | None = None
    #: The plugin's strategy class when ``strategy`` is not built in (not fingerprinted).
    plugin: Any = attrs.field(default=None, eq=False, repr=False)

    def fingerprint(self) -> str:
        """A stable hash of every field but ``plugin``."""
        return _hash(attrs.asdict(self, filter=lambda a, _: a.name != "plugin"))


def caption_settings(dataset: ImageBackendConfig, options: FactoryOptions,
                     strategies: Mapping[str, Any] | None = None) -> CaptionSettings:
    """The dataset's caption settings (``caption_strategy`` falls back to the factory option;
    the plan already gave datasets their type's default). ``strategies``: the plugins'
    caption strategy classes by name."""
    strategy = resolve_settings(dataset, options).caption_strategy
    table = None
    if strategy == "parquet":
        table = TableSettings.from_block(dataset.parquet or {}, dataset.id)
    return CaptionSettings(strategy=strategy, instance_prompt=dataset.instance_prompt,
                           prepend_instance_prompt=dataset.prepend_instance_prompt,
                           only_instance_prompt=dataset.only_instance_prompt,
                           disable_multiline_split=dataset.disable_multiline_split, table=table,
                           plugin=(strategies or {}).get(strategy))


def combined_fingerprint(geometry_fp: str, caption_fp: str) -> str:
    """The index's ``params_fingerprint``: geometry (with seed) and caption settings."""
    return _hash({"geometry": geometry_fp, "captions": caption_fp})


@attrs.frozen(kw_only=True)
class ScanSettings:
    """Per-dataset switches that steer a scan but are not stored per sample."""

    dataset_id: str
    seed: int
    batch_size: int
    world_size: int
    repeats: int
    policy: str
    delete_problematic: bool
    delete_unwanted: bool
    use_persisted: bool  # skip_file_discovery names "aspect" or "metadata"
    preserve_listing: bool  # preserve_data_backend_cache
    max_num_samples: int | None
    workers: int
    rescan: str = "always"  # always | changed | never (docs/scale.md)
    remote_processes: int = 1  # scan_remote_processes


def scan_settings(dataset: ImageBackendConfig, options: FactoryOptions,
                  world_size: int = 1) -> ScanSettings:
    """Resolve the scan switches of a dataset."""
    tokens = set(dataset.skip_file_discovery.replace(",", " ").split())
    resolved = resolve_settings(dataset, options)
    return ScanSettings(
        dataset_id=dataset.id, seed=options.seed, batch_size=resolved.train_batch_size,
        world_size=max(1, world_size), repeats=max(0, dataset.repeats),
        policy=resolved.short_bucket_policy,
        delete_problematic=dataset.delete_problematic_images,
        delete_unwanted=dataset.delete_unwanted_images,
        use_persisted=bool(tokens & {"aspect", "metadata"}),
        preserve_listing=dataset.preserve_data_backend_cache,
        max_num_samples=dataset.max_num_samples, workers=options.scan_workers,
        rescan=dataset.rescan, remote_processes=options.scan_remote_processes)


def index_folder(dataset: ImageBackendConfig, options: FactoryOptions) -> str:
    """``{cache_root}/metadata/{cache_file_suffix or id}``, with the name made path-safe."""
    name = dataset.cache_file_suffix or dataset.id
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "dataset"
    return os.path.join(options.cache_root, "metadata", safe)
