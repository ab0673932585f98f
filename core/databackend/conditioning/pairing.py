"""Pairing source samples with conditioning samples by relative path, once per scan.

Rules, tried in order for each source sample ``sub/a.jpg``:

1. the same relative path in the conditioning dataset (``sub/a.jpg``);
2. the same relative path with another extension (``sub/a.png``; several candidates such as
   ``sub/a.png`` and ``sub/a.webp`` leave the sample unpaired as ``ambiguous``);
3. SimpleTuner's flat layout: ``a.*`` at the conditioning root, but only when no other source
   sample has the stem ``a`` (otherwise ``ambiguous_flat``: the reference silently paired them
   all with one file).

Generated conditioning datasets pair each source sample with the content-addressed file its
generator wrote (:func:`databackend.conditioning.generate.output_path`).

Unpaired samples are counted by reason with examples, on both sides; they are never a crash.
The result is stored next to the source's index (``pairing-{conditioning id}.dbp``) with digests
of both listings, so a rescan that changed neither reuses it without matching again.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from databackend.metadata.index import IndexFormatError
from databackend.metadata.indexv1 import pack, unpack
from databackend.storage.base import StorageBackend

__all__ = ["Pairing", "compute_pairing", "load_or_pair", "pairing_lines", "unpair"]

log = logging.getLogger(__name__)

EXAMPLES = 5
_FORMAT = "databackend-pairing"


@attrs.frozen(kw_only=True, eq=False)
class Pairing:
    """Which conditioning row each source row uses (``rows[i]``, -1 when unpaired)."""

    source_id: str
    conditioning_id: str
    rows: np.ndarray
    unpaired: Mapping[str, int]  #: source samples without a pair, by reason
    examples: Mapping[str, list[str]]  #: up to 5 source paths per reason
    orphans: int  #: conditioning samples no source sample uses
    orphan_examples: list[str]
    seconds: float = 0.0
    reused: bool = False

    @property
    def paired(self) -> int:
        """Source samples with a conditioning sample."""
        return int((self.rows >= 0).sum())

    def to_dict(self) -> dict[str, Any]:
        """Counts and examples (JSON-ready)."""
        return {"source": self.source_id, "conditioning": self.conditioning_id,
                "paired": self.paired, "unpaired": dict(self.unpaired),
                "unpaired_examples": {k: list(v) for k, v in self.examples.items()},
                "orphans": self.orphans, "orphan_examples": list(self.orphan_examples),
                "seconds": round(self.seconds, 4), "reused": self.reused}


def _stem(path: str) -> str:
    return posixpath.splitext(path)[0]


class _Matcher:
    """Lookup tables over the conditioning listing."""

    def __init__(self, cond: Any, source_paths: Sequence[str]) -> None:
        self.exact = {p: k for k, p in enumerate(cond.paths)}
        self.by_stem: dict[str, list[int]] = {}
        for k, p in enumerate(cond.paths):
            self.by_stem.setdefault(_stem(p), []).append(k)
        skipped = cond.skipped
        self.skipped = {_stem(p): skipped.reason_of(k) for k, p in enumerate(skipped.paths)}
        self.source_stems = Counter(posixpath.basename(_stem(p)) for p in source_paths)

    def match(self, path: str) -> int | str:
        """The conditioning row of ``path``, or the reason it has none."""
        row = self.exact.get(path)
        if row is not None:
            return row
        stem = _stem(path)
        found = self.by_stem.get(stem, ())
        if len(found) == 1:
            return found[0]
        if found:
            return "ambiguous"
        if stem in self.skipped:
            return f"conditioning_{self.skipped[stem]}"
        base = posixpath.basename(stem)
        if base != stem:
            flat = self.by_stem.get(base, ())
            if flat and self.source_stems[base] > 1:
                return "ambiguous_flat"
            if len(flat) == 1:
                return flat[0]
            if base in self.skipped:
                return f"conditioning_{self.skipped[base]}"
        return "missing"


def compute_pairing(source_id: str, cond_id: str, source: Any, cond: Any, *,
                    expected: Callable[[int], str] | None = None) -> Pairing:
    """Pair every row of the ``source`` index with a row of the ``cond`` index (see the module
    doc); ``expected(i)`` gives generated datasets' output path of source row ``i``."""
    start = time.perf_counter()
    n = len(source.paths)
    rows = np.full(n, -1, dtype=np.int64)
    reasons: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    matcher = None if expected is not None else _Matcher(cond, source.paths)
    exact = {p: k for k, p in enumerate(cond.paths)} if expected is not None else {}
    for i, path in enumerate(source.paths):
        if matcher is not None:
            found: int | str = matcher.match(path)
        else:
            assert expected is not None
            found = exact.get(expected(i), "not_generated")
        if isinstance(found, str):
            reasons[found] += 1
            if reasons[found] <= EXAMPLES:
                examples.setdefault(found, []).append(path)
        else:
            rows[i] = found
    used = np.zeros(len(cond.paths), dtype=bool)
    used[rows[rows >= 0]] = True
    orphans = np.flatnonzero(~used)
    return Pairing(source_id=source_id, conditioning_id=cond_id, rows=rows,
                   unpaired=dict(reasons), examples=examples, orphans=len(orphans),
                   orphan_examples=[cond.paths[int(k)] for k in orphans[:EXAMPLES]],
                   seconds=time.perf_counter() - start)


def unpair(pairing: Pairing, failed: set[str], cond_paths: Sequence[str]) -> Pairing:
    """``pairing`` without the pairs whose conditioning path is in ``failed`` (counted as
    ``conditioning_unloadable``: the file passed the header scan but cannot be decoded)."""
    rows = pairing.rows.copy()
    lost = [i for i, r in enumerate(rows.tolist()) if r >= 0 and cond_paths[r] in failed]
    if not lost:
        return pairing
    rows[lost] = -1
    unpaired = {**pairing.unpaired, "conditioning_unloadable": len(lost)}
    examples = {**pairing.examples,
                "conditioning_unloadable": [cond_paths[int(pairing.rows[i])]
                                            for i in lost[:EXAMPLES]]}
    return attrs.evolve(pairing, rows=rows, unpaired=unpaired, examples=examples)


def listing_digest(index: Any) -> str:
    """What pairing depends on in one index: its paths, sizes and mtimes, and skipped paths."""
    h = hashlib.blake2b(digest_size=16)
    h.update("\0".join(index.paths).encode("utf-8", "surrogateescape"))
    h.update(np.ascontiguousarray(index.file_size).tobytes())
    h.update(np.ascontiguousarray(index.mtime).tobytes())
    h.update("\0".join(index.skipped.paths).encode("utf-8", "surrogateescape"))
    h.update(np.ascontiguousarray(index.skipped.reason).tobytes())
    return h.hexdigest()


def _load(storage: StorageBackend, key: str, digest: str, source_id: str, cond_id: str
          ) -> Pairing | None:
    try:
        header, arrays, _ = unpack(storage.read(key))
    except (FileNotFoundError, IndexFormatError):
        return None
    if header.get("format") != _FORMAT or header.get("digest") != digest:
        return None
    info = header["info"]
    return Pairing(source_id=source_id, conditioning_id=cond_id, rows=arrays["rows"].copy(),
                   unpaired=info["unpaired"], examples=info["examples"], orphans=info["orphans"],
                   orphan_examples=info["orphan_examples"], reused=True)


def load_or_pair(source_id: str, cond_id: str, source: Any, cond: Any, *,
                 storage: StorageBackend, salt: str = "", save: bool = True,
                 expected: Callable[[int], str] | None = None) -> Pairing:
    """The stored pairing when neither listing changed (nor ``salt``), else a fresh one,
    stored (when ``save``) for the next run."""
    start = time.perf_counter()
    digest = f"{listing_digest(source)}:{listing_digest(cond)}:{salt}"
    key = f"pairing-{cond_id}.dbp"
    found = _load(storage, key, digest, source_id, cond_id)
    if found is not None:
        return attrs.evolve(found, seconds=time.perf_counter() - start)
    pairing = compute_pairing(source_id, cond_id, source, cond, expected=expected)
    if save:
        info = {"unpaired": dict(pairing.unpaired), "examples": pairing.examples,
                "orphans": pairing.orphans, "orphan_examples": pairing.orphan_examples}
        storage.write(key, bytes(pack({"format": _FORMAT, "digest": digest, "info": info},
                                      {"rows": pairing.rows}, {})))
    return attrs.evolve(pairing, seconds=time.perf_counter() - start)


def pairing_lines(pairings: Sequence[Mapping[str, Any]]) -> list[str]:
    """Human-readable lines of :meth:`Pairing.to_dict` results (scan and run summaries)."""
    out = []
    for p in pairings:
        unpaired = ", ".join(f"{k} {v}" for k, v in sorted(p["unpaired"].items())) or "none"
        out.append(f"pairing {p['source']} <- {p['conditioning']}: {p['paired']} paired, "
                   f"unpaired: {unpaired}, unused conditioning: {p['orphans']}")
        for reason, paths in sorted(p["unpaired_examples"].items()):
            out.append(f"  {reason}: {', '.join(paths)}")
    return out
