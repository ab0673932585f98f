"""One listing per job: two gloo ranks each list and probe half of a local tree and end with the
same index as a single-process scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_metadata_support import make_meta

from databackend.registry import PluginRegistry

WORKER = textwrap.dedent('''
    import json, logging, sys
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[5])
    import databackend_local
    from databackend.plugins import make_plugin_manager
    from databackend.registry import PluginRegistry
    from test_metadata_support import make_meta
    from pathlib import Path

    rank, world, init, out, _, root, index_dir = sys.argv[1:8]
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logging.getLogger("databackend.storage.localdir").addHandler(handler)
    logging.getLogger("databackend.storage.localdir").setLevel(logging.INFO)
    dist.init_process_group("gloo", init_method=init, rank=int(rank), world_size=int(world))
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_local]))
    meta = make_meta(registry, Path(index_dir), Path(root))
    report = meta.scan(progress=False, rank=int(rank), world_size=int(world))
    idx = meta.index
    rows = [[p, idx.original[i].tolist(), idx.target[i].tolist()] for i, p in enumerate(idx.paths)]
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as fh:
        json.dump({"rows": rows, "skipped": list(idx.skipped.paths), "log": records,
                   "probed": report.counts["probed"], "source": report.source}, fh)
''')


def _rows(meta: Any) -> list[list[Any]]:
    idx = meta.index
    return [[p, idx.original[i].tolist(), idx.target[i].tolist()]
            for i, p in enumerate(idx.paths)]


def _run(tmp_path: Path, root: Path, world: int) -> list[dict[str, Any]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = f"file://{tmp_path / 'rendezvous'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(world), init,
                               str(tmp_path / f"rank-{r}.json"), str(Path(__file__).parent),
                               str(root), str(tmp_path / "out")], env=env,
                              stderr=subprocess.PIPE, text=True) for r in range(world)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    return [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(world)]


def test_two_ranks_split_the_listing_and_end_with_the_same_index(
        registry: PluginRegistry, tmp_path: Path, make_images: Callable[..., Path]) -> None:
    sizes = [(128, 128), (192, 128), (128, 192), (40, 30)]  # the last is too small
    specs = [(f"f{k}/{n}.jpg", *sizes[(k + n) % 4]) for k in range(5) for n in range(3)]
    root = make_images([*specs, ("top.png", 160, 160)])
    (root / "f1" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    ranks = _run(tmp_path, root, 2)
    single = make_meta(registry, tmp_path / "single", root)
    single.scan(progress=False)
    assert ranks[0]["rows"] == ranks[1]["rows"] == _rows(single)
    assert ranks[0]["skipped"] == ranks[1]["skipped"] == list(single.index.skipped.paths)
    assert ranks[1]["source"] == "rank-merge"
    # rank 0: top-level file + folders f0, f2, f4; rank 1: folders f1, f3
    assert ranks[0]["log"] == ["rank 0 listed 10 file(s) in 3 of 5 top-level folder(s)"]
    assert ranks[1]["log"] == ["rank 1 listed 7 file(s) in 2 of 5 top-level folder(s)"]
    assert ranks[0]["probed"] == 17  # rank 0 reports the job's total ...
    assert ranks[1]["probed"] in (8, 9)  # ... of which rank 1 read half
    leftovers = [p.name for p in (tmp_path / "out").rglob("*.dbi") if p.name != "index.dbi"]
    assert leftovers == []  # listing parts and partials are removed
