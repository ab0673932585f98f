"""One listing per job on S3: two gloo ranks each list and probe their share of the bucket's
prefixes (through the local S3 server) and end with the index of a single-process scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e_support import aws_keys, dataset_objects

import databackend_aws
from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.options import FactoryOptions
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_aws import S3Backend

WORKER = textwrap.dedent('''
    import json, logging, sys
    import torch.distributed as dist
    sys.path.insert(0, sys.argv[5])
    from test_aws_scan_ranks import scan

    rank, world, init, out, _, bucket, endpoint, index_dir = sys.argv[1:9]
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logging.getLogger("databackend_aws.backend").addHandler(handler)
    logging.getLogger("databackend_aws.backend").setLevel(logging.INFO)
    dist.init_process_group("gloo", init_method=init, rank=int(rank), world_size=int(world))
    rows, probed, source = scan(bucket, endpoint, index_dir, int(rank), int(world))
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as fh:
        json.dump({"rows": rows, "log": [r for r in records if "listed" in r],
                   "probed": probed, "source": source}, fh)
''')


def scan(bucket: str, endpoint: str, out: str, rank: int = 0, world: int = 1
         ) -> tuple[list[Any], int, str]:
    """Scan ``s3://bucket/data`` as rank ``rank`` of ``world``: index rows, probed, source."""
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[databackend_aws]))
    options = FactoryOptions(output_dir=out, resolution=64, resolution_type="pixel_area",
                             aspect_bucket_alignment=16)
    plan = load_config([{"id": "photos", **aws_keys(bucket, endpoint), "aws_data_prefix": "data",
                         "caption_strategy": "textfile"}], registry, options)
    context = BuildContext(options=options, registry=registry)
    meta = build_metadata(plan.datasets[0], build_storage(plan.datasets[0], context), context)
    report = meta.scan(progress=False, rank=rank, world_size=world)
    idx = meta.index
    rows = [[p, idx.original[i].tolist(), idx.target[i].tolist()]
            for i, p in enumerate(idx.paths)]
    return rows, int(report.counts["probed"]), str(report.source)


def test_two_ranks_split_the_s3_listing_and_end_with_the_same_index(
        make_backend: Callable[..., S3Backend], bucket: str, s3_endpoint: str,
        tmp_path: Path) -> None:
    # data/train/{a,b,c}/ below a chain of lone folders, plus one object at that level
    objects = [o for k, f in enumerate("abc") for o in
               dataset_objects(4, f"data/train/{f}/", start=1 + 4 * k)]
    objects.append(("data/train/top.jpg", dataset_objects(1)[0][1]))
    make_backend(dataset_id="uploader").write_many(objects)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = f"file://{tmp_path / 'rendezvous'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", init,
                               str(tmp_path / f"rank-{r}.json"), str(Path(__file__).parent),
                               bucket, s3_endpoint, str(tmp_path / "out")], env=env,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    single, probed, _ = scan(bucket, s3_endpoint, str(tmp_path / "single"))
    assert len(single) == 12 and probed == 13  # one image is below the minimum size
    assert ranks[0]["rows"] == ranks[1]["rows"] == single
    # rank 0: top.jpg + prefixes a/, c/; rank 1: prefix b/
    assert ranks[0]["log"] == ["rank 0 listed 2 of 3 top-level prefix(es)"]
    assert ranks[1]["log"] == ["rank 1 listed 1 of 3 top-level prefix(es)"]
    assert ranks[1]["source"] == "rank-merge"
    assert ranks[0]["probed"] == 13 and ranks[1]["probed"] in (6, 7)  # probes: half of the job
