"""Captions from dataset columns.

Per sample (a row, or one tile of a composite row):

1. every caption column (``caption_column``; a name, a dotted path into a struct column, or a
   list of them) gives its cell's caption(s); a column name may contain ``<tile>``, replaced by
   the tile index (``description.description_<tile>`` for side-by-side pairs);
2. with several columns, **one** column is chosen per sample among those with a non-empty cell,
   by a hash of ``(seed, dataset id, row, tile)``: deterministic across runs and ranks, and
   different from sample to sample;
3. when all are empty: ``fallback_caption_column``, then ``description_column`` (a struct cell
   gives its ``main_subject``, ``description`` and ``text`` joined);
4. a cell holding a list keeps every string as a caption (the runtime picks one per step).

Then ``caption_strategy`` ``instanceprompt`` / ``only_instance_prompt`` replace the captions by
``instance_prompt`` and ``prepend_instance_prompt`` prefixes it, as for every other dataset. A
sample left without a caption is skipped as ``no_caption``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pyarrow as pa

from databackend.pluginapi import CaptionSettings
from databackend_huggingface.columns import caption_cells, column_array
from databackend_huggingface.config import HFSettings

__all__ = ["CaptionPicker", "Captions"]

Captions = tuple[str, ...]


def _pick(seed: int, dataset_id: str, row: int, tile: int | None, n: int) -> int:
    digest = hashlib.blake2b(f"{seed}|{dataset_id}|{row}|{tile}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") % n


class CaptionPicker:
    """Captions of the samples of one batch (see the module docstring)."""

    def __init__(self, settings: HFSettings, caption: CaptionSettings, dataset_id: str,
                 seed: int) -> None:
        """``caption``: the dataset's caption strategy and instance-prompt switches."""
        self.settings, self.caption, self.dataset_id, self.seed = settings, caption, dataset_id, seed

    @property
    def from_columns(self) -> bool:
        """Whether captions are read from the dataset (not only the instance prompt)."""
        c = self.caption
        return not (c.only_instance_prompt or c.strategy == "instanceprompt")

    def columns(self, tile: int | None) -> list[str]:
        """The caption columns for ``tile`` (``<tile>`` filled in)."""
        t = 0 if tile is None else tile
        return [c.replace("<tile>", str(t)) for c in self.settings.caption_columns]

    def all_columns(self, tiles: Sequence[int | None]) -> list[tuple[str, str]]:
        """``(config key, column)`` of every column a scan reads, for the missing-column check."""
        if not self.from_columns:
            return []
        s = self.settings
        out = [("caption_column", c) for t in tiles for c in self.columns(t)]
        out += [(k, v) for k, v in (("fallback_caption_column", s.fallback_caption_column),
                                    ("description_column", s.description_column)) if v]
        return list(dict.fromkeys(out))

    def raw(self, table: pa.Table, rows: Sequence[int], tile: int | None) -> list[Captions]:
        """Captions of each row of ``table`` (``rows`` are their row numbers) for ``tile``."""
        n = len(rows)
        cells = [caption_cells(column_array(table, c), n) for c in self.columns(tile)]
        s = self.settings
        fallbacks = [caption_cells(column_array(table, c), n)
                     for c in (s.fallback_caption_column, s.description_column) if c]
        out: list[Captions] = []
        for k, row in enumerate(rows):
            found = [col[k] for col in cells if col[k]]
            if len(found) > 1:
                caps = found[_pick(self.seed, self.dataset_id, int(row), tile, len(found))]
            elif found:
                caps = found[0]
            else:
                caps = next((f[k] for f in fallbacks if f[k]), ())
            out.append(caps)
        return out

    def finish(self, caps: Captions) -> Captions | None:
        """Apply the instance-prompt switches; None when the sample has no caption."""
        c = self.caption
        if c.only_instance_prompt or c.strategy == "instanceprompt":
            return (c.instance_prompt,) if c.instance_prompt else None
        if not caps:
            return None
        if c.prepend_instance_prompt and c.instance_prompt:
            return tuple(f"{c.instance_prompt} {cap}" for cap in caps)
        return caps

    def batch(self, table: pa.Table, rows: Sequence[int], tile: int | None
              ) -> list[Captions | None]:
        """Final captions of each row for ``tile`` (None: no caption)."""
        if not self.from_columns:
            return [self.finish(()) for _ in rows]
        return [self.finish(c) for c in self.raw(table, rows, tile)]
