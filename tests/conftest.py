"""Shared fixtures: a plugin registry with only the plugins under test, and image writers."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

import databackend_local
from databackend.context import BuildContext
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry

ImageSpec = tuple[str, int, int]  # (relative path, width, height); format from the suffix


@pytest.fixture
def registry() -> PluginRegistry:
    """Built-ins plus the local plugin; never the user's installed entry points."""
    return PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                      extra=[databackend_local]))


@pytest.fixture
def make_context(registry: PluginRegistry, tmp_path: Path) -> Callable[..., BuildContext]:
    """``make_context(**options)``: a BuildContext whose output_dir is inside tmp_path."""
    def make(**options: object) -> BuildContext:
        options.setdefault("output_dir", str(tmp_path / "out"))
        return BuildContext(options=FactoryOptions(**options), registry=registry)  # type: ignore[arg-type]
    return make


def write_image(path: Path, width: int, height: int, *, seed: int = 0,
                exif_orientation: int | None = None) -> Path:
    """Write a small noisy RGB image; the format comes from the suffix."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), 90))
    kwargs: dict[str, object] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    img.save(path, **kwargs)
    return path


@pytest.fixture
def make_images(tmp_path: Path) -> Callable[[Iterable[ImageSpec]], Path]:
    """``make_images([("a/x.jpg", 640, 480), ...])`` -> the dataset root folder."""
    root = tmp_path / "images"

    def make(specs: Iterable[ImageSpec]) -> Path:
        for i, (rel, w, h) in enumerate(specs):
            write_image(root / rel, w, h, seed=i)
        root.mkdir(parents=True, exist_ok=True)
        return root
    return make
