"""URL helpers: the virtual key of a URL, secret-free display, and image content sniffing."""

from __future__ import annotations

import hashlib
import posixpath
from urllib.parse import urlsplit, urlunsplit

from databackend.pluginapi import VIDEO_EXTENSIONS as _VIDEO_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "is_image_bytes", "is_media_key",
           "is_text_content_type", "key_for_url", "redact", "url_hash"]

#: Extensions kept in the virtual key; any other URL gets ``.jpg`` (the content is sniffed).
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff",
                              "avif", "heic", "heif", "jxl"})
#: Video extensions (databackend's media kinds) are kept too: video datasets list by them.
VIDEO_EXTENSIONS: frozenset[str] = _VIDEO_EXTENSIONS
_DEFAULT_EXTENSION = "jpg"
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
          b"MM\x00*", b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml",
               "application/javascript")


def url_hash(url: str) -> str:
    """SHA-256 hex digest of the whole URL (scheme, host, path and query)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def key_for_url(url: str) -> str:
    """The virtual path of a URL: ``ab/<sha256>.<ext>``; the extension comes from the URL path
    when it is an image or video extension, else ``jpg``. Different URLs never share a key."""
    digest = url_hash(url)
    ext = posixpath.splitext(urlsplit(url).path)[1].lower().lstrip(".")
    if ext not in IMAGE_EXTENSIONS and ext not in VIDEO_EXTENSIONS:
        ext = _DEFAULT_EXTENSION
    return f"{digest[:2]}/{digest}.{ext}"


def is_media_key(key: str) -> bool:
    """Whether a virtual path is a video (its content is a container, not an image)."""
    return key.rpartition(".")[2] in VIDEO_EXTENSIONS


def redact(url: str) -> str:
    """The URL without credentials and query (signed URLs carry tokens there), for logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def is_image_bytes(head: bytes) -> bool:
    """Whether the first bytes look like an image (JPEG, PNG, GIF, WebP, BMP, TIFF, AVIF/HEIF,
    JPEG XL); HTML error pages, JSON and other text are not."""
    if head.startswith(_MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix",
                                                   b"mif1", b"msf1", b"hevc")


def is_text_content_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` announces text (HTML, JSON, XML...), never an image."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    return value.startswith(_TEXT_TYPES)
