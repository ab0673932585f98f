"""Video latent caches and batches: window-only decoding, cached latents equal a fresh encode
of the same frames, i2v first frames, [B, C, F', h, w] batches, mixed image/video configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from videohelpers import OPTIONS, video_entry, write_clips

from databackend.factory import DataBackendFactory
from databackend.media.cache import clip_pixels
from databackend.media.encoders import ReferenceVideoVAE

av = pytest.importorskip("av")
torch = pytest.importorskip("torch")

CLIPS = [("w0.mp4", 96, 64, 40, 12, 0), ("w1.mp4", 96, 64, 33, 24, 0),
         ("t0.mp4", 64, 96, 36, 12, 90), ("t1.mkv", 64, 96, 45, 10, 0)]
VAE = ReferenceVideoVAE(channels=4, temporal=4, dtype="float32")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_clips(tmp_path_factory.mktemp("vc") / "clips", CLIPS)
    from PIL import Image

    (root.parent / "images").mkdir()
    for k in range(3):
        Image.new("RGB", (80, 64), (40 * k, 90, 0)).save(root.parent / "images" / f"i{k}.png")
    return root


def factory(entries: list[dict[str, Any]], out: Path, **kw: Any) -> DataBackendFactory:
    return DataBackendFactory(entries, use_reference_encoders=True,
                              media_encoders={"video": VAE},
                              options={**OPTIONS, "output_dir": str(out)}, max_epochs=1,
                              seed=5, **kw).build()


def full_decode_window(path: Path, start: int, length: int, stride: int) -> np.ndarray:
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    rot = frames[0].rotation
    picked = [np.rot90(f.to_ndarray(format="rgb24"), k=(rot // 90) % 4)
              for f in frames[start:start + (length - 1) * stride + 1:stride]]
    return np.stack(picked)


def test_cached_latents_equal_a_fresh_encode(root: Path, tmp_path: Path) -> None:
    entry = video_entry(root, num_frames=9, frame_stride=2, window="random", is_i2v=True)
    f = factory([entry], tmp_path)
    meta, cache = f.metadata["clips"], f.latent_caches["clips"]
    idx = meta.index
    for i in range(len(idx)):
        w = idx.window(i)
        frames = full_decode_window(root / idx.paths[i], w.start, w.length, w.stride)
        assert np.array_equal(meta.load_frames(i), frames)
        fresh = VAE(clip_pixels(frames, idx.geometry(i))[None])[0]
        assert torch.equal(cache.tensors([i])[0], fresh)
        first = VAE(clip_pixels(frames[:1], idx.geometry(i))[None])[0]
        assert torch.equal(f.first_frame_caches["clips"].tensors([i])[0], first)
    # window-only decoding: a window at the end decodes from the keyframe before it only
    from databackend.media.decode import DecodeStats
    from databackend.media.windows import Window

    meta.decode_stats = stats = DecodeStats()
    total = idx.info(0).frames
    assert meta.load_frames(0, Window(total - 3, 3)).shape[0] == 3
    assert stats.returned == 3 and stats.decoded <= 3 + 12 < total  # GOP 12
    again = factory([entry], tmp_path)
    assert all(r.report.encoded == 0 for r in again.cache_runs if r.kind == "latents")


def test_batches_and_mixed_configs(root: Path, tmp_path: Path) -> None:
    entries = [{**video_entry(root, num_frames=5, is_i2v=True), "train_batch_size": 2},
               {"id": "pics", "type": "local", "instance_data_dir": str(root.parent / "images"),
                "train_batch_size": 2}]
    f = factory(entries, tmp_path)
    seen = set()
    for batch in f.iterator(prefetch=False):
        seen.add(batch.dataset_id)
        if batch.dataset_id == "pics":
            assert batch.video is None and batch.latents.ndim == 4
            continue
        v = batch.video
        assert v is not None and batch.latents.shape[:3] == (2, 4, 2)  # F' = 1 + ceil(4/4)
        assert v.frames.tolist() == [5, 5] and v.window[:, 1].tolist() == [5, 5]
        assert v.is_i2v and v.first_frame_latents is not None
        assert v.first_frame_latents.shape == (2, 4, 1, *batch.latents.shape[3:])
        assert set(v.fps.tolist()) <= {12.0, 24.0, 10.0}
        moved = batch.to("cpu")
        assert moved.video is not None and torch.equal(moved.video.window, v.window)
    assert seen == {"clips", "pics"}


def test_resolution_frames_batches_have_their_frame_bucket(root: Path, tmp_path: Path) -> None:
    entry = {**video_entry(root, bucket_strategy="resolution_frames", frame_interval=16,
                           min_frames=9), "train_batch_size": 1}
    f = factory([entry], tmp_path)
    shapes = {}
    for batch in f.iterator(prefetch=False):
        assert batch.video is not None and len(batch.bucket) == 3
        shapes[batch.bucket] = (batch.latents.shape[2], int(batch.video.frames[0]))
    assert shapes == {(96, 64, 32): (9, 32), (64, 96, 32): (9, 32)}
