"""Conditioning and eval config rules (all reported at once), settings inheritance with
conflict errors, and generator blocks (validation, ``params`` alias, ids)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from databackend.config import parse_entries
from databackend.errors import ConfigError
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry


def ds(ident: str, folder: Path, **keys: Any) -> dict[str, Any]:
    return {"id": ident, "type": "local", "instance_data_dir": str(folder), **keys}


def problems(raw: list[dict[str, Any]], registry: PluginRegistry, tmp_path: Path,
             **opts: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_entries(raw, registry, FactoryOptions(output_dir=str(tmp_path / "o"), **opts))
    return err.value.problems


def test_every_rule_is_reported_at_once(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [
        ds("img", tmp_path, conditioning_data=["other", "ghost", "other"]),
        ds("other", tmp_path, source_dataset_id="img"),
        ds("typed", tmp_path, dataset_type="image", conditioning_type="mask"),
        ds("lonely", tmp_path, dataset_type="conditioning"),
        ds("hint", tmp_path, conditioning_type="controlnet", source_dataset_id="img",
           conditioning_data="lonely"),
        ds("chained", tmp_path, conditioning_type="mask", source_dataset_id="hint",
           conditioning_output="voxels"),
        ds("loose", tmp_path, conditioning_type="reference_loose", source_dataset_id="img",
           conditioning_output="pixels"),
        ds("ev", tmp_path, dataset_type="eval", conditioning_data="img"),
    ]
    found = problems(raw, registry, tmp_path)
    expected = [
        "dataset 'img': `conditioning_data` names 'ghost', which is not a dataset entry",
        "dataset 'img': `conditioning_data` lists 'other' twice",
        "dataset 'img': `conditioning_data` names 'other', which is a image dataset, not a "
        "conditioning dataset",
        "dataset 'other': `source_dataset_id` is only for conditioning and audio datasets "
        "(dataset_type is 'image')",
        "dataset 'typed': `conditioning_type` is only for conditioning datasets (dataset_type "
        "is 'image')",
        "dataset 'hint': a conditioning dataset cannot have `conditioning_data` (conditioning "
        "datasets are not chained)",
        "dataset 'chained': `source_dataset_id` names 'hint', which is a conditioning dataset "
        "(conditioning datasets are not chained)",
        "dataset 'chained': `conditioning_output` must be one of latents, pixels; got 'voxels'",
        "dataset 'loose': `conditioning_output: pixels` needs a pixel-aligned conditioning_type "
        "(controlnet, mask, reference_strict, segmentation); 'reference_loose' has its own "
        "geometry",
        "dataset 'ev': `conditioning_data` names 'img', which is a image dataset, not a "
        "conditioning dataset",
        "dataset 'lonely': conditioning dataset with no source: set its `source_dataset_id`, "
        "or name it in a dataset's `conditioning_data`",
    ]
    for line in expected:
        assert line in found


def test_cycles_are_reported(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [ds("a", tmp_path, conditioning_data="b"), ds("b", tmp_path, conditioning_data="a")]
    found = problems(raw, registry, tmp_path)
    assert "conditioning dependency cycle: a -> b -> a" in found or \
        "conditioning dependency cycle: b -> a -> b" in found


def test_conditioning_inherits_the_source_resolution(registry: PluginRegistry,
                                                     tmp_path: Path) -> None:
    raw = [ds("img", tmp_path, resolution=512, resolution_type="pixel",
              minimum_image_size=256),
           ds("hint", tmp_path, conditioning_type="controlnet", source_dataset_id="img")]
    plan = parse_entries(raw, registry, FactoryOptions(output_dir=str(tmp_path / "o")))
    hint = plan.by_id["hint"]
    assert (hint.resolution, hint.resolution_type, hint.minimum_image_size) == \
        (512, "pixel", 256)
    shared = [ds("img", tmp_path, resolution=512, conditioning_data="hint"),
              ds("img2", tmp_path, resolution=1024, conditioning_data="hint"),
              ds("hint", tmp_path, conditioning_type="controlnet")]
    assert problems(shared, registry, tmp_path) == [
        "conditioning dataset 'hint' has sources with different `resolution`: 'img'=512.0, "
        "'img2'=1024.0"]
    raw[1]["resolution"] = 256
    assert problems(raw, registry, tmp_path) == [
        "dataset 'hint': `resolution` is 256.0 but its source 'img' has 512.0; a conditioning "
        "dataset inherits its source's resolution settings (remove the key or make them "
        "equal)"]


def test_generator_blocks(registry: PluginRegistry, tmp_path: Path) -> None:
    opts = FactoryOptions(output_dir=str(tmp_path / "o"))
    raw = [ds("img", tmp_path, conditioning=[
        {"type": "canny", "params": {"low_threshold": 100, "high_threshold": 200}},
        {"type": "edges", "conditioning_type": "controlnet"}, {"type": "masks"}])]
    plan = parse_entries(raw, registry, opts)
    assert plan.by_id["img"].conditioning_ids == [
        "img_conditioning_canny", "img_conditioning_canny_2", "img_conditioning_random_masks"]
    canny = plan.by_id["img_conditioning_canny"]
    assert canny.conditioning_config["params"] == {"low_threshold": 100,  # type: ignore[index]
                                                   "high_threshold": 200}
    assert canny.conditioning_type == "reference_strict" and canny.auto_generated
    assert plan.by_id["img_conditioning_canny_2"].conditioning_type == "controlnet"
    assert Path(canny.storage.instance_data_dir) == \
        Path(opts.cache_root) / "conditioning_data" / "img_conditioning_canny"
    bad = [ds("img", tmp_path, conditioning=[
        {"type": "cany"}, {"noise_level": 1}, "canny",
        {"type": "superresolution", "blur_type": "zigzag", "params": {"blur_type": "box"}},
        {"type": "jpeg", "qualty": 5}]), ds("b", tmp_path, conditioning=7)]
    found = problems(bad, registry, tmp_path)
    assert found == [
        "dataset 'img': conditioning[0]: unknown generator type 'cany' (did you mean "
        "'canny'?); installed: canny, jpeg_artifacts, random_masks, superresolution",
        "dataset 'img': conditioning[1]: `type` (the generator) is required",
        "dataset 'img': conditioning[2]: must be an object; got str",
        "dataset 'img': conditioning[3]: parameter `blur_type` is given both at the top level "
        "and in `params`",
        "dataset 'img': conditioning[4]: unknown parameter `qualty` (known: add_noise, "
        "block_noise_level, compression_rounds, enhance_blocks, noise_level, optimize, "
        "pre_blur, pre_blur_radius, progressive, quality, quality_list, quality_mode, "
        "quality_range, round_quality_decay, subsampling)",
        "dataset 'b': `conditioning` must be an object or a list of objects; got int"]


def test_conditioning_sampling_option_is_checked(registry: PluginRegistry,
                                                 tmp_path: Path) -> None:
    assert FactoryOptions(conditioning_multidataset_sampling="mixed").problems() == [
        "option `conditioning_multidataset_sampling` must be one of random, combined; got "
        "'mixed'"]
