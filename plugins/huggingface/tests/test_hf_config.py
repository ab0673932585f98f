"""Config keys (top level and the ``huggingface`` block), problems(), registration and hooks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hf_support import basic_columns

import databackend_huggingface
from databackend.config.loader import parse_entries
from databackend.context import BuildContext
from databackend.errors import ConfigError, StorageError
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry
from databackend_huggingface import DatasetLoadError, HuggingfaceBackend, HuggingfaceConfig


def parse(registry: PluginRegistry, **keys: Any) -> Any:
    entry = {"id": "hf", "type": "huggingface", "dataset_name": "user/name", **keys}
    return parse_entries([entry], registry, FactoryOptions()).datasets[0]


def test_registered_type_and_routed_keys(registry: PluginRegistry) -> None:
    assert registry.backends["huggingface"] is HuggingfaceBackend
    cfg = parse(registry, caption_column="text", split="validation", revision="abc",
                width_column="w", height_column="h", resolution=512,
                huggingface={"streaming": True, "num_proc": 4, "fallback_caption_column": "alt",
                             "auto_load": True, "num_frames_column": "frames"})
    assert cfg.resolution == 512 and isinstance(cfg.storage, HuggingfaceConfig)
    s = cfg.storage.settings()
    assert s.caption_columns == ("text",)  # top level is honoured (SimpleTuner ignores it)
    assert (s.split, s.revision, s.width_column, s.height_column) == ("validation", "abc", "w", "h")
    assert s.streaming and s.num_proc == 4 and s.fallback_caption_column == "alt"
    assert s.image_column == "image" and s.file_extension == "jpg"


def test_block_keys_work_like_top_level_keys(registry: PluginRegistry) -> None:
    cfg = parse(registry, huggingface={"caption_column": ["a", "b"], "image_column": "img",
                                       "split": "test"})
    s = cfg.storage.settings()
    assert s.caption_columns == ("a", "b") and s.image_column == "img" and s.split == "test"


def test_defaults() -> None:
    s = HuggingfaceConfig(dataset_name="x").settings()
    assert (s.split, s.image_column, s.caption_columns, s.streaming) == ("train", "image",
                                                                         ("caption",), False)
    assert not s.composite.enabled and not s.filters.active and not s.has_size_columns


def test_composite_settings() -> None:
    one = HuggingfaceConfig(dataset_name="x", huggingface={"composite_image_config": {
        "enabled": True, "image_count": 4, "select_index": 2}}).settings().composite
    assert one.enabled and one.tiles == (2,) and not one.split_all
    every = HuggingfaceConfig(dataset_name="x", split_composite_images=True,
                              composite_image_column="grid").settings()
    assert every.composite.tiles == (0, 1) and every.composite.split_all
    assert every.source_column == "grid"
    unselected = HuggingfaceConfig(dataset_name="x", huggingface={"composite_image_config": {
        "enabled": True, "image_count": 3}}).settings().composite
    assert unselected.tiles == (0, 1, 2)


def test_dataset_name_in_the_block(registry: PluginRegistry) -> None:
    """Where SimpleTuner's examples put it: alone in the block, or equal to the top level; two
    different values are an error naming both."""
    entry = {"id": "hf", "type": "huggingface", "huggingface": {"dataset_name": "user/pets"}}
    alone = parse_entries([entry], registry, FactoryOptions()).datasets[0]
    assert alone.storage.settings().dataset_name == "user/pets"
    assert databackend_huggingface.HUGGINGFACE.where(alone.storage) == "user/pets"
    same = parse_entries([{**entry, "dataset_name": "user/pets"}], registry, FactoryOptions())
    assert same.datasets[0].storage.settings().dataset_name == "user/pets"
    with pytest.raises(ConfigError) as err:
        parse_entries([{**entry, "dataset_name": "user/other"}], registry, FactoryOptions())
    assert err.value.problems == [
        "dataset 'hf': `dataset_name` is 'user/other' at the top level but 'user/pets' in the "
        "`huggingface` block; set it once"]


def test_read_only_type_and_default_captions(registry: PluginRegistry) -> None:
    """Declared, not named in the core: read-only (no cache on it) and its own caption
    strategy as the default."""
    assert parse(registry).caption_strategy == "huggingface"
    with pytest.raises(ConfigError, match=r"dataset 'te': `type`: 'huggingface' storage is "
                                          r"read-only"):
        parse_entries([{"id": "te", "type": "huggingface", "dataset_type": "text_embeds",
                        "dataset_name": "user/name"}], registry, FactoryOptions())


@pytest.mark.parametrize(("keys", "message"), [
    ({"dataset_name": None}, "`dataset_name` is required"),
    ({"caption_column": "a", "huggingface": {"caption_column": "b"}}, "set it once"),
    ({"caption_column": 3}, "`caption_column` must be a column name"),
    ({"caption_column": []}, "`caption_column` must be a column name"),
    ({"width_column": "w"}, "must be given together"),
    ({"huggingface": {"streamng": True}}, "did you mean 'streaming'"),
    ({"huggingface": {"composite_image_config": {"enabled": True, "image_count": 1}}},
     "image_count` must be an integer >= 2"),
    ({"huggingface": {"composite_image_config": {"image_count": 2, "select_index": 2}}},
     "select_index` must be an integer in 0..1"),
    ({"split_composite_images": True,
      "huggingface": {"composite_image_config": {"select_index": 0}}}, "remove"),
    ({"huggingface": {"filter_func": {"quality_thresholds": {"a": "high"}}}},
     "must map names to numbers"),
    ({"huggingface": {"filter_func": {"min_width": 0}}}, "min_width` must be an integer >= 1"),
    ({"huggingface": {"filter_func": {"colection": "x"}}}, "filter_func.colection`: unknown"),
    ({"filter_function": "nomodule"}, "must look like 'module:function'"),
    ({"filter_function": "os.path:no_such_function"}, "cannot be loaded"),
    ({"filter_function": "os:sep"}, "is not callable"),
    ({"huggingface": {"num_proc": 0}}, "`num_proc` must be an integer >= 1"),
    ({"huggingface": {"streaming": "yes"}}, "`streaming` must be true or false"),
])
def test_problems(registry: PluginRegistry, keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="dataset 'hf'") as err:
        parse(registry, **keys)
    assert any(message in p for p in err.value.problems), err.value.problems


def test_a_valid_config_has_no_problems() -> None:
    cfg = HuggingfaceConfig(dataset_name="x", caption_column=["a", "b"],
                            filter_function="os.path:exists", huggingface={
                                "filter_func": {"collection": ["a"], "min_width": 8,
                                                "quality_thresholds": {"q": 1}},
                                "composite_image_config": {"enabled": True, "image_count": 2,
                                                           "select_index": 1}})
    assert cfg.problems() == []


def test_metadata_hook_only_answers_for_huggingface(registry: PluginRegistry,
                                                    tmp_path: Path) -> None:
    local_dir = tmp_path / "imgs"
    local_dir.mkdir()
    plan = parse_entries([{"id": "l", "type": "local", "instance_data_dir": str(local_dir)}],
                         registry, FactoryOptions())
    context = BuildContext(options=FactoryOptions(), registry=registry)
    assert databackend_huggingface.databackend_make_metadata_backend(
        dataset=plan.datasets[0], storage=object(), context=context) is None  # type: ignore[arg-type]


def test_other_caption_strategies_are_refused(write_parquet: Callable[..., Path],
                                              open_hf: Callable[..., Any]) -> None:
    folder = write_parquet(basic_columns(2))
    with pytest.raises(ConfigError, match="caption_strategy huggingface"):
        open_hf(dataset_name=str(folder), caption_strategy="textfile")


def test_unknown_dataset_is_a_load_error_naming_it(open_hf: Callable[..., Any]) -> None:
    _, meta = open_hf(id="gone", dataset_name="nobody/not-a-real-dataset-name")
    with pytest.raises(DatasetLoadError, match=r"'gone'.*nobody/not-a-real-dataset-name.*hub"):
        meta.scan(progress=False)


def test_unknown_split_lists_the_splits(write_parquet: Callable[..., Path],
                                        open_hf: Callable[..., Any], tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"a": [1]})}).save_to_disk(
        str(tmp_path / "dd"))
    _, meta = open_hf(dataset_name=str(tmp_path / "dd"), split="nope")
    with pytest.raises(StorageError, match="no split 'nope'; splits: train"):
        meta.scan(progress=False)
