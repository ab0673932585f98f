"""The validated config classes: one per dataset kind, with SimpleTuner's key names and defaults.

Backend-specific keys (``instance_data_dir``, ``aws_bucket_name``, ...) live on the plugin's own
``Config`` class, held in :attr:`BaseBackendConfig.storage`. ``None`` means "inherit the factory
option" for the geometry keys.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

__all__ = [
    "IMAGE_DATASET_TYPES",
    "BaseBackendConfig",
    "ConditioningImageEmbedBackendConfig",
    "ImageBackendConfig",
    "ImageEmbedBackendConfig",
    "TextEmbedBackendConfig",
]

IMAGE_DATASET_TYPES = ("image", "video", "conditioning", "eval")


@attrs.frozen(kw_only=True)
class BaseBackendConfig:
    """Keys every entry has: identity, storage type, role, and the backend's own config."""

    KINDS: ClassVar[tuple[str, ...]] = ()

    id: str
    type: str
    dataset_type: str
    storage: Any = None
    disabled: bool = False


@attrs.frozen(kw_only=True)
class TextEmbedBackendConfig(BaseBackendConfig):
    """A text-embedding cache (``dataset_type: text_embeds``)."""

    KINDS: ClassVar[tuple[str, ...]] = ("text_embeds",)

    default: bool = False
    cache_dir: str | None = None
    write_batch_size: int = 128
    text_cache_ondemand: bool = False
    text_cache_disable: bool = False
    compress_cache: bool | None = None


@attrs.frozen(kw_only=True)
class ImageEmbedBackendConfig(BaseBackendConfig):
    """Where VAE latents are stored (``dataset_type: image_embeds``)."""

    KINDS: ClassVar[tuple[str, ...]] = ("image_embeds",)

    cache_dir: str | None = None
    write_batch_size: int = 128
    compress_cache: bool | None = None


@attrs.frozen(kw_only=True)
class ConditioningImageEmbedBackendConfig(BaseBackendConfig):
    """Where conditioning image embeddings (CLIP-vision style) are stored
    (``dataset_type: conditioning_image_embeds``; docs/conditioning.md)."""

    KINDS: ClassVar[tuple[str, ...]] = ("conditioning_image_embeds",)

    cache_dir: str | None = None
    write_batch_size: int = 128
    compress_cache: bool | None = None


@attrs.frozen(kw_only=True)
class ImageBackendConfig(BaseBackendConfig):
    """A training dataset of images (``image``, ``video``, ``conditioning``, ``eval``)."""

    KINDS: ClassVar[tuple[str, ...]] = IMAGE_DATASET_TYPES

    # caches
    text_embeds: str | None = None
    image_embeds: str | None = None
    cache_dir_vae: str | None = None
    vae_cache_ondemand: bool | None = None
    vae_cache_disable: bool = False
    vae_cache_clear_each_epoch: bool = False
    compress_cache: bool | None = None
    hash_filenames: bool = True
    # captions
    caption_strategy: str | None = None
    instance_prompt: str | None = None
    prepend_instance_prompt: bool = False
    only_instance_prompt: bool = False
    disable_multiline_split: bool = False
    parquet: dict[str, Any] | None = None
    # geometry (None: the factory option)
    resolution: float | None = None
    resolution_type: str | None = None
    minimum_image_size: float | None = None
    maximum_image_size: float | None = None
    target_downsample_size: float | None = None
    crop: bool = False
    crop_style: str = "random"
    crop_aspect: str = "square"
    crop_aspect_buckets: list[Any] | None = None
    minimum_aspect_ratio: float | None = None
    maximum_aspect_ratio: float | None = None
    aspect_bucket_alignment: int | None = None
    aspect_bucket_rounding: int | None = None
    # sampling and schedule
    train_batch_size: int | None = None
    repeats: int = 0
    probability: float = 1.0
    start_epoch: int = 1
    start_step: int = 0
    end_epoch: int | None = None
    end_step: int | None = None
    disable_after_epoch_step: int | None = None
    short_bucket_policy: str | None = None
    is_regularisation_data: bool = False
    # discovery
    metadata_backend: str = "discovery"
    max_num_samples: int | None = None
    skip_file_discovery: str = ""
    preserve_data_backend_cache: bool = False
    cache_file_suffix: str | None = None
    delete_unwanted_images: bool = False
    delete_problematic_images: bool = False
    # conditioning
    conditioning_data: Any = None
    conditioning_type: str | None = None
    source_dataset_id: str | None = None
    # conditioning (issue 12; docs/conditioning.md)
    conditioning: Any = None  #: generator block(s) on a source dataset
    conditioning_output: str | None = None  #: latents | pixels (None: by conditioning_type)
    auto_generated: bool = False  #: set on the entries a generator block creates
    conditioning_config: dict[str, Any] | None = None  #: the generator spec of such an entry
    # media (docs/video.md): the `video` block, checked by databackend.media.videoconfig
    video: dict[str, Any] | None = None
    # audio (docs/audio.md): the ``audio`` block, and audio datasets paired with a video set
    audio: dict[str, Any] | None = None
    s2v_datasets: Any = None
    #: on an s2v audio set (``source_from_video``): the ``video`` block of the video set it
    #: follows; the loader copies it (docs/audio.md), so windows line up with the video's
    s2v_video: dict[str, Any] | None = None

    @property
    def s2v_ids(self) -> list[str]:
        """``s2v_datasets`` as a list."""
        value = self.s2v_datasets
        return [] if value is None else [value] if isinstance(value, str) else list(value)
    # scale: how a restart trusts the stored index (always | changed | never; docs/scale.md)
    rescan: str = "always"
    # sampling policy for the whole config (None: the factory option; datasets that set it
    # must agree; docs/runtime.md "Sampling policies")
    sampling_policy: str | None = None
    # conditioning image embeds (issue 12; docs/conditioning.md)
    conditioning_image_embeds: str | None = None  #: a conditioning_image_embeds entry id
    cache_dir_conditioning_image_embeds: str | None = None
    conditioning_image_embed_batch_size: int | None = None

    @property
    def conditioning_ids(self) -> list[str]:
        """``conditioning_data`` as a list."""
        value = self.conditioning_data
        if isinstance(value, str):
            return [value]
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
