"""One dataset's effective settings: the rule "a dataset key overrides the factory option",
applied in one place.

The loader resolves a :class:`DatasetSettings` per dataset when it builds the plan
(:attr:`DataPlan.settings`); the config rules, the scan parameters, the caches and the runtime
read it instead of falling back to :class:`~databackend.options.FactoryOptions` themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import attrs

if TYPE_CHECKING:
    from databackend.config.models import ImageBackendConfig, ImageEmbedBackendConfig
    from databackend.options import FactoryOptions

__all__ = ["DatasetSettings", "resolve_settings"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class DatasetSettings:
    """The settings a dataset runs with, every inheritable key resolved."""

    dataset_id: str
    resolution: float
    resolution_type: str
    aspect_bucket_alignment: int
    aspect_bucket_rounding: int
    maximum_canvas_size: int | None
    caption_strategy: str
    train_batch_size: int
    short_bucket_policy: str
    vae_cache_ondemand: bool
    #: The dataset's ``compress_cache``, else its ``image_embeds`` entry's, else the option.
    compress_cache: bool


def _first(*values: T | None) -> T:
    """The first value that is not None (the last one never is)."""
    return next(v for v in values if v is not None)


def resolve_settings(dataset: ImageBackendConfig, options: FactoryOptions,
                     image_embeds: ImageEmbedBackendConfig | None = None) -> DatasetSettings:
    """The dataset's own keys where set (not None), else ``image_embeds``'s (compression),
    else the factory options."""
    d, o = dataset, options
    embeds_compress = image_embeds.compress_cache if image_embeds is not None else None
    return DatasetSettings(
        dataset_id=d.id,
        resolution=_first(d.resolution, o.resolution),
        resolution_type=_first(d.resolution_type, o.resolution_type),
        aspect_bucket_alignment=_first(d.aspect_bucket_alignment, o.aspect_bucket_alignment),
        aspect_bucket_rounding=_first(d.aspect_bucket_rounding, o.aspect_bucket_rounding),
        maximum_canvas_size=o.maximum_canvas_size,
        caption_strategy=d.caption_strategy or o.caption_strategy,
        train_batch_size=d.train_batch_size or o.train_batch_size,
        short_bucket_policy=d.short_bucket_policy or o.short_bucket_policy,
        vae_cache_ondemand=_first(d.vae_cache_ondemand, o.vae_cache_ondemand),
        compress_cache=_first(d.compress_cache, embeds_compress, o.compress_cache))
