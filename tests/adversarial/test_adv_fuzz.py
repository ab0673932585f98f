"""Fuzzing config documents (hypothesis): ``validate`` answers every document with a plan or a
ConfigError (never another exception), and every accepted document builds and yields batches
within a time and memory bound, or fails with a clear databackend error."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from advhelpers import dataset, image_folder, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import databackend_local
from databackend.config.loader import load_config, parse_json_text
from databackend.errors import ConfigError, DatabackendError
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry

KEYS = ["id", "type", "dataset_type", "resolution", "resolution_type", "repeats",
        "probability", "train_batch_size", "crop", "crop_style", "crop_aspect",
        "crop_aspect_buckets", "minimum_image_size", "maximum_image_size",
        "target_downsample_size", "aspect_bucket_alignment", "aspect_bucket_rounding",
        "minimum_aspect_ratio", "maximum_aspect_ratio", "caption_strategy", "instance_prompt",
        "start_epoch", "end_epoch", "max_num_samples", "disabled", "hash_filenames",
        "skip_file_discovery", "conditioning_data", "instance_data_dir", "no_such_key"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3000), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([
        "", ".", "..", "../x", "/abs", "a\x00b", "image", "pixel", "area", "pixel_area",
        "square", "closest", "center", "filename", "instanceprompt", "vae", "local", "{id}",
        "{env:NOPE_NOT_SET}", "\udcff", "ds"]),
    st.text(max_size=8))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.text(max_size=4), SCALARS, max_size=2))
PLAUSIBLE = {
    "resolution": st.sampled_from([16, 32, 48, 64, 0.05]), "repeats": st.integers(0, 3),
    "probability": st.floats(0, 2), "train_batch_size": st.integers(1, 4),
    "crop": st.booleans(), "crop_style": st.sampled_from(["random", "center", "corner"]),
    "resolution_type": st.sampled_from(["pixel", "area", "pixel_area"]),
    "aspect_bucket_alignment": st.sampled_from([8, 16, 32]),
    "minimum_image_size": st.sampled_from([0, 16, 40, 64]), "max_num_samples": st.integers(1, 4),
    "hash_filenames": st.booleans(), "caption_strategy": st.sampled_from(["filename",
                                                                          "instanceprompt"]),
    "instance_prompt": st.sampled_from(["a photo", ""]), "start_epoch": st.integers(1, 2)}
#: Half hostile changes (any key, any value), half plausible ones that often pass validate, so
#: the bounded run is reached too.
CHANGES = st.one_of(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4),
                    st.fixed_dictionaries({}, optional=PLAUSIBLE))
BOUND_S = 60.0
MEMORY_GROWTH = 1 << 30


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    image_folder(root / "images", 3, size=48)
    return root


def _registry() -> PluginRegistry:
    return PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                      extra=[databackend_local]))


def _bounded_run(entries: list[Any], out: Path) -> None:
    """Build a factory and take a few batches in a thread; it must end within BOUND_S."""
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.factory import DataBackendFactory

    failure: list[BaseException] = []

    def work() -> None:
        try:
            factory = DataBackendFactory(
                entries, options={"output_dir": str(out)}, max_epochs=1, queue_size=0,
                plugin_manager=make_plugin_manager(entrypoints=False, extra=[databackend_local]),
                text_encoder=ReferenceTextEncoder(width=8, seq_len=4),
                image_encoder=ReferenceVAE()).build()
            for n, _ in enumerate(factory.iterator(prefetch=False)):
                if n >= 3:
                    break
            factory.close()
        except DatabackendError:
            pass  # a clear error is an accepted outcome
        except BaseException as exc:
            failure.append(exc)

    before = psutil.Process().memory_info().rss
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive(), f"run did not finish within {BOUND_S}s: {entries!r}"
    assert not failure, f"{failure[0]!r} for {entries!r}"
    assert psutil.Process().memory_info().rss - before < MEMORY_GROWTH


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=CHANGES, extra=st.booleans())
def test_fuzzed_configs_validate_or_fail_clearly(fuzz_root: Path, changes: dict[str, Any],
                                                 extra: bool) -> None:
    images = fuzz_root / "images"
    before = snapshot(images)
    entries: list[Any] = [{**dataset(images), **changes}]
    if extra:
        entries.append({"id": "text", "type": "local", "dataset_type": "text_embeds",
                        "cache_dir": str(fuzz_root / "text")})
    try:
        plan = load_config(entries, _registry(), FactoryOptions(output_dir=str(fuzz_root)))
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    for d in plan.datasets:
        assert all(math.isfinite(v) for v in (d.probability, d.resolution or 1.0))
    _bounded_run(entries, fuzz_root / "out")
    assert snapshot(images) == before


@settings(max_examples=60, deadline=None, derandomize=True)
@given(text=st.one_of(st.text(max_size=60), st.binary(max_size=60).map(
    lambda b: b.decode("latin-1")), st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)))
def test_fuzzed_json_text_parses_or_fails_clearly(text: str) -> None:
    try:
        parse_json_text(text, "fuzz.json")
    except ConfigError as exc:
        assert exc.problems and "fuzz.json" in str(exc)
