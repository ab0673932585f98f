"""Factory-level options: the settings SimpleTuner keeps as trainer arguments.

Datasets inherit these unless they set the key themselves. Settable from Python
(``FactoryOptions(seed=3)``), from a mapping (:meth:`FactoryOptions.from_mapping`), and from the
CLI (``--option seed=3``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from databackend.errors import ConfigError

__all__ = ["SAMPLING_METHODS", "SAMPLING_POLICIES", "SHORT_BUCKET_POLICIES", "FactoryOptions"]

SHORT_BUCKET_POLICIES = ("pad", "drop")
SAMPLING_METHODS = ("auto-weighting", "uniform")
#: sampling policies (databackend.runtime.mixture.POLICIES)
SAMPLING_POLICIES = ("exhaust", "mixture")
CONDITIONING_SAMPLING = ("random", "combined")


@attrs.frozen(kw_only=True)
class FactoryOptions:
    """Typed factory-wide defaults; every field may be overridden per dataset where it applies."""

    seed: int = 0
    train_batch_size: int = 1
    resolution: float = 1024
    resolution_type: str = "pixel_area"
    aspect_bucket_alignment: int = 64
    aspect_bucket_rounding: int = 2
    maximum_canvas_size: int | None = None
    output_dir: str = ".databackend_output"
    cache_dir: str | None = None
    model_family: str = "model"
    caption_strategy: str = "filename"
    sampling: str = "auto-weighting"
    short_bucket_policy: str = "pad"
    scan_workers: int = 0
    vae_cache_ondemand: bool = False
    compress_cache: bool = False
    # hardening: how long a rank waits for its peers (scan merge, stage barriers) before it
    # fails with an error naming them; it logs who it waits for every 30 s meanwhile.
    peer_timeout_s: float = 1800.0
    # hardening: images with more pixels are refused before the cache fill decodes them (a
    # counted failure naming the file), which bounds the fill's memory.
    max_image_pixels: int = 100_000_000
    # sampling policy (docs/runtime.md "Sampling policies"): "exhaust" draws every dataset
    # until its epoch is used up; "mixture" makes the weights long-run shares
    sampling_policy: str = "exhaust"
    mixture_steps_per_epoch: int | None = None
    #: several conditioning datasets per source: ``random`` (one per sample) or ``combined``
    conditioning_multidataset_sampling: str = "random"
    #: frames per second of video models (the reference's --framerate): video.num_frames
    #: defaults to framerate * 5
    framerate: int = 30
    # scale: processes probing a remote storage, each with io_concurrency threads (docs/scale.md)
    scan_remote_processes: int = 1
    # scale: `databackend cache --engine ray` (docs/scale.md; the command line's flags win):
    # GPUs per encoder actor, encoder actors, decode actors (0: 1 up to the cluster's CPUs),
    # share tasks of the caches outside the Ray Data pipeline
    ray_num_gpus: float = 0.0
    ray_encoders: int = 1
    ray_decoders: int = 0
    ray_shares: int = 2

    @property
    def cache_root(self) -> str:
        """Where indexes and default caches go: ``cache_dir`` or ``{output_dir}/cache``."""
        return self.cache_dir or os.path.join(self.output_dir, "cache")

    def problems(self) -> list[str]:
        """Every invalid value, one line each (empty when valid)."""
        out = []
        if self.resolution_type not in ("pixel", "area", "pixel_area"):
            out.append(f"option `resolution_type` must be pixel, area or pixel_area; "
                       f"got {self.resolution_type!r}")
        if self.train_batch_size < 1:
            out.append(f"option `train_batch_size` must be >= 1; got {self.train_batch_size}")
        if self.aspect_bucket_alignment < 1:
            out.append("option `aspect_bucket_alignment` must be >= 1")
        if not 0 < self.peer_timeout_s < float("inf"):
            out.append(f"option `peer_timeout_s` must be a positive number of seconds; "
                       f"got {self.peer_timeout_s}")
        if self.max_image_pixels < 1:
            out.append(f"option `max_image_pixels` must be >= 1; got {self.max_image_pixels}")
        if not 1 <= self.framerate <= 10_000:  # it sizes the default video.num_frames
            out.append(f"option `framerate` must be between 1 and 10000; got {self.framerate}")
        if self.short_bucket_policy not in SHORT_BUCKET_POLICIES:
            out.append(f"option `short_bucket_policy` must be one of {SHORT_BUCKET_POLICIES}; "
                       f"got {self.short_bucket_policy!r}")
        out += _policy_problems(self)
        out += _ray_problems(self)
        if self.conditioning_multidataset_sampling not in CONDITIONING_SAMPLING:
            out.append(f"option `conditioning_multidataset_sampling` must be one of "
                       f"{', '.join(CONDITIONING_SAMPLING)}; got "
                       f"{self.conditioning_multidataset_sampling!r}")
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: FactoryOptions | None = None
                     ) -> FactoryOptions:
        """Build options from ``name -> value`` (strings from the CLI are converted by type)."""
        base = base or cls()
        fields = {f.name: f for f in attrs.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError([f"unknown factory option `{k}`; known: {', '.join(fields)}"
                               for k in unknown])
        changes = {k: _coerce(k, v, getattr(base, k)) for k, v in values.items()}
        opts = attrs.evolve(base, **changes)
        if opts.problems():
            raise ConfigError(opts.problems())
        return opts


def _coerce(key: str, value: Any, current: Any) -> Any:
    """Convert a CLI string to the type of the option's current value."""
    if not isinstance(value, str) or isinstance(current, str):
        return value
    try:
        if isinstance(current, bool):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes")
        if isinstance(current, int) or (current is None and value.isdigit()):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except ValueError:
        raise ConfigError([f"option `{key}`: cannot read {value!r} as "
                           f"{type(current).__name__}"]) from None
    return value


def _ray_problems(opts: FactoryOptions) -> list[str]:
    """Problems with the ``ray_*`` options."""
    out = [f"option `{k}` must be >= {low}; got {getattr(opts, k)}"
           for k, low in (("ray_encoders", 1), ("ray_shares", 1), ("ray_decoders", 0))
           if getattr(opts, k) < low]
    if not 0 <= opts.ray_num_gpus < float("inf"):
        out.append(f"option `ray_num_gpus` must be >= 0; got {opts.ray_num_gpus}")
    return out


def _policy_problems(opts: FactoryOptions) -> list[str]:
    """Problems with ``sampling_policy`` and ``mixture_steps_per_epoch``."""
    out = []
    if opts.sampling_policy not in SAMPLING_POLICIES:
        out.append(f"option `sampling_policy` must be one of {SAMPLING_POLICIES}; "
                   f"got {opts.sampling_policy!r}")
    steps = opts.mixture_steps_per_epoch
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)
                              or not 1 <= steps <= 2**63 - 1):
        out.append(f"option `mixture_steps_per_epoch` must be a whole number >= 1; got {steps!r}")
    return out
