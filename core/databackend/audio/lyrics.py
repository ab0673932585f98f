"""Lyrics sidecar files, read through the storage backend (so they work on S3 and HF too).

``lyrics_filename_format`` takes the tokens ``{filename}``/``{stem}`` (the file name without its
extension), ``{name}`` (with it), ``{suffix}`` (``.wav``), ``{extension}``/``{ext}``
(``wav``), ``{parent}`` (the folder's name) and ``{dirname}`` (the folder's path); the result
is relative to the sample's folder. ``lyrics_suffix``/``lyrics_extension`` build
``{stem}{suffix}.{extension}`` (the extension defaults to ``txt``, the suffix to nothing).
Candidates are tried in that order; the first non-empty file gives the lyrics. A name that
would leave the dataset's root is ignored. SimpleTuner checks ``Path.exists`` on the local disk,
so its sidecars never work on remote storage.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING

from databackend.audio.settings import AudioSettings
from databackend.safepath import key_problem

if TYPE_CHECKING:
    from databackend.storage.base import StorageBackend

__all__ = ["LYRICS_DEFAULT_FAMILIES", "lyrics_candidates", "lyrics_format", "read_lyrics"]

log = logging.getLogger(__name__)

#: model families whose textfile-captioned audio sets default to ``{filename}.lyrics``
LYRICS_DEFAULT_FAMILIES = frozenset({"ace_step", "acestep", "minimaxmusic"})


def lyrics_format(settings: AudioSettings, *, model_family: str,
                  caption_strategy: str | None) -> str | None:
    """The effective ``lyrics_filename_format`` (SimpleTuner's per-family default)."""
    if settings.lyrics_filename_format:
        return settings.lyrics_filename_format
    if (not settings.uses_lyrics_files and caption_strategy == "textfile"
            and model_family in LYRICS_DEFAULT_FAMILIES):
        return "{filename}.lyrics"
    return None


def _inside(path: str) -> str | None:
    """``path`` normalised when it is a safe key under the dataset root (safepath), else None."""
    norm = posixpath.normpath(path)
    if norm == "." or key_problem(norm) is not None:
        return None
    return norm


def lyrics_candidates(path: str, settings: AudioSettings, fmt: str | None) -> list[str]:
    """Storage keys that may hold the lyrics of the sample at ``path``, in order."""
    folder, name = posixpath.split(path)
    stem, suffix = posixpath.splitext(name)
    tokens = {"filename": stem, "stem": stem, "name": name, "suffix": suffix,
              "extension": suffix.lstrip("."), "ext": suffix.lstrip("."),
              "parent": posixpath.basename(folder), "dirname": folder}
    names = []
    if fmt:
        try:
            names.append(fmt.format(**tokens))
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            log.warning("lyrics_filename_format %r: %s", fmt, exc)
    if settings.lyrics_suffix or settings.lyrics_extension:
        ext = (settings.lyrics_extension or "txt").lstrip(".")
        names.append(f"{stem}{settings.lyrics_suffix or ''}.{ext}")
    out = []
    for candidate in names:
        full = _inside(posixpath.join(folder, candidate) if folder else candidate)
        if full is not None and full != path and full not in out:
            out.append(full)
    return out


def read_lyrics(storage: StorageBackend, paths: Sequence[str], settings: AudioSettings,
                fmt: str | None) -> list[str | None]:
    """The lyrics of each sample (None: none): the storage's own (a table column, see
    :meth:`~databackend.storage.base.StorageBackend.lyrics`), else the first non-empty
    sidecar, read in one ``read_many`` batch."""
    held = [storage.lyrics(p) for p in paths]
    if not fmt and not (settings.lyrics_suffix or settings.lyrics_extension):
        return held
    candidates = [lyrics_candidates(p, settings, fmt) for p in paths]
    flat = sorted({c for group in candidates for c in group})
    found = dict(zip(flat, storage.read_many(flat), strict=True)) if flat else {}
    out: list[str | None] = []
    for group, own in zip(candidates, held, strict=True):
        text = own
        for key in group if text is None else ():
            data = found.get(key)
            if isinstance(data, bytes):
                stripped = data.decode("utf-8", "replace").strip()
                if stripped:
                    text = stripped
                    break
        out.append(text)
    return out
