"""The plugin system: hookspecs, entry-point discovery, allow/deny switches, error naming."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import databackend_local
from databackend import hookimpl, hookspecs
from databackend.build import build_metadata, build_storage
from databackend.captionstrategy import CaptionStrategy
from databackend.config import parse_entries
from databackend.context import BuildContext
from databackend.errors import ConfigError, PluginLoadError, UnknownBackendError
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend.runtime.strategies import DatasetView, SamplingStrategy
from databackend.storage.localdir import LocalDirectory

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("databackend_"))
DOCS = Path(__file__).parents[1] / "docs" / "hooks.md"


def write_dist(site: Path, dist: str, module: str, body: str) -> None:
    """A real installed distribution: a module plus a .dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(textwrap.dedent(body))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[databackend]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("DATABACKEND_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("DATABACKEND_BLOCK_PLUGINS", raising=False)
    importlib.invalidate_caches()
    yield folder
    for name in [m for m in sys.modules if m.startswith("dbtest_")]:
        del sys.modules[name]


MEMORY_PLUGIN = """
    import attrs
    from databackend import StorageBackend, FileInfo, hookimpl

    @attrs.frozen(kw_only=True)
    class MemoryConfig:
        memory_label: str = "m"

    class MemoryBackend(StorageBackend):
        name = "memory"
        Config = MemoryConfig

        def __init__(self, config, *, dataset_id, root=None):
            super().__init__(config, dataset_id=dataset_id, root=root)
            self.files = {}

        def list(self, prefix="", *, extensions=None):
            for k, v in sorted(self.files.items()):
                yield FileInfo(k, len(v), 0.0)

        def read(self, path):
            return self.files[path]

        def write(self, path, data):
            self.files[path] = bytes(data)

        def delete(self, path):
            self.files.pop(path, None)

        def exists(self, path):
            return path in self.files

    @hookimpl
    def databackend_register_backends():
        return [MemoryBackend]
"""


def test_third_party_plugin_found_by_entry_point(site: Path) -> None:
    write_dist(site, "dbtest-memory", "dbtest_memory", MEMORY_PLUGIN)
    registry = PluginRegistry.collect(make_plugin_manager())
    assert registry.backends["memory"].__module__ == "dbtest_memory"
    plan = parse_entries([{"id": "m", "type": "memory", "dataset_type": "text_embeds",
                           "memory_label": "x"}], registry, FactoryOptions())
    assert plan.entries[0].storage.memory_label == "x"
    sources = registry.pm.plugin_sources  # type: ignore[attr-defined]
    assert sources["dbtest_memory"] == "dbtest-memory 1.2.3"


def test_allow_and_block_lists(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dist(site, "dbtest-memory", "dbtest_memory", MEMORY_PLUGIN)
    monkeypatch.setenv("DATABACKEND_LOAD_PLUGINS", "")
    assert "memory" not in PluginRegistry.collect(make_plugin_manager()).backends
    monkeypatch.setenv("DATABACKEND_LOAD_PLUGINS", "dbtest-memory")
    assert "memory" in PluginRegistry.collect(make_plugin_manager()).backends
    monkeypatch.delenv("DATABACKEND_LOAD_PLUGINS")
    monkeypatch.setenv("DATABACKEND_BLOCK_PLUGINS", "dbtest_memory")
    assert "memory" not in PluginRegistry.collect(make_plugin_manager()).backends
    monkeypatch.delenv("DATABACKEND_BLOCK_PLUGINS")
    pm = make_plugin_manager(blocked=["dbtest-memory"])
    assert "memory" not in PluginRegistry.collect(pm).backends


def test_broken_plugin_names_distribution(site: Path) -> None:
    write_dist(site, "dbtest-broken", "dbtest_broken", "import not_a_real_module_xyz\n")
    with pytest.raises(PluginLoadError, match=r"plugin 'dbtest_broken' from dbtest-broken "
                                              r"1\.2\.3 failed to import: ModuleNotFoundError"):
        make_plugin_manager()


class _Dup:
    class LocalAgain(LocalDirectory):
        name = "local"

    @hookimpl
    def databackend_register_backends(self) -> Sequence[type[Any]]:
        return [self.LocalAgain]


def test_duplicate_backend_names_both() -> None:
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local, _Dup()])
    with pytest.raises(PluginLoadError) as info:
        PluginRegistry.collect(pm)
    text = str(info.value)
    assert "backend type 'local' is registered twice" in text
    assert "databackend_local.LocalBackend" in text and "LocalAgain" in text


def test_tracing_switch(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("DATABACKEND_TRACE_PLUGINS", "1")
    caplog.set_level("DEBUG", logger="databackend.plugins")
    pm = make_plugin_manager(entrypoints=False)
    pm.hook.databackend_register_strategies()
    assert any("databackend_register_strategies" in r.getMessage() for r in caplog.records)


# --- one test per hook ------------------------------------------------------------------------


def test_hook_databackend_register_backends(registry: PluginRegistry) -> None:
    assert registry.backends["local"] is databackend_local.LocalBackend
    assert registry.plugin_of("local") == "databackend_local"


class _Spy:
    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def databackend_make_backend(self, backend_type: str, dataset_id: str) -> Any:
        self.calls.append(f"{backend_type}:{dataset_id}")
        return None


def test_hook_databackend_make_backend(registry: PluginRegistry, tmp_path: Path) -> None:
    spy = _Spy()
    registry.pm.register(spy)
    try:
        ctx = BuildContext(options=FactoryOptions(), registry=registry)
        plan = parse_entries([{"id": "a", "type": "local", "instance_data_dir": str(tmp_path)}],
                             registry, FactoryOptions())
        backend = build_storage(plan.datasets[0], ctx)
    finally:
        registry.pm.unregister(spy)
    assert spy.calls == ["local:a"]
    assert isinstance(backend, databackend_local.LocalBackend)
    assert backend.root == str(tmp_path)


@attrs.define
class _CustomMeta:
    dataset_id: str


class _MetaPlugin:
    @hookimpl
    def databackend_make_metadata_backend(self, dataset: Any) -> Any:
        return _CustomMeta(dataset.id) if dataset.id == "special" else None


def test_hook_databackend_make_metadata_backend(registry: PluginRegistry, tmp_path: Path) -> None:
    registry.pm.register(_MetaPlugin())
    ctx = BuildContext(options=FactoryOptions(), registry=registry)
    plan = parse_entries([{"id": "special", "type": "local",
                           "instance_data_dir": str(tmp_path)}], registry, FactoryOptions())
    dataset = plan.datasets[0]
    meta = build_metadata(dataset, build_storage(dataset, ctx), ctx)
    assert meta == _CustomMeta("special")


class _FirstOnly(SamplingStrategy):
    name = "first-only"

    def weights(self, datasets: Sequence[DatasetView], epoch: int, step: int) -> list[float]:
        return [1.0] + [0.0] * (len(datasets) - 1)


class _StrategyPlugin:
    @hookimpl
    def databackend_register_strategies(self) -> Sequence[type[SamplingStrategy]]:
        return [_FirstOnly]


def test_hook_databackend_register_strategies() -> None:
    pm = make_plugin_manager(entrypoints=False, extra=[_StrategyPlugin()])
    registry = PluginRegistry.collect(pm)
    assert set(registry.strategies) == {"uniform", "auto-weighting", "first-only"}
    views = [DatasetView(id="a", num_batches=3), DatasetView(id="b", num_batches=1)]
    assert registry.strategy_class("first-only")().weights(views, 1, 0) == [1.0, 0.0]
    assert registry.strategy_class("auto-weighting")().weights(views, 1, 0) == [0.75, 0.25]
    with pytest.raises(UnknownBackendError, match="installed: auto-weighting, first-only"):
        registry.strategy_class("nope")


class _ShoutStem(CaptionStrategy):
    name = "shout-stem"

    def captions(self, storage: Any, paths: Sequence[str]) -> list[Any]:
        return [p.rpartition("/")[2].split(".")[0].upper() or None for p in paths]


class _CaptionPlugin:
    @hookimpl
    def databackend_register_caption_strategies(self) -> Sequence[type[CaptionStrategy]]:
        return [_ShoutStem]


def test_hook_databackend_register_caption_strategies(tmp_path: Path) -> None:
    """A registered strategy is a valid ``caption_strategy`` and gives the scan's captions;
    an unregistered name lists the registered ones among the choices."""
    from imagefiles import write_image

    write_image(tmp_path / "img" / "red_car.png", 64, 48)
    registry = PluginRegistry.collect(make_plugin_manager(
        entrypoints=False, extra=[databackend_local, _CaptionPlugin()]))
    assert registry.caption_strategies == {"shout-stem": _ShoutStem}
    entry = {"id": "a", "type": "local", "instance_data_dir": str(tmp_path / "img"),
             "caption_strategy": "shout-stem", "resolution": 32, "resolution_type": "pixel"}
    options = FactoryOptions(output_dir=str(tmp_path / "out"))
    plan = parse_entries([entry], registry, options)
    ctx = BuildContext(options=options, registry=registry)
    meta = build_metadata(plan.datasets[0], build_storage(plan.datasets[0], ctx), ctx)
    meta.scan(progress=False)
    assert meta.index.captions_of(0) == ("RED_CAR",)
    with pytest.raises(ConfigError, match="instanceprompt, parquet, shout-stem; got 'shout'"):
        parse_entries([{**entry, "caption_strategy": "shout"}], registry, options)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    assert f"test_hook_{hook}" in globals()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    names = getattr(hookspecs, hook).__code__.co_varnames[
        : getattr(hookspecs, hook).__code__.co_argcount]
    assert f"{hook}({', '.join(names)})" in DOCS.read_text()


def test_documented_plugin_example_works(site: Path) -> None:
    """The complete example in docs/plugins.md installs and passes the conformance suite."""
    from databackend.testing import StorageConformance

    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    code = text.split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 45
    write_dist(site, "dbtest-memfs", "dbtest_memfs", code)
    registry = PluginRegistry.collect(make_plugin_manager())
    cls = registry.backends["memfs"]
    plan = parse_entries([{"id": "pets", "type": "memfs", "memfs_root": "/pets-doc"}], registry,
                         FactoryOptions())
    backend = build_storage(plan.datasets[0], BuildContext(options=FactoryOptions(),
                                                           registry=registry))
    assert isinstance(backend, cls)
    suite = StorageConformance()
    for name in [n for n in dir(suite) if n.startswith("test_")]:
        getattr(suite, name)(cls(plan.datasets[0].storage, dataset_id="t",
                                 root=f"/doc-{name}"))


# --- conditioning generators (issue 12) --------------------------------------------------------
class _Posterize:
    """A third-party generator: fewer grey levels (parameters checked, pure function)."""

    @hookimpl
    def databackend_register_conditioning_generators(self) -> Any:
        from PIL import ImageOps

        from databackend.conditioning.generator import ConditioningGenerator

        class Posterize(ConditioningGenerator):
            name, aliases, defaults = "posterize", ("poster",), {"bits": 2}

            def check(self) -> list[str]:
                return [] if 1 <= self.params["bits"] <= 8 else ["`bits` must be 1..8"]

            def generate(self, image: Any, rng: Any) -> Any:
                return ImageOps.posterize(image, self.params["bits"])

        class Depth(ConditioningGenerator):
            name, defaults = "depth", {"model_type": "DPT"}

            @classmethod
            def unavailable(cls) -> str | None:
                return "the depth model 'DPT' is not installed"

        return [Posterize, Depth]


def test_hook_databackend_register_conditioning_generators(registry: PluginRegistry,
                                                           tmp_path: Path) -> None:
    from databackend.errors import ConfigError

    registry.pm.register(_Posterize())
    opts = FactoryOptions(output_dir=str(tmp_path / "out"))
    src = {"id": "src", "type": "local", "instance_data_dir": str(tmp_path)}
    plan = parse_entries([{**src, "conditioning": {"type": "poster", "params": {"bits": 3}}}],
                         registry, opts)
    gen = plan.by_id["src_conditioning_posterize"]
    assert gen.conditioning_config == {"type": "posterize", "params": {"bits": 3}, "seed": None}
    assert plan.by_id["src"].conditioning_ids == ["src_conditioning_posterize"]
    with pytest.raises(ConfigError) as err:
        parse_entries([{**src, "conditioning": [{"type": "depth"}, {"type": "posterize",
                                                                    "bits": 9}]}], registry, opts)
    assert err.value.problems == [
        "dataset 'src': conditioning[0]: generator 'depth' cannot run here: the depth model "
        "'DPT' is not installed",
        "dataset 'src': conditioning[1]: `bits` must be 1..8"]
