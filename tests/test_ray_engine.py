"""The scan on a local Ray cluster (``ray.init(num_cpus=2)``): the same index as a local scan,
also when a worker dies mid-run (Ray retries its chunk)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_metadata_support import make_meta

from databackend.metadata.index import DatasetIndex
from databackend.registry import PluginRegistry
from databackend.storage.localdir import LocalDirectory

ray = pytest.importorskip("ray")

from databackend.engines.ray import use_ray  # noqa: E402


class DiesOnce(LocalDirectory):
    """Kills the worker process that first asks for each victim path (a marker file per victim
    remembers); never the test's own process. ``""`` is asked for by the listing."""

    def __init__(self, *, root: str, dataset_id: str, victims: dict[str, str]) -> None:
        super().__init__(root=root, dataset_id=dataset_id)
        self.victims, self.driver = victims, os.getpid()

    def local_path(self, path: str) -> str | None:
        marker = self.victims.get(path)
        if marker and os.getpid() != self.driver and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker dies without a word
        return super().local_path(path)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    yield
    ray.shutdown()


def _canonical(index: DatasetIndex) -> bytes:
    """The index bytes with the per-run fields (generation, time, storage class) fixed."""
    index.meta.update(generation="g", created=0.0, storage="s")
    return index.to_bytes()


def _tree(make_images: Callable[..., Path]) -> Path:
    sizes = [(128, 128), (192, 128), (128, 192), (40, 30)]
    specs = [(f"f{k}/{n}.jpg", *sizes[(k + n) % 4]) for k in range(4) for n in range(5)]
    root = make_images(specs)
    (root / "f1" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return root


def test_killed_workers_are_retried_and_the_index_is_the_same(
        cluster: None, registry: PluginRegistry, tmp_path: Path,
        make_images: Callable[..., Path]) -> None:
    """A listing share's worker and a probe chunk's worker die; Ray re-runs both."""
    root = _tree(make_images)
    local = make_meta(registry, tmp_path / "local", root)
    local.scan(progress=False)
    markers = {"": str(tmp_path / "listing-killed"), "f2/3.jpg": str(tmp_path / "probe-killed")}
    storage = DiesOnce(root=str(root), dataset_id="ds", victims=markers)
    remote = make_meta(registry, tmp_path / "ray", root, storage=storage)
    pool = use_ray(remote, list_shares=3)
    remote.scan(progress=False)
    assert pool.submitted >= 1
    for marker in markers.values():  # both workers died
        assert int(Path(marker).read_text()) != os.getpid()
    assert pool.retries() >= 2  # ...and their work was re-run and counted
    assert pool.stats() == {"tasks": pool.submitted, "list_tasks": 3,
                            "retries": pool.retries()}
    assert _canonical(remote.index) == _canonical(local.index)
    assert len(local.index) == 20 and local.index.skipped.counts() == {"not_an_image": 1}


def test_cli_scan_with_engine_ray(cluster: None, tmp_path: Path,
                                  make_images: Callable[..., Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from databackend.cli import main

    root = _tree(make_images)
    config = tmp_path / "config.json"
    config.write_text(json.dumps([{"id": "ds", "type": "local", "instance_data_dir": str(root)}]))
    out = f"output_dir={tmp_path / 'out'}"
    assert main(["scan", str(config), "--option", out, "--engine", "ray", "--json"]) == 0
    ray_report = json.loads(capsys.readouterr().out)
    index = tmp_path / "out" / "cache" / "metadata" / "ds" / "index.dbi"
    ray_bytes = _canonical(DatasetIndex.open_file(str(index)))
    index.unlink()
    assert main(["scan", str(config), "--option", out, "--json"]) == 0
    local_report = json.loads(capsys.readouterr().out)
    assert _canonical(DatasetIndex.open_file(str(index))) == ray_bytes
    assert str(ray_report).count("'kept': 20") == str(local_report).count("'kept': 20") >= 1
    stats = ray_report["engine"]["ds"]
    assert stats["tasks"] >= 1 and (stats["list_tasks"], stats["retries"]) == (2, 0)
    assert "engine" not in local_report
    assert main(["scan", str(config), "--option", out, "--engine", "ray"]) == 0
    assert "ray ds: 2 listing and 0 probe tasks, 0 retried by Ray" in capsys.readouterr().out


class DyingVAE:
    """The reference VAE, except that the first process to call it dies (a marker remembers)."""

    def __init__(self, marker: str) -> None:
        from databackend.caches import ReferenceVAE

        self.inner, self.marker = ReferenceVAE(), marker
        self.identity = self.inner.identity

    def __call__(self, pixels: object) -> object:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.inner(pixels)  # type: ignore[arg-type]


class DyingTextEncoder:
    """The reference text encoder, except that the first process to call it dies."""

    def __init__(self, marker: str) -> None:
        from databackend.caches import ReferenceTextEncoder

        self.inner, self.marker = ReferenceTextEncoder(), marker
        self.identity = self.inner.identity

    def __call__(self, captions: list[str]) -> object:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.inner(captions)


def _cache_files(out: Path) -> dict[str, bytes]:
    """Every cache file under ``out`` (the index, which carries a generation, left out)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "metadata" not in p.parts}


def test_cache_on_ray_writes_the_local_entries_even_after_a_killed_worker(
        cluster: None, tmp_path: Path, make_images: Callable[..., Path]) -> None:
    """``run_cache`` is what ``databackend cache --engine ray`` runs: the latents in the Ray
    Data pipeline (its encoder actor dies once), the text cache in 2 share tasks (one dies
    once). A JPEG cut
    in half passes the scan (its header is whole) and fails to decode: reported as locally."""
    import argparse
    import json

    from databackend.caches import ReferenceTextEncoder
    from databackend.cli import main
    from databackend.engines.raycache import run_cache

    root = _tree(make_images)
    whole = (root / "f0" / "0.jpg").read_bytes()
    (root / "f3" / "cut.jpg").write_bytes(whole[:len(whole) // 2])
    config = tmp_path / "config.json"
    config.write_text(json.dumps([{"id": "ds", "type": "local", "instance_data_dir": str(root),
                                   "resolution": 64, "resolution_type": "pixel_area",
                                   "aspect_bucket_alignment": 16}]))
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["cache", str(config), "--option", f"output_dir={local}", "--no-progress"]) == 1
    expected = _cache_files(local)
    assert len(expected) > 20
    marker, text_marker = tmp_path / "killed", tmp_path / "text-killed"
    args = argparse.Namespace(config=str(config), var=[], option=[f"output_dir={remote}"],
                              batch_size=8, text_batch_size=32, address=None, no_progress=True)
    runs = run_cache(args, (DyingTextEncoder(str(text_marker)), DyingVAE(str(marker))),
                     shares=2)
    for died in (marker, text_marker):  # an encoder actor and a share task died
        assert int(died.read_text()) != os.getpid()
    assert _cache_files(remote) == expected
    assert [r.kind for r in runs] == ["latents", "text"]
    latents = runs[0].report
    assert (latents.total, latents.encoded, len(latents.failed)) == (21, 20, 1)
    assert latents.failed[0][0] == "f3/cut.jpg" and "Truncated" in latents.failed[0][1]
    assert latents.retries >= 1  # the batch the dead actor held ran again, and was counted
    assert runs[1].report.encoded >= 1 and runs[1].report.retries >= 1  # a share re-ran
    again = run_cache(args, (ReferenceTextEncoder(), DyingVAE(str(marker))), shares=2)
    assert (again[0].report.cached, again[0].report.encoded) == (20, 0)
    assert again[0].report.failed == latents.failed


def test_cache_command_line_carries_what_run_cache_reads() -> None:
    from databackend.cli import make_parser

    args = make_parser().parse_args(["cache", "c.json", "--engine", "ray", "--address",
                                     "ray://h:1", "--shares", "3", "--num-gpus", "0.5",
                                     "--encoders", "4", "--decoders", "6"])
    assert (args.engine, args.address, args.shares, args.num_gpus) == ("ray", "ray://h:1", 3, 0.5)
    assert (args.encoders, args.decoders) == (4, 6)
    assert {"config", "var", "option", "batch_size", "text_batch_size"} <= set(vars(args))


def test_pipeline_settings_come_from_the_flags_else_the_factory_options() -> None:
    from databackend.cli import make_parser
    from databackend.commands.engine import ray_fill_settings
    from databackend.errors import ConfigError
    from databackend.options import FactoryOptions

    options = FactoryOptions.from_mapping({"ray_num_gpus": "1", "ray_encoders": "8",
                                           "ray_shares": "5"})
    plain = make_parser().parse_args(["cache", "c.json", "--engine", "ray"])
    fill, shares = ray_fill_settings(plain, options)
    assert (fill.num_gpus, fill.encoders, fill.decoders, shares) == (1.0, 8, None, 5)
    flags = make_parser().parse_args(["cache", "c.json", "--num-gpus", "0", "--decoders", "3",
                                      "--shares", "1"])
    fill, shares = ray_fill_settings(flags, options)
    assert (fill.num_gpus, fill.encoders, fill.decoders, shares) == (0, 8, 3, 1)
    with pytest.raises(ConfigError, match="ray_encoders"):
        FactoryOptions.from_mapping({"ray_encoders": "0"})


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_latents_cross_the_pipeline_bit_for_bit(dtype: str) -> None:
    import torch

    from databackend.engines.raystages import from_wire, to_wire

    latents = [torch.randn(4, 3, 5).to(getattr(torch, dtype)) for _ in range(3)]
    raw, name, shape = to_wire(latents)
    assert raw.dtype.name == "uint8" and (name, shape) == (dtype, [4, 3, 5])
    back = from_wire(raw.copy(), name, shape)
    assert all(torch.equal(a, b) and a.dtype == b.dtype for a, b in zip(latents, back, strict=True))


def test_a_pipeline_the_cluster_cannot_place_is_refused_before_it_waits() -> None:
    from databackend.engines.raydata import RayFillOptions, check_fits
    from databackend.errors import ConfigError

    check_fits(RayFillOptions(), {"CPU": 2.0})  # 1 decoder + 0.5 + 0.25 CPUs
    with pytest.raises(ConfigError, match=r"needs 3\.75 CPUs and 0 GPUs.*has 2 CPUs"):
        check_fits(RayFillOptions(decoders=3), {"CPU": 2.0})
    with pytest.raises(ConfigError, match=r"needs 2\.25 CPUs and 2 GPUs.*8 CPUs and 0 GPUs"):
        check_fits(RayFillOptions(encoders=2, num_gpus=1), {"CPU": 8.0})


def test_input_blocks_are_one_batch_each_until_they_are_many() -> None:
    from databackend.engines.raydata import block_count

    assert [block_count(n, 2) for n in (0, 1, 5, 8)] == [1, 1, 5, 8]
    assert block_count(100, 2) == 8 and block_count(1600, 2) == 100
    assert block_count(12_500_000, 64) == 781_250
