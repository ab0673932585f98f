"""Probe dispatch: one decode-free metadata probe per media kind, over local or ranged reads.

A probe takes a :class:`ProbeSource` (a name, the byte size, and how to open the bytes: a
local path, or a seekable file over ranged reads) and returns a
:class:`~databackend.media.record.MediaInfo`; it raises
:class:`~databackend.media.record.NotMedia` or :class:`~databackend.media.record.CorruptMedia`
for files that are to be skipped, and anything else for read failures (``unreadable``).

:class:`ProbeRegistry` maps a kind to its probe; it is immutable (``with_probe`` returns a new
one), and :data:`DEFAULT_PROBES` holds the built-in ones. Audio plugs in with
``DEFAULT_PROBES.with_probe("audio", probe_audio)`` or by adding its probe to the defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, BinaryIO

import attrs

from databackend.media.reader import RangeFile
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia

__all__ = ["Probe", "ProbeRegistry", "ProbeSource", "looks_like_container",
           "probe_local", "probe_ranged"]

log = logging.getLogger(__name__)
Probe = Callable[["ProbeSource"], MediaInfo]

#: Leading bytes of container formats: a file that starts like one but cannot be parsed is
#: ``corrupt``; anything else is not media at all.
_SIGNATURES = (b"\x1aE\xdf\xa3", b"RIFF", b"OggS", b"FLV", b"\x00\x00\x01\xba",
               b"\x00\x00\x01\xb3", b"0&\xb2u\x8ef\xcf\x11", b"fLaC", b"ID3", b"FORM",
               b"\xff\xf1", b"\xff\xf9", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"G")


def looks_like_container(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts like a media container."""
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        return True
    return any(head.startswith(sig) for sig in _SIGNATURES if len(sig) > 1) or (
        len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)  # MPEG-TS sync bytes


@attrs.frozen
class ProbeSource:
    """One file to probe: ``name`` (its key, for messages and the extension), ``size`` in
    bytes (-1: unknown), and ``opener`` giving a fresh seekable binary file (or ``local``, a
    path the probe may hand to a library directly)."""

    name: str
    size: int
    opener: Callable[[], BinaryIO]
    local: str | None = None

    def open(self) -> BinaryIO:
        """A fresh binary file positioned at 0."""
        return self.opener()

    def head(self, n: int = 512) -> bytes:
        """The first ``n`` bytes."""
        with self.open() as fh:
            return fh.read(n)


def probe_local(path: str, name: str | None = None) -> ProbeSource:
    """A :class:`ProbeSource` for a local file."""
    import os

    return ProbeSource(name or path, os.path.getsize(path), lambda: open(path, "rb"), path)


def probe_ranged(read_at: Callable[[int, int], bytes], name: str, size: int, *,
                 block: int = 32 * 1024) -> ProbeSource:
    """A :class:`ProbeSource` over ranged reads (``read_at(offset, length)``), e.g.
    ``lambda at, n: storage.read_range(key, at, n)``; ``size`` must be known."""
    blocks: dict[int, bytes] = {}  # shared: PyAV and the box walker read the same blocks

    def opener() -> BinaryIO:
        """A fresh ranged file over the shared blocks."""
        return RangeFile(read_at, size, block=block, name=name,  # type: ignore[return-value]
                         blocks=blocks)

    return ProbeSource(name, size, opener)


def _missing(kind: str) -> Probe:
    def fail(source: ProbeSource) -> MediaInfo:
        """Every file is not media of an unknown kind."""
        raise NotMedia(f"no probe for media kind {kind!r}")
    return fail


def _frozen(probes: Mapping[str, Probe]) -> Mapping[str, Probe]:
    return MappingProxyType(dict(probes))


@attrs.frozen
class ProbeRegistry:
    """Media kind -> probe function (immutable; see the module docstring)."""

    probes: Mapping[str, Probe] = attrs.field(converter=_frozen)

    def with_probe(self, kind: str, probe: Probe) -> ProbeRegistry:
        """A registry with ``probe`` for ``kind`` added or replaced."""
        return ProbeRegistry({**self.probes, kind: probe})

    def kinds(self) -> tuple[str, ...]:
        """The kinds with a probe."""
        return tuple(self.probes)

    def probe(self, kind: str, source: ProbeSource) -> MediaInfo:
        """Probe ``source`` as ``kind``; empty files are :class:`NotMedia`."""
        if source.size == 0:
            raise NotMedia(f"{source.name}: empty file")
        return self.probes.get(kind, _missing(kind))(source)


def classify_failure(exc: BaseException, source: ProbeSource) -> Exception:
    """A library error while parsing ``source`` as :class:`CorruptMedia` when the bytes start
    like a container, else :class:`NotMedia`; read errors (``OSError``) pass through."""
    if isinstance(exc, (NotMedia, CorruptMedia)):
        return exc
    if isinstance(exc, OSError) and not _is_library_error(exc):
        return exc
    try:
        container = looks_like_container(source.head())
    except OSError as read_error:
        return read_error
    kind = CorruptMedia if container else NotMedia
    return kind(f"{source.name}: {exc}")


def _is_library_error(exc: BaseException) -> bool:
    """PyAV's FFmpeg errors derive from OSError; they are parse failures, not read failures."""
    module: Any = type(exc).__module__ or ""
    return str(module).startswith("av")
