"""Bucket placement of probed image sizes, memoised per distinct size.

:func:`place` turns one probed ``(width, height)`` into a scan row: the skip code (too small,
aspect out of range, or 0), the original size, and the geometry of
:func:`databackend.geometry.compute_geometry` (target, intermediary, crop, downsample) with the
aspect bucket. Datasets repeat few sizes, so each worker process computes the geometry once per
distinct size and settings, and only random crops draw their own offsets per sample; every
64th reuse is checked against a full computation.
"""

from __future__ import annotations

import logging

from databackend import geometry as geometry_module
from databackend.geometry import GeometryParams
from databackend.metadata.index import REASON_CODES

__all__ = ["EMPTY_GEOMETRY", "Row", "failed_row", "place"]

log = logging.getLogger(__name__)

#: Geometry columns of a row without geometry (a skipped file).
EMPTY_GEOMETRY = (0, 0, 0, 0, 0, 0, -1, -1)
#: (code, original W, H, target W, H, intermediary W, H, crop top, left, down W, H), aspect.
Row = tuple[tuple[int, ...], float]

#: Per-process cache of placements by (params fingerprint, seed, W, H); see :func:`place`.
_MEMO: dict[tuple[str, int, int, int], tuple[Row, bool]] = {}
_MEMO_LIMIT, _CHECK_EVERY = 50_000, 64  # every 64th reuse is checked against compute_geometry
_memo_state = {"hits": 0, "ok": True}


def _reuse(cached: tuple[Row, bool], key: str, params: GeometryParams, seed: int) -> Row:
    """A cached placement for another key: random crops get this key's offsets."""
    row, fixed = cached
    if fixed:
        return row
    ints, aspect = row
    top, left = geometry_module.crop_offsets((ints[5], ints[6]), (ints[3], ints[4]),
                                             params.crop_style, seed=seed, key=key)
    return (*ints[:7], top, left, *ints[9:]), aspect


def _verified(row: Row, width: int, height: int, key: str, params: GeometryParams,
              seed: int) -> bool:
    """Compare a cached placement with a fresh one; a mismatch turns the cache off."""
    fresh = place(width, height, key, params, seed)
    if fresh != row:
        _memo_state["ok"] = False
        log.warning("placement cache disagrees with compute_geometry for %s (%s vs %s); "
                    "computing every placement from now on", key, row, fresh)
    return fresh == row


def place(width: int, height: int, key: str, params: GeometryParams, seed: int, *,
          memo: str | None = None) -> Row:
    """Filter and bucket one probed image: (code, sizes..., geometry...), aspect bucket.

    With ``memo`` (the params fingerprint), ``compute_geometry`` runs once per distinct size:
    later images of that size reuse it, and random crops only draw their offsets from the
    sample's own generator (spot-checked against a full computation every 64 uses).
    """
    slot = (memo, seed, width, height) if memo and _memo_state["ok"] else None
    cached = _MEMO.get(slot) if slot is not None else None
    if cached is not None:
        row = cached[0] if cached[1] else _reuse(cached, key, params, seed)
        hits = _memo_state["hits"] = _memo_state["hits"] + 1
        if hits % _CHECK_EVERY or _verified(row, width, height, key, params, seed):
            return row
        return place(width, height, key, params, seed)
    if geometry_module.filter_reason(width, height, params) is not None:
        return (REASON_CODES["too_small"], width, height, *EMPTY_GEOMETRY), 0.0
    geo = geometry_module.compute_geometry(width, height, params, seed=seed, key=key)
    code = REASON_CODES["aspect_out_of_range"] if geometry_module.aspect_out_of_range(geo, params) else 0
    down = geo.downsample_size or (-1, -1)
    row = ((code, width, height, *geo.target_size, *geo.intermediary_size,
            *geo.crop_coordinates, *down), geo.aspect_bucket)
    # no key can change a crop that is not random or has no slack
    fixed = params.crop_style not in ("random", "face") or geo.intermediary_size == geo.target_size
    random_aspect = params.crop and params.crop_aspect == "random"
    if slot is not None and not random_aspect:
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[slot] = (row, fixed)
    return row


def failed_row(reason: str) -> Row:
    """The row of a file that could not be probed, for ``reason``."""
    return (REASON_CODES[reason], -1, -1, *EMPTY_GEOMETRY), 0.0
