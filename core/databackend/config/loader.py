"""Loading a multidatabackend JSON file into a validated :class:`DataPlan`.

Steps: parse JSON (errors with line and column), skip ``disabled`` entries, fill ``{variables}``,
split each entry's keys between the core class of its ``dataset_type`` and its backend plugin's
``Config``, structure both strictly, run the semantic rules, check cross-references, and sort by
dependency. Every problem is collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from databackend.conditioning import config as conditioning_config
from databackend.conditioning.expand import expand_generators
from databackend.config import depsort, rules
from databackend.config.converter import make_converter, structure_errors
from databackend.config.keys import ALIASES, UNIMPLEMENTED_KEYS
from databackend.config.models import (
    BaseBackendConfig,
    ConditioningImageEmbedBackendConfig,
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
)
from databackend.config.plan import DataPlan
from databackend.config.variables import fill_variables
from databackend.errors import ConfigError
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry, missing_backend_message

__all__ = ["load_config", "parse_entries", "read_json"]

log = logging.getLogger(__name__)

KIND_CLASSES: dict[str, type[BaseBackendConfig]] = {
    **dict.fromkeys(ImageBackendConfig.KINDS, ImageBackendConfig),
    "text_embeds": TextEmbedBackendConfig,
    "image_embeds": ImageEmbedBackendConfig,
    "conditioning_image_embeds": ConditioningImageEmbedBackendConfig,
}
#: SimpleTuner dataset types that databackend does not handle yet.
UNSUPPORTED_KINDS = ("audio", "caption", "distillation_cache", "grounding")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; syntax errors become a ConfigError with line and column."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"line {exc.lineno}, column {exc.colno}: {exc.msg}"],
                          source=str(path)) from None


def _fields(cls: type[Any]) -> set[str]:
    return {f.name for f in attrs.fields(cls)} if attrs.has(cls) else set()


def _normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Apply aliases (canonical wins) and the conditioning_type rule."""
    entry: dict[str, Any] = {}
    for key, value in raw.items():
        canon = ALIASES.get(key, key)
        if canon != key and canon in raw:
            continue
        entry[canon] = value
    if entry.get("conditioning_type") and "dataset_type" not in entry:
        entry["dataset_type"] = "conditioning"
    entry.setdefault("dataset_type", "image")
    return entry


def _kind_class(entry: dict[str, Any], label: str) -> tuple[type[BaseBackendConfig] | None, str]:
    kind = entry["dataset_type"]
    if not isinstance(kind, str):
        return None, f"{label}: `dataset_type` must be a string; got {kind!r}"
    if kind in KIND_CLASSES:
        return KIND_CLASSES[kind], ""
    if kind in UNSUPPORTED_KINDS:
        return None, f"{label}: `dataset_type` {kind!r} is not supported by databackend yet"
    choices = [*KIND_CLASSES]
    return None, (f"{label}: `dataset_type` must be one of {', '.join(choices)}; got {kind!r}"
                  f"{rules.suggest(kind, choices)}")


def _split_keys(entry: dict[str, Any], core: set[str], plugin: set[str], label: str,
                problems: list[str], warnings: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    core_part: dict[str, Any] = {}
    plugin_part: dict[str, Any] = {}
    for key, value in entry.items():
        if key in plugin:
            plugin_part[key] = value
        elif key in core and key != "storage":
            core_part[key] = value
        elif key in UNIMPLEMENTED_KEYS:
            warnings.append(f"{label}: `{key}` is a SimpleTuner key that databackend does not "
                            "implement yet; it is ignored")
        else:
            problems.append(f"{label}: unknown key `{key}`"
                            f"{rules.suggest(key, (core | plugin) - {'storage'})}")
    return core_part, plugin_part


@functools.lru_cache(maxsize=1)
def _converter() -> Any:
    """One strict converter, built on first use (building one costs milliseconds)."""
    return make_converter()


def _structure(data: dict[str, Any], cls: type[Any], label: str, problems: list[str]) -> Any:
    """Structure strictly; on errors report them, then retry without the bad keys so the
    semantic rules can still check the rest (every problem is reported at once)."""
    conv = _converter()
    try:
        return conv.structure(data, cls)
    except Exception as exc:
        lines = structure_errors(exc)
    problems.extend(f"{label}: {line}" for line in lines)
    bad = {line.split("`")[1].split(".")[0] for line in lines if line.count("`") >= 2}
    fields = _fields(cls)
    if bad & {f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING}:
        return None
    try:
        return conv.structure({k: v for k, v in data.items() if k not in bad and k in fields},
                              cls)
    except Exception:
        return None


def _backend_config_class(entry: dict[str, Any], registry: PluginRegistry, label: str,
                          problems: list[str]) -> type[Any] | None:
    btype = entry.get("type")
    if not isinstance(btype, str) or not btype:
        problems.append(f"{label}: `type` is required (the storage backend, e.g. 'local'); "
                        f"installed: {', '.join(sorted(registry.backends)) or 'none'}")
        return None
    if btype not in registry.backends:
        problems.append(missing_backend_message(btype, str(entry.get("id", "?")),
                                                list(registry.backends)))
        return None
    return registry.backends[btype].Config


def parse_entry(raw: Any, index: int, registry: PluginRegistry, opts: FactoryOptions,
                warnings: list[str]) -> tuple[BaseBackendConfig | None, list[str]]:
    """Validate one (variable-filled) entry; returns the config (None when it could not be
    built even partially, e.g. no id) and its problems."""
    if not isinstance(raw, dict):
        return None, [f"entry #{index}: must be an object; got {type(raw).__name__}"]
    entry = _normalise(raw)
    ident = entry.get("id")
    label = f"dataset {ident!r}" if isinstance(ident, str) and ident else f"entry #{index}"
    problems: list[str] = []
    if not (isinstance(ident, str) and ident.strip()):
        problems.append(f"{label}: `id` is required and must be a non-empty string")
    kind_cls, why = _kind_class(entry, label)
    if why:
        problems.append(why)
    cfg_cls = _backend_config_class(entry, registry, label, problems)
    if kind_cls is None:
        return None, problems
    # Without the backend's plugin its keys cannot be checked: report only the missing plugin.
    plugin_keys = _fields(cfg_cls) if cfg_cls else set(entry) - _fields(kind_cls)
    core_part, plugin_part = _split_keys(entry, _fields(kind_cls), plugin_keys, label,
                                         problems, warnings)
    storage = _structure(plugin_part, cfg_cls, label, problems) if cfg_cls else None
    config = _structure({**core_part, "storage": None}, kind_cls, label, problems)
    if config is None:
        return None, problems
    config = attrs.evolve(config, storage=storage)
    problems += [f"{label}: {p}" for p in rules.check_dataset(config, opts)]
    return config, problems


def _variables(entry: Any, opts: FactoryOptions, extra: Mapping[str, str]) -> dict[str, str]:
    ident = entry.get("id") if isinstance(entry, dict) else None
    base = {"output_dir": opts.output_dir, "model_family": opts.model_family,
            "cache_dir": opts.cache_root}
    return {**base, **extra, "id": str(ident) if ident is not None else ""}


def parse_entries(raw: Any, registry: PluginRegistry, opts: FactoryOptions, *,
                  variables: Mapping[str, str] | None = None,
                  source: str | None = None) -> DataPlan:
    """Validate a decoded multidatabackend list; raise one ConfigError with every problem."""
    if not isinstance(raw, list):
        raise ConfigError([f"the config must be a JSON list of dataset objects; got "
                           f"{type(raw).__name__}"], source=source)
    problems, parsed = list(opts.problems()), []
    warnings: list[str] = []
    raw = expand_generators(raw, registry, opts, problems, warnings)  # conditioning blocks
    for index, item in enumerate(raw):
        if isinstance(item, dict) and (item.get("disabled") is True or item.get("disable") is True):
            continue
        label = f"dataset {item.get('id')!r}" if isinstance(item, dict) else f"entry #{index}"
        filled = fill_variables(item, _variables(item, opts, variables or {}), label, problems)
        config, found = parse_entry(filled, index, registry, opts, warnings)
        problems += found
        if config is not None:
            parsed.append(config)
    return _finish(parsed, problems, warnings, opts, source)


def _finish(parsed: list[BaseBackendConfig], problems: list[str], warnings: list[str],
            opts: FactoryOptions, source: str | None) -> DataPlan:
    if not parsed and not problems:
        problems.append("the config has no enabled entries")
    problems += rules.check_references(parsed)
    parsed, found = conditioning_config.finish(parsed)  # links, inheritance, rules
    problems += found
    ordered, cycle = depsort.sort_datasets(parsed)
    if cycle:
        problems.append(f"conditioning dependency cycle: {' -> '.join(cycle)}")
    if problems:
        raise ConfigError(problems, source=source)
    for w in warnings:
        log.warning("%s", w)
    return DataPlan(entries=tuple(ordered), options=opts, warnings=tuple(warnings), source=source)


def load_config(config: str | os.PathLike[str] | Sequence[Any], registry: PluginRegistry,
                options: FactoryOptions | None = None, *,
                variables: Mapping[str, str] | None = None) -> DataPlan:
    """Load and validate a config file (or an already-decoded list) into a :class:`DataPlan`."""
    opts = options or FactoryOptions()
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.exists():
            raise ConfigError([f"config file not found: {path}"])
        return parse_entries(read_json(path), registry, opts, variables=variables,
                             source=str(path))
    return parse_entries(list(config), registry, opts, variables=variables)
