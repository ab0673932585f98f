"""Generator blocks (``"conditioning": {...}`` or a list of them) become conditioning datasets.

Each spec ``{"type": "canny", "low_threshold": 100, ...}`` on source ``src`` adds an entry
``{src}_conditioning_{type}`` (``_2``, ``_3``... when a type repeats) of ``dataset_type``
conditioning, stored in a local folder (``instance_data_dir`` of the spec, else
``{cache_root}/conditioning_data/{id}``), with ``source_dataset_id: src``,
``conditioning_type`` from the spec (default ``reference_strict``) and ``auto_generated``. The
source's ``conditioning_data`` gets the new ids appended. Parameters are the spec's other keys;
a ``params`` object is accepted as an alias of them (a key given both ways is an error).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from databackend.conditioning.generator import ConditioningGenerator, generator_classes
from databackend.config.rules import suggest
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry
from databackend.safepath import id_problem

__all__ = ["SPEC_KEYS", "expand_generators", "spec_captions", "split_spec"]

#: Keys of a generator spec that are not generator parameters.
SPEC_KEYS = frozenset({"type", "conditioning_type", "captions", "caption_strategy",
                       "instance_data_dir", "id", "seed", "conditioning_output", "params"})


def split_spec(spec: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The parameters of a spec (top-level keys merged with ``params``) and problems."""
    top = {k: v for k, v in spec.items() if k not in SPEC_KEYS}
    nested = spec.get("params") or {}
    if not isinstance(nested, Mapping):
        return top, [f"`params` must be an object; got {type(nested).__name__}"]
    both = sorted(set(top) & set(nested))
    return {**top, **nested}, [f"parameter `{k}` is given both at the top level and in "
                               "`params`" for k in both]


def spec_captions(src: Mapping[str, Any], spec: Mapping[str, Any]
                  ) -> tuple[list[str], list[str]]:
    """A generated dataset's own captions (REFERENCE-MEDIA 2.3): a truthy ``captions`` (a
    string or a list of strings), else the source's ``instance_prompt`` when the spec sets a
    ``caption_strategy``; and notes (warnings; problems start with ``!``)."""
    value, strategy, notes = spec.get("captions"), spec.get("caption_strategy"), []
    if strategy not in (None, "instanceprompt"):
        notes.append(f"caption_strategy {strategy!r} of generated conditioning is used as "
                     "instanceprompt (its captions are `captions`)")
    if not value:
        prompt = src.get("instance_prompt") if strategy else None
        if strategy and not prompt:
            notes.append("caption_strategy without `captions` (and the source has no "
                         "instance_prompt): the source's captions are used")
        return ([prompt] if isinstance(prompt, str) and prompt else []), notes
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(c, str) and c for c in items):
        return [], [f"!`captions` must be a string or a list of non-empty strings; got {value!r}"]
    return list(items), notes


def _check_spec(spec: Any, classes: Mapping[str, type[ConditioningGenerator]]
                ) -> tuple[type[ConditioningGenerator] | None, dict[str, Any], list[str]]:
    if not isinstance(spec, Mapping):
        return None, {}, [f"must be an object; got {type(spec).__name__}"]
    kind = spec.get("type")
    if not isinstance(kind, str) or not kind:
        return None, {}, ["`type` (the generator) is required"]
    cls = classes.get(kind)
    if cls is None:
        names = sorted({c.name for c in classes.values()})
        return None, {}, [f"unknown generator type {kind!r}{suggest(kind, classes)}; "
                          f"installed: {', '.join(names) or 'none'}"]
    params, problems = split_spec(spec)
    problems += cls.problems(params)
    why = cls.unavailable()
    if why:
        problems.append(f"generator {cls.name!r} cannot run here: {why}")
    return cls, params, problems


def _entry(src: Mapping[str, Any], spec: Mapping[str, Any], cls: type[ConditioningGenerator],
           params: dict[str, Any], gid: str, opts: FactoryOptions) -> dict[str, Any]:
    folder = spec.get("instance_data_dir") or os.path.join(opts.cache_root, "conditioning_data",
                                                           gid)
    entry: dict[str, Any] = {
        "id": gid, "type": "local", "dataset_type": "conditioning", "instance_data_dir": folder,
        "conditioning_type": spec.get("conditioning_type") or "reference_strict",
        "source_dataset_id": src["id"], "auto_generated": True, "caption_strategy": "filename",
        "conditioning_config": {"type": cls.name, "params": params,
                                "seed": spec.get("seed")}}
    if spec.get("conditioning_output"):
        entry["conditioning_output"] = spec["conditioning_output"]
    return entry


def _expand_one(item: dict[str, Any], classes: Mapping[str, type[ConditioningGenerator]],
                opts: FactoryOptions, taken: set[str], problems: list[str],
                warnings: list[str]) -> list[dict[str, Any]]:
    block, label = item["conditioning"], f"dataset {item.get('id')!r}"
    if not isinstance(block, (Mapping, list)):
        problems.append(f"{label}: `conditioning` must be an object or a list of objects; got "
                        f"{type(block).__name__}")
        return []
    out = []
    for n, spec in enumerate([block] if isinstance(block, Mapping) else block):
        cls, params, found = _check_spec(spec, classes)
        problems += [f"{label}: conditioning[{n}]: {p}" for p in found]
        if cls is None or found:
            continue
        captions, notes = spec_captions(item, spec)
        problems += [f"{label}: conditioning[{n}]: {p}" for p in notes if p.startswith("!")]
        warnings += [f"{label}: conditioning[{n}]: {p}" for p in notes if not p.startswith("!")]
        gid = spec.get("id") or f"{item['id']}_conditioning_{cls.name}"
        if not isinstance(gid, str):
            problems.append(f"{label}: conditioning[{n}]: `id` must be a string; got "
                            f"{type(gid).__name__}")
            continue
        k = 2
        while gid in taken:
            gid, k = f"{item['id']}_conditioning_{cls.name}_{k}", k + 1
        taken.add(gid)
        why = _folder_problem(spec, gid)
        if why:
            problems.append(f"{label}: conditioning[{n}]: {why}")
            continue
        entry = _entry(item, spec, cls, params, gid, opts)
        if captions:  # its own captions (conditioning/captions.py)
            entry.update(caption_strategy="instanceprompt", instance_prompt=captions[0])
            entry["conditioning_config"]["captions"] = captions
        try:
            os.makedirs(entry["instance_data_dir"], exist_ok=True)
        except OSError as exc:
            problems.append(f"{label}: conditioning[{n}]: cannot create "
                            f"{entry['instance_data_dir']!r}: {exc.strerror or exc}")
            continue
        out.append(entry)
    return out


def _folder_problem(spec: Mapping[str, Any], gid: str) -> str | None:
    """Why a generated set's id or folder cannot be used (its id names its default folder
    under the cache, so it must be a safe relative name: databackend.safepath)."""
    why = id_problem(gid)
    if why is not None:
        return f"`id` {gid!r} {why}; ids name cache and index folders"
    folder = spec.get("instance_data_dir")
    if folder is not None and not isinstance(folder, str):
        return f"`instance_data_dir` must be a string; got {type(folder).__name__}"
    return None


def expand_generators(raw: list[Any], registry: PluginRegistry, opts: FactoryOptions,
                      problems: list[str], warnings: list[str]) -> list[Any]:
    """``raw`` with every generator block expanded (see the module doc); problems appended."""
    if not any(isinstance(i, dict) and i.get("conditioning") is not None for i in raw):
        return raw
    classes = generator_classes(registry.pm)
    taken = {str(i.get("id")) for i in raw if isinstance(i, dict)}
    out: list[Any] = []
    added: list[dict[str, Any]] = []
    for item in raw:
        enabled = isinstance(item, dict) and not (item.get("disabled") or item.get("disable"))
        if not enabled or item.get("conditioning") is None or not isinstance(item.get("id"), str):
            out.append(item)
            continue
        new = _expand_one(item, classes, opts, taken, problems, warnings)
        current = item.get("conditioning_data")
        have = [] if current is None else [current] if isinstance(current, str) else list(current)
        out.append({**item, "conditioning_data": have + [e["id"] for e in new]} if new else item)
        added += new
    return out + added
