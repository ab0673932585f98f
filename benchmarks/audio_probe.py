"""Benchmark the audio scan's probe rate against a bare ``soundfile.info`` loop.

Usage::

    python benchmarks/audio_probe.py            # 2,000 wav/flac files in a temporary folder
    python benchmarks/audio_probe.py --n 500

Prints, measured in the same run (best of ``--repeat`` runs each, contenders alternating):

* the probe stage of an audio scan (every listed file through the shared media probing,
  ``probe_files`` with the registered audio probe, in its threads) against a bare
  single-thread ``soundfile.info`` loop over the same files, and their ratio (target >= 1.0);
* a whole cold audio scan (no index: list, probe, filter, caption, bucket, write the index)
  and a warm (unchanged) rescan against the same loop (figures, no target).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_files(root: Path, n: int) -> list[Path]:
    """``n`` short clips (a few distinct ones, copied)."""
    from audiofiles import write_soundfile

    seeds = [write_soundfile(root / f"seed{i}.{ext}", 1.0 + i * 0.7, rate, ch, seed=i)
             for i, (ext, rate, ch) in enumerate([("wav", 16000, 1), ("wav", 44100, 2),
                                                  ("flac", 22050, 1), ("flac", 48000, 2)])]
    out = []
    for k in range(n):
        src = seeds[k % len(seeds)]
        dst = root / f"d{k // 500}" / f"clip{k}{src.suffix}"
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dst)
        out.append(dst)
    for s in seeds:
        s.unlink()
    return out


def bare(files: list[Path]) -> float:
    """The baseline: ``soundfile.info`` on every file, one thread."""
    import soundfile

    t0 = time.perf_counter()
    for f in files:
        soundfile.info(str(f))
    return time.perf_counter() - t0


def backend(root: Path, out: Path) -> object:
    """The audio metadata backend of a dataset at ``root``."""
    import databackend_local
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import parse_entries
    from databackend.context import BuildContext
    from databackend.options import FactoryOptions
    from databackend.plugins import make_plugin_manager
    from databackend.registry import PluginRegistry

    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_local]))
    opts = FactoryOptions(output_dir=str(out))
    plan = parse_entries([{"id": "bench", "type": "local", "dataset_type": "audio",
                           "instance_data_dir": str(root), "caption_strategy": "filename"}],
                         registry, opts)
    context = BuildContext(options=opts, registry=registry)
    dataset = plan.datasets[0]
    return build_metadata(dataset, build_storage(dataset, context), context)


def probe_stage(root: Path, out: Path) -> float:
    """The scan's probe stage alone (the shared :func:`databackend.media.probing.probe_files`
    with the audio probe, in its threads) over the listed files."""
    from databackend.media.probing import probe_files

    meta: Any = backend(root, out)
    files = [(f.path, f.size, f.mtime) for f in meta.storage.list(
        extensions=meta.spec.extensions())]
    t0 = time.perf_counter()
    found, _ = probe_files(meta.storage, meta.probes, "audio", files, None,
                           workers=meta.settings.workers)
    elapsed = time.perf_counter() - t0
    assert all(info is not None for _, info in found)
    return elapsed


def scan(root: Path, out: Path, *, cold: bool) -> float:
    """One audio scan of ``root`` (removing the stored index first when ``cold``)."""
    if cold:
        shutil.rmtree(out, ignore_errors=True)
    meta: Any = backend(root, out)
    t0 = time.perf_counter()
    meta.scan(progress=False)
    return time.perf_counter() - t0


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, out = Path(tmp) / "data", Path(tmp) / "out"
        root.mkdir()
        files = make_files(root, args.n)
        t_bare, t_probe, t_cold, t_warm = [], [], [], []
        for _ in range(args.repeat):
            t_bare.append(bare(files))
            t_probe.append(probe_stage(root, out))
            t_cold.append(scan(root, out, cold=True))
            t_warm.append(scan(root, out, cold=False))
        b, p, c, w = min(t_bare), min(t_probe), min(t_cold), min(t_warm)
    n = len(files)
    print(f"files:            {n:>10d}")
    print(f"bare sf.info:     {n / b:>10.0f} files/s")
    print(f"scan probe stage: {n / p:>10.0f} files/s")
    print(f"cold audio scan:  {n / c:>10.0f} files/s")
    print(f"warm rescan:      {n / w:>10.0f} files/s")
    print(f"probe ratio {b / p:.2f}x   (target >= 1.0)")
    print(f"cold scan ratio {b / c:.2f}x   (no target: listing, captions, index included)")
    print(f"warm scan ratio {b / w:.2f}x   (no target)")


if __name__ == "__main__":
    main()
