"""Config loading: key routing, strict types, every-problem-at-once errors, variables, sorting."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from databackend.config import (
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
    load_config,
    parse_entries,
)
from databackend.config.converter import make_converter
from databackend.errors import ConfigError
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry

CONFIGS = Path(__file__).parent / "configs"


def local(ident: str, folder: Path, **extra: Any) -> dict[str, Any]:
    return {"id": ident, "type": "local", "instance_data_dir": str(folder), **extra}


def problems_of(raw: Any, registry: PluginRegistry, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_entries(raw, registry, FactoryOptions(), **kw)
    return info.value.problems


def test_keys_are_routed_to_core_and_plugin(registry: PluginRegistry, tmp_path: Path) -> None:
    plan = parse_entries([local("a", tmp_path, crop=True, resolution=512)], registry,
                         FactoryOptions())
    (entry,) = plan.datasets
    assert entry.crop is True and entry.resolution == 512.0
    assert entry.storage.instance_data_dir == str(tmp_path)
    assert type(entry.storage).__name__ == "LocalConfig"


def test_aliases(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [{"id": "a", "type": "local", "instance_data_root": str(tmp_path),
            "text_embed_cache": "t", "is_regularization_data": True},
           {"id": "t", "type": "local", "dataset_type": "text_embeds"}]
    plan = parse_entries(raw, registry, FactoryOptions())
    (d,) = plan.datasets
    assert d.storage.instance_data_dir == str(tmp_path)
    assert d.text_embeds == "t" and d.is_regularisation_data


def test_five_mistakes_reported_together(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [local("a", tmp_path, crop="yes", crop_aspect="sqaure", resoluton=3),
           local("b", tmp_path, train_batch_size=0, text_embeds="missing")]
    found = problems_of(raw, registry)
    assert len(found) == 5, found
    expected = ["dataset 'a': `crop`: expected a boolean",
                "dataset 'a': `crop_aspect` must be one of square, preserve, closest, random; "
                "got 'sqaure' (did you mean 'square'?)",
                "dataset 'a': unknown key `resoluton` (did you mean 'resolution'?)",
                "dataset 'b': `train_batch_size` must be >= 1; got 0",
                "dataset 'b': `text_embeds` names 'missing'"]
    for text in expected:
        assert any(p.startswith(text) for p in found), (text, found)


def test_unimplemented_simpletuner_key_is_a_warning(registry: PluginRegistry,
                                                    tmp_path: Path) -> None:
    plan = parse_entries([local("a", tmp_path, caption_shuffle={"enable": True})], registry,
                         FactoryOptions())
    assert plan.warnings == ("dataset 'a': `caption_shuffle` is a SimpleTuner key that "
                             "databackend does not implement yet; it is ignored",)


def test_missing_plugin_names_package(registry: PluginRegistry) -> None:
    found = problems_of([{"id": "s3", "type": "aws", "aws_bucket_name": "b"}], registry)
    assert found == ["dataset 's3': type 'aws' is not installed; pip install databackend-aws "
                     "(installed types: local)"]


def test_unknown_type_lists_installed(registry: PluginRegistry) -> None:
    (line,) = problems_of([{"id": "x", "type": "ftp"}], registry)
    assert "unknown type 'ftp'" in line and "installed types: local" in line


def test_json_syntax_error_has_line_and_column(registry: PluginRegistry, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"id": "a",\n   "type": "local" "x": 1}\n]')
    with pytest.raises(ConfigError) as info:
        load_config(path, registry)
    assert "line 3, column 20" in str(info.value) and str(path) in str(info.value)


def test_variables_filled(registry: PluginRegistry, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("DB_ROOT", str(tmp_path))
    raw = [{"id": "cats", "type": "local", "instance_data_dir": "{env:DB_ROOT}",
            "cache_dir_vae": "{output_dir}/{model_family}/{id}/{extra}"}]
    opts = FactoryOptions(output_dir="/o", model_family="flux")
    plan = parse_entries(raw, registry, opts, variables={"extra": "v1"})
    (d,) = plan.datasets
    assert d.storage.instance_data_dir == str(tmp_path)
    assert d.cache_dir_vae == "/o/flux/cats/v1"


def test_unfilled_variables_are_errors(registry: PluginRegistry, monkeypatch: Any) -> None:
    monkeypatch.delenv("DB_NOT_SET", raising=False)
    found = problems_of([{"id": "a", "type": "local", "dataset_type": "text_embeds",
                          "cache_dir": "{env:DB_NOT_SET}/{nope}"}], registry)
    assert any("environment variable 'DB_NOT_SET'" in p for p in found)
    assert any("unknown variable {nope}" in p and "`cache_dir`" in p for p in found)


def test_disabled_entries_skipped(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [local("a", tmp_path), {"id": "b", "type": "aws", "disable": True},
           {"id": "c", "type": "nope", "disabled": True}]
    assert [d.id for d in parse_entries(raw, registry, FactoryOptions()).entries] == ["a"]


def test_dependency_sort(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [local("cond", tmp_path, conditioning_type="controlnet", source_dataset_id="main"),
           local("main", tmp_path, image_embeds="vae", conditioning_data=["cond2"]),
           local("cond2", tmp_path, dataset_type="conditioning"),
           {"id": "vae", "type": "local", "dataset_type": "image_embeds"},
           {"id": "text", "type": "local", "dataset_type": "text_embeds"}]
    order = [e.id for e in parse_entries(raw, registry, FactoryOptions()).entries]
    assert order[:2] == ["text", "vae"]
    assert order.index("main") < order.index("cond")
    assert order.index("main") < order.index("cond2")


def test_cycle_is_named(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [local("a", tmp_path, source_dataset_id="b"), local("b", tmp_path,
                                                              source_dataset_id="a")]
    found = problems_of(raw, registry)
    assert any((p.startswith("conditioning dependency cycle: ") and "a -> b -> a" in p)
               or "b -> a -> b" in p for p in found), found


def test_reference_rules(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [local("a", tmp_path, cache_dir_vae="/v"), local("a2", tmp_path, cache_dir_vae="/v"),
           {"id": "t1", "type": "local", "dataset_type": "text_embeds", "default": True},
           {"id": "t2", "type": "local", "dataset_type": "text_embeds", "default": True}]
    found = problems_of(raw, registry)
    assert any("`cache_dir_vae` '/v' is used by 2 datasets" in p for p in found)
    assert any("'t1', 't2' are all `default`" in p for p in found)


def test_no_default_text_embeds_when_needed(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [local("a", tmp_path),
           {"id": "t1", "type": "local", "dataset_type": "text_embeds"},
           {"id": "t2", "type": "local", "dataset_type": "text_embeds"}]
    found = problems_of(raw, registry)
    assert found == ["dataset 'a': `text_embeds` is not set and none of the 2 text_embeds "
                     "entries is `default`; set one"]


def test_geometry_rules(registry: PluginRegistry, tmp_path: Path) -> None:
    raw = [local("a", tmp_path, resolution=1024.5, maximum_image_size=2048,
                 crop_aspect="random"),
           local("b", tmp_path, resolution_type="area", resolution=1.0, minimum_image_size=512)]
    found = problems_of(raw, registry)
    assert len(found) == 4, found


@pytest.mark.parametrize("cls", [ImageBackendConfig, TextEmbedBackendConfig,
                                 ImageEmbedBackendConfig])
def test_config_classes_round_trip(cls: type[Any]) -> None:
    conv = make_converter()
    kind = cls.KINDS[0]
    values: dict[str, Any] = {"id": "x", "type": "local", "dataset_type": kind}
    if cls is ImageBackendConfig:
        values.update(crop=True, crop_aspect_buckets=[1.0, {"aspect": 2.0}], repeats=2,
                      parquet={"path": "p.parquet"}, conditioning_data=["c"])
    obj = conv.structure(values, cls)
    again = conv.structure({k: v for k, v in conv.unstructure(obj).items()
                            if k != "storage"}, cls)
    assert again == obj
    assert attrs.asdict(obj)["id"] == "x"


def test_example_configs_parse(tmp_path: Path, monkeypatch: Any) -> None:
    """SimpleTuner-style examples load with every installed plugin."""
    from databackend.plugins import make_registry

    monkeypatch.setenv("DB_TEST_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("DB_TEST_SECRET", "not-a-real-secret")
    for sub in ("pets", "portraits", "canny", "landscapes", "depth"):
        (tmp_path / sub).mkdir()
    registry = make_registry()
    for path in sorted(CONFIGS.glob("*.json")):
        plan = load_config(path, registry, FactoryOptions(output_dir=str(tmp_path / "o")),
                           variables={"data_root": str(tmp_path)})
        assert plan.entries, path
        ids = [e.id for e in plan.entries]
        assert len(ids) == len(set(ids)) == len(json.loads(path.read_text())) - sum(
            1 for e in json.loads(path.read_text()) if e.get("disabled"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
known_keys = st.sampled_from(["id", "type", "dataset_type", "crop", "resolution",
                              "crop_aspect_buckets", "text_embeds", "conditioning_data",
                              "instance_data_dir", "parquet", "repeats", "default",
                              "source_dataset_id", "caption_strategy", "skip_file_discovery"])
entry_like = st.dictionaries(known_keys, json_values, max_size=8)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values, st.lists(st.one_of(entry_like, json_values), max_size=4)))
def test_arbitrary_json_raises_only_config_error(registry: PluginRegistry, raw: Any) -> None:
    with contextlib.suppress(ConfigError):
        parse_entries(raw, registry, FactoryOptions())


@attrs.define
class _Credentials:
    endpoint: str
    api_token: str
    client_secret: list[Any]


def test_type_errors_never_quote_a_credential() -> None:
    """A mistyped secret is reported by key and type only; other keys show the bad value."""
    from databackend.config.converter import structure_errors

    conv = make_converter()
    with pytest.raises(Exception) as caught:
        conv.structure({"endpoint": 8080, "api_token": 123456789,
                        "client_secret": "hunter2-hunter2"}, _Credentials)
    lines = structure_errors(caught.value)
    text = "\n".join(lines)
    assert "`endpoint`: expected a string, got int 8080" in lines
    assert "`api_token`: expected a string, got int (value hidden)" in lines
    assert "`client_secret`: expected a list, got str (value hidden)" in lines
    assert "123456789" not in text and "hunter2" not in text


# --- round trip of every config class, the plugins' included --------------------------------

def _storage_samples(folder: Path) -> dict[str, dict[str, Any]]:
    """Per backend type: valid values for every key of its ``Config``, none of them default."""
    return {
        "local": {"instance_data_dir": str(folder)},
        "zip": {"zip_file": str(folder / "pets.zip")},
        "aws": {"aws_bucket_name": "training-data", "aws_data_prefix": "photos/2024",
                "aws_endpoint_url": "https://minio.example:9000", "aws_region_name": "eu-west-1",
                "aws_access_key_id": "AKIDFAKEFAKEFAKE", "aws_secret_access_key": "fake/secret",
                "aws_session_token": "fake-session-token", "aws_max_pool_connections": 7,
                "aws_retry_mode": "adaptive", "aws_max_attempts": 2, "aws_connect_timeout": 1.5,
                "aws_read_timeout": 12.25, "aws_list_page_size": 250},
        "csv": {"csv_file": str(folder / "urls.csv"), "csv_cache_dir": str(folder / "csv-cache"),
                "csv_url_column": "image_url", "csv_caption_column": "text",
                "csv_cache_max_bytes": 1 << 20, "csv_timeout": 2.5, "csv_retries": 1,
                "csv_backoff_seconds": 0.25, "csv_concurrency": 3, "csv_per_host_limit": 2,
                "csv_quarantine_seconds": 60.0, "csv_max_image_bytes": 1 << 16,
                "csv_user_agent": "tests/1.0", "csv_allow_private_addresses": True},
        "huggingface": {"dataset_name": str(folder / "hf"), "split": "validation",
                        "revision": "v1.0", "image_column": "picture",
                        "caption_column": ["title", "description.text"],
                        "fallback_caption_column": "alt", "width_column": "w",
                        "height_column": "h", "split_composite_images": True,
                        "composite_image_column": "pair", "cache_dir": str(folder / "hfc"),
                        "streaming": True, "num_proc": 2, "filter_function": "os.path:isfile",
                        "video_column": "clip",
                        "huggingface": {"composite_image_config": {"image_count": 2},
                                        "filter_func": {"collection": ["art", "photo"],
                                                        "quality_thresholds": {"q": 1.5},
                                                        "min_width": 32},
                                        "file_extension": "png"}},
    }


#: Backend types whose config classes are round-tripped (every installed type must be here).
STORAGE_TYPES = sorted(_storage_samples(Path("/x")))

#: Every FactoryOptions field with a valid, non-default value.
OPTION_SAMPLE: dict[str, Any] = {
    "seed": 11, "train_batch_size": 4, "resolution": 0.5, "resolution_type": "area",
    "aspect_bucket_alignment": 16, "aspect_bucket_rounding": 3, "maximum_canvas_size": 4096,
    "output_dir": "/runs/out", "cache_dir": "/runs/cache", "model_family": "flux",
    "caption_strategy": "textfile", "sampling": "uniform", "short_bucket_policy": "drop",
    "scan_workers": 2, "vae_cache_ondemand": True, "compress_cache": True}
OPTION_SAMPLE.update(peer_timeout_s=60.0, max_image_pixels=50_000_000)  # hardening
OPTION_SAMPLE.update(conditioning_multidataset_sampling="combined")  # conditioning
OPTION_SAMPLE.update(framerate=24)  # video
OPTION_SAMPLE.update(sampling_policy="mixture", mixture_steps_per_epoch=500)  # report
OPTION_SAMPLE.update(scan_remote_processes=2)  # scale
OPTION_SAMPLE.update(ray_num_gpus=0.5, ray_encoders=4, ray_decoders=8, ray_shares=3)  # ray


@pytest.fixture
def installed_registry() -> PluginRegistry:
    """Every installed plugin (the shared ``registry`` fixture holds only ``local``)."""
    from databackend.plugins import make_registry

    return make_registry()


def _non_default_fields(obj: Any) -> set[str]:
    return {f.name for f in attrs.fields(type(obj)) if getattr(obj, f.name) != f.default}


def test_every_installed_backend_type_has_a_round_trip_sample(
        installed_registry: PluginRegistry) -> None:
    assert set(installed_registry.backends) == set(STORAGE_TYPES)


@pytest.mark.parametrize("backend_type", STORAGE_TYPES)
def test_backend_config_classes_round_trip(installed_registry: PluginRegistry,
                                           backend_type: str, tmp_path: Path) -> None:
    cls = installed_registry.backends[backend_type].Config
    values = _storage_samples(tmp_path)[backend_type]
    conv = make_converter()
    obj = conv.structure(values, cls)
    # the sample really exercises every field (a new field needs a value here)
    assert _non_default_fields(obj) == {f.name for f in attrs.fields(cls)}
    plain = conv.unstructure(obj)
    assert plain == values
    assert json.loads(json.dumps(plain)) == plain  # plain JSON, nothing Python-specific
    again = conv.structure(plain, cls)
    assert again == obj and type(again) is cls
    problems: list[str] = getattr(again, "problems", list)()
    assert problems == []


def test_factory_options_round_trip() -> None:
    conv = make_converter()
    opts = conv.structure(OPTION_SAMPLE, FactoryOptions)
    assert _non_default_fields(opts) == {f.name for f in attrs.fields(FactoryOptions)}
    assert opts.problems() == []
    plain = conv.unstructure(opts)
    assert plain == OPTION_SAMPLE
    assert conv.structure(json.loads(json.dumps(plain)), FactoryOptions) == opts
    # the CLI/mapping path gives the same options
    assert FactoryOptions.from_mapping(plain) == opts


def _entry(backend_type: str, tmp_path: Path) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return {"id": f"{backend_type}-set", "type": backend_type, "crop": True,
            "crop_aspect": "closest", "crop_aspect_buckets": [0.75, 1.0], "repeats": 2,
            "probability": 0.5, "resolution": 512, "resolution_type": "pixel",
            "caption_strategy": {"csv": "csv", "huggingface": "huggingface"}.get(
                backend_type, "filename"),
            **_storage_samples(tmp_path)[backend_type]}


def _rebuild(plain: dict[str, Any], registry: PluginRegistry, cls: type[Any]) -> Any:
    """Structure an unstructured entry: the core class, then ``storage`` with its plugin's
    ``Config`` (the core class types ``storage`` as Any, so it cannot do that part)."""
    conv = make_converter()
    core = conv.structure({**plain, "storage": None}, cls)
    storage = conv.structure(plain["storage"], registry.backends[plain["type"]].Config)
    return attrs.evolve(core, storage=storage)


@pytest.mark.parametrize("backend_type", STORAGE_TYPES)
def test_loaded_entry_round_trip_keeps_the_storage_part(installed_registry: PluginRegistry,
                                                        backend_type: str,
                                                        tmp_path: Path) -> None:
    raw = _entry(backend_type, tmp_path / "data")
    path = tmp_path / "config.json"
    path.write_text(json.dumps([raw]))
    (entry,) = load_config(path, installed_registry,
                           FactoryOptions(output_dir=str(tmp_path / "o"))).entries
    cfg_cls = installed_registry.backends[backend_type].Config
    assert isinstance(entry, ImageBackendConfig) and type(entry.storage) is cfg_cls
    conv = make_converter()
    plain = conv.unstructure(entry)
    # the plugin-specific part is kept, nested under `storage`, with every key given
    assert plain["storage"] == conv.unstructure(entry.storage)
    assert {k: plain["storage"][k] for k in _storage_samples(tmp_path / "data")[backend_type]} \
        == _storage_samples(tmp_path / "data")[backend_type]
    assert plain["crop"] is True and plain["repeats"] == 2
    assert _rebuild(plain, installed_registry, ImageBackendConfig) == entry
    # flattened back into a config entry (the JSON file's shape), it loads to the same entry
    flat = {k: v for k, v in plain.items() if k != "storage"} | plain["storage"]
    path.write_text(json.dumps([flat]))
    (reloaded,) = load_config(path, installed_registry,
                              FactoryOptions(output_dir=str(tmp_path / "o"))).entries
    assert reloaded == entry


@pytest.mark.parametrize(("cls", "backend_type"), [(TextEmbedBackendConfig, "local"),
                                                   (ImageEmbedBackendConfig, "aws")])
def test_cache_entries_round_trip_with_storage(installed_registry: PluginRegistry,
                                               cls: type[Any], backend_type: str,
                                               tmp_path: Path) -> None:
    raw = {"id": "cache", "type": backend_type, "dataset_type": cls.KINDS[0],
           "cache_dir": "/caches/c", "write_batch_size": 7, "compress_cache": True,
           **_storage_samples(tmp_path)[backend_type]}
    (entry,) = load_config([raw], installed_registry).entries
    assert type(entry) is cls and entry.storage is not None
    conv = make_converter()
    plain = conv.unstructure(entry)
    sample = _storage_samples(tmp_path)[backend_type]
    assert plain["storage"] == conv.unstructure(entry.storage)
    assert {k: plain["storage"][k] for k in sample} == sample
    assert plain["cache_dir"] == "/caches/c" and plain["write_batch_size"] == 7
    assert _rebuild(plain, installed_registry, cls) == entry
