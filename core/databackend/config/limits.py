"""Hardening rules: values that parse but would fail (or never finish) later.

``validate`` must report everything that would go wrong in a run, all at once. These checks
cover what types and the ordinary semantic rules let through: NaN and infinite numbers, absurd
sizes (``repeats`` 1e12, ``resolution`` 1e308, ``train_batch_size`` 1e19), dataset ids that
cannot name a folder, the geometry as the scan will build it, impossible size limits, and a
local dataset without ``instance_data_dir``. Each function returns problem lines, never raises.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from databackend.config.models import BaseBackendConfig, ImageBackendConfig
from databackend.options import FactoryOptions
from databackend.safepath import id_problem

__all__ = ["LIMITS", "check_id", "check_limits"]

#: Upper bounds of numeric keys; a larger value is a mistake (and would exhaust memory or
#: time). Pixel sizes are edges; area-mode sizes (megapixels) are checked against the square.
LIMITS: dict[str, float] = {
    "repeats": 100_000,
    "train_batch_size": 65_536,
    "write_batch_size": 1_000_000,
    "max_num_samples": 10**12,
    "resolution": 65_536,
    "minimum_image_size": 65_536,
    "maximum_image_size": 65_536,
    "target_downsample_size": 65_536,
    "aspect_bucket_alignment": 4_096,
    "aspect_bucket_rounding": 12,
    "probability": 1e9,
    "minimum_aspect_ratio": 1e4,
    "maximum_aspect_ratio": 1e4,
    "start_epoch": 10**9,
    "end_epoch": 10**9,
    "start_step": 10**15,
    "end_step": 10**15,
    "disable_after_epoch_step": 10**15,
}
#: Any other integer key must fit in a signed 64-bit integer.
_INT64 = 2**63 - 1


def check_id(ident: Any) -> list[str]:
    """A problem when a dataset id cannot safely name a cache or index folder."""
    if not isinstance(ident, str) or not ident:
        return []  # reported by the loader
    why = id_problem(ident)
    return [] if why is None else [f"`id` {ident!r} {why}; ids name cache and index folders, "
                                   "so they must be plain relative names"]


def _limit(name: str, value: float, dataset: BaseBackendConfig) -> float:
    limit = LIMITS.get(name)
    if limit is None:
        return _INT64 if isinstance(value, int) else math.inf
    area = getattr(dataset, "resolution_type", None) == "area"
    if area and name in ("resolution", "minimum_image_size", "maximum_image_size",
                         "target_downsample_size"):
        return limit * limit / 1e6
    return limit


def _numbers(obj: Any, dataset: BaseBackendConfig, prefix: str = "") -> list[str]:
    """NaN/inf and out-of-range numbers among an attrs object's fields."""
    out = []
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        key = f"{prefix}{field.name}"
        if isinstance(value, float) and not math.isfinite(value):
            out.append(f"`{key}` must be a finite number; got {value}")
        elif abs(value) > _limit(field.name, value, dataset):
            out.append(f"`{key}` is out of range: {value:g} (at most "
                       f"{_limit(field.name, value, dataset):g})")
    return out


def _buckets(d: ImageBackendConfig) -> list[str]:
    out = []
    for i, b in enumerate(d.crop_aspect_buckets or ()):
        values = b.values() if isinstance(b, dict) else [b]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                out.append(f"`crop_aspect_buckets[{i}]` must hold finite numbers; got {b!r}")
    return out


def _geometry(d: ImageBackendConfig, opts: FactoryOptions) -> list[str]:
    """The geometry exactly as the scan will build it (alignment, rounding, downsample...)."""
    from databackend.errors import ConfigError
    from databackend.metadata.params import geometry_params

    try:
        geometry_params(d, opts)
    except ConfigError as exc:
        return [p.split(": ", 1)[1] if p.startswith("dataset ") else p for p in exc.problems]
    out = []
    lo, hi = d.minimum_image_size, d.maximum_image_size
    if lo is not None and hi is not None and lo > 0 and hi > 0 and lo > hi:
        out.append(f"`minimum_image_size` ({lo:g}) is larger than `maximum_image_size` "
                   f"({hi:g}): no image can pass")
    return out


def _storage(d: BaseBackendConfig) -> list[str]:
    storage = d.storage
    if storage is None or not attrs.has(type(storage)):
        return []
    out = _numbers(storage, d)
    if isinstance(d, ImageBackendConfig) and "instance_data_dir" in attrs.fields_dict(
            type(storage)) and not storage.instance_data_dir:
        out.append("`instance_data_dir` is required (the folder holding the images)")
    return out


def _key_of(line: str) -> str:
    return line.split("`")[1] if line.count("`") >= 2 else line


def _conditioning(d: ImageBackendConfig) -> list[str]:
    value = d.conditioning_data
    ok = value is None or isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value))
    return [] if ok else [f"`conditioning_data` must be a dataset id or a list of ids; "
                          f"got {value!r}"]


def check_limits(entry: BaseBackendConfig, opts: FactoryOptions,
                 known: list[str] | None = None) -> list[str]:
    """Every hardening problem of one entry (``key: ...`` lines). Geometry problems about a
    key that ``known`` (problems found already) mentions are left out (no double report)."""
    out = check_id(entry.id) + _numbers(entry, entry) + _storage(entry)
    if isinstance(entry, ImageBackendConfig):
        out += _buckets(entry) + _conditioning(entry)
        if not out:  # NaN or absurd numbers would only be reported again, worded differently
            seen = {_key_of(line) for line in known or ()}
            out += [p for p in _geometry(entry, opts) if _key_of(p) not in seen]
    return list(dict.fromkeys(out))
