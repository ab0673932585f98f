"""Two real processes (torch.distributed, gloo): a video dataset with frame buckets is scanned
once, its cache fill is split between the ranks, and both ranks draw the same bucket per step
(with ``(W, H, F)`` keys) from disjoint clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from videohelpers import OPTIONS, video_entry, write_clips

pytest.importorskip("av")

WORKER = textwrap.dedent('''
    import json, sys
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[4])
    from test_video_distributed import video_rows

    rank, world, init, _, out, config = sys.argv[1:7]
    dist.init_process_group("gloo", init_method=init, rank=int(rank), world_size=int(world))
    result = video_rows(config)
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as fh:
        json.dump(result, fh)
''')


def video_rows(config_path: str) -> dict[str, Any]:
    """Build a factory (rank from torch.distributed) and iterate one epoch."""
    import databackend_local
    from databackend.factory import DataBackendFactory
    from databackend.media.encoders import ReferenceVideoVAE
    from databackend.plugins import make_plugin_manager

    spec = json.loads(Path(config_path).read_text())
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local])
    factory = DataBackendFactory(spec["entries"], options=spec["options"], plugin_manager=pm,
                                 use_reference_encoders=True,
                                 media_encoders={"video": ReferenceVideoVAE(4)},
                                 max_epochs=1).build()
    rows = [[b.step, b.dataset_id, list(b.bucket), b.sample_ids, list(b.latents.shape),
             b.video.window.tolist() if b.video is not None else None]
            for b in factory.iterator()]
    factory.close()
    return {"rank": factory.rank, "rows": rows,
            "precompute": [[r.name, r.report.total, r.report.encoded] for r in factory.cache_runs
                           if r.kind == "latents"],
            "scan": factory.metadata["clips"].report.source}


def test_two_ranks_draw_the_same_frame_bucket_per_step(tmp_path: Path) -> None:
    clips = [(f"c{k:02d}.mp4", *((96, 64), (64, 96))[k % 2], (13, 21, 30)[k % 3], 12, 0)
             for k in range(6)]
    root = write_clips(tmp_path / "clips", clips)
    entry = {**video_entry(root, bucket_strategy="resolution_frames", frame_interval=8,
                           min_frames=9, window="random"), "train_batch_size": 1}
    config = tmp_path / "spec.json"
    config.write_text(json.dumps({"entries": [entry],
                                  "options": {**OPTIONS, "output_dir": str(tmp_path / "out")}}))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    init = f"file://{tmp_path / 'rendezvous'}"
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", init,
                               str(Path(__file__).parent), str(tmp_path / f"r{r}.json"),
                               str(config)], env=env, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    rank0, rank1 = (json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2))
    assert rank1["scan"] == "rank-merge"  # rank 0 scanned, rank 1 loaded its index
    rows0, rows1 = rank0["rows"], rank1["rows"]
    assert len(rows0) == len(rows1) > 0
    for a, b in zip(rows0, rows1, strict=True):
        assert a[:3] == b[:3] and len(a[2]) == 3  # step, dataset, (W, H, F) bucket
        assert a[4][2] == b[4][2]  # the same latent frame count on both ranks
    seen = [s for rows in (rows0, rows1) for row in rows for s in row[3]]
    assert len(set(seen)) == 6  # every clip trains on some rank
    encoded = [p for r in (rank0, rank1) for p in r["precompute"] if p[0] == "clips"]
    assert sum(p[2] for p in encoded) == 6 and all(p[1] == 3 for p in encoded)
