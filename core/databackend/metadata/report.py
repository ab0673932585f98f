"""What a scan did: counts, skipped files by reason, and the bucket table after the policy.

The bucket table follows the runtime sampler (``runtime/sampler.py``): each pass over the data
(``repeats + 1`` of them) cuts every bucket into batches of the global batch size
(``train_batch_size x world_size``); a partial last batch is completed by repetition
(``pad``) or left out (``drop``). A bucket is *short* when
``count x (repeats + 1) < batch`` (SimpleTuner's pruning rule); with ``drop`` a bucket smaller
than one batch yields nothing, and the table, the report and a counted warning say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

if TYPE_CHECKING:
    from databackend.metadata.index import DatasetIndex

__all__ = ["BucketRow", "ProgressBar", "ScanReport", "bucket_table", "drop_warning",
           "effective_buckets"]

COUNT_KEYS = ("listed", "not_selected", "new", "changed", "unchanged", "removed", "probed",
              "rederived", "captioned", "kept", "skipped", "deleted")


@attrs.frozen(kw_only=True)
class BucketRow:
    """One bucket: its target size, aspect, size and what the short-bucket policy does to it.

    ``padded``/``dropped`` are the slots added or samples left out per pass; ``batches`` counts
    the batches per epoch (all passes) after the policy.
    """

    target: tuple[int, int]
    aspect: float
    count: int
    batch_size: int
    repeats: int
    policy: str
    batches: int
    padded: int
    dropped: int

    @property
    def short(self) -> bool:
        """Fewer samples per epoch than one batch (SimpleTuner would prune it)."""
        return self.count * (self.repeats + 1) < self.batch_size

    @property
    def action(self) -> str:
        """``ok``, ``pad +k`` or ``drop -k`` (per pass)."""
        if self.padded:
            return f"pad +{self.padded}"
        if self.dropped:
            return f"drop -{self.dropped}"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"bucket": f"{self.target[0]}x{self.target[1]}", "target": list(self.target),
                "aspect": self.aspect, "count": self.count, "batches": self.batches,
                "short": self.short, "action": self.action, "padded": self.padded,
                "dropped": self.dropped}


def bucket_table(buckets: Mapping[tuple[int, int], np.ndarray], *, batch_size: int,
                 repeats: int = 0, policy: str = "pad", world_size: int = 1,
                 rounding: int = 2) -> list[BucketRow]:
    """Rows for ``buckets`` (``index.buckets()``) under a batch size and short-bucket policy."""
    batch = max(1, batch_size) * max(1, world_size)
    rows = []
    for (w, h), members in sorted(buckets.items()):
        count = len(members)
        full, rem = divmod(count, batch)
        pad = policy == "pad" and rem > 0
        rows.append(BucketRow(target=(w, h), aspect=round(w / h, rounding), count=count,
                              batch_size=batch, repeats=repeats, policy=policy,
                              batches=(full + (1 if pad else 0)) * (repeats + 1),
                              padded=(batch - rem) if pad else 0,
                              dropped=rem if policy == "drop" else 0))
    return rows


def effective_buckets(buckets: Mapping[tuple[int, int], np.ndarray], *, batch_size: int,
                      repeats: int = 0, policy: str = "pad", world_size: int = 1
                      ) -> dict[tuple[int, int], np.ndarray]:
    """The buckets that yield batches after the policy (``drop`` removes those smaller than
    one batch; ``pad`` keeps all). Sample indices are unchanged."""
    rows = bucket_table(buckets, batch_size=batch_size, repeats=repeats, policy=policy,
                        world_size=world_size)
    return {r.target: buckets[r.target] for r in rows if r.batches > 0}


def drop_warning(rows: list[BucketRow]) -> str | None:
    """The warning for buckets that lose samples to ``drop`` (None when none do)."""
    dropped = [b for b in rows if b.dropped]
    if not dropped:
        return None
    return (f"{len(dropped)} bucket(s) lose {sum(b.dropped for b in dropped)} sample(s) per "
            f"pass to short_bucket_policy 'drop' (batch {dropped[0].batch_size}): "
            + ", ".join(f"{b.target[0]}x{b.target[1]} -{b.dropped}" for b in dropped))


@attrs.define(kw_only=True)
class ScanReport:
    """The outcome of one scan of one dataset.

    ``counts`` keys: listed (image files found), not_selected (left out by max_num_samples),
    new, changed, unchanged, removed (gone since the last scan), probed (headers read this run),
    rederived (geometry recomputed from stored sizes), captioned (captions looked up), kept,
    skipped, deleted. ``skipped`` maps each reason to its count over the whole dataset,
    ``examples`` gives a few paths per reason.
    """

    dataset_id: str
    counts: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(COUNT_KEYS, 0))
    skipped: dict[str, int] = attrs.Factory(dict)
    examples: dict[str, list[str]] = attrs.Factory(dict)
    deleted: dict[str, int] = attrs.Factory(dict)
    buckets: list[BucketRow] = attrs.Factory(list)
    elapsed: float = 0.0
    params_fingerprint: str = ""
    index_location: str = ""
    source: str = "scan"  # "scan", "persisted" (skip_file_discovery) or "rank-merge"
    warnings: list[str] = attrs.Factory(list)

    def describe_index(self, index: DatasetIndex, buckets: list[BucketRow]) -> str | None:
        """Take the kept/skipped counts, reasons, examples and buckets of ``index``; returns
        the short-bucket warning it added, if any."""
        self.counts["kept"], self.counts["skipped"] = len(index), len(index.skipped)
        self.skipped, self.examples = index.skipped.counts(), index.skipped.examples()
        self.buckets = buckets
        warning = drop_warning(buckets)
        if warning:
            self.warnings.append(warning)
        return warning

    @property
    def rate(self) -> float:
        """Files handled per second (listed, or probed when nothing was listed)."""
        done = self.counts.get("listed") or self.counts.get("probed", 0)
        return done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def short_buckets(self) -> list[BucketRow]:
        """Buckets the policy pads or drops."""
        return [b for b in self.buckets if b.padded or b.dropped]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``databackend scan --json``)."""
        return {"dataset": self.dataset_id, "counts": dict(self.counts),
                "skipped": dict(self.skipped), "examples": dict(self.examples),
                "deleted": dict(self.deleted), "buckets": [b.to_dict() for b in self.buckets],
                "elapsed_s": round(self.elapsed, 4), "rate_per_s": round(self.rate, 1),
                "params_fingerprint": self.params_fingerprint,
                "index_location": self.index_location, "source": self.source,
                "warnings": list(self.warnings)}

    def format_table(self) -> str:
        """A plain-text rendering: summary line, bucket table, skipped files by reason."""
        c = self.counts
        lines = [f"dataset {self.dataset_id!r}: {c['kept']} kept, {c['skipped']} skipped, "
                 f"{c['listed']} listed ({c['new']} new, {c['changed']} changed, "
                 f"{c['removed']} removed, {c['probed']} probed) in {self.elapsed:.2f}s"
                 f" ({self.rate:,.0f} files/s)"]
        if c.get("not_selected"):
            lines.append(f"  max_num_samples left out {c['not_selected']} file(s)")
        lines += _table(["bucket", "aspect", "count", "batches", "policy"],
                        [[f"{b.target[0]}x{b.target[1]}", f"{b.aspect:g}", str(b.count),
                          str(b.batches), b.action + (" (short)" if b.short else "")]
                         for b in self.buckets]) if self.buckets else ["  (no buckets)"]
        for reason, count in sorted(self.skipped.items()):
            sample = ", ".join(self.examples.get(reason, [])[:3])
            lines.append(f"  skipped {reason}: {count}" + (f"  e.g. {sample}" if sample else ""))
        lines += [f"  deleted {r}: {n}" for r, n in sorted(self.deleted.items())]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), *(fmt.format(*r) for r in rows)]


class ProgressBar:
    """A tqdm bar created on first use (after the worker pool forked) and only when enabled."""

    def __init__(self, enabled: bool, desc: str) -> None:
        """``enabled``: show it (the caller checks for a tty)."""
        self.enabled, self.desc = enabled, desc
        self.total: int | None = None
        self._bar: Any = None

    def set_total(self, total: int) -> None:
        """The number of files once it is known (the listing may still be running before)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int) -> None:
        """Advance by ``n`` files."""
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit="img", leave=False)
        self._bar.update(n)

    def close(self) -> None:
        """Close the bar if it was shown."""
        if self._bar is not None:
            self._bar.close()
