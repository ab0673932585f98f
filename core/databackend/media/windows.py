"""Time windows: which stretch of a clip a sample trains on, as a pure function of its key.

A :class:`Window` is ``start``, ``length`` and ``stride`` in the clip's own units (video
frames; audio samples or any other step): it covers ``start, start + stride, ...,
start + (length - 1) * stride``. :func:`choose_window` places it inside ``total`` units:

* ``start``: at 0 (the reference: always the first frames);
* ``center``: in the middle;
* ``random``: uniform over every start that fits, drawn from BLAKE2b of ``f"{seed}:{key}"``,
  so the same sample gets the same window on every run, rank and resume.

The scan stores the chosen window per sample in the index, and caches key their entries on it.
"""

from __future__ import annotations

import hashlib

import attrs

__all__ = ["WINDOW_MODES", "Window", "choose_window", "keyed_unit", "span"]

#: Where a window may be placed.
WINDOW_MODES = ("start", "center", "random")


@attrs.frozen
class Window:
    """``length`` positions from ``start``, ``stride`` apart."""

    start: int
    length: int
    stride: int = 1

    @property
    def stop(self) -> int:
        """One past the last position covered."""
        return self.start + span(self.length, self.stride)

    def positions(self) -> range:
        """Every position in the window, in order."""
        return range(self.start, self.stop, self.stride)


def span(length: int, stride: int = 1) -> int:
    """Units a window of ``length`` positions ``stride`` apart covers."""
    return (length - 1) * stride + 1 if length > 0 else 0


def keyed_unit(seed: int, key: str, salt: str = "window") -> float:
    """A uniform number in ``[0, 1)`` that depends only on ``(seed, key, salt)``."""
    digest = hashlib.blake2b(f"{salt}:{seed}:{key}".encode("utf-8", "surrogateescape"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def choose_window(total: int, length: int, *, stride: int = 1, mode: str = "start",
                  seed: int = 0, key: str = "") -> Window | None:
    """The window of ``length`` positions ``stride`` apart in ``total`` units (see the module
    docstring); None when it does not fit."""
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1; got {length}, {stride}")
    if mode not in WINDOW_MODES:
        raise ValueError(f"window mode must be one of {', '.join(WINDOW_MODES)}; got {mode!r}")
    slack = total - span(length, stride)
    if slack < 0:
        return None
    if mode == "start":
        start = 0
    elif mode == "center":
        start = slack // 2
    else:
        start = min(slack, int(keyed_unit(seed, key) * (slack + 1)))
    return Window(start, length, stride)
