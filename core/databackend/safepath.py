"""The one place where names from data or config become filesystem paths.

Object keys, CSV and table paths, Hugging Face path columns, dataset ids and caption-derived
names are untrusted: a name is a *relative key* with ``/`` separators that must stay inside the
folder it is resolved against. This module decides what that means:

* :func:`key_problem` / :func:`check_key`: a key is refused when it is empty, absolute (``/x``,
  ``C:x``), contains NUL, or has a ``..`` segment (on Windows ``\\`` also separates).
* :func:`neutralise_key`: a deterministic safe spelling of any key (``..`` becomes ``%2E%2E``,
  NUL ``%00``, a leading ``/`` is dropped), for cache names derived from remote keys, so a
  hostile key still gets its own cache entry, inside the cache folder.
* :func:`confined`: the absolute path of a key under a root, refusing keys whose resolved path
  (symlinks followed) leaves the root; used before deleting or writing.
* :func:`id_problem`: whether a dataset id may name a folder (``validate`` reports it).

Everything raises :class:`UnsafePathError` (a :class:`~databackend.errors.StorageError` and a
:class:`ValueError`) naming the key.
"""

from __future__ import annotations

import os
import posixpath

from databackend.errors import StorageError

__all__ = ["UnsafePathError", "check_key", "confined", "id_problem", "is_inside",
           "key_problem", "neutralise_key"]

_SEPARATORS = ("/", "\\") if os.sep == "\\" or os.altsep else ("/",)


class UnsafePathError(StorageError, ValueError):
    """A name from data or config would resolve outside its root folder."""


def _segments(key: str) -> list[str]:
    if len(_SEPARATORS) > 1:
        key = key.replace("\\", "/")
    return key.split("/")


def key_problem(key: str) -> str | None:
    """Why ``key`` may not be used as a relative path (None when it is safe)."""
    if not key:
        return "is empty"
    if "\0" in key:
        return "contains a NUL character"
    if key[0] in "/\\" or (len(key) > 1 and key[1] == ":" and key[0].isalpha()):
        return "is an absolute path"
    if ".." in key and ".." in _segments(key):
        return "has a '..' segment"
    return None


def check_key(key: str, what: str = "path") -> str:
    """Return ``key`` when it is a safe relative key; raise :class:`UnsafePathError` naming it
    otherwise (``what`` says where it came from, e.g. ``"object key"``)."""
    if "\0" not in key and key[:1] not in ("/", "\\", "") and ".." not in key \
            and (len(key) < 2 or key[1] != ":"):
        return key  # the fast path: nearly every key
    why = key_problem(key)
    if why is not None:
        raise UnsafePathError(f"{what} {key!r} {why}; names from data must stay inside their "
                              "folder")
    return key


def neutralise_key(key: str) -> str:
    """A safe relative key that stands for ``key``: unchanged when ``key`` is already safe,
    else ``..`` segments spelled ``%2E%2E``, NUL ``%00``, ``%`` ``%25`` and leading separators
    dropped (distinct unsafe keys stay distinct, and never collide with a safe one)."""
    if key_problem(key) is None:
        return key
    text = key.replace("%", "%25").replace("\0", "%00")
    parts = [("%2E%2E" if p == ".." else p) for p in _segments(text)]
    while parts and not parts[0]:
        parts.pop(0)
    if parts and len(parts[0]) >= 2 and parts[0][1] == ":":
        parts[0] = parts[0].replace(":", "%3A", 1)
    return "%2F" + "/".join(parts) if parts else "%00"


def is_inside(root: str, path: str) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``root`` or somewhere below it."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def confined(root: str, key: str, *, what: str = "path") -> str:
    """The absolute path of ``key`` under ``root``; raise :class:`UnsafePathError` when the
    key is unsafe or when its resolved path (symlinked folders followed) leaves ``root``."""
    check_key(key, what)
    full = os.path.join(root, *posixpath.normpath(key).split("/"))
    if not is_inside(root, full):
        raise UnsafePathError(f"{what} {key!r} resolves outside {root!r} (through a symlink); "
                              "refused")
    return full


def id_problem(ident: str) -> str | None:
    """Why a dataset id cannot name a cache or index folder (None when it can)."""
    why = key_problem(ident)
    if why is not None:
        return why
    if any(ord(c) < 32 for c in ident):
        return "contains a control character"
    if ident in (".",) or "." in _segments(ident):
        return "has a '.' segment"
    return None
