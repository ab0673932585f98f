"""Two real processes with torch.distributed (gloo, CPU): same (dataset, bucket) per step,
disjoint samples, equal batch counts, and resuming at world size 2 from a world-size-1 state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from databackend.runtime.loop import DataRuntime, RuntimeDataset
from databackend.runtime.strategies import AutoWeighting
from databackend.runtime.synthetic import SyntheticSource

WORKER = textwrap.dedent('''
    import json, sys
    import torch.distributed as dist
    from databackend.runtime.distributed import resolve_rank
    sys.path.insert(0, sys.argv[5])
    from test_distributed import make_runtime

    rank, world, init, out, _, mode, batch = sys.argv[1:8]
    dist.init_process_group("gloo", init_method=init, rank=int(rank), world_size=int(world))
    r, w = resolve_rank()  # from torch.distributed
    if mode == "factory":
        from test_distributed import factory_rows
        result = factory_rows(sys.argv[8])
        dist.barrier()
        dist.destroy_process_group()
        with open(out, "w") as fh:
            json.dump(result, fh)
        sys.exit(0)
    runtime = make_runtime(r, w, batch=int(batch))
    if mode == "resume":
        with open(out + ".state") as fh:
            runtime.load_state_dict(json.load(fh))
    rows = [[b.step, b.epoch, b.dataset_id, list(b.bucket), b.indices] for b in runtime]
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as fh:
        json.dump({"rank": r, "world": w, "rows": rows}, fh)
''')


def make_runtime(rank: int, world_size: int, *, batch: int) -> DataRuntime:
    """Two datasets, several buckets (one short), one repeat; two epochs."""
    a = SyntheticSource("a", {(512, 512): 37, (768, 512): 12, (512, 768): 3})
    b = SyntheticSource("b", {(640, 640): 20, (512, 512): 9})
    return DataRuntime([RuntimeDataset(id="a", source=a, batch_size=batch, repeats=1),
                        RuntimeDataset(id="b", source=b, batch_size=batch)],
                       AutoWeighting(), seed=17, rank=rank, world_size=world_size, max_epochs=2)


def factory_rows(config_path: str) -> dict[str, Any]:
    """Build a factory from ``config_path`` (rank from torch.distributed), iterate one epoch."""
    import databackend_local
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.factory import DataBackendFactory
    from databackend.plugins import make_plugin_manager

    spec = json.loads(Path(config_path).read_text())
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_local])
    factory = DataBackendFactory(spec["entries"], options=spec["options"], plugin_manager=pm,
                                 text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                                 image_encoder=ReferenceVAE(), max_epochs=1).build()
    rows = [[b.step, b.dataset_id, list(b.bucket), b.sample_ids] for b in factory.iterator()]
    factory.close()
    return {"rank": factory.rank, "world": factory.world_size, "rows": rows,
            "precompute": [[r.kind, r.name, r.report.total, r.report.encoded]
                           for r in factory.cache_runs]}


def run_ranks(tmp_path: Path, world: int, mode: str, batch: int,
              extra: str = "") -> list[dict[str, Any]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = f"file://{tmp_path / f'rendezvous-{mode}'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(world), init,
                               str(tmp_path / f"{mode}-{r}.json"), str(Path(__file__).parent),
                               mode, str(batch), extra], env=env, stderr=subprocess.PIPE, text=True)
             for r in range(world)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    return [json.loads((tmp_path / f"{mode}-{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_ranks(tmp_path_factory.mktemp("dist"), 2, "epoch", batch=2)


def test_ranks_learn_rank_and_world_size_from_torch_distributed(
        two_ranks: list[dict[str, Any]]) -> None:
    assert [(r["rank"], r["world"]) for r in two_ranks] == [(0, 2), (1, 2)]


def test_ranks_agree_on_dataset_and_bucket_and_batch_count(
        two_ranks: list[dict[str, Any]]) -> None:
    rows0, rows1 = two_ranks[0]["rows"], two_ranks[1]["rows"]
    assert len(rows0) == len(rows1) > 0
    for a, b in zip(rows0, rows1, strict=True):
        assert a[:4] == b[:4]  # step, epoch, dataset, bucket


def test_ranks_take_disjoint_slices_of_the_global_batch(
        two_ranks: list[dict[str, Any]]) -> None:
    single = make_runtime(0, 1, batch=4)
    expected = [p.global_indices.tolist() for p in single.plans(10_000)]
    rows0, rows1 = two_ranks[0]["rows"], two_ranks[1]["rows"]
    assert len(expected) == len(rows0)
    for want, a, b in zip(expected, rows0, rows1, strict=True):
        assert a[4] + b[4] == want  # rank 0 then rank 1: the world-size-1 global batch
    per_step_overlap = [set(a[4]) & set(b[4]) for a, b in zip(rows0, rows1, strict=True)]
    unpadded = [o for o, a in zip(per_step_overlap, rows0, strict=True) if a[3] != [512, 768]]
    assert not any(unpadded)  # only the short, padded bucket may repeat a sample


def test_resume_at_world_size_two_from_world_size_one_state(tmp_path: Path) -> None:
    single = make_runtime(0, 1, batch=4)
    expected = [[p.step, p.epoch, p.dataset_id, list(p.bucket), p.global_indices.tolist()]
                for p in single.plans(10_000)]
    first = make_runtime(0, 1, batch=4)
    first.plans(23)  # stop mid-epoch 1
    state = json.dumps(first.state_dict())
    for r in range(2):
        (tmp_path / f"resume-{r}.json.state").write_text(state)
    ranks = run_ranks(tmp_path, 2, "resume", batch=2)
    rows0, rows1 = ranks[0]["rows"], ranks[1]["rows"]
    assert len(rows0) == len(rows1) == len(expected) - 23
    for want, a, b in zip(expected[23:], rows0, rows1, strict=True):
        assert a[:4] == b[:4] == want[:4]
        assert a[4] + b[4] == want[4]


def test_factory_on_two_ranks_splits_startup_work_and_agrees_per_step(
        tmp_path: Path, make_images: Any) -> None:
    sizes = [(128, 128), (192, 128), (128, 192)]
    root = make_images([(f"a/{n:02d}.jpg", *sizes[n % 3]) for n in range(14)]
                       + [(f"b/{n:02d}.png", *sizes[(n + 1) % 3]) for n in range(9)])
    entries = [{"id": d, "type": "local", "instance_data_dir": str(root / d),
                "train_batch_size": 2, "repeats": 1 if d == "a" else 0} for d in ("a", "b")]
    options = {"output_dir": str(tmp_path / "out"), "resolution": 64,
               "resolution_type": "pixel_area", "aspect_bucket_alignment": 16, "seed": 5}
    config = tmp_path / "spec.json"
    config.write_text(json.dumps({"entries": entries, "options": options}))
    ranks = run_ranks(tmp_path, 2, "factory", batch=0, extra=str(config))
    assert [(r["rank"], r["world"]) for r in ranks] == [(0, 2), (1, 2)]
    rows0, rows1 = ranks[0]["rows"], ranks[1]["rows"]
    assert len(rows0) == len(rows1) > 0
    for a, b in zip(rows0, rows1, strict=True):
        assert a[:3] == b[:3]
        assert len(a[3]) == len(b[3]) == 2
    seen = [i for rows in (rows0, rows1) for row in rows for i in row[3]]
    assert {s.split(":")[0] for s in seen} == {"a", "b"}
    assert len(set(seen)) == 23  # every sample appears on some rank
    for kind_name in {(k, n) for k, n, _, _ in ranks[0]["precompute"]}:
        shares = [next(p for p in r["precompute"] if (p[0], p[1]) == kind_name) for r in ranks]
        totals = [p[2] for p in shares]
        assert abs(totals[0] - totals[1]) <= 1  # each rank encoded its own share
