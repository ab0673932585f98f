"""Hostile buckets (issue "Hardening"): object keys with ``..`` segments or a leading ``/``
never place cache files outside their folder, and one forbidden object is counted, not fatal
to the whole scan. (The core's adversarial tests are in ``tests/adversarial/``.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from e2e_support import OPTIONS, aws_keys, image_bytes

import databackend_aws
import databackend_local
from databackend.caches import ReferenceTextEncoder, ReferenceVAE
from databackend.factory import DataBackendFactory
from databackend.plugins import make_plugin_manager
from databackend_aws.faultproxy import FaultPlan, FaultProxy

HOSTILE = ["data/photos/a/../../../escape_a.png", "data/photos/../../escape_b.png",
           "data/photos//abs_c.png", "data/photos/ok/fine_d.png"]


def factory(config: list[dict[str, Any]], out: Path, **kw: Any) -> DataBackendFactory:
    """A factory with the aws and local plugins and the CPU reference encoders."""
    pm = make_plugin_manager(entrypoints=False, extra=[databackend_aws, databackend_local])
    return DataBackendFactory(config, plugin_manager=pm,
                              options={**OPTIONS, "output_dir": str(out)},
                              text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                              image_encoder=ReferenceVAE(), **kw)


def _files(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def _entries(bucket: str, endpoint: str, tmp_path: Path, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": "photos", **aws_keys(bucket, endpoint), "aws_data_prefix": "data/photos",
             "caption_strategy": "filename", "image_embeds": "vae",
             "hash_filenames": extra.pop("hash_filenames", True), **extra},
            {"id": "vae", "type": "local", "dataset_type": "image_embeds",
             "cache_dir": str(tmp_path / "work" / "vae")}]


@pytest.mark.parametrize("hash_filenames", [True, False])
def test_hostile_object_keys_stay_in_the_cache_folder(s3_admin: Any, bucket: str,
                                                      s3_endpoint: str, tmp_path: Path,
                                                      hash_filenames: bool) -> None:
    for n, key in enumerate(HOSTILE):
        s3_admin.put_object(Bucket=bucket, Key=key, Body=image_bytes(64, 64, n, "PNG"))
    listed = {o["Key"] for o in s3_admin.list_objects_v2(Bucket=bucket)["Contents"]}
    assert any(".." in k for k in listed)  # the store kept the hostile names
    outside = _files(tmp_path)
    made = factory(_entries(bucket, s3_endpoint, tmp_path, hash_filenames=hash_filenames),
                   tmp_path / "work" / "out", max_epochs=1).build()
    made.close()
    new = _files(tmp_path) - outside
    latents = [p for p in new if p.startswith(os.path.join("work", "vae"))]
    assert len([p for p in latents if "%2E%2E" in p]) == 2, latents  # the two ".." keys
    assert len(latents) >= 3, latents  # "//abs_c.png" may be unreadable (counted), not lost
    assert all(p.startswith("work" + os.sep) for p in new), new


def test_one_forbidden_object_is_counted_not_fatal(s3_admin: Any, bucket: str,
                                                   s3_endpoint: str, tmp_path: Path) -> None:
    for n in range(4):
        s3_admin.put_object(Bucket=bucket, Key=f"data/photos/img{n}.png",
                            Body=image_bytes(64, 64, n, "PNG"))
    with FaultProxy(s3_endpoint.removeprefix("http://"),
                    FaultPlan(deny_prefixes=(f"/{bucket}/data/photos/img3.png",))) as proxy:
        entry = {**_entries(bucket, proxy.url, tmp_path)[0], "aws_max_attempts": 1}
        entry.pop("image_embeds")
        made = factory([entry], tmp_path / "out", precompute=False, max_epochs=1).build()
        index = made.metadata["photos"].index
        assert len(index) == 3 and proxy.stats().get("denied", 0) >= 1
        assert made.metrics.counters["scan"]["photos"]
        made.close()
