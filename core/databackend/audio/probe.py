"""Probe audio files without decoding them: duration, sample rate, channels.

* ``wav``/``flac``/``ogg``/``aiff``...: ``soundfile`` (libsndfile) reads the header only. FLAC
  headers state the sample count even when the file was cut short, so a FLAC probe also reads
  its last frame (one block decoded near the end) and a truncated FLAC is ``corrupt``.
* compressed and container formats (``mp3``, ``m4a``, ``aac``, ``opus``, ``mp4``, ``mkv``...):
  PyAV reads the container's metadata; a stream without a stated duration falls back to
  summing packet durations (demuxing only, never decoding; counted as ``slow_probe``).

A probe reads through a local path, or through :class:`RangeFile` (ranged reads of a storage
backend, so remote files are never downloaded whole). Failures raise :class:`NotAudio`
(``not_audio``, ``no_audio``) or :class:`CorruptAudio` (``corrupt``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any, BinaryIO

import attrs

__all__ = ["AUDIO_EXTENSIONS", "SOUNDFILE_EXTENSIONS", "VIDEO_AUDIO_EXTENSIONS", "AudioInfo",
           "CorruptAudio", "NotAudio", "RangeFile", "probe_audio", "probe_av", "probe_soundfile"]

log = logging.getLogger(__name__)
#: a local path, or a seekable binary file (e.g. a :class:`RangeFile`)
Source = str | BinaryIO | io.RawIOBase

#: read by libsndfile (header-only probes)
SOUNDFILE_EXTENSIONS = frozenset({"wav", "wave", "flac", "ogg", "oga", "aiff", "aif", "aifc"})
#: SimpleTuner's audio extensions (its list includes these container formats)
AUDIO_EXTENSIONS = frozenset({*SOUNDFILE_EXTENSIONS, "mp3", "mp4a", "m4a", "aac", "opus", "wma",
                              "alac", "mp4", "mpeg", "mpg", "mkv", "webm"})
#: containers whose audio track an s2v set takes (``source_from_video``)
VIDEO_AUDIO_EXTENSIONS = frozenset({"mp4", "avi", "mov", "mkv", "webm", "flv", "wmv", "m4v",
                                    "mpeg", "mpg", "3gp", "ogv"})


class NotAudio(Exception):
    """The file is not audio (``not_audio``) or has no audio stream (``no_audio``)."""

    def __init__(self, message: str, reason: str = "not_audio") -> None:
        super().__init__(message)
        self.reason = reason


class CorruptAudio(Exception):
    """The file looks like audio but its data is broken or cut short."""

    reason = "corrupt"


@attrs.frozen
class AudioInfo:
    """What a probe finds: ``frames`` per channel at ``sample_rate``; ``slow`` when the
    duration had to be summed from packets."""

    frames: int
    sample_rate: int
    channels: int
    slow: bool = False

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over ``read(offset, length)`` (a storage's ``read_range``),
    fetching aligned blocks on demand and keeping the ones read."""

    def __init__(self, read: Callable[[int, int], bytes], size: int, *,
                 block: int = 64 * 1024) -> None:
        """``size`` is the file's byte size (from the listing)."""
        super().__init__()
        self._fetch, self.size, self.block = read, size, block
        self._pos = 0
        self._blocks: dict[int, bytes] = {}
        #: bytes fetched so far (tests and benchmarks check reads stay small)
        self.fetched = 0

    def readable(self) -> bool:
        """Always."""
        return True

    def seekable(self) -> bool:
        """Always."""
        return True

    def tell(self) -> int:
        """The position."""
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (past the end is allowed, as for files)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _get(self, n: int) -> bytes:
        if n not in self._blocks:
            start = n * self.block
            data = self._fetch(start, min(self.block, self.size - start))
            self.fetched += len(data)
            self._blocks[n] = data
        return self._blocks[n]

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current position."""
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self.size - self._pos))
        done = 0
        while done < want:
            n, off = divmod(self._pos + done, self.block)
            chunk = self._get(n)[off:off + want - done]
            if not chunk:
                break
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
        self._pos += done
        return done


def _ext(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""


def probe_soundfile(source: Source, name: str) -> AudioInfo:
    """Header probe through libsndfile (plus the last-frame check for FLAC)."""
    import soundfile

    try:
        with soundfile.SoundFile(source) as f:
            info = AudioInfo(int(f.frames), int(f.samplerate), int(f.channels))
            if _ext(name) == "flac" and info.frames > 0:
                f.seek(info.frames - 1)
                if len(f.read(1, dtype="float32")) != 1:
                    raise CorruptAudio(f"{name}: ends before its stated {info.frames} frames")
    except soundfile.LibsndfileError as exc:
        text = str(exc).lower()
        if "format not recognised" in text or "unknown format" in text or "no data" in text:
            raise NotAudio(f"{name}: not an audio file ({exc})") from None
        raise CorruptAudio(f"{name}: {exc}") from None
    except (RuntimeError, TypeError) as exc:
        raise CorruptAudio(f"{name}: {exc}") from None
    if info.sample_rate <= 0 or info.channels <= 0:
        raise CorruptAudio(f"{name}: header states {info.sample_rate} Hz, {info.channels} ch")
    return info


def _stream_frames(container: Any, stream: Any) -> tuple[int, bool]:
    """Frames of ``stream`` from its metadata, else the container's, else packets (slow)."""
    rate = int(stream.rate or stream.codec_context.sample_rate or 0)
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base) * rate), False
    if container.duration is not None:
        return round(container.duration / 1_000_000 * rate), False
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.duration is not None:
            end = max(end, float((packet.pts + packet.duration) * packet.time_base))
    return round(end * rate), True


def probe_av(source: Source, name: str) -> AudioInfo:
    """Container-metadata probe through PyAV (the first audio stream)."""
    import av

    try:
        with av.open(source, mode="r") as container:
            streams = container.streams.audio
            if not streams:
                raise NotAudio(f"{name}: has no audio stream", "no_audio")
            stream = streams[0]
            frames, slow = _stream_frames(container, stream)
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            channels = int(stream.codec_context.channels or stream.channels or 0)
    except av.error.InvalidDataError as exc:
        raise NotAudio(f"{name}: not an audio file ({exc})") from None
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise CorruptAudio(f"{name}: {exc}") from None
    if rate <= 0 or channels <= 0 or frames <= 0:
        raise CorruptAudio(f"{name}: stream states {rate} Hz, {channels} ch, {frames} frames")
    return AudioInfo(frames, rate, channels, slow)


def probe_audio(source: Source, name: str) -> AudioInfo:
    """Probe ``source`` (a local path or a seekable binary file); ``name`` picks the reader by
    extension and labels errors. A soundfile format that libsndfile rejects is retried with
    PyAV (e.g. a WAV with a codec libsndfile lacks)."""
    if _ext(name) not in SOUNDFILE_EXTENSIONS:
        return probe_av(source, name)
    try:
        return probe_soundfile(source, name)
    except NotAudio:
        if not isinstance(source, str):
            source.seek(0)
        try:
            return probe_av(source, name)
        except NotAudio:
            raise NotAudio(f"{name}: not an audio file") from None
