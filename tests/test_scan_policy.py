"""``rescan: always | changed | never``: what a restart re-reads, and what it notices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from imagefiles import write_image
from test_metadata_support import make_meta

from databackend.errors import ConfigError
from databackend.registry import PluginRegistry

SPECS = [("a/wide.jpg", 640, 320), ("a/tall.png", 300, 600), ("b/square.jpg", 400, 400)]


def _sizes(meta: object) -> dict[str, tuple[int, int]]:
    idx = meta.index  # type: ignore[attr-defined]
    return {p: (int(idx.original[i, 0]), int(idx.original[i, 1]))
            for i, p in enumerate(idx.paths)}


@pytest.mark.parametrize("policy", ["always", "changed", "never"])
def test_what_each_policy_notices_after_a_restart(
        registry: PluginRegistry, tmp_path: Path, make_images: Callable[..., Path],
        policy: str) -> None:
    root = make_images(SPECS)
    make_meta(registry, tmp_path / "out", root).scan(progress=False)
    write_image(root / "c/new.jpg", 500, 500, seed=9)  # added
    (root / "a/tall.png").unlink()  # removed
    write_image(root / "b/square.jpg", 420, 280, seed=3)  # rewritten in place
    meta = make_meta(registry, tmp_path / "out", root, rescan=policy)
    report = meta.scan(progress=False)
    sizes = _sizes(meta)
    if policy == "never":  # the stored index is trusted: nothing listed or read
        assert report.source == "persisted"
        assert sizes == {"a/tall.png": (300, 600), "a/wide.jpg": (640, 320),
                         "b/square.jpg": (400, 400)}
        return
    assert sizes["c/new.jpg"] == (500, 500) and "a/tall.png" not in sizes
    # changed: names are listed without a stat, so an in-place rewrite keeps its stored row
    assert sizes["b/square.jpg"] == ((400, 400) if policy == "changed" else (420, 280))
    assert report.counts["probed"] == (1 if policy == "changed" else 2)


def test_never_rederives_from_the_stored_listing_when_settings_change(
        registry: PluginRegistry, tmp_path: Path, make_images: Callable[..., Path]) -> None:
    root = make_images(SPECS)
    make_meta(registry, tmp_path / "out", root, resolution=256,
              resolution_type="pixel").scan(progress=False)
    write_image(root / "c/new.jpg", 500, 500, seed=9)
    meta = make_meta(registry, tmp_path / "out", root, resolution=128, resolution_type="pixel",
                     rescan="never")
    report = meta.scan(progress=False)
    assert report.counts["probed"] == 0 and "c/new.jpg" not in _sizes(meta)
    assert max(int(t) for t in meta.index.target.ravel()) <= 256  # placed again at 128


def test_an_unknown_policy_is_a_config_error(registry: PluginRegistry, tmp_path: Path,
                                             make_images: Callable[..., Path]) -> None:
    root = make_images(SPECS[:1])
    with pytest.raises(ConfigError, match=r"rescan.*always, changed, never"):
        make_meta(registry, tmp_path / "out", root, rescan="sometimes")
