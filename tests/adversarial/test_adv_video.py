"""Hostile video containers: truncated files, boxes declaring huge sizes and billions of
frames, a zero time scale, absurd display matrices. The probe never raises (a clean result or a
counted skip reason), finishes, and a declared frame count never sizes a decode window beyond
``MAX_WINDOW_FRAMES``; the dataset folder is unchanged."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from advhelpers import snapshot

from databackend.media.defaults import DEFAULT_PROBES
from databackend.media.probing import probe_one
from databackend.media.spec import VideoSpec
from databackend.media.synthetic import write_video
from databackend.media.videoconfig import MAX_WINDOW_FRAMES, VideoSettings
from databackend.storage.localdir import LocalDirectory

pytest.importorskip("av")


def _patch(data: bytes, box: bytes, offset: int, fmt: str, *values: int) -> bytes:
    at = data.index(box, data.index(b"moov")) + 4 + offset  # the payload follows the type
    out = bytearray(data)
    struct.pack_into(fmt, out, at, *values)
    return bytes(out)


MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated-head": lambda d: d[:40],
    "truncated-moov": lambda d: d[:d.index(b"moov") + 60],
    "cut-in-half": lambda d: d[:len(d) // 2],
    "billions-of-frames": lambda d: _patch(d, b"stsz", 8, ">I", 2**32 - 1),
    "zero-timescale": lambda d: _patch(d, b"mdhd", 12, ">I", 0),
    "absurd-rotation": lambda d: _patch(d, b"tkhd", 40, ">5i", 2**31 - 1, -(2**31), 0, 7, 3),
    "huge-top-box": lambda d: struct.pack(">I4sQ", 1, b"free", 2**63) + d,
    "zero-size-box": lambda d: d[:8] + struct.pack(">I4s", 0, b"moov") + d[8:],
    "huge-stts": lambda d: _patch(d, b"stts", 4, ">I", 2**32 - 1),
    "huge-dimensions": lambda d: _patch(d, b"avc1", 24, ">HH", 65535, 65535),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "c.mp4"
    return Path(write_video(path, 32, 24, 6, fps=6, gop=3)).read_bytes()


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_hostile_containers_probe_to_a_result_or_a_reason(tmp_path: Path, clip: bytes,
                                                          name: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / f"{name}.mp4").write_bytes(MUTATIONS[name](clip))
    before = snapshot(tmp_path)
    store = LocalDirectory(root=str(root), dataset_id="ds")
    reason, info = probe_one(store, DEFAULT_PROBES, "video", f"{name}.mp4",
                             (root / f"{name}.mp4").stat().st_size)
    assert (reason == "") == (info is not None)
    assert reason in ("", "corrupt", "not_media", "unreadable"), reason
    if info is not None:
        assert info.width >= 1 and info.height >= 1 and info.frames >= 1
        assert info.rotation in (0, 90, 180, 270)
        for strategy in ("aspect_ratio", "resolution_frames"):
            spec = VideoSpec(VideoSettings(num_frames=None, min_frames=1,
                                           bucket_strategy=strategy))
            plan = spec.plan(info, name, 0)
            assert plan.window is None or plan.window.length <= MAX_WINDOW_FRAMES
    assert snapshot(tmp_path) == before


def test_a_declared_frame_count_never_sizes_a_huge_window(clip: bytes) -> None:
    from databackend.media.record import MediaInfo

    spec = VideoSpec(VideoSettings(num_frames=None, min_frames=1,
                                   bucket_strategy="resolution_frames"))
    huge = MediaInfo(kind="video", width=32, height=24, frames=2**32 - 1, fps=6.0)
    assert spec.plan(huge, "k", 0).reason == "too_many_frames"
    fine = MediaInfo(kind="video", width=32, height=24, frames=600, fps=6.0)
    plan = spec.plan(fine, "k", 0)
    assert plan.reason is None and plan.window is not None and plan.window.length == 600


def test_a_clip_above_max_image_pixels_is_refused_before_decoding(tmp_path: Path,
                                                                  clip: bytes) -> None:
    """A container declaring 65535x65535 frames: a counted, named failure of the cache fill
    (``max_image_pixels`` bounds each frame as it bounds images); the honest clip is cached."""
    from advhelpers import cli, write_config

    root = tmp_path / "clips"
    root.mkdir()
    (root / "ok.mp4").write_bytes(clip)
    (root / "huge.mp4").write_bytes(MUTATIONS["huge-dimensions"](clip))
    config = write_config(tmp_path / "c.json", [
        {"id": "clips", "type": "local", "dataset_type": "video", "instance_data_dir": str(root),
         "resolution": 16, "resolution_type": "pixel", "aspect_bucket_alignment": 8,
         "caption_strategy": "filename", "video": {"num_frames": 2}}])
    before = snapshot(root)
    code, out = cli("cache", str(config), "--option", f"output_dir={tmp_path / 'out'}",
                    "--option", "max_image_pixels=100000", "--no-progress")
    assert "huge.mp4" in out and "max_image_pixels" in out, out
    assert code == 1 and "Traceback" not in out and "1 failed" in out, out
    assert snapshot(root) == before
