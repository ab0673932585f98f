"""Which media kind (if any) a dataset is: its :class:`~databackend.media.spec.MediaKindSpec`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from databackend.media.spec import MediaKindSpec, VideoSpec
from databackend.media.videoconfig import VideoSettings

if TYPE_CHECKING:
    from databackend.config.models import ImageBackendConfig
    from databackend.options import FactoryOptions

__all__ = ["is_media", "media_spec_for"]


def media_spec_for(dataset: ImageBackendConfig, options: FactoryOptions) -> MediaKindSpec | None:
    """The spec of a media dataset (``dataset_type: video``, or a conditioning set with a
    ``video`` block); None for image datasets."""
    if dataset.dataset_type == "audio":  # docs/audio.md
        from databackend.audio.spec import audio_spec_for

        return audio_spec_for(dataset, options)
    video = getattr(dataset, "video", None)
    if dataset.dataset_type == "video" or video is not None:
        settings = VideoSettings.from_block(video, framerate=options.framerate,
                                            dataset_id=dataset.id)
        return VideoSpec(settings)
    return None


def is_media(dataset: ImageBackendConfig) -> bool:
    """Whether the dataset is scanned and cached as media."""
    return dataset.dataset_type in ("video", "audio") or \
        getattr(dataset, "video", None) is not None
