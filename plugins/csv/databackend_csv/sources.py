"""Where the bytes of a URL come from: HTTP(S) through :class:`HttpClient`, anything else
(local paths, ``file://``, ``s3://``, ``gs://``, ``memory://``...) through fsspec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from databackend_csv.errors import FetchError
from databackend_csv.httpclient import FetchResult, FetchSettings, HttpClient

__all__ = ["Fetcher", "FsspecClient"]

_HTTP = ("http", "https")


def _is_http(url: str) -> bool:
    """Whether the URL is fetched over HTTP(S)."""
    return urlsplit(url).scheme.lower() in _HTTP


class FsspecClient:
    """Reads non-HTTP URLs with fsspec; missing files are ``not_found``."""

    def __init__(self, max_bytes: int) -> None:
        """Refuse files larger than ``max_bytes``."""
        self.max_bytes = max_bytes

    @staticmethod
    def is_local(url: str) -> bool:
        """Whether the URL is a local file (no point in caching a copy)."""
        scheme = urlsplit(url).scheme.lower()
        return scheme in ("", "file") or len(scheme) == 1  # a Windows drive letter

    def fetch(self, url: str, byte_range: tuple[int, int] | None = None) -> FetchResult:
        """The whole file, or ``byte_range`` = ``(start, length)`` of it."""
        import fsspec.core

        try:
            fs: Any
            fs, path = fsspec.core.url_to_fs(url)
            total = int(fs.size(path))
            if total > self.max_bytes:
                raise FetchError("too_large", f"{total} bytes (limit {self.max_bytes})")
            if byte_range is None:
                return FetchResult(bytes(fs.cat_file(path)), complete=True, total=total)
            start, length = byte_range
            data = bytes(fs.cat_file(path, start=start, end=min(total, start + length)))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise FetchError("not_found", type(exc).__name__) from exc
        except (OSError, ValueError) as exc:
            raise FetchError("connection", f"{type(exc).__name__}: {exc}",
                             transient=True) from exc
        return FetchResult(data, complete=start == 0 and len(data) >= total, total=total)


class Fetcher:
    """Dispatches a URL to the HTTP client or to fsspec."""

    def __init__(self, settings: FetchSettings, *,
                 on_request: Callable[[], None] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        """Create both clients (neither connects before its first request)."""
        kwargs: dict[str, Any] = {"on_request": on_request}
        if sleep is not None:
            kwargs["sleep"] = sleep
        self.http = HttpClient(settings, **kwargs)
        self.files = FsspecClient(settings.max_bytes)

    def fetch(self, url: str, byte_range: tuple[int, int] | None = None) -> FetchResult:
        """Fetch ``url`` (or a byte range of it); raises :class:`FetchError`."""
        if _is_http(url):
            return self.http.fetch(url, byte_range)
        return self.files.fetch(url, byte_range)

    def cacheable(self, url: str) -> bool:
        """Whether a copy is worth keeping in the download cache (not for local files)."""
        return not self.files.is_local(url)

    def close(self) -> None:
        """Close pooled connections."""
        self.http.close()
