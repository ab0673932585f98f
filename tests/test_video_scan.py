"""Video datasets: the `video` block, scans into frame buckets, stored windows, rescans."""

from __future__ import annotations

from pathlib import Path

import pytest
from videohelpers import OPTIONS, scan_entry, video_entry, write_clips

from databackend.config.loader import load_config
from databackend.errors import ConfigError
from databackend.media.backend import MediaMetadataBackend
from databackend.media.spec import frame_bucket
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry

pytest.importorskip("av")

CLIPS = [("a/wide.mp4", 96, 64, 20, 12, 0), ("a/tall.mp4", 64, 96, 30, 24, 0),
         ("b.mkv", 128, 72, 17, 10, 0), ("short.mp4", 96, 64, 4, 12, 0),
         ("rot.mp4", 96, 64, 25, 12, 90), ("long.mp4", 64, 64, 41, 12, 0)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_clips(tmp_path_factory.mktemp("video"), CLIPS)
    (root / "notes.mp4").write_text("not a video\n")
    data = (root / "a/wide.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 3])
    return root


def test_every_invalid_video_value_is_reported_at_once(registry: PluginRegistry) -> None:
    bad = {"num_frames": 0, "min_frames": "9", "max_frames": 2.5, "is_i2v": "yes",
           "bucket_strategy": "aspect", "frame_interval": 4, "window": "middle",
           "frame_stride": True, "num_frame": 3}
    entries = [video_entry(Path("/nowhere"), "v1", **bad),
               video_entry(Path("/nowhere"), "v2", num_frames=17, min_frames=9, max_frames=12),
               {**video_entry(Path("/nowhere"), "img"), "dataset_type": "image"}]
    with pytest.raises(ConfigError) as err:
        load_config(entries, registry, FactoryOptions(framerate=0))
    text = "\n".join(err.value.problems)
    for needle in ("video.num_frames", "video.min_frames` must be a whole", "video.max_frames",
                   "video.is_i2v", "video.bucket_strategy", "did you mean 'aspect_ratio'",
                   "video.window", "video.frame_stride", "`video.num_frame` is not a video key",
                   "frame_interval` applies only", "greater than or equal to `video.num_frames`",
                   "max_frames` (12) is below", "applies to dataset_type video", "framerate"):
        assert needle in text, needle


def test_reference_defaults_and_the_documented_resolution_frames_example(
        registry: PluginRegistry, root: Path) -> None:
    plan = load_config([video_entry(root), video_entry(root, "rf", min_frames=25, max_frames=250,
                                                       bucket_strategy="resolution_frames")],
                       registry, FactoryOptions(framerate=25))
    assert [d.video for d in plan.datasets] == [{}, {"min_frames": 25, "max_frames": 250,
                                                     "bucket_strategy": "resolution_frames"}]


def test_scan_buckets_windows_and_skips(registry: PluginRegistry, root: Path,
                                        tmp_path: Path) -> None:
    meta = scan_entry(video_entry(root, num_frames=9, frame_stride=2, window="random"),
                      registry, tmp_path)
    assert isinstance(meta, MediaMetadataBackend)
    idx, report = meta.index, meta.report
    assert report.skipped == {"not_media": 1, "corrupt": 1, "too_few_frames": 1}
    assert report.counted == 1  # the mkv has no frame count in its container
    sizes = {p: (idx.info(i).width, idx.info(i).height, idx.info(i).frames)
             for i, p in enumerate(idx.paths)}
    assert sizes["rot.mp4"] == (64, 96, 25) and sizes["b.mkv"] == (128, 72, 17)
    # 64 px short edge, 16 px alignment: hand-computed targets; aspect buckets are (W, H)
    assert {idx.paths[i]: idx.bucket_of(i) for i in range(len(idx))} == {
        "a/wide.mp4": (96, 64), "a/tall.mp4": (64, 96), "b.mkv": (112, 64),
        "rot.mp4": (64, 96), "long.mp4": (64, 64)}
    for i in range(len(idx)):
        w = idx.window(i)
        assert (w.length, w.stride) == (9, 2) and w.start >= 0 and w.stop <= idx.info(i).frames
    table = report.format_table()
    assert "too_few_frames: 1" in table and "64x96" in table and "clip frames" in table
    again = scan_entry(video_entry(root, num_frames=9, frame_stride=2, window="random"),
                       registry, tmp_path)
    assert again.report.counts["probed"] == 0
    assert [again.index.window(i) for i in range(len(idx))] == \
        [idx.window(i) for i in range(len(idx))]


def test_resolution_frames_keys(registry: PluginRegistry, root: Path, tmp_path: Path) -> None:
    meta = scan_entry(video_entry(root, bucket_strategy="resolution_frames", frame_interval=8,
                                  min_frames=5), registry, tmp_path)
    idx = meta.index
    keys = {idx.paths[i]: meta.spec.bucket_label(idx.bucket_of(i)) for i in range(len(idx))}
    assert keys == {"a/wide.mp4": "96x64@16", "a/tall.mp4": "64x96@24", "b.mkv": "112x64@16",
                    "rot.mp4": "64x96@24", "long.mp4": "64x64@40"}
    assert frame_bucket(7, 8) == 7 and frame_bucket(17, 8) == 16 and frame_bucket(5, None) == 5
    rows = {r.label: r for r in meta.bucket_rows()}
    assert rows["64x96@24"].count == 2 and rows["64x96@24"].window_frames == (24, 24)
    assert all(idx.window(i).length == idx.bucket_of(i)[2] for i in range(len(idx)))


def test_changed_settings_replan_without_reading(registry: PluginRegistry, root: Path,
                                                 tmp_path: Path) -> None:
    scan_entry(video_entry(root, num_frames=9), registry, tmp_path)
    meta = scan_entry(video_entry(root, num_frames=21, min_frames=21), registry, tmp_path)
    assert meta.report.counts["probed"] == 0
    assert sorted(meta.index.paths) == ["a/tall.mp4", "long.mp4", "rot.mp4"]
    assert meta.report.skipped["too_few_frames"] == 3


def test_ranged_storage_probes_the_same(registry: PluginRegistry, root: Path,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = scan_entry(video_entry(root, num_frames=9), registry, tmp_path / "l").index
    from databackend.storage.localdir import LocalDirectory

    monkeypatch.setattr(LocalDirectory, "local_path", lambda self, path: None)
    ranged = scan_entry(video_entry(root, num_frames=9), registry, tmp_path / "r")
    assert [ranged.index.info(i) for i in range(len(local))] == \
        [local.info(i) for i in range(len(local))]
    frames = ranged.load_frames(ranged.index.position("rot.mp4"))
    assert frames.shape == (9, 96, 64, 3)


def test_scan_command_prints_frame_buckets_and_reasons(root: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from databackend.cli import main

    config = tmp_path / "video.json"
    config.write_text(json.dumps([video_entry(root, bucket_strategy="resolution_frames",
                                              num_frames=9)]))
    args = ["scan", str(config), "--option", f"output_dir={tmp_path}", "--no-progress",
            *(x for k, v in OPTIONS.items() for x in ("--option", f"{k}={v}"))]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[video]" in out and "clip frames" in out and "64x96@9" in out
    assert "skipped too_few_frames: 1" in out and "skipped not_media: 1" in out
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["datasets"][0]
    rows = {b["bucket"]: b for b in data["buckets"]}
    assert rows["64x96@9"]["window_frames"] == [9, 9] and data["kind"] == "video"


def test_deletion_only_when_asked_and_missing_pyav(registry: PluginRegistry, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from databackend.errors import DatabackendError

    root = write_clips(tmp_path / "d", [("ok.mp4", 64, 64, 12, 12, 0), ("few.mp4", 64, 64, 3, 12, 0)])
    (root / "text.mp4").write_text("no video here")
    meta = scan_entry({**video_entry(root, num_frames=9), "delete_problematic_images": True},
                      registry, tmp_path / "o1")
    assert meta.report.deleted == {"not_media": 1} and not (root / "text.mp4").exists()
    assert (root / "few.mp4").exists() and meta.report.skipped == {"too_few_frames": 1}
    write_clips(root, [("m.mkv", 64, 64, 12, 12, 0)])
    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed: the mkv needs it
    with pytest.raises(DatabackendError, match="need PyAV"):
        scan_entry(video_entry(root, num_frames=9), registry, tmp_path / "o2")
