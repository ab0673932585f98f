"""Option inheritance resolved once, in the plan: one DatasetSettings per dataset."""

from __future__ import annotations

from pathlib import Path

import attrs

from databackend.config.loader import parse_entries
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry


def test_dataset_keys_override_options_and_the_rest_inherits(registry: PluginRegistry,
                                                             tmp_path: Path) -> None:
    options = FactoryOptions(resolution=768, resolution_type="pixel", train_batch_size=3,
                             short_bucket_policy="drop", compress_cache=True,
                             caption_strategy="textfile", aspect_bucket_alignment=32)
    plan = parse_entries([
        {"id": "vae", "type": "local", "dataset_type": "image_embeds", "compress_cache": False},
        {"id": "own", "type": "local", "instance_data_dir": str(tmp_path), "resolution": 512,
         "train_batch_size": 8, "caption_strategy": "filename", "vae_cache_ondemand": True,
         "image_embeds": "vae"},
        {"id": "inherits", "type": "local", "instance_data_dir": str(tmp_path)}],
        registry, options)
    own, inherits = plan.settings["own"], plan.settings["inherits"]
    assert (own.resolution, own.resolution_type, own.train_batch_size) == (512, "pixel", 8)
    assert (own.caption_strategy, own.vae_cache_ondemand) == ("filename", True)
    assert own.compress_cache is False  # the image_embeds entry's value beats the option
    assert (inherits.resolution, inherits.train_batch_size, inherits.short_bucket_policy,
            inherits.caption_strategy, inherits.compress_cache,
            inherits.aspect_bucket_alignment) == (768, 3, "drop", "textfile", True, 32)
    assert plan.settings_for(plan.datasets[1]) is plan.settings[plan.datasets[1].id]
    changed = attrs.evolve(plan.datasets[1], resolution=256)  # not the plan's object: resolved
    assert plan.settings_for(changed).resolution == 256
