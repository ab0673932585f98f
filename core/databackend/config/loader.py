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

from databackend.audio.config import AudioBackendConfig
from databackend.audio.s2v import inject_s2v_audio
from databackend.audio.settings import fill_keeping_lyrics_format
from databackend.conditioning import config as conditioning_config
from databackend.conditioning.expand import expand_generators
from databackend.config import capabilities, depsort, rules
from databackend.config.converter import make_converter, structure_errors
from databackend.config.models import (
    BaseBackendConfig,
    ConditioningImageEmbedBackendConfig,
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
)
from databackend.config.plan import DataPlan
from databackend.config.variables import mask_env_values
from databackend.errors import ConfigError
from databackend.options import FactoryOptions
from databackend.registry import PluginRegistry, missing_backend_message

__all__ = ["load_config", "parse_entries", "parse_json_text", "read_json"]

log = logging.getLogger(__name__)

KIND_CLASSES: dict[str, type[BaseBackendConfig]] = {
    **dict.fromkeys(ImageBackendConfig.KINDS, ImageBackendConfig),
    "text_embeds": TextEmbedBackendConfig,
    "image_embeds": ImageEmbedBackendConfig,
    **dict.fromkeys(AudioBackendConfig.KINDS, AudioBackendConfig),
    "conditioning_image_embeds": ConditioningImageEmbedBackendConfig,
}
#: SimpleTuner dataset types that databackend does not handle yet.
UNSUPPORTED_KINDS = ("caption", "distillation_cache", "grounding")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a key given twice in one object is an error, not last-wins."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    """Internal: a JSON object repeats ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_json_text(text: str, source: str | None = None) -> Any:
    """Decode a JSON document; syntax errors (with line and column), duplicate keys,
    pathological nesting and huge numbers become one :class:`ConfigError`."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"line {exc.lineno}, column {exc.colno}: {exc.msg}"],
                          source=source) from None
    except _DuplicateKey as exc:
        raise ConfigError([f"key {exc.key!r} appears twice in one object; each key may be "
                           "given once"], source=source) from None
    except RecursionError:
        raise ConfigError(["the JSON is nested too deeply"], source=source) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ConfigError([f"the JSON holds a value that cannot be read: {exc}"],
                          source=source) from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON config file; a folder, an unreadable, binary or non-UTF-8 file and every
    JSON problem become a :class:`ConfigError` naming the file."""
    source = str(path)
    if os.path.isdir(path):
        raise ConfigError(["the config path is a folder, not a JSON file"], source=source)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read the config: {exc.strerror or exc}"],
                          source=source) from None
    if b"\0" in raw:
        raise ConfigError(["the config is a binary file, not JSON text"], source=source)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"the config is not UTF-8 text (byte {exc.start})"],
                          source=source) from None
    return parse_json_text(text, source)


def _fields(cls: type[Any]) -> set[str]:
    return {f.name for f in attrs.fields(cls)} if attrs.has(cls) else set()


def _normalise(raw: Mapping[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    """Apply aliases (canonical wins) and the conditioning_type rule."""
    entry: dict[str, Any] = {}
    for key, value in raw.items():
        canon = aliases.get(key, key)
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
                problems: list[str], warnings: list[str], ignored: frozenset[str]
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    core_part: dict[str, Any] = {}
    plugin_part: dict[str, Any] = {}
    for key, value in entry.items():
        if key in plugin:
            plugin_part[key] = value
        elif key in core and key != "storage":
            core_part[key] = value
        elif key in ignored:
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
                        f"installed: {', '.join(sorted(registry.types)) or 'none'}")
        return None
    if btype not in registry.types:
        problems.append(missing_backend_message(btype, str(entry.get("id", "?")),
                                                list(registry.types)))
        return None
    return registry.types[btype].Config


def parse_entry(raw: Any, index: int, registry: PluginRegistry, opts: FactoryOptions,
                warnings: list[str]) -> tuple[BaseBackendConfig | None, list[str]]:
    """Validate one (variable-filled) entry; returns the config (None when it could not be
    built even partially, e.g. no id) and its problems."""
    if not isinstance(raw, dict):
        return None, [f"entry #{index}: must be an object; got {type(raw).__name__}"]
    entry = _normalise(raw, capabilities.aliases_for(raw.get("type"), registry))
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
                                         problems, warnings,
                                         capabilities.ignored_for(entry.get("type"), registry))
    storage = _structure(plugin_part, cfg_cls, label, problems) if cfg_cls else None
    config = _structure({**core_part, "storage": None}, kind_cls, label, problems)
    if config is None:
        return None, problems
    config = capabilities.apply_defaults(attrs.evolve(config, storage=storage), registry)
    problems += [f"{label}: {p}" for p in rules.check_dataset(
        config, opts, capabilities.choices(registry))]
    problems += [f"{label}: {p}" for p in capabilities.read_only_problems(config, registry)]
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
    disabled = 0
    raw = expand_generators(raw, registry, opts, problems, warnings)  # conditioning blocks
    raw = inject_s2v_audio(raw)  # video sets with an `audio` block get their audio set
    for index, item in enumerate(raw):
        if isinstance(item, dict) and (item.get("disabled") is True or item.get("disable") is True):
            disabled += 1
            continue
        label = f"dataset {item.get('id')!r}" if isinstance(item, dict) else f"entry #{index}"
        filled = fill_keeping_lyrics_format(item, _variables(item, opts, variables or {}),
                                            label, problems)
        config, found = parse_entry(filled, index, registry, opts, warnings)
        problems += found
        if config is not None:
            parsed.append(config)
    problems[:] = mask_env_values(problems, raw)
    if disabled and parsed and not any(isinstance(e, ImageBackendConfig) for e in parsed) \
            and not problems:
        problems.append(f"every dataset is disabled ({disabled} disabled entries); nothing to "
                        "train on")
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
    return DataPlan.resolved(tuple(ordered), opts, warnings=tuple(warnings), source=source)


def load_config(config: str | os.PathLike[str] | Sequence[Any], registry: PluginRegistry,
                options: FactoryOptions | None = None, *,
                variables: Mapping[str, str] | None = None) -> DataPlan:
    """Load and validate a config file (or an already-decoded list) into a :class:`DataPlan`."""
    opts = options or FactoryOptions()
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not os.path.exists(path):
            raise ConfigError([f"config file not found: {path}"])
        return parse_entries(read_json(path), registry, opts, variables=variables,
                             source=str(path))
    return parse_entries(list(config), registry, opts, variables=variables)
