"""What the HTML report shows, gathered from a built factory and a run's metrics file.

:func:`collect_report` returns plain, JSON-ready data: per dataset the index aggregates
(:mod:`databackend.monitor.indexfacts`) and cache coverage; for the whole config the dependency
graph, the last build's stages and peak memory, and (with a metrics file) the mix and the
consumer wait over the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databackend.caches.base import existing_paths, progress_bar
from databackend.caches.precompute import dataset_captions
from databackend.config.depsort import dataset_edges
from databackend.monitor.indexfacts import index_facts
from databackend.monitor.metricslog import read_metrics

if TYPE_CHECKING:
    from databackend.config.plan import DataPlan
    from databackend.factory import DataBackendFactory

__all__ = ["MAX_RUN_POINTS", "collect_report", "config_graph", "run_series"]

#: a run's metrics are thinned to at most this many points per series
MAX_RUN_POINTS = 600
_CHUNK = 1 << 14


def config_graph(plan: DataPlan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Nodes (``id``, ``kind``, ``x``, ``y``) and edges (``x``, ``y``, ``x2``, ``y2``, ``what``)
    of the config: text caches (column 0), latent caches (1), datasets (2), conditioning and
    other derived datasets (3)."""
    datasets = [d for d in plan.datasets if not d.disabled]
    after = dataset_edges(datasets)
    columns: dict[int, list[tuple[str, str]]] = {0: [], 1: [], 2: [], 3: []}
    columns[0] = [(e.id, "text cache") for e in plan.text_embeds]
    columns[1] = [(e.id, "latent cache") for e in plan.image_embeds]
    for d in datasets:
        columns[3 if after[d.id] else 2].append((d.id, d.dataset_type))
    where = {}
    nodes = []
    for x, members in columns.items():
        for y, (nid, kind) in enumerate(members):
            where[nid] = (x, y)
            nodes.append({"id": nid, "kind": kind, "x": x, "y": y})
    edges = []
    for d in datasets:
        uses = [(u, "text") for u in [getattr(plan.text_embeds_for(d), "id", None)] if u]
        uses += [(d.image_embeds, "latents")] if d.image_embeds else []
        uses += [(src, "source") for src in after[d.id]]
        for other, what in uses:
            if other in where:
                (x, y), (x2, y2) = where[other], where[d.id]
                edges.append({"from": other, "to": d.id, "what": what, "x": x, "y": y,
                              "x2": x2, "y2": y2})
    return nodes, edges


def _latent_paths(cache: Any, bar: Any) -> list[str]:
    """Every entry path of a latent cache (what a full cache holds), advancing ``bar``."""
    indices = cache.all_indices()
    paths: list[str] = []
    for lo in range(0, len(indices), _CHUNK):
        paths += [cache.path(i) for i in indices[lo:lo + _CHUNK]]
        bar.update(len(indices[lo:lo + _CHUNK]))
    return paths


def _coverage(factory: DataBackendFactory, progress: bool | None) -> list[dict[str, Any]]:
    """Per cache: kind, name, encoder identity, location, entries present of those needed."""
    rows = []
    total = sum(len(m.index) for m in factory.metadata.values())
    with progress_bar(total, "report: cache coverage", progress) as bar:
        latent = {did: _latent_paths(c, bar) for did, c in factory.latent_caches.items()}
    for did, cache in factory.latent_caches.items():
        paths = latent[did]
        present = len(existing_paths(cache.storage, paths, cache.prefix)) if paths else 0
        rows.append({"kind": "latents", "name": did, "datasets": [did],
                     "identity": cache.identity, "location": cache.describe(),
                     "present": present, "needed": len(paths)})
    plan = factory.plan
    assert plan is not None
    for key, text in factory.text_caches.items():
        users = [d for d in plan.datasets if d.id in factory.metadata
                 and getattr(plan.text_embeds_for(d), "id", None) == key]
        captions = sorted(set().union(*(dataset_captions(factory.metadata[d.id].index)
                                        for d in users), {""}))
        paths = [text.path(c) for c in captions]
        present = len(existing_paths(text.storage, paths, text.prefix))
        rows.append({"kind": "text", "name": text.name, "datasets": [d.id for d in users],
                     "identity": text.identity, "location": text.describe(),
                     "present": present, "needed": len(paths)})
    return rows


def run_series(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The build record and the per-step series of a metrics file: ``shares`` (step, dataset,
    share), ``targets`` (dataset, epoch_share), ``wait`` (step, wait_ms)."""
    build: dict[str, Any] | None = None
    steps: list[Mapping[str, Any]] = []
    for record in records:
        if record.get("kind") == "build":
            build = dict(record)
        elif record.get("kind") == "step":
            steps.append(record)
    stride = max(1, -(-len(steps) // MAX_RUN_POINTS))
    kept = steps[::stride] + ([steps[-1]] if steps and (len(steps) - 1) % stride else [])
    ids = [d["id"] for d in (build or {}).get("datasets", [])]
    shares = [{"step": r["step"], "dataset": did, "share": r["metrics"].get(f"data/{did}/share")}
              for r in kept for did in ids]
    wait = [{"step": r["step"], "wait_ms": r["metrics"].get("data/wait_ms_interval", 0.0)}
            for r in kept]
    targets = [{"dataset": d["id"], "epoch_share": d.get("epoch_share", d.get("target"))}
               for d in (build or {}).get("datasets", [])]
    return {"build": build, "steps": len(steps), "shares": shares, "targets": targets,
            "wait": wait}


def _dataset(factory: DataBackendFactory, did: str) -> dict[str, Any]:
    meta = factory.metadata[did]
    sampler = {s.dataset_id: s for s in factory.runtime.samplers}.get(did)
    global_batch = sampler.global_batch if sampler else \
        factory.options.train_batch_size * factory.world_size
    facts = index_facts(meta.index, global_batch=global_batch)
    return {"id": did, "storage": factory.storages[did].describe(),
            "global_batch": global_batch, "sampled": sampler is not None, **facts}


def collect_report(factory: DataBackendFactory, *, metrics: str | Path | None = None,
                   coverage: bool = True, title: str | None = None,
                   progress: bool | None = False) -> dict[str, Any]:
    """Everything the report shows for a built factory (and a run's metrics file);
    ``progress`` shows a bar while cache coverage is counted (None: when stderr is a tty)."""
    plan = factory.plan
    assert plan is not None, "build() first"
    nodes, edges = config_graph(plan)
    run = run_series(read_metrics(metrics)) if metrics else None
    build = (run or {}).get("build") or {
        "stages": factory.metrics.to_dict()["stages"],
        "total_seconds": factory.metrics.to_dict()["total_seconds"],
        "peak_rss_mb": factory.metrics.to_dict()["peak_rss_mb"], "source": "this report"}
    return {"title": title or f"databackend report: {plan.source or 'config'}",
            "datasets": [_dataset(factory, did) for did in factory.metadata],
            "caches": _coverage(factory, progress) if coverage else [], "graph": {"nodes": nodes,
                                                                        "edges": edges},
            "build": build, "run": run, "policy": factory.policy}


def summarise_datasets(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """One table row per dataset: id, samples, skipped, buckets, short / partial buckets,
    missing captions."""
    def count(d: Mapping[str, Any], status: str) -> int:
        """Buckets of ``d`` with ``status``."""
        return sum(b["status"] == status for b in d["buckets"])

    return [[str(d["id"]), f"{d['samples']:,}", f"{d['skipped']:,}", str(len(d["buckets"])),
             f"{count(d, 'short')} / {count(d, 'partial')}", f"{d['captions']['missing']:,}"]
            for d in rows]
