"""Two gloo processes with conditioning (random mode, a hand-written and a generated dataset):
the same steps and buckets, disjoint samples, and for every sample the conditioning dataset a
single process chooses for the same global batch; generation is shared and symmetric."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from condfiles import entries, inverted, noise_image, options

WORKER = textwrap.dedent('''
    import json, sys
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[4])
    from test_conditioning_distributed import rows_of

    rank, init, out, _, config = sys.argv[1:6]
    dist.init_process_group("gloo", init_method=init, rank=int(rank), world_size=2)
    result = rows_of(config)
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as fh:
        json.dump(result, fh)
''')


def rows_of(config: str, batch: int | None = None) -> dict[str, Any]:
    """One epoch: per batch its step, bucket, samples and each sample's conditioning."""
    import databackend_local
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.factory import DataBackendFactory
    from databackend.plugins import make_plugin_manager

    spec = json.loads(Path(config).read_text())
    if batch is not None:
        spec["entries"][2]["train_batch_size"] = batch
    f = DataBackendFactory(spec["entries"], options=spec["options"],
                           plugin_manager=make_plugin_manager(entrypoints=False,
                                                              extra=[databackend_local]),
                           text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                           image_encoder=ReferenceVAE(), max_epochs=1,
                           rank=0 if batch else None, world_size=1 if batch else None).build()
    rows = []
    for b in f.iterator(prefetch=False):
        chosen = {b.sample_ids[p]: e.dataset_id for e in b.conditioning for p in e.rows.tolist()}
        rows.append([b.step, list(b.bucket), b.sample_ids, chosen])
    generated = f.conditioning.generation["src_conditioning_random_masks"].generated
    f.close()
    return {"rank": f.rank, "rows": rows, "generated": generated}


def test_two_ranks_agree_on_conditioning(tmp_path: Path) -> None:
    src, inv = tmp_path / "src", tmp_path / "inv"
    for n in range(12):
        inverted(inv / f"p{n}.png", noise_image(src / f"p{n}.png", *[(64, 64), (96, 64)][n % 2],
                                                seed=n))
    hint = {"id": "inv", "type": "local", "instance_data_dir": str(inv),
            "conditioning_type": "controlnet", "source_dataset_id": "src"}
    config = tmp_path / "spec.json"
    config.write_text(json.dumps({
        "entries": entries(src, tmp_path, hint, conditioning={"type": "random_masks",
                                                              "conditioning_type": "mask"}),
        "options": options(tmp_path, seed=3, conditioning_multidataset_sampling="random")}))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), f"file://{tmp_path / 'rdv'}",
                               str(tmp_path / f"r{r}.json"), str(Path(__file__).parent),
                               str(config)], env=env, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    r0, r1 = (json.loads((tmp_path / f"r{r}.json").read_text()) for r in range(2))
    assert r0["generated"] + r1["generated"] == 12  # each rank generated its share
    single = rows_of(str(config), batch=4)["rows"]  # one process, the same global batches
    assert len(r0["rows"]) == len(r1["rows"]) == len(single) > 0
    kinds = set()
    for a, b, one in zip(r0["rows"], r1["rows"], single, strict=True):
        assert a[:2] == b[:2] == one[:2]  # step, bucket
        assert not set(a[2]) & set(b[2]) or one[1] == [96, 64]  # disjoint (short bucket pads)
        assert a[2] + b[2] == one[2]
        assert {**a[3], **b[3]} == one[3]  # the same conditioning choice per sample
        kinds.update(one[3].values())
    assert kinds == {"inv", "src_conditioning_random_masks"}
