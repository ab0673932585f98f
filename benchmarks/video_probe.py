"""Benchmark video probing and window-only decoding against bare PyAV loops.

Usage::

    python benchmarks/video_probe.py                    # 300 clips in a temporary folder
    python benchmarks/video_probe.py --n 1000 --dir /tmp/vbench --repeat 5

Prints, measured in the same run (best of ``--repeat`` runs each, contenders alternating):

* the cold scan rate of a video dataset (``MediaMetadataBackend.scan``: probe, rotation, frame
  buckets, windows, captions, index written) against a bare single-process loop that opens
  each file with PyAV and reads its first video stream's metadata; their ratio (target >= 1.0);
* the video cache fill's decoding: time per window frame of ``decode_window`` (seek to the
  keyframe before the window, decode to its end) against decoding each whole file, and the
  ratio of the two totals next to the share of frames the windows hold (window-only decoding
  must cost about that share, plus at most one GOP per clip: target ratio <= that bound).

Clips: H.264 MP4 (some rotated) and a few Matroska files (no frame count in the container:
the counted path), a handful of distinct shapes encoded once and copied.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHAPES = ((320, 192, 0), (192, 320, 0), (256, 256, 0), (384, 216, 90), (288, 224, 0))
FRAMES, FPS, GOP, WINDOW = 96, 24, 12, 16


def make_clips(root: Path, n: int) -> list[Path]:
    """``n`` clips (one encode per shape and container, then copies)."""
    from databackend.media.synthetic import write_video

    masters = []
    for k, (w, h, rot) in enumerate(SHAPES):
        masters.append(Path(write_video(root / "masters" / f"m{k}.mp4", w, h, FRAMES, fps=FPS,
                                        rotation=rot, gop=GOP, seed=k, noise=40)))
    masters.append(Path(write_video(root / "masters" / "m9.mkv", 128, 96, FRAMES, fps=FPS,
                                    gop=GOP, seed=9, noise=40)))
    data = root / "clips"
    data.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = masters[i % (len(masters) - 1)] if i % 25 else masters[-1]  # 4% Matroska
        dst = data / f"clip_{i:05d}{src.suffix}"
        if not dst.exists():
            shutil.copyfile(src, dst)
        out.append(dst)
    return out


def bare_probe(files: list[Path]) -> float:
    """Seconds for the bare loop: open with PyAV, read the stream metadata, close."""
    import av

    start = time.perf_counter()
    for path in files:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            _ = (s.width, s.height, s.frames, s.average_rate, s.duration, c.duration)
    return time.perf_counter() - start


def scan_once(root: Path, out: Path) -> tuple[float, Any]:
    """Seconds of a cold scan of the clips folder (a fresh index folder each time)."""
    import databackend_local
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import load_config
    from databackend.context import BuildContext
    from databackend.options import FactoryOptions
    from databackend.plugins import make_plugin_manager
    from databackend.registry import PluginRegistry

    shutil.rmtree(out, ignore_errors=True)
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_local]))
    opts = FactoryOptions(output_dir=str(out), resolution=128, resolution_type="pixel")
    entry = {"id": "bench", "type": "local", "dataset_type": "video",
             "instance_data_dir": str(root / "clips"),
             "video": {"num_frames": WINDOW, "window": "random", "frame_stride": 1}}
    plan = load_config([entry], registry, opts)
    context = BuildContext(options=opts, registry=registry)
    dataset = plan.datasets[0]
    meta = build_metadata(dataset, build_storage(dataset, context), context)
    start = time.perf_counter()
    meta.scan(progress=False)
    return time.perf_counter() - start, meta


def _window_seconds(meta: Any, rows: list[int], stats: Any) -> float:
    from databackend.media.decode import decode_window

    idx = meta.index
    start = time.perf_counter()
    for i in rows:
        decode_window(meta.storage.local_path(idx.paths[i]), idx.window(i),
                      fps=idx.info(i).fps, stats=stats)
    return time.perf_counter() - start


def _full_seconds(meta: Any, rows: list[int]) -> tuple[float, int]:
    import av

    idx = meta.index
    start, total = time.perf_counter(), 0
    for i in rows:
        with av.open(meta.storage.local_path(idx.paths[i])) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"  # the decoder settings decode_window uses
            for frame in c.decode(stream):
                frame.to_ndarray(format="rgb24")
                total += 1
    return time.perf_counter() - start, total


def decode_compare(meta: Any, limit: int, repeat: int) -> dict[str, float]:
    """Window-only decoding of the first ``limit`` samples against whole-file decoding, best
    of ``repeat`` runs each (alternating)."""
    from databackend.media.decode import DecodeStats

    rows = list(range(min(limit, len(meta.index))))
    window_s = full_s = float("inf")
    for _ in range(repeat):
        stats = DecodeStats()
        window_s = min(window_s, _window_seconds(meta, rows, stats))
        seconds, total = _full_seconds(meta, rows)
        full_s = min(full_s, seconds)
    share = stats.returned / total
    bound = (stats.returned + GOP * len(rows)) / total
    return {"window_s": window_s, "full_s": full_s, "window_frames": stats.returned,
            "decoded_frames": stats.decoded, "all_frames": total,
            "window_us_per_frame": window_s / stats.returned * 1e6,
            "full_us_per_frame": full_s / total * 1e6, "ratio": window_s / full_s,
            "share": share, "bound": bound}


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="videobench-"))
    files = make_clips(root, args.n)
    best_bare = best_scan = float("inf")
    meta = None
    for _ in range(args.repeat):
        best_bare = min(best_bare, bare_probe(files))
        seconds, meta = scan_once(root, root / "out")
        best_scan = min(best_scan, seconds)
    assert meta is not None
    decode = decode_compare(meta, args.decode, args.repeat)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)
    return {"cpus": os.cpu_count(), "n": len(files), "kept": len(meta.index),
            "counted": meta.report.counted, "scan_per_s": len(files) / best_scan,
            "bare_per_s": len(files) / best_bare, "probe_ratio": best_bare / best_scan,
            "decode": decode}


def show(r: dict[str, Any]) -> None:
    d = r["decode"]
    print(f"cpus: {r['cpus']}, clips: {r['n']}, kept: {r['kept']}, "
          f"frame counts counted: {r['counted']}")
    print(f"cold video scan:     {r['scan_per_s']:>10,.0f} files/s")
    print(f"bare PyAV probe:     {r['bare_per_s']:>10,.0f} files/s")
    print(f"probe ratio          {r['probe_ratio']:>10.2f}x   (target >= 1.0)")
    print(f"window decode:       {d['window_us_per_frame']:>10,.0f} us per window frame "
          f"({d['window_frames']} frames, {d['decoded_frames']} decoded)")
    print(f"whole-file decode:   {d['full_us_per_frame']:>10,.0f} us per frame "
          f"({d['all_frames']} frames)")
    print(f"decode ratio         {d['ratio']:>10.2f}x   (target <= {d['bound']:.2f}: window "
          f"share {d['share']:.2f} + one GOP per clip)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="clips")
    parser.add_argument("--dir", help="keep the clips here between runs")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--decode", type=int, default=40, help="clips for the decode figures")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2)) if args.json else show(result)


if __name__ == "__main__":
    sys.exit(main())
