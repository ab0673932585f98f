"""Dependency order: text-embed caches, image-embed caches, then datasets with each conditioning
dataset after its source. A cycle is an error naming the whole cycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from databackend.config.models import BaseBackendConfig, ImageBackendConfig

__all__ = ["dataset_edges", "sort_datasets"]


def dataset_edges(datasets: Sequence[ImageBackendConfig]) -> dict[str, list[str]]:
    """``id -> ids it must come after`` (conditioning after its source)."""
    ids = {d.id for d in datasets}
    after: dict[str, list[str]] = {d.id: [] for d in datasets}
    for d in datasets:
        for cond in d.conditioning_ids:
            if cond in ids and d.id not in after[cond]:
                after[cond].append(d.id)
        src = d.source_dataset_id
        if src and src in ids and src not in after[d.id]:
            after[d.id].append(src)
    return after


def _visit(node: str, after: Mapping[str, list[str]], state: dict[str, int],
           stack: list[str], out: list[str]) -> list[str] | None:
    """DFS; returns the cycle as a list of ids if one is found."""
    state[node] = 1
    stack.append(node)
    for dep in after[node]:
        if state.get(dep) == 1:
            return [*stack[stack.index(dep):], dep]
        if dep not in state:
            cycle = _visit(dep, after, state, stack, out)
            if cycle:
                return cycle
    stack.pop()
    state[node] = 2
    out.append(node)
    return None


def sort_datasets(entries: Sequence[BaseBackendConfig]) -> tuple[list[BaseBackendConfig],
                                                                 list[str] | None]:
    """Order entries for building; returns (ordered, cycle-or-None). Stable otherwise."""
    text = [e for e in entries if e.dataset_type == "text_embeds"]
    image = [e for e in entries if e.dataset_type in ("image_embeds", "conditioning_image_embeds")]
    data = [e for e in entries if isinstance(e, ImageBackendConfig)]
    after = dataset_edges(data)
    state: dict[str, int] = {}
    order: list[str] = []
    for d in data:
        if d.id not in state:
            cycle = _visit(d.id, after, state, [], order)
            if cycle:
                return list(entries), cycle
    by_id = {d.id: d for d in data}
    return [*text, *image, *(by_id[i] for i in order)], None
