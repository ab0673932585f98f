"""Header probes on S3 start small (``probe_first_read``) and grow only on demand."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from e2e_support import aws_keys

import databackend_aws
from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_aws import S3Backend


def _jpeg(width: int, height: int, exif_bytes: int) -> bytes:
    from PIL import Image

    img = Image.effect_noise((width, height), 60).convert("RGB")
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "x" * exif_bytes  # ImageDescription: pushes the frame header back
    img.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def test_first_read_is_small_and_grows_for_a_long_header(
        make_backend: Callable[..., S3Backend], bucket: str, s3_endpoint: str,
        tmp_path: Path) -> None:
    backend = make_backend()
    backend.write("p/plain.jpg", _jpeg(640, 480, 0))
    backend.write("p/long.jpg", _jpeg(320, 200, 20_000))  # SOF after ~20 KB of EXIF
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_aws]))
    options = FactoryOptions(output_dir=str(tmp_path / "out"))
    plan = load_config([{"id": "p", **aws_keys(bucket, s3_endpoint), "aws_data_prefix": "p"}],
                       registry, options)
    context = BuildContext(options=options, registry=registry)
    storage = build_storage(plan.datasets[0], context)
    meta = build_metadata(plan.datasets[0], storage, context)
    meta.scan(progress=False)
    sizes = {p: tuple(meta.index.original[i]) for i, p in enumerate(meta.index.paths)}
    assert sizes == {"long.jpg": (320, 200), "plain.jpg": (640, 480)}
    stats = storage.metrics.snapshot()
    assert stats["requests.GetObject"] == 3  # one each, plus one more for the long header
    assert stats["bytes_read"] < 8192 + 2 * 20_000  # never the 64 KiB of the old first read
    storage.close()
