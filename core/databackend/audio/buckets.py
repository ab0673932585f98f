"""Duration buckets, duration filters and the crop window of each clip: pure functions.

SimpleTuner's bucket of a clip of ``d`` seconds with interval ``I``: ``m = floor(d / I)``,
``t = m * I`` when ``m > 0``, else ``t = d``; the key is ``f"{t}s"`` (whole numbers bare, else
up to two decimals): 77 s -> ``75s`` (I=3), 7.4 s -> ``6s`` (I=3), ``5s`` (I=2.5).

Fixed here: a clip shorter than ``I`` goes to the ``{I}s`` bucket (zero-padded to ``I`` at
cache time, its true length kept in the batch) instead of a bucket of its own, which
SimpleTuner then prunes or cannot batch; ``min_duration_seconds`` filters (SimpleTuner accepts
and ignores it).

Buckets are keyed ``(milliseconds, 1)`` for the runtime's sampler (integer pairs, like image
buckets); :func:`bucket_name` gives the SimpleTuner key.
"""

from __future__ import annotations

import math

from databackend.media.windows import Window, choose_window

__all__ = ["bucket_key", "bucket_name", "bucket_seconds", "crop_window", "filter_reason"]

_EPS = 1e-9


def bucket_seconds(duration: float, interval: float) -> float:
    """The bucket duration of a clip (see the module docstring; short clips -> ``interval``)."""
    if not duration > 0:
        raise ValueError(f"a clip needs a positive duration; got {duration}")
    m = math.floor(duration / interval + _EPS)
    return round(m * interval, 6) if m > 0 else round(float(interval), 6)


def bucket_name(seconds: float) -> str:
    """SimpleTuner's key: ``75s``, ``7.4s``, ``2.37s``."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.2f}".rstrip("0").rstrip(".") + "s"


def bucket_key(seconds: float) -> tuple[int, int]:
    """The runtime's bucket key of a bucket duration: ``(milliseconds, 1)``."""
    return (round(seconds * 1000), 1)


def filter_reason(duration: float, *, minimum: float | None, maximum: float | None) -> str | None:
    """``too_short`` / ``too_long`` / None for a clip of ``duration`` seconds."""
    if minimum is not None and duration < minimum - _EPS:
        return "too_short"
    if maximum is not None and duration > maximum + _EPS:
        return "too_long"
    return None


def crop_window(samples: int, target: int, mode: str, *, seed: int, key: str) -> Window:
    """The samples of a ``samples``-long clip that fill ``target`` samples (the shared
    :class:`~databackend.media.windows.Window`).

    A clip shorter than ``target`` gives a window of all its samples (``length < target``):
    the cache zero-pads it after them. Otherwise ``beginning`` starts at 0, ``end`` ends at
    the last sample, and ``random`` starts at a pure function of ``(seed, key)`` (``key`` is
    the sample's identity) through :func:`~databackend.media.windows.choose_window`, so every
    rank and every rerun cuts the same window.
    """
    if samples <= target:
        return Window(0, max(0, samples))
    if mode == "end":
        return Window(samples - target, target)
    shared = {"beginning": "start", "random": "random"}.get(mode)
    if shared is None:
        raise ValueError(f"unknown truncation_mode {mode!r}")
    window = choose_window(samples, target, mode=shared, seed=seed, key=key)
    assert window is not None  # it fits: samples > target
    return window
