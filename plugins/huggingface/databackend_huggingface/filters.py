"""Row filters: SimpleTuner's ``filter_func`` and the ``filter_function`` predicate.

Applied in this order, each removed row counted under its reason in the scan report:

* ``collection``: the ``collection_column`` (default ``collection``) must be one of the given
  values;
* ``quality``: every ``quality_thresholds`` entry ``name: minimum`` needs a value >= minimum. The
  values come from the struct column ``quality_column`` (default ``quality_assessment``) when
  the dataset has it, else from top-level columns of those names. A missing value fails;
* ``filter_function``: ``"module:function"`` is called with a dict of the row's columns (all but
  the image columns, so no image is read for it) and the row is kept when it returns truthy;
* ``min_size``: ``min_width`` / ``min_height`` against the sample's size (a composite tile's
  size for composite datasets); checked after the size is known.

Filters never change virtual paths: rows keep their position in the unfiltered split.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from databackend.pluginapi import DatabackendError
from databackend_huggingface.columns import column_array, numbers
from databackend_huggingface.config import FilterSettings

__all__ = ["FILTER_REASONS", "RowFilter"]

#: Reasons a filter removes a row, as counted in ``ScanReport.skipped``.
FILTER_REASONS = ("collection", "quality", "filter_function", "min_size")
_CODE = {r: k + 1 for k, r in enumerate(FILTER_REASONS)}


class RowFilter:
    """Evaluates the filters of one dataset on Arrow batches (see the module docstring).

    :param quality_struct: whether thresholds read fields of ``quality_column`` (else columns).
    :param exclude: the image columns, never handed to the predicate.
    """

    def __init__(self, settings: FilterSettings, *, dataset_id: str, quality_struct: bool,
                 predicate: Callable[[dict[str, Any]], Any] | None = None,
                 exclude: Collection[str] = ()) -> None:
        self.s, self.dataset_id, self.quality_struct = settings, dataset_id, quality_struct
        self.predicate, self.exclude = predicate, set(exclude)

    def quality_paths(self) -> list[str]:
        """Where each threshold's value lives (``quality_assessment.name`` or ``name``)."""
        prefix = f"{self.s.quality_column}." if self.quality_struct else ""
        return [f"{prefix}{name}" for name, _ in self.s.quality_thresholds]

    def needed(self) -> list[tuple[str, str]]:
        """``(config key, column)`` pairs the filters read, for the missing-column check."""
        out = []
        if self.s.collection is not None:
            out.append(("filter_func.collection", self.s.collection_column))
        out += [("filter_func.quality_thresholds", p) for p in self.quality_paths()]
        return out

    @property
    def reads_all_columns(self) -> bool:
        """Whether a batch needs every (non-image) column (the predicate sees them all)."""
        return self.predicate is not None

    def rows(self, table: pa.Table, row_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Per row: 0 when it passes, else the code of the first filter that removed it."""
        n = table.num_rows
        codes = np.zeros(n, np.int8)
        if self.s.collection is not None:
            values = column_array(table, self.s.collection_column)
            wanted = set(self.s.collection)
            cells = values.to_pylist() if values is not None else [None] * n
            out = np.fromiter((v is None or str(v) not in wanted for v in cells), np.bool_, n)
            codes[out] = _CODE["collection"]
        for path, (_, minimum) in zip(self.quality_paths(), self.s.quality_thresholds, strict=True):
            vals = numbers(column_array(table, path), n, fill=-np.inf)
            codes[(codes == 0) & ~(vals >= minimum)] = _CODE["quality"]
        if self.predicate is not None:
            self._predicate(table, row_ids, codes)
        return codes

    def _predicate(self, table: pa.Table, row_ids: Sequence[int] | np.ndarray,
                   codes: np.ndarray) -> None:
        alive = np.flatnonzero(codes == 0)
        if not len(alive):
            return
        cols = [c for c in table.column_names if c not in self.exclude]
        records = table.select(cols).take(pa.array(alive)).to_pylist()
        fn = self.predicate
        assert fn is not None
        for k, rec in zip(alive, records, strict=True):
            try:
                keep = fn(rec)
            except Exception as exc:
                raise DatabackendError(
                    f"dataset {self.dataset_id!r}: filter_function {self.s.function!r} raised "
                    f"on row {row_ids[int(k)]}: {type(exc).__name__}: {exc}") from exc
            if not keep:
                codes[k] = _CODE["filter_function"]

    def size_codes(self, width: np.ndarray, height: np.ndarray) -> np.ndarray:
        """``min_size`` codes for samples of the given sizes (0 when big enough)."""
        small = np.zeros(len(width), np.bool_)
        if self.s.min_width:
            small |= width < self.s.min_width
        if self.s.min_height:
            small |= height < self.s.min_height
        return np.where(small, _CODE["min_size"], 0).astype(np.int8)

    @staticmethod
    def reason(code: int) -> str:
        """The reason name of a code."""
        return FILTER_REASONS[code - 1]
