"""A flaky network changes nothing: scan + caches + 200 batches through a fault-injecting
proxy (500, 503 SlowDown/ServiceUnavailable, dropped connections before and after the
server saw the request, bodies cut short) give exactly the result of a clean run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from e2e_support import encoded, entries, factory, listing, take, upload

from databackend.factory import DataBackendFactory
from databackend_aws import S3Backend
from databackend_aws.faultproxy import FAULT_KINDS, FaultPlan, FaultProxy


def _result(f: DataBackendFactory, batches: list[Any]) -> dict[str, Any]:
    """Everything a trainer could observe: indexes, cache work, batch contents."""
    return {
        "scan": {k: (v["kept"], v["skipped"]) for k, v in f.metrics.counters["scan"].items()},
        "index": {k: (list(m.index.paths), m.index.buckets().keys())
                  for k, m in f.metadata.items()},
        "encoded": encoded(f),
        "batches": [(b.dataset_id, b.bucket, b.sample_ids) for b in batches],
    }


def _same_tensors(a: list[Any], b: list[Any]) -> bool:
    def same(x: Any, y: Any) -> bool:
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        return bool(torch.equal(x, y))
    return all(same(p.latents, q.latents) and same(p.text_embeds, q.text_embeds)
               for p, q in zip(a, b, strict=True))


def test_faults_do_not_change_the_result(make_backend: Callable[..., S3Backend],
                                         make_bucket: Callable[..., str], s3_endpoint: str,
                                         s3_admin: Any, tmp_path: Path) -> None:
    """Same scan, same cache objects, same 200 batches, with ~15% of requests failing.

    The bucket name is fixed: the proxy's fault schedule hashes the request path, so a random
    name would make which requests fail (and whether a body is cut short) vary by run."""
    bucket = make_bucket("faults-e2e")
    upload(make_backend(dataset_id="uploader", aws_bucket_name=bucket))
    clean = factory(entries(bucket, s3_endpoint, cache="clean"), tmp_path / "clean").build()
    clean_batches = take(clean, 200)
    plan = FaultPlan(seed=20240607, rate=0.15, max_faults_per_request=2)
    with FaultProxy(s3_endpoint.removeprefix("http://"), plan) as proxy:
        config = entries(bucket, proxy.url, cache="faulty", aws_max_attempts=4)
        faulty = factory(config, tmp_path / "faulty").build()
        faulty_batches = take(faulty, 200)
    stats = proxy.stats()
    assert sum(stats.get(f"fault.{k}", 0) for k in FAULT_KINDS) >= 0.1 * stats["requests"], stats
    assert all(stats.get(f"fault.{k}", 0) > 0 for k in FAULT_KINDS), stats
    assert _result(faulty, faulty_batches) == _result(clean, clean_batches)
    assert _same_tensors(faulty_batches, clean_batches)
    assert listing(s3_admin, bucket, "faulty/") == listing(s3_admin, bucket, "clean/")
    # bodies cut short are retried by the backend itself (botocore only retries requests)
    retried = sum(s.metrics.snapshot().get("stream_retries", 0)
                  for s in faulty.storages.values() if isinstance(s, S3Backend))
    assert retried > 0
