"""Video datasets for tests (a module of its own: ``conftest`` names clash across folders)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.media.synthetic import write_video
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry

#: (relative path, width, height, frames, fps, rotation)
Clip = tuple[str, int, int, int, int, int]
OPTIONS = {"resolution": 64, "resolution_type": "pixel", "aspect_bucket_alignment": 16}


def write_clips(root: Path, clips: Iterable[Clip]) -> Path:
    """Write the clips under ``root``."""
    for k, (rel, w, h, n, fps, rot) in enumerate(clips):
        write_video(root / rel, w, h, n, fps=fps, rotation=rot, seed=k)
    root.mkdir(parents=True, exist_ok=True)
    return root


def video_entry(root: Path, dataset_id: str = "clips", **video: Any) -> dict[str, Any]:
    """A local video dataset entry with a ``video`` block."""
    return {"id": dataset_id, "type": "local", "dataset_type": "video",
            "instance_data_dir": str(root), "video": video}


def scan_entry(entry: dict[str, Any], registry: PluginRegistry, out: Path, **options: Any
               ) -> Any:
    """Build the entry's metadata backend and scan it; returns the backend."""
    opts = FactoryOptions(output_dir=str(out), **{**OPTIONS, **options})
    plan = load_config([entry], registry, opts)
    context = BuildContext(options=opts, registry=registry)
    dataset = plan.datasets[0]
    meta = build_metadata(dataset, build_storage(dataset, context), context)
    meta.scan(progress=False)
    return meta
