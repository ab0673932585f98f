"""Seeded pseudorandom permutations of ``range(n)`` evaluated point-wise, with no table.

:class:`Permutation` is a balanced Feistel network over the smallest even-bit domain that holds
``n`` (at most ``4n``), restricted to ``range(n)`` by cycle walking: applying the network again
to a value that lands outside ``range(n)`` until it lands inside keeps the map a bijection. Any
position's image costs a few integer operations, so a sampler can draw the ``i``-th element of
an epoch's order without building the order: O(1) memory for any ``n``. Everything is uint64
NumPy arithmetic (wrapping, platform-independent), so every rank and process computes the same
permutation from the same key.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from databackend.runtime.seeding import stable_id

__all__ = ["Permutation", "derive_key"]

_ROUNDS = 4
_MASK = (1 << 64) - 1
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def derive_key(seed: int, *parts: int | str) -> int:
    """A 64-bit key that is a pure function of ``(seed, *parts)`` (strings hashed stably)."""
    words = [int(seed) & _MASK] + [stable_id(p) if isinstance(p, str) else int(p) & _MASK
                                   for p in parts]
    digest = hashlib.blake2b(struct.pack(f"<{len(words)}Q", *words), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijective avalanche on uint64)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    out: np.ndarray = z ^ (z >> _S31)
    return out


class Permutation:
    """A bijection of ``range(n)`` chosen by ``key``; ``perm[positions]`` maps an array."""

    def __init__(self, n: int, key: int) -> None:
        """``n`` >= 0 items; ``key`` any 64-bit integer (see :func:`derive_key`)."""
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())
        self._half = np.uint64((bits + 1) // 2)
        self._low = np.uint64((1 << int(self._half)) - 1)
        self._ints = [derive_key(key, r) for r in range(_ROUNDS)]
        self._keys = [np.uint64(k) for k in self._ints]

    def at(self, position: int) -> int:
        """The image of one position, in plain integers (a few microseconds)."""
        if not 0 <= position < self.n:
            raise IndexError(f"position {position} is outside range({self.n})")
        half, low, keys = int(self._half), int(self._low), self._ints
        y = position
        while True:
            left, right = y >> half, y & low
            for k in keys:
                z = right ^ k
                z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
                z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
                left, right = right, left ^ ((z ^ (z >> 31)) & low)
            y = (left << half) | right
            if y < self.n:
                return y

    def _network(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self._half, x & self._low
        for k in self._keys:
            left, right = right, left ^ (_mix(right ^ k) & self._low)
        return (left << self._half) | right

    def __getitem__(self, positions: np.ndarray | int) -> np.ndarray:
        """The images of ``positions`` (each in ``range(n)``) as int64."""
        given = np.asarray(positions, dtype=np.int64)
        x = given.reshape(-1)  # 1-d: NumPy wraps uint64 arrays silently, not scalars
        if x.size and (x.min() < 0 or x.max() >= self.n):
            raise IndexError(f"positions must lie in range({self.n})")
        y = self._network(x.astype(np.uint64))
        out = y >= np.uint64(self.n)
        while out.any():  # cycle walking: expected under 4 steps (the domain is < 4n)
            y[out] = self._network(y[out])
            out = y >= np.uint64(self.n)
        return y.astype(np.int64).reshape(given.shape)

    def __len__(self) -> int:
        return self.n
