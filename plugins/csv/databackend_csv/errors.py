"""Errors of the csv backend: download failures (``OSError``) and the read-only refusal."""

from __future__ import annotations

from databackend.pluginapi import ReadOnlyStorageError

__all__ = ["REASONS", "DownloadError", "FetchError", "QuarantinedError", "ReadOnlyError"]

#: The failure reasons recorded in the quarantine and counted in the scan summary.
REASONS = ("not_found", "http_error", "timeout", "connection", "not_image", "too_large",
           "truncated", "forbidden")


class FetchError(Exception):
    """One failed fetch: ``reason`` (one of :data:`REASONS`), a detail, and whether a retry can
    help (``transient``); ``retry_after`` is the server's ``Retry-After`` in seconds, if any."""

    def __init__(self, reason: str, detail: str, *, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.retry_after = retry_after


class DownloadError(OSError):
    """Reading a sample failed: its URL is bad or unreachable (and is now quarantined).

    An ``OSError`` so that scans and readers treat it like any unreadable file.
    """

    def __init__(self, path: str, url: str, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {url}: {reason} ({detail})")
        self.path = path
        self.url = url
        self.reason = reason
        self.detail = detail


class QuarantinedError(DownloadError, FileNotFoundError):
    """The URL failed recently and is quarantined: no request was made."""


class ReadOnlyError(ReadOnlyStorageError):
    """The csv backend is read-only: its files are the URLs of a CSV."""
