"""Shared fixtures: a plugin registry with only the plugins under test, and image writers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from imagefiles import write_image

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
