"""Deterministic random streams keyed by explicit values, identical on every rank and process.

Python's ``hash()`` is salted per process, so names are hashed with BLAKE2 instead. Each stream is
a :class:`numpy.random.Generator` seeded from a :class:`numpy.random.SeedSequence` of integers,
which makes every draw a pure function of its key (for example ``(seed, "select", epoch,
step)``): no generator state has to be saved or agreed on between ranks.
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache

import numpy as np

__all__ = ["KeyedUniform", "generator", "stable_id", "uniform"]

_MASK = (1 << 63) - 1
_PAIR = struct.Struct("<2Q")
_UNIT = float(1 << 53)


@lru_cache(maxsize=4096)  # a pure function of its argument: dataset ids and stream names
def stable_id(text: str) -> int:
    """A process-independent 63-bit integer for ``text`` (BLAKE2b of its UTF-8 bytes)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK


def generator(seed: int, *key: int | str) -> np.random.Generator:
    """A fresh generator for ``(seed, *key)``; strings in ``key`` are hashed with :func:`stable_id`.

    Negative integers are folded into the non-negative range SeedSequence accepts.
    """
    entropy = [int(seed) & _MASK]
    entropy += [stable_id(k) if isinstance(k, str) else int(k) & _MASK for k in key]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def _words(seed: int, key: tuple[int | str, ...]) -> bytes:
    parts = [int(seed) & _MASK] + [stable_id(k) if isinstance(k, str) else int(k) & _MASK
                                   for k in key]
    return struct.pack(f"<{len(parts)}Q", *parts)


def _to_unit(data: bytes) -> float:
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 11) / _UNIT


def uniform(seed: int, *key: int | str) -> float:
    """A float in ``[0, 1)`` that is a pure function of ``(seed, *key)`` (cheaper than
    :func:`generator` when one number is needed, e.g. once per training step)."""
    return _to_unit(_words(seed, key))


class KeyedUniform:
    """:func:`uniform` with a fixed key prefix, hashed into bytes once: the per-step draws.

    ``KeyedUniform(seed, "select")(epoch, step) == uniform(seed, "select", epoch, step)``
    for integers ``epoch`` and ``step``.
    """

    def __init__(self, seed: int, *prefix: int | str) -> None:
        """Pack ``(seed, *prefix)`` once."""
        self._head = _words(seed, prefix)

    def __call__(self, a: int, b: int) -> float:
        """``uniform(seed, *prefix, a, b)``."""
        return _to_unit(self._head + _PAIR.pack(a & _MASK, b & _MASK))
