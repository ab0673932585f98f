"""Video datasets on S3: the same decode-free probe through ranged reads, window-only
decoding for the latent cache, and video batches, all against a real S3 API (moto)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import aws_keys, factory

from databackend.media.defaults import DEFAULT_PROBES
from databackend.media.encoders import ReferenceVideoVAE
from databackend.media.probe import probe_local
from databackend.media.synthetic import write_video
from databackend_aws import S3Backend

pytest.importorskip("av")
CLIPS = (("a.mp4", 160, 112, 40, 12, 0, 80), ("b.mp4", 112, 160, 40, 24, 90, 80),
         ("c.mkv", 64, 64, 14, 10, 0, 0), ("d.mp4", 96, 64, 4, 12, 0, 0))


def test_video_dataset_on_s3(make_backend: Callable[..., S3Backend], bucket: str,
                             s3_endpoint: str, tmp_path: Path) -> None:
    local = tmp_path / "clips"
    for k, (name, w, h, n, fps, rot, noise) in enumerate(CLIPS):
        write_video(local / name, w, h, n, fps=fps, rotation=rot, seed=k, noise=noise)
    (local / "e.mp4").write_text("not a video")
    uploader = make_backend(dataset_id="uploader")
    uploader.write_many([(f"clips/{p.name}", p.read_bytes()) for p in sorted(local.iterdir())])
    entry: dict[str, Any] = {"id": "clips", "dataset_type": "video",
                             **aws_keys(bucket, s3_endpoint), "aws_data_prefix": "clips",
                             "video": {"num_frames": 9, "window": "random", "is_i2v": True}}
    scan_only = factory([entry], tmp_path / "out", media_encoders={"video": "unused"},
                        precompute=False).build()
    meta = scan_only.metadata["clips"]
    assert isinstance(meta.storage, S3Backend)
    assert meta.report.skipped == {"not_media": 1, "too_few_frames": 1}
    idx = meta.index
    for i, path in enumerate(idx.paths):
        assert idx.info(i) == DEFAULT_PROBES.probe("video", probe_local(str(local / path)))
    size = {p.name: p.stat().st_size for p in local.iterdir()}
    scan_read = meta.storage.metrics.snapshot()["bytes_read"]
    # ranged reads: headers and indexes of the MP4s; the MKV has no frame count (read whole)
    assert scan_read < (size["a.mp4"] + size["b.mp4"]) / 2 + size["c.mkv"] + size["d.mp4"] + 99
    f = factory([entry], tmp_path / "out", media_encoders={"video": ReferenceVideoVAE(4)},
                max_epochs=1).build()
    batches = [b for b in f.iterator(prefetch=False)]
    # b.mp4 is stored portrait and displayed landscape: it shares a.mp4's bucket
    assert {b.bucket for b in batches} == {(80, 48), (64, 64)}
    assert {b.latents.ndim for b in batches} == {5} and len(batches) == 2
    assert all(b.video is not None and b.video.first_frame_latents is not None for b in batches)
    assert sum(r.report.encoded for r in f.cache_runs if r.kind == "latents") == 6
