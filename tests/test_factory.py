"""DataBackendFactory: stages and metrics, batches from real scans and caches, strategies from
plugins, resume through the prefetcher, independence of two factories in one process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import databackend_local
from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.factory import DataBackendFactory
from databackend.markers import hookimpl
from databackend.plugins import make_plugin_manager
from databackend.runtime.strategies import DatasetView, SamplingStrategy

STAGES = ["plugins", "config", "text_embeds", "image_embeds", "datasets", "metadata", "caches",
          "samplers"]
SIZES = [(128, 128), (192, 128), (128, 192), (160, 160)]


@pytest.fixture
def dataset_dirs(make_images: Callable[..., Path]) -> Path:
    specs = [(f"a/img_{n:02d}.{'png' if n % 2 else 'jpg'}", *SIZES[n % 4]) for n in range(12)]
    specs += [(f"b/sub/pic_{n:02d}.jpg", *SIZES[(n + 1) % 4]) for n in range(8)]
    return make_images(specs)


def config(root: Path, tmp_path: Path, **a_keys: Any) -> list[dict[str, Any]]:
    return [
        {"id": "text", "dataset_type": "text_embeds", "type": "local",
         "cache_dir": str(tmp_path / "cache/text")},
        {"id": "vae", "dataset_type": "image_embeds", "type": "local",
         "cache_dir": str(tmp_path / "cache/vae")},
        {"id": "a", "type": "local", "instance_data_dir": str(root / "a"),
         "image_embeds": "vae", "train_batch_size": 2, **a_keys},
        {"id": "b", "type": "local", "instance_data_dir": str(root / "b"),
         "image_embeds": "vae", "probability": 0.5},
    ]


def options(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"output_dir": str(tmp_path / "out"), "resolution": 64,
            "resolution_type": "pixel_area", "aspect_bucket_alignment": 16, **extra}


def factory(entries: Sequence[dict[str, Any]], tmp_path: Path, *, plugins: Sequence[Any] = (),
            opts: dict[str, Any] | None = None, **kw: Any) -> DataBackendFactory:
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local, *plugins])
    kw.setdefault("text_encoder", ReferenceTextEncoder(width=16, seq_len=8))
    kw.setdefault("image_encoder", ReferenceVAE())
    return DataBackendFactory(list(entries), plugin_manager=pm,
                              options=opts or options(tmp_path), **kw)


def ids(batches: Sequence[Any]) -> list[tuple[str, tuple[int, int], list[str]]]:
    return [(b.dataset_id, b.bucket, b.sample_ids) for b in batches]


def take(f: DataBackendFactory, n: int, **kw: Any) -> list[Any]:
    it = f.iterator(**kw)
    return [next(it) for _ in range(n)]


def test_build_records_every_stage_and_serves_batches(
        dataset_dirs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="databackend.metrics"):
        f = factory(config(dataset_dirs, tmp_path), tmp_path, max_epochs=1).build()
    assert [s.name for s in f.metrics.stages] == STAGES
    assert all(s.seconds >= 0 and s.peak_rss >= s.rss > 0 for s in f.metrics.stages)
    assert "stage samplers" in caplog.text
    batches = list(f.iterator())
    f.close()
    assert len(batches) == sum(f.runtime.batches_per_epoch.values())
    for b in batches:
        w, h = b.bucket
        assert b.latents.shape[1:] == (4, h // 8, w // 8)
        assert b.latents.shape[0] == (2 if b.dataset_id == "a" else 1)
        assert b.text_embeds["prompt_embeds"].shape[1:] == (8, 16)
        assert b.target_sizes.tolist() == [[w, h]] * len(b)
        assert all(s.startswith(f"{b.dataset_id}:") for s in b.sample_ids)
    summary = f.summary()
    assert {d["id"]: d["draws"] for d in summary["datasets"]} == f.runtime.batches_per_epoch
    assert summary["fetch"]["batches"] == len(batches)
    assert {r["kind"] for r in summary["precompute"]} == {"latents", "text"}


def test_two_factories_in_one_process_do_not_interfere(dataset_dirs: Path,
                                                       tmp_path: Path) -> None:
    def make(seed: int, out: str) -> DataBackendFactory:
        return factory(config(dataset_dirs, tmp_path), tmp_path,
                       opts=options(tmp_path / out, seed=seed)).build()

    alone_1, alone_2 = ids(take(make(1, "x"), 12)), ids(take(make(2, "y"), 12))
    f1, f2 = make(1, "x"), make(2, "y")
    it1, it2 = f1.iterator(), f2.iterator()
    mixed_1, mixed_2 = [], []
    for _ in range(12):
        mixed_1.append(next(it1))
        mixed_2.append(next(it2))
    f1.close()
    f2.close()
    assert ids(mixed_1) == alone_1 and ids(mixed_2) == alone_2
    assert alone_1 != alone_2
    assert f1.metrics is not f2.metrics and f1.registry is not f2.registry


def test_resume_through_the_prefetcher(dataset_dirs: Path, tmp_path: Path) -> None:
    entries = config(dataset_dirs, tmp_path, repeats=1)
    full = ids(take(factory(entries, tmp_path).build(), 30))
    first = factory(entries, tmp_path).build()
    head = take(first, 11, queue_size=4)
    state = first.state_dict()
    first.close()
    second = factory(entries, tmp_path).build()
    second.load_state_dict(state)
    assert ids(head) + ids(take(second, 19)) == full
    # and the same factory continues where its consumer stopped, not where the thread was
    again = factory(entries, tmp_path).build()
    take(again, 11, queue_size=8)
    assert ids(take(again, 19, prefetch=False)) == full[11:]


class OnlyB(SamplingStrategy):
    """A third-party strategy: everything from dataset ``b``."""

    name = "only-b"

    def weights(self, datasets: Sequence[DatasetView], epoch: int, step: int) -> list[float]:
        return [1.0 if d.id == "b" else 0.0 for d in datasets]


class OnlyBPlugin:
    """A plugin object registering :class:`OnlyB`."""

    @hookimpl
    def databackend_register_strategies(self) -> list[type[SamplingStrategy]]:
        return [OnlyB]


def test_plugin_strategy_is_selectable_by_name(dataset_dirs: Path, tmp_path: Path) -> None:
    f = factory(config(dataset_dirs, tmp_path), tmp_path, plugins=[OnlyBPlugin()],
                opts=options(tmp_path, sampling="only-b"), max_epochs=1).build()
    assert f.runtime.selector.strategy.name == "only-b"
    assert {b.dataset_id for b in f.iterator()} == {"b"}
    f.close()


def test_strategy_keyword_and_unknown_name(dataset_dirs: Path, tmp_path: Path) -> None:
    f = factory(config(dataset_dirs, tmp_path), tmp_path, sampling_strategy="uniform").build()
    assert f.runtime.selector.strategy.name == "uniform"
    from databackend.errors import UnknownBackendError

    with pytest.raises(UnknownBackendError, match="installed: auto-weighting, uniform"):
        factory(config(dataset_dirs, tmp_path), tmp_path, sampling_strategy="nope").build()


def test_read_only_caches_hit_without_encoders(dataset_dirs: Path, tmp_path: Path) -> None:
    te, vae = ReferenceTextEncoder(width=16, seq_len=8), ReferenceVAE()
    entries = config(dataset_dirs, tmp_path)
    factory(entries, tmp_path, text_encoder=te, image_encoder=vae).build()
    ro = factory(entries, tmp_path, text_encoder=te.identity,
                 image_encoder=vae.identity).build()
    take(ro, 6, prefetch=False)
    stats = ro.cache_stats()
    assert sum(s["hits"] for s in stats.values()) > 0
    assert sum(s["misses"] + s["encoded"] for s in stats.values()) == 0


def test_missing_encoders_are_explained(dataset_dirs: Path, tmp_path: Path) -> None:
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local])
    f = DataBackendFactory(config(dataset_dirs, tmp_path), plugin_manager=pm,
                           options=options(tmp_path))
    with pytest.raises(ValueError, match="use_reference_encoders=True"):
        f.build()


def test_reference_encoders_on_request_and_torch_dataset(dataset_dirs: Path,
                                                         tmp_path: Path) -> None:
    import torch

    f = factory(config(dataset_dirs, tmp_path), tmp_path, text_encoder=None,
                image_encoder=None, use_reference_encoders=True, seed=3)
    assert isinstance(f.text_encoder, ReferenceTextEncoder) and f.options.seed == 3
    loader = torch.utils.data.DataLoader(f.build().torch_dataset(), batch_size=None)
    first = next(iter(loader))
    f.close()
    assert first.latents.ndim == 4


def test_no_batch_at_all_is_a_config_error(dataset_dirs: Path, tmp_path: Path) -> None:
    from databackend.errors import ConfigError

    entries = [e for e in config(dataset_dirs, tmp_path) if e["id"] != "b"]
    entries[-1].update(train_batch_size=64, short_bucket_policy="drop")
    with pytest.raises(ConfigError, match="no dataset yields a batch"):
        factory(entries, tmp_path).build()


def test_image_cut_short_after_its_header_is_left_out_not_fatal(
        dataset_dirs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A JPEG truncated in its image data (a half-finished download) passes the header scan;
    the latent precompute cannot decode it, so it is named, counted and left out of training,
    and a whole epoch iterates without touching it, now and on the next build."""
    victim = dataset_dirs / "b" / "sub" / "pic_03.jpg"
    data = victim.read_bytes()
    victim.write_bytes(data[:len(data) // 2])
    entries = config(dataset_dirs, tmp_path)
    for _attempt in range(2):
        with caplog.at_level(logging.WARNING, logger="databackend.factory"):
            f = factory(entries, tmp_path, max_epochs=1).build()
        assert f.metadata["b"].report.counts["kept"] == 8  # the header scan cannot tell
        assert f.excluded == {"b": ["sub/pic_03.jpg"]}
        assert "left out of training" in caplog.text and "sub/pic_03.jpg" in caplog.text
        batches = list(f.iterator())
        f.close()
        assert batches and all("b:sub/pic_03.jpg" not in b.sample_ids for b in batches)
        assert sum(len(b) for b in batches if b.dataset_id == "b") >= 7
        assert f.summary()["excluded"] == {"b": ["sub/pic_03.jpg"]}
        caplog.clear()


def test_multiline_caption_file_gives_one_caption_per_step(
        make_images: Callable[..., Path], tmp_path: Path) -> None:
    """A three-line caption file: each step uses one line (SimpleTuner's behaviour), chosen as a
    pure function of seed, epoch and step, so two factories agree and every line gets used."""
    root = make_images([(f"c/img_{n}.jpg", 128, 128) for n in range(2)])
    (root / "c" / "img_0.txt").write_text("a red fox\na fox in snow\nfox, photo\n")
    (root / "c" / "img_1.txt").write_text("a single caption\n")
    entries = [e for e in config(root, tmp_path) if e["id"] in ("text", "vae")]
    entries.append({"id": "c", "type": "local", "instance_data_dir": str(root / "c"),
                    "image_embeds": "vae", "caption_strategy": "textfile",
                    "train_batch_size": 2, "repeats": 0})
    runs = []
    for _ in range(2):
        f = factory(entries, tmp_path, max_epochs=30).build()
        runs.append([dict(zip(b.sample_ids, b.captions, strict=True)) for b in f.iterator()])
        f.close()
    assert runs[0] == runs[1] and len(runs[0]) == 30
    fox = [step["c:img_0.jpg"] for step in runs[0]]
    assert set(fox) == {"a red fox", "a fox in snow", "fox, photo"}
    assert {step["c:img_1.jpg"] for step in runs[0]} == {"a single caption"}
