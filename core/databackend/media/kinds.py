"""Media kinds by file extension, with the reference's extension sets (REFERENCE-MEDIA §0).

``mp4``, ``mpeg``, ``mpg``, ``mkv`` and ``webm`` are both video and audio containers, as in the
reference: a video dataset lists them as video, an audio dataset as audio. Use
:func:`extensions_for` to list a dataset's files and :func:`media_kinds` to classify one path.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["AUDIO_EXTENSIONS", "IMAGE_EXTENSIONS", "KIND_EXTENSIONS", "VIDEO_EXTENSIONS",
           "extension_of", "extensions_for", "media_kinds"]

#: The image formats the header probe reads (``databackend.imageprobe``).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {"jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff"})
#: The reference's video extensions.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {"mp4", "avi", "mov", "mkv", "webm", "flv", "wmv", "m4v", "mpeg", "mpg", "3gp", "ogv"})
#: The reference's audio extensions, container formats with an audio track included.
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {"wav", "wave", "flac", "mp3", "mp4a", "m4a", "aac", "ogg", "oga", "opus", "wma", "aiff",
     "aif", "aifc", "alac", "mp4", "mpeg", "mpg", "mkv", "webm"})
#: Extensions per media kind (read-only).
KIND_EXTENSIONS = MappingProxyType({"image": IMAGE_EXTENSIONS, "video": VIDEO_EXTENSIONS,
                                    "audio": AUDIO_EXTENSIONS})


def extension_of(path: str) -> str:
    """The lower-case extension of ``path`` without the dot (``""`` when there is none)."""
    name = path.rpartition("/")[2]
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def extensions_for(kind: str) -> frozenset[str]:
    """The extensions a dataset of media ``kind`` lists; ``KeyError`` for an unknown kind."""
    return KIND_EXTENSIONS[kind]


def media_kinds(path: str) -> frozenset[str]:
    """Every media kind whose extension set holds ``path``'s extension (maybe several)."""
    ext = extension_of(path)
    return frozenset(kind for kind, exts in KIND_EXTENSIONS.items() if ext in exts)
