"""Running a generator over a source dataset: deterministic, content-addressed, incremental,
parallel, with progress.

The output of source sample ``sub/a.jpg`` is ``sub/a.{key16}.{ext}`` in the conditioning
dataset's storage, where ``key`` is the SHA-256 of the generator's identity (name, version,
parameters), the seed and the source sample's identity (path, size, mtime). Changing a
parameter or the source file therefore writes new files (old ones stay, like cache entries, and
are reported as unused by pairing); a rerun with nothing changed lists the folder once and
generates nothing. The generator's random numbers come from a generator seeded with ``key``.
Each rank generates the missing outputs of every ``world_size``-th source row; callers put a barrier after
:meth:`GeneratedOutputs.run` on every rank (ranks with nothing to do included).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import posixpath
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import numpy as np

from databackend.caches.base import progress_bar, shard
from databackend.conditioning.generator import ConditioningGenerator
from databackend.config.models import ImageBackendConfig
from databackend.safepath import neutralise_key
from databackend.storage.base import StorageBackend

__all__ = ["GeneratedOutputs", "GenerationReport", "output_key", "output_path"]

log = logging.getLogger(__name__)


def output_key(identity: str, seed: int, sample_key: str) -> str:
    """The content key of one output."""
    doc = json.dumps(["conditioning", identity, int(seed), sample_key], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def output_path(source_path: str, key: str, extension: str) -> str:
    """``sub/a.jpg`` -> ``sub/a.{key[:16]}.{extension}``; a source key that is not a safe
    relative path (``..``, absolute, NUL: from an S3/CSV/HF listing) is neutralised by
    :func:`databackend.safepath.neutralise_key`, so the output stays in the conditioning
    dataset's folder."""
    return neutralise_key(f"{posixpath.splitext(source_path)[0]}.{key[:16]}.{extension}")


@attrs.frozen(kw_only=True)
class GenerationReport:
    """One generation run on this rank: outputs present before, written, and failed."""

    dataset_id: str
    generator: str
    total: int = 0
    existing: int = 0
    generated: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as a plain dict."""
        return attrs.asdict(self)


class GeneratedOutputs:
    """The outputs of one generated conditioning dataset over its source's samples."""

    def __init__(self, dataset: ImageBackendConfig, source: Any,
                 classes: Mapping[str, type[ConditioningGenerator]], seed: int) -> None:
        """``source`` is the source's scanned metadata backend."""
        spec = dataset.conditioning_config or {}
        self.dataset, self.source = dataset, source
        self.generator = classes[spec["type"]](spec.get("params") or {})
        self.seed = int(spec["seed"]) if spec.get("seed") is not None else int(seed)
        self.identity = self.generator.identity()

    def key(self, i: int) -> str:
        """The content key of source row ``i``'s output."""
        return output_key(self.identity, self.seed, self.source.sample_key(i))

    def path(self, i: int) -> str:
        """Where source row ``i``'s output is stored."""
        return output_path(str(self.source.index.paths[i]), self.key(i),
                           self.generator.extension)

    def _make(self, i: int, storage: StorageBackend) -> None:
        key = self.key(i)
        image = self.source.load_image(i)
        rng = np.random.default_rng(np.random.SeedSequence(int(key, 16)))
        out = self.generator.generate(image, rng)
        if out.size != image.size:
            raise ValueError(f"generator {self.generator.name!r} returned {out.size}, "
                             f"expected the source size {image.size}")
        buf = io.BytesIO()
        out.save(buf, format="JPEG" if self.generator.extension in ("jpg", "jpeg")
                 else self.generator.extension.upper())
        storage.write(output_path(str(self.source.index.paths[i]), key,
                                  self.generator.extension), buf.getvalue())

    def run(self, storage: StorageBackend, *, rank: int = 0, world_size: int = 1,
            workers: int = 4, progress: bool | None = None) -> GenerationReport:
        """Write this rank's share of the missing outputs (see the module doc)."""
        start = time.perf_counter()
        paths = {i: self.path(i) for i in range(len(self.source.index.paths))}
        have = {f.path for f in storage.list("", extensions=[self.generator.extension])}
        missing = [i for i, p in paths.items() if p not in have]
        # shard the rows, not the missing ones: ranks list the folder at different times
        todo = [i for i in shard(list(paths), rank, world_size) if paths[i] not in have]
        failed: list[tuple[str, str]] = []
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="databackend-gen") as pool, \
                progress_bar(len(todo), f"generate {self.dataset.id}", progress) as bar:
            futures = [(i, pool.submit(self._make, i, storage)) for i in todo]
            for i, future in futures:
                try:
                    future.result()
                except Exception as exc:
                    src = str(self.source.index.paths[i])
                    log.error("dataset %r: generating from %r failed: %s", self.dataset.id,
                              src, exc)
                    failed.append((src, f"{type(exc).__name__}: {exc}"))
                bar.update(1)
        return GenerationReport(dataset_id=self.dataset.id, generator=self.identity,
                                total=len(paths), existing=len(paths) - len(missing),
                                generated=len(todo) - len(failed), failed=tuple(failed),
                                seconds=time.perf_counter() - start)
