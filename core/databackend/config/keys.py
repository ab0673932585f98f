"""Key names: SimpleTuner aliases, and keys SimpleTuner knows that databackend does not yet use."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ALIASES", "UNIMPLEMENTED_KEYS"]

#: alias -> canonical key (both spellings are accepted; the canonical one wins if both are set).
ALIASES: Mapping[str, str] = MappingProxyType({
    "instance_data_root": "instance_data_dir",
    "text_embed_cache": "text_embeds",
    "disable": "disabled",
    "is_regularization_data": "is_regularisation_data",
})

#: Keys SimpleTuner accepts whose feature databackend does not implement yet: a warning, not an
#: error, so SimpleTuner configs load unchanged.
UNIMPLEMENTED_KEYS = frozenset({
    "audio", "caption_shuffle", "caption_filter_list", "slider_strength",
    "timestep_sampling_offset", "disable_validation", "scan_for_errors",
    "vae_cache_scan_behaviour", "metadata_update_interval", "image_processing_batch_size",
    "read_batch_size", "vae_batch_size", "max_workers", "delete_nsfw_images",
    "max_upscale_threshold", "ignore_epochs",
    "memory_filesystem_path", "memory_filesystem_size", "memory_filesystem_sudo",
    "shorten_filenames", "video_column", "audio_column",
})
# Backend-specific spellings (``csv_hash_filenames``) and ignored keys (``aws``,
# ``csv_shorten_filenames``) are declared by the backend types (see config/capabilities.py).
