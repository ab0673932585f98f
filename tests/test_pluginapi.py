"""Plugin API 1.0: the import boundary, the third-party test plugins under tests/plugins, the
API version check, read-only backends and loose plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import attrs
import pytest
from pluginapi_support import ROOT, boundary_violations, plugin_sources, png_bytes, write_zip

from databackend.apiversion import compatible
from databackend.backendtype import BackendType
from databackend.build import build_metadata, build_storage
from databackend.commands.validate import plan_rows
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.errors import ConfigError, PluginLoadError, StorageError
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager, make_registry
from databackend.registry import PluginRegistry
from databackend.testing import ReadOnlyStorageConformance

FUTURE = ROOT / "tests" / "plugins" / "future"


# --- the import boundary ------------------------------------------------------------------------
def test_plugins_import_only_the_public_api() -> None:
    """Every plugin in this repository imports ``databackend.pluginapi`` and nothing else of
    the core (TYPE_CHECKING and function-level imports included)."""
    files = list(plugin_sources())
    assert len(files) > 30  # the four plugins and the test plugins were found
    bad = {str(f.relative_to(ROOT)): v for f in files
           if (v := boundary_violations(f.read_text()))}
    assert bad == {}


def test_boundary_checker_catches_private_imports() -> None:
    source = textwrap.dedent("""
        from typing import TYPE_CHECKING
        import databackend.pluginapi
        from databackend.pluginapi import hookimpl
        from databackend import StorageBackend
        if TYPE_CHECKING:
            from databackend.metadata.index import DatasetIndex
        def f():
            import databackend.geometry
    """)
    assert boundary_violations(source) == ["databackend.StorageBackend",
                                           "databackend.metadata.index", "databackend.geometry"]


# --- the zipstore test plugin (installed into the venv) -------------------------------------------
@pytest.fixture(scope="module")
def installed() -> PluginRegistry:
    names = {ep.name for ep in metadata.entry_points(group="databackend")}
    assert "zipstore" in names, "tests/plugins/zipstore is not installed: run `make venv`"
    return make_registry()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "pets.zip", {
        "cats/tom.png": (png_bytes(64, 48, 1), "a grey cat"),
        "dogs/rex.png": (png_bytes(48, 64, 2), "a brown dog"),
        "dogs/nocaption.png": (png_bytes(64, 64, 3), "")})


def test_zip_declarations_reach_the_core(installed: PluginRegistry) -> None:
    declared = installed.types["zip"]
    assert declared.read_only and declared.default_caption_strategy == "zip-comment"
    assert declared.key_aliases == {"zip_archive": "zip_file"}
    assert declared.install_hint == "pip install databackend-zipstore"
    assert "zip-comment" in installed.caption_strategies
    assert installed.plugin_of("zip") == "zipstore"


def test_zip_dataset_alias_location_and_storage_captions(installed: PluginRegistry,
                                                         archive: Path, tmp_path: Path) -> None:
    """The type's alias, its location in ``validate``, its default caption strategy, and the
    captions its storage holds, through a real scan."""
    opts = FactoryOptions(output_dir=str(tmp_path / "out"), scan_workers=1)
    plan = load_config([{"id": "pets", "type": "zip", "zip_archive": str(archive),
                         "resolution": 32, "resolution_type": "pixel"}], installed, opts)
    dataset = plan.datasets[0]
    assert dataset.storage.zip_file == str(archive)
    assert dataset.caption_strategy == "zip-comment"
    assert plan_rows(plan, installed)[0]["location"] == str(archive)
    ctx = BuildContext(options=opts, registry=installed)
    meta = build_metadata(dataset, build_storage(dataset, ctx), ctx)
    report = meta.scan(progress=False)
    idx = meta.index
    assert {p: idx.captions_of(i) for i, p in enumerate(idx.paths)} == {
        "cats/tom.png": ("a grey cat",), "dogs/rex.png": ("a brown dog",)}
    assert report.skipped == {"no_caption": 1}


def test_metadata_backend_selects_through_the_hook(installed: PluginRegistry,
                                                   tmp_path: Path) -> None:
    """A plugin's ``metadata_backend`` name is valid config, but only that plugin's hook builds
    it: on another type it is an error naming the key, not a silent discovery scan."""
    opts = FactoryOptions(output_dir=str(tmp_path))
    plan = load_config([{"id": "pets", "type": "local", "instance_data_dir": str(tmp_path),
                         "metadata_backend": "huggingface"}], installed, opts)
    ctx = BuildContext(options=opts, registry=installed)
    storage = build_storage(plan.datasets[0], ctx)
    with pytest.raises(StorageError, match="no plugin builds `metadata_backend` 'huggingface' "
                                           "for type 'local'"):
        build_metadata(plan.datasets[0], storage, ctx)


def test_caches_and_deletions_on_read_only_types_are_config_errors(
        installed: PluginRegistry, archive: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config([
            {"id": "te", "type": "zip", "dataset_type": "text_embeds", "zip_file": str(archive)},
            {"id": "vae", "type": "zip", "dataset_type": "image_embeds", "zip_file": str(archive)},
            {"id": "pets", "type": "zip", "zip_file": str(archive), "text_embeds": "te",
             "image_embeds": "vae", "delete_problematic_images": True}],
            installed, FactoryOptions(output_dir=str(tmp_path)))
    assert info.value.problems == [
        "dataset 'te': `type`: 'zip' storage is read-only and cannot hold a text_embeds cache; "
        "use a writable type (e.g. local)",
        "dataset 'vae': `type`: 'zip' storage is read-only and cannot hold a image_embeds "
        "cache; use a writable type (e.g. local)",
        "dataset 'pets': `delete_problematic_images`: 'zip' storage is read-only, nothing can "
        "be deleted from it"]


class TestZipReadOnly(ReadOnlyStorageConformance):
    """The third-party read-only backend passes the read-only conformance suite."""

    @pytest.fixture
    def expected_files(self) -> dict[str, bytes]:
        return {"a.png": png_bytes(8, 8, 1), "sub/b.bin": bytes(range(200))}

    @pytest.fixture
    def backend(self, installed: PluginRegistry, tmp_path: Path,
                expected_files: dict[str, bytes]) -> object:
        path = write_zip(tmp_path / "ro.zip", {k: (v, "") for k, v in expected_files.items()})
        cls = installed.backends["zip"]
        return cls(installed.types["zip"].Config(zip_file=str(path)), dataset_id="ro")


def test_install_hint_of_a_type_whose_implementation_is_missing(
        installed: PluginRegistry) -> None:
    """The hint the zip type declares is shown when its implementation cannot load."""
    broken = attrs.evolve(installed.types["zip"], implementation="databackend_zipstore.gone:Zip")
    with pytest.raises(PluginLoadError, match=r"backend type 'zip': cannot load "
                       r"databackend_zipstore\.gone:Zip .*; pip install databackend-zipstore$"):
        broken.load()


def test_declarations_must_agree_with_the_class() -> None:
    """A lazily loaded class inherits its type's declarations; contradicting one is an error."""
    lazy = BackendType(name="directory", Config=dict, read_only=True,
                       implementation="databackend.storage.localdir:LocalDirectory")
    with pytest.raises(PluginLoadError, match="declares local_files=True, its BackendType False"):
        lazy.load()


# --- plugin API versions ------------------------------------------------------------------------
def test_version_rule() -> None:
    assert compatible("1.0", "1.0") and compatible("1.0", "1.3") and compatible("1", "1.0")
    assert not compatible("1.1", "1.0") and not compatible("2.0", "1.0")
    assert not compatible("0.9", "1.0") and not compatible("one", "1.0")


def _future_site(tmp_path: Path) -> Path:
    """databackend-future "installed" into a site folder: a dist-info with its entry point."""
    site = tmp_path / "site"
    info = site / "databackend_future-3.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: databackend-future\n"
                                   "Version: 3.0.0\n")
    (info / "entry_points.txt").write_text("[databackend]\nfuture = databackend_future\n")
    return site


def _cli(args: list[str], pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    return subprocess.run([sys.executable, "-m", "databackend", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


EXPECTED = ("error: plugin {name!r} ({source}) needs databackend plugin API 2.0, but "
            "databackend 0.2.0 provides plugin API 1.1; install a release of the plugin "
            "built for API 1.x")


def test_incompatible_plugin_fails_with_one_line(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed (entry point) and loose (--plugin): one line naming plugin and versions."""
    site = _future_site(tmp_path)
    done = _cli(["plugins"], [site, FUTURE])
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        EXPECTED.format(name="future", source="databackend-future 3.0.0")]
    loose = _cli(["--plugin", "databackend_future", "plugins"], [FUTURE])
    assert loose.returncode == 1
    assert loose.stderr.splitlines() == [
        EXPECTED.format(name="databackend_future", source="loose plugin databackend_future")]
    monkeypatch.syspath_prepend(str(FUTURE))
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(PluginLoadError, match=r"needs databackend plugin API 2\.0"):
        make_plugin_manager()
    sys.modules.pop("databackend_future", None)


LOOSE = """
    from databackend.pluginapi import LocalDirectory, hookimpl

    class Scratch(LocalDirectory):
        name = "scratch"

    @hookimpl
    def databackend_register_backends():
        return [Scratch]
"""


def test_loose_plugin_file_from_cli_and_env(tmp_path: Path) -> None:
    plugin = tmp_path / "scratch_plugin.py"
    plugin.write_text(textwrap.dedent(LOOSE))
    done = _cli(["--plugin", str(plugin), "plugins"], [])
    assert done.returncode == 0, done.stderr
    assert "scratch_plugin  (loose plugin " in done.stdout and "scratch" in done.stdout
    env = {**os.environ, "DATABACKEND_PLUGIN_MODULES": str(plugin)}
    listed = subprocess.run([sys.executable, "-m", "databackend", "plugins", "--json"],
                            capture_output=True, text=True, env=env, timeout=120, check=True)
    assert '"scratch"' in listed.stdout
