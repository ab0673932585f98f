"""``databackend cache --verify``: read and check every cache entry, repair the bad ones.

A plain ``databackend cache`` run only checks that each entry *exists* (fast: one listing);
entries are verified when they are read. :func:`verify_plan` reads every entry of every
latent and text cache of a plan, checks its checksum, format and key, and counts it as intact,
missing or bad. With ``repair`` (and encoders) bad entries are removed and the ordinary fill
(:func:`~databackend.caches.precompute.precompute_plan`) encodes them again, so the report
says how many were repaired. Without encoders nothing is removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from databackend.caches.base import read_entries
from databackend.caches.precompute import dataset_captions, open_metadata, precompute_plan
from databackend.caches.stores import open_latent_cache, open_text_cache_entry

if TYPE_CHECKING:
    from databackend.caches.encoders import ImageEncoder, TextEncoder
    from databackend.config.plan import DataPlan
    from databackend.context import BuildContext
    from databackend.storage.base import StorageBackend

__all__ = ["VerifyResult", "check_entries", "verify_plan"]

log = logging.getLogger(__name__)
_CHUNK = 256


@attrs.define(kw_only=True)
class VerifyResult:
    """What verifying one cache found: entries ``checked``, ``intact``, ``missing`` and
    ``bad`` (with the first reasons in ``problems``), and how many were ``repaired``."""

    kind: str
    name: str
    location: str
    checked: int = 0
    intact: int = 0
    missing: int = 0
    bad: int = 0
    repaired: int = 0
    problems: list[tuple[str, str]] = attrs.field(factory=list)

    def line(self) -> str:
        """One summary line for the CLI."""
        fixed = f", {self.repaired} repaired" if self.repaired else ""
        return (f"{self.kind:7} {self.name}: {self.checked} checked, {self.intact} intact, "
                f"{self.missing} missing, {self.bad} bad{fixed}  [{self.location}]")


def check_entries(result: VerifyResult, storage: StorageBackend, paths: Sequence[str],
                  keys: Sequence[str], *, remove: bool) -> None:
    """Read and check ``paths`` (expected ``keys``); count them into ``result``; with
    ``remove``, delete the bad ones so the next fill re-encodes them."""
    for lo in range(0, len(paths), _CHUNK):
        part = paths[lo:lo + _CHUNK]
        for path, found in zip(part, read_entries(storage, part, keys[lo:lo + _CHUNK]),
                               strict=True):
            result.checked += 1
            if found is None:
                result.missing += 1
            elif isinstance(found, str):
                result.bad += 1
                if len(result.problems) < 20:
                    result.problems.append((path, found))
                log.warning("cache %s: bad entry %s: %s", result.name, path, found)
                if remove:
                    storage.delete(path)
            else:
                result.intact += 1


def _verify_latents(plan: DataPlan, context: BuildContext, metas: dict[str, Any],
                    encoder: Any, remove: bool) -> list[VerifyResult]:
    out = []
    for dataset in plan.datasets:
        if dataset.disabled:
            continue
        cache = open_latent_cache(plan, dataset, metas[dataset.id], context, encoder)
        indices = cache.all_indices()
        result = VerifyResult(kind="latents", name=dataset.id, location=cache.describe())
        check_entries(result, cache.storage, [cache.path(i) for i in indices],
                      [cache.key(i) for i in indices], remove=remove)
        out.append(result)
    return out


def _verify_texts(plan: DataPlan, context: BuildContext, metas: dict[str, Any],
                  text_encoder: Any, remove: bool) -> list[VerifyResult]:
    groups: dict[str | None, tuple[Any, set[str]]] = {}
    for dataset in plan.datasets:
        if dataset.disabled:
            continue
        entry = plan.text_embeds_for(dataset)
        _, captions = groups.setdefault(entry.id if entry else None, (entry, {""}))
        captions.update(dataset_captions(metas[dataset.id].index))
    out = []
    for entry, captions in groups.values():
        cache = open_text_cache_entry(entry, context, text_encoder)
        ordered = sorted(captions)
        result = VerifyResult(kind="text", name=cache.name, location=cache.describe())
        check_entries(result, cache.storage, [cache.path(c) for c in ordered],
                      [cache.key(c) for c in ordered], remove=remove)
        out.append(result)
    return out


def verify_plan(plan: DataPlan, context: BuildContext, *, text_encoder: TextEncoder | None,
                image_encoder: ImageEncoder | None, repair: bool = True,
                progress: bool | None = None, **fill: Any) -> list[VerifyResult]:
    """Verify every entry of every cache of ``plan``; with ``repair`` and both encoders, bad
    entries are removed and encoded again (``fill``: extra :func:`precompute_plan` options).
    Keys depend on the encoders' identities: the caches of a missing encoder are not checked,
    and nothing is removed unless both are given."""
    metas = {d.id: open_metadata(d, context, progress=progress)
             for d in plan.datasets if not d.disabled}
    remove = repair and text_encoder is not None and image_encoder is not None
    results = _verify_latents(plan, context, metas, image_encoder, remove) \
        if image_encoder is not None else []
    if text_encoder is not None:
        results += _verify_texts(plan, context, metas, text_encoder, remove)
    if remove and any(r.bad for r in results):
        assert text_encoder is not None and image_encoder is not None
        runs = precompute_plan(plan, context, text_encoder=text_encoder,
                               image_encoder=image_encoder, metadata=metas, progress=progress,
                               include_ondemand=True, **fill)
        encoded = {(r.kind, r.name): r.report.encoded for r in runs}
        for r in results:
            r.repaired = min(r.bad, encoded.get((r.kind, r.name), 0))
    return results
