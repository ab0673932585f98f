"""The keys of a ``csv`` dataset: the SimpleTuner names plus download and cache controls."""

from __future__ import annotations

import attrs

__all__ = ["GIB", "MIB", "CsvConfig"]

MIB = 1024 * 1024
GIB = 1024 * MIB


@attrs.frozen(kw_only=True)
class CsvConfig:
    """Keys of a ``csv`` dataset (the JSON keys next to ``"type": "csv"``).

    ``csv_file``, ``csv_url_column``, ``csv_caption_column`` and ``csv_cache_dir`` are the
    SimpleTuner keys; the others are databackend extras, documented in ``docs/csv.md``.
    """

    #: The CSV (``.csv``, ``.tsv``, optionally ``.gz``/``.bz2``/...): a local path, an
    #: ``http(s)://`` URL or any fsspec URL (``s3://``, ``gs://``, ``memory://``...).
    csv_file: str
    #: Folder for downloaded images (bounded, LRU) and the quarantine list.
    csv_cache_dir: str
    #: Column holding the image URL (``http(s)://``, a local path or an fsspec URL).
    csv_url_column: str = "url"
    #: Column holding the caption; None uses a column named ``caption`` when there is one.
    csv_caption_column: str | None = None
    #: Size limit of the download cache in bytes; least recently used images are evicted.
    csv_cache_max_bytes: int = 20 * GIB
    #: Seconds one HTTP attempt (connect, headers and the whole body, however slowly it
    #: arrives, redirects included) may take.
    csv_timeout: float = 30.0
    #: Extra attempts after a transient failure (timeout, connection error, 429, 5xx).
    csv_retries: int = 3
    #: First backoff delay in seconds; doubles per attempt, with random jitter (x0.5-1.5).
    csv_backoff_seconds: float = 0.5
    #: Concurrent downloads of ``read_many`` (and the metadata scan's pool size).
    csv_concurrency: int = 32
    #: Most concurrent connections to one host.
    csv_per_host_limit: int = 8
    #: Seconds a failed URL is skipped before a later read or scan tries it again.
    csv_quarantine_seconds: float = 24 * 3600.0
    #: Images larger than this many bytes are refused (and quarantined as ``too_large``).
    csv_max_image_bytes: int = 64 * MIB
    #: The HTTP ``User-Agent`` header.
    csv_user_agent: str = "databackend-csv/0.1"
    #: Allow URLs (and redirects) to loopback, private and link-local addresses. Off by
    #: default: a CSV from a stranger must not reach services inside your network.
    csv_allow_private_addresses: bool = False

    def problems(self) -> list[str]:
        """Value problems, one line each (shown by ``databackend validate``); never raises."""
        out = [f"`{key}` must not be empty" for key in ("csv_file", "csv_cache_dir",
                                                         "csv_url_column")
               if not str(getattr(self, key)).strip()]
        if self.csv_caption_column is not None and not self.csv_caption_column.strip():
            out.append("`csv_caption_column` must not be empty (leave it out for no captions)")
        if self.csv_caption_column == self.csv_url_column:
            out.append("`csv_caption_column` and `csv_url_column` name the same column "
                       f"{self.csv_url_column!r}")
        out += _at_least(self, csv_cache_max_bytes=1, csv_max_image_bytes=1, csv_retries=0,
                         csv_concurrency=1, csv_per_host_limit=1)
        out += [f"`{key}` must be positive; got {getattr(self, key)}"
                for key in ("csv_timeout",) if not getattr(self, key) > 0]
        out += [f"`{key}` must be >= 0; got {getattr(self, key)}"
                for key in ("csv_backoff_seconds", "csv_quarantine_seconds")
                if not getattr(self, key) >= 0]
        return out


def _at_least(config: CsvConfig, **minimums: int) -> list[str]:
    """Lines for integer keys below their minimum."""
    return [f"`{key}` must be >= {low}; got {getattr(config, key)}"
            for key, low in minimums.items() if getattr(config, key) < low]
