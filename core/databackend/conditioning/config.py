"""Conditioning links, settings inheritance and the conditioning/eval config rules.

* :func:`links` -- which conditioning datasets each source uses, in config order: the source's
  ``conditioning_data`` first, then conditioning datasets naming it as ``source_dataset_id``.
* :func:`synchronize` -- a conditioning dataset inherits its source's resolution settings
  (SimpleTuner's ``synchronize_conditioning_settings``); an explicit conflicting value is an
  error naming both datasets and the key. Runs at config time, before any scan.
* :func:`check` -- every conditioning and eval rule, as problem lines (reported all at once).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from databackend.config.models import BaseBackendConfig, ImageBackendConfig

__all__ = ["ALIGNED_TYPES", "OUTPUTS", "SYNC_KEYS", "check", "effective_type", "finish", "links",
           "output_of", "sources_of"]

#: Types that share the source sample's geometry (target, intermediary size and crop box).
ALIGNED_TYPES = frozenset({"controlnet", "mask", "reference_strict", "segmentation"})
#: What a conditioning dataset contributes to a batch.
OUTPUTS = ("latents", "pixels")
#: Keys a conditioning dataset inherits from its source.
SYNC_KEYS = ("resolution", "resolution_type", "maximum_image_size", "target_downsample_size",
             "minimum_image_size")
_PIXEL_TYPES = frozenset({"mask", "segmentation"})


def effective_type(d: ImageBackendConfig) -> str:
    """``conditioning_type``; an untyped hand-written set behaves as ``reference_loose`` (its
    own geometry), an untyped generated one as ``reference_strict``."""
    if d.conditioning_type:
        return d.conditioning_type
    return "reference_strict" if d.auto_generated else "reference_loose"


def output_of(d: ImageBackendConfig) -> str:
    """``conditioning_output``, by default pixels for mask/segmentation, latents otherwise."""
    if d.conditioning_output:
        return d.conditioning_output
    return "pixels" if effective_type(d) in _PIXEL_TYPES else "latents"


def links(datasets: Sequence[ImageBackendConfig]) -> dict[str, list[str]]:
    """``source id -> conditioning ids`` in config order (only existing conditioning sets)."""
    kinds = {d.id: d.dataset_type for d in datasets}
    out: dict[str, list[str]] = {}
    for d in datasets:
        if d.dataset_type == "conditioning":
            continue
        out[d.id] = [c for c in dict.fromkeys(d.conditioning_ids) if kinds.get(c) == "conditioning"]
    for d in datasets:
        src = d.source_dataset_id
        if d.dataset_type == "conditioning" and src in out and d.id not in out[src]:
            out[src].append(d.id)
    return {k: v for k, v in out.items() if v}


def sources_of(datasets: Sequence[ImageBackendConfig]) -> dict[str, list[str]]:
    """``conditioning id -> source ids`` (the inverse of :func:`links`)."""
    out: dict[str, list[str]] = {}
    for src, conds in links(datasets).items():
        for c in conds:
            out.setdefault(c, []).append(src)
    return out


def synchronize(datasets: Sequence[ImageBackendConfig]) -> tuple[list[ImageBackendConfig],
                                                                  list[str]]:
    """Copy :data:`SYNC_KEYS` from each source into its conditioning sets; conflicts are
    problems naming both datasets and the key."""
    by_id = {d.id: d for d in datasets}
    problems: list[str] = []
    changed: dict[str, ImageBackendConfig] = {}
    for cid, srcs in sources_of(datasets).items():
        cond, updates = by_id[cid], {}
        for key in SYNC_KEYS:
            values = {s: getattr(by_id[s], key) for s in srcs}
            distinct = set(values.values())
            if len(distinct) > 1:
                problems.append(f"conditioning dataset {cid!r} has sources with different "
                                f"`{key}`: " + ", ".join(f"{s!r}={v!r}" for s, v in values.items()))
                continue
            (value,) = distinct
            mine = getattr(cond, key)
            if mine is None:
                updates[key] = value
            elif mine != value:
                problems.append(f"dataset {cid!r}: `{key}` is {mine!r} but its source "
                                f"{srcs[0]!r} has {value!r}; a conditioning dataset inherits "
                                "its source's resolution settings (remove the key or make them "
                                "equal)")
        if updates:
            changed[cid] = attrs.evolve(cond, **updates)
    return [changed.get(d.id, d) for d in datasets], problems


def _type_rules(d: ImageBackendConfig, kinds: dict[str, str]) -> list[str]:
    out = []
    label = f"dataset {d.id!r}"
    if d.dataset_type != "conditioning":
        if d.conditioning_type:
            out.append(f"{label}: `conditioning_type` is only for conditioning datasets "
                       f"(dataset_type is {d.dataset_type!r})")
        if d.source_dataset_id and d.dataset_type != "audio":  # audio: its video (s2v)
            out.append(f"{label}: `source_dataset_id` is only for conditioning and audio "
                       f"datasets (dataset_type is {d.dataset_type!r})")
    else:
        if d.conditioning_ids:
            out.append(f"{label}: a conditioning dataset cannot have `conditioning_data` "
                       "(conditioning datasets are not chained)")
        if d.conditioning:
            out.append(f"{label}: a conditioning dataset cannot have a `conditioning` block")
        if d.source_dataset_id and kinds.get(d.source_dataset_id) == "conditioning":
            out.append(f"{label}: `source_dataset_id` names {d.source_dataset_id!r}, which is "
                       "a conditioning dataset (conditioning datasets are not chained)")
    if d.conditioning_output is not None and d.conditioning_output not in OUTPUTS:
        out.append(f"{label}: `conditioning_output` must be one of {', '.join(OUTPUTS)}; got "
                   f"{d.conditioning_output!r}")
    elif d.dataset_type == "conditioning" and output_of(d) == "pixels" and \
            effective_type(d) not in ALIGNED_TYPES:
        out.append(f"{label}: `conditioning_output: pixels` needs a pixel-aligned "
                   f"conditioning_type ({', '.join(sorted(ALIGNED_TYPES))}); "
                   f"{effective_type(d)!r} has its own geometry")
    return out


def _link_rules(d: ImageBackendConfig, kinds: dict[str, str],
                by_id: dict[str, ImageBackendConfig]) -> list[str]:
    out = []
    for c in d.conditioning_ids:
        if d.conditioning_ids.count(c) > 1:
            out.append(f"dataset {d.id!r}: `conditioning_data` lists {c!r} twice")
        if c in kinds and kinds[c] != "conditioning":
            out.append(f"dataset {d.id!r}: `conditioning_data` names {c!r}, which is a "
                       f"{kinds[c]} dataset, not a conditioning dataset")
        other = by_id.get(c)
        if other is not None and other.source_dataset_id not in (None, d.id):
            out.append(f"dataset {d.id!r}: `conditioning_data` names {c!r}, whose "
                       f"`source_dataset_id` is {other.source_dataset_id!r}")
    return out


def check(datasets: Sequence[ImageBackendConfig]) -> list[str]:
    """Every conditioning and eval problem (unknown ids and cycles are checked elsewhere)."""
    kinds = {d.id: d.dataset_type for d in datasets}
    by_id = {d.id: d for d in datasets}
    out: list[str] = []
    for d in datasets:
        out += _type_rules(d, kinds) + _link_rules(d, kinds, by_id)
    linked = sources_of(datasets)
    for d in datasets:
        if d.dataset_type == "conditioning" and d.id not in linked and \
                (d.source_dataset_id is None or d.source_dataset_id in kinds):
            out.append(f"dataset {d.id!r}: conditioning dataset with no source: set its "
                       "`source_dataset_id`, or name it in a dataset's `conditioning_data`")
    return list(dict.fromkeys(out))


def finish(entries: Sequence[BaseBackendConfig]) -> tuple[list[BaseBackendConfig], list[str]]:
    """The loader's conditioning step: rules, then settings inheritance."""
    from databackend.conditioning import image_embed_setup  # (import cycle)

    datasets = [e for e in entries if isinstance(e, ImageBackendConfig)]
    problems = check(datasets) + image_embed_setup.check(entries)
    synced, found = synchronize(datasets)
    by_id = {d.id: d for d in synced}
    return [by_id.get(e.id, e) if isinstance(e, ImageBackendConfig) else e
            for e in entries], problems + found
