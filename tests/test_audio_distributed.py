"""An audio dataset on two real gloo processes: same bucket per step, disjoint samples, each
rank encodes its own share of the audio cache, and the random windows agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from audiofiles import write_av_audio, write_soundfile

WORKER = textwrap.dedent('''
    import json, sys
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[5])
    from test_audio_distributed import audio_rows

    rank, world, init, out, _, config = sys.argv[1:7]
    dist.init_process_group("gloo", init_method=init, rank=int(rank), world_size=int(world))
    result = audio_rows(config)
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as fh:
        json.dump(result, fh)
''')


def audio_rows(config_path: str) -> dict[str, Any]:
    """Build a factory (rank from torch.distributed) and iterate one epoch."""
    import databackend_local
    from databackend.audio.encoders import ReferenceAudioEncoder
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.factory import DataBackendFactory
    from databackend.plugins import make_plugin_manager

    spec = json.loads(Path(config_path).read_text())
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local])
    factory = DataBackendFactory(spec["entries"], options=spec["options"], plugin_manager=pm,
                                 text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                                 image_encoder=ReferenceVAE(),
                                 media_encoders={"audio": ReferenceAudioEncoder(16000, 1, hop=160,
                                                                                dim=4)},
                                 max_epochs=1).build()
    rows = [[b.step, b.dataset_id, list(b.bucket), b.sample_ids, list(b.latents.shape),
             b.audio.window[:, 0].tolist()] for b in factory.iterator()]
    factory.close()
    run = next(r for r in factory.cache_runs if r.name == "clips")
    return {"rank": factory.rank, "world": factory.world_size, "rows": rows,
            "precompute": [run.report.total, run.report.encoded]}


def test_two_ranks_agree_per_step_and_split_the_work(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    for n in range(12):
        seconds = (1.5, 3.4, 6.2)[n % 3] + n * 0.05
        if n % 4 == 3:
            write_av_audio(root / f"c{n:02d}.m4a", seconds, 22050, 2, seed=n)
        else:
            write_soundfile(root / f"c{n:02d}.wav", seconds, (16000, 44100)[n % 2], 1, seed=n)
    entries = [{"id": "clips", "type": "local", "dataset_type": "audio",
                "instance_data_dir": str(root), "caption_strategy": "filename",
                "train_batch_size": 2, "audio": {"duration_interval": 3,
                                                 "truncation_mode": "random"}}]
    config = tmp_path / "spec.json"
    config.write_text(json.dumps({"entries": entries,
                                  "options": {"output_dir": str(tmp_path / "out"), "seed": 7}}))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2",
                               f"file://{tmp_path / 'rendezvous'}", str(tmp_path / f"r{r}.json"),
                               str(Path(__file__).parent), str(config)],
                              env=env, stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    ranks = [json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)]
    rows0, rows1 = ranks[0]["rows"], ranks[1]["rows"]
    assert len(rows0) == len(rows1) > 0
    for a, b in zip(rows0, rows1, strict=True):
        assert a[:3] == b[:3]  # step, dataset, bucket
        assert a[4] == b[4]  # same latent shape: same bucket duration
    seen = [s for rows in (rows0, rows1) for row in rows for s in row[3]]
    assert len(set(seen)) == 12  # every clip on some rank
    totals = [r["precompute"][0] for r in ranks]
    assert sum(totals) == 12 and abs(totals[0] - totals[1]) <= 1
    windows = {}
    for rows in (rows0, rows1):
        for row in rows:
            for sample, start in zip(row[3], row[5], strict=True):
                assert windows.setdefault(sample, start) == start  # one window per clip
