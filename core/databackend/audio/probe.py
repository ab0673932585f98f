"""The audio probe of the shared media layer: duration, sample rate, channels, no decoding.

Registered as ``"audio"`` in :data:`databackend.media.defaults.DEFAULT_PROBES`; it takes a
:class:`~databackend.media.probe.ProbeSource` (a local path, or a
:class:`~databackend.media.reader.RangeFile` over a storage's ranged reads) and returns a
:class:`~databackend.media.record.MediaInfo` with ``kind="audio"``.

* ``wav``/``flac``/``ogg``/``aiff``...: ``soundfile`` (libsndfile) reads the header only. A
  truncated WAV or OGG probes as the length that is there; a FLAC header states its sample
  count even when the file was cut short, which a header probe cannot see: such a file fails
  when the audio cache decodes it, and is then left out of training, counted and named (as
  image files cut short after their header are). A file libsndfile does not recognise is
  retried with PyAV (e.g. a WAV with another codec).
* compressed and container formats (``mp3``, ``m4a``, ``aac``, ``opus``, ``mp4``, ``mkv``...):
  PyAV reads the container's metadata; a stream without a stated duration falls back to
  summing packet durations (demuxing only, never decoding; ``counted=True``).

Files to skip raise :class:`~databackend.media.record.NotMedia` (not audio, or no audio
stream) or :class:`~databackend.media.record.CorruptMedia`.
"""

from __future__ import annotations

import logging
from typing import Any

from databackend.media.kinds import extension_of
from databackend.media.probe import ProbeSource, classify_failure, looks_like_container
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia

__all__ = ["SOUNDFILE_EXTENSIONS", "NoAudioStream", "probe_audio", "probe_audio_of_video", "probe_av",
           "probe_soundfile"]

log = logging.getLogger(__name__)

_SFM_READ = 0x10
_SF_ERR_UNRECOGNISED_FORMAT = 1
#: read by libsndfile (header-only probes)
SOUNDFILE_EXTENSIONS = frozenset({"wav", "wave", "flac", "ogg", "oga", "aiff", "aif", "aifc"})


class NoAudioStream(NotMedia):
    """A media file that holds no audio stream (a silent video)."""


def _info(samples: int, rate: int, channels: int, *, counted: bool = False,
          codec: str = "") -> MediaInfo:
    return MediaInfo(kind="audio", sample_rate=rate, channels=channels, samples=samples,
                     duration=samples / rate if rate else 0.0, counted=counted, codec=codec)


def _sf_open_info(path: str, name: str) -> MediaInfo | None:
    """Frames, rate and channels of a local file through libsndfile's ``sf_open`` directly
    (soundfile's cffi handle): no Python objects per file, about 2.5x quicker than
    ``soundfile.info``. None when that handle is not available (then :class:`SoundFile`)."""
    try:
        from soundfile import _ffi, _snd  # type: ignore[attr-defined]
    except ImportError:
        return None
    info = _ffi.new("SF_INFO*")
    handle = _snd.sf_open(path.encode(), _SFM_READ, info)
    if handle == _ffi.NULL:
        # libsndfile keeps a failed open's error in one process-wide variable: another
        # thread's open can reset it before we read it ("No Error."), so a lost code is
        # classified from the file's first bytes instead.
        code = int(_snd.sf_error(_ffi.NULL))
        text = _ffi.string(_snd.sf_error_number(code)).decode("utf-8", "replace")
        if code == _SF_ERR_UNRECOGNISED_FORMAT:
            raise NotMedia(f"{name}: not an audio file libsndfile reads ({text})")
        if code == 0:
            raise _classified_by_head(path, name)
        raise CorruptMedia(f"{name}: {text}")
    try:
        return _info(int(info.frames), int(info.samplerate), int(info.channels))
    finally:
        _snd.sf_close(handle)


def _classified_by_head(path: str, name: str) -> Exception:
    """A failed open as :class:`CorruptMedia` when the file starts like a container, else
    :class:`NotMedia` (read errors pass through)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return exc
    if looks_like_container(head):
        return CorruptMedia(f"{name}: libsndfile could not open it")
    return NotMedia(f"{name}: not an audio file libsndfile reads")


def _soundfile_read(source: ProbeSource) -> MediaInfo:
    import soundfile

    if source.local:
        found = _sf_open_info(source.local, source.name)
        if found is not None:
            return found
    fh = None if source.local else source.open()
    try:
        with soundfile.SoundFile(source.local or fh) as f:
            return _info(int(f.frames), int(f.samplerate), int(f.channels))
    finally:
        if fh is not None:
            fh.close()


def probe_soundfile(source: ProbeSource) -> MediaInfo:
    """Header probe through libsndfile (plus the last-frame check for FLAC)."""
    import soundfile

    try:
        info = _soundfile_read(source)
    except soundfile.LibsndfileError as exc:
        text = str(exc).lower()
        if "format not recognised" in text or "unknown format" in text:
            raise NotMedia(f"{source.name}: not an audio file libsndfile reads") from None
        if getattr(exc, "code", None) == 0:  # the code was lost to another thread's open
            raise classify_failure(exc, source) from None
        raise CorruptMedia(f"{source.name}: {exc}") from None
    except (RuntimeError, TypeError) as exc:
        raise CorruptMedia(f"{source.name}: {exc}") from None
    if info.sample_rate <= 0 or info.channels <= 0:
        raise CorruptMedia(f"{source.name}: header states {info.sample_rate} Hz, "
                           f"{info.channels} channels")
    return info


def _stream_samples(container: Any, stream: Any, rate: int) -> tuple[int, bool]:
    """Samples of ``stream`` from its metadata, else the container's, else its packets."""
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base) * rate), False
    if container.duration is not None:
        return round(container.duration / 1_000_000 * rate), False
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.duration is not None:
            end = max(end, float((packet.pts + packet.duration) * packet.time_base))
    return round(end * rate), True


def probe_av(source: ProbeSource) -> MediaInfo:
    """Container-metadata probe through PyAV (the first audio stream)."""
    import av

    fh = None if source.local else source.open()
    try:
        with av.open(source.local or fh, mode="r") as container:
            streams = container.streams.audio
            if not streams:
                raise NoAudioStream(f"{source.name}: has no audio stream")
            stream = streams[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            samples, counted = _stream_samples(container, stream, rate)
            channels = int(stream.codec_context.channels or stream.channels or 0)
            codec = str(stream.codec_context.name)
    except (NotMedia, CorruptMedia):
        raise
    except Exception as exc:
        raise classify_failure(exc, source) from None
    finally:
        if fh is not None:
            fh.close()
    if rate <= 0 or channels <= 0 or samples <= 0:
        raise CorruptMedia(f"{source.name}: stream states {rate} Hz, {channels} channels, "
                           f"{samples} samples")
    if counted:
        log.info("%s: no duration in the container; summed its packets", source.name)
    return _info(samples, rate, channels, counted=counted, codec=codec)


def probe_audio(source: ProbeSource) -> MediaInfo:
    """Probe ``source`` by extension (see the module docstring)."""
    if extension_of(source.name) not in SOUNDFILE_EXTENSIONS:
        return probe_av(source)
    try:
        return probe_soundfile(source)
    except NotMedia:
        return probe_av(source)


def probe_audio_of_video(source: ProbeSource) -> MediaInfo:
    """The video stream's frame count, rate and picture size
    (:func:`~databackend.media.video.probe_video`) with the audio track's rate, channels and
    samples (:func:`probe_audio`), so an s2v audio set can place the window its video set
    places (:mod:`databackend.audio.align`). A video without an audio stream gives
    ``channels`` 0 and no samples (the audio spec decides: ``no_audio``, or silence with
    ``allow_zero_audio``); a file that is no readable video is skipped as the video set skips
    it."""
    import attrs

    from databackend.media.video import probe_video

    video = probe_video(source)
    try:
        audio = probe_audio(source)
    except NoAudioStream:
        return MediaInfo(kind="audio", width=video.width, height=video.height,
                         frames=video.frames, fps=video.fps, duration=video.duration,
                         rotation=video.rotation)
    return attrs.evolve(audio, width=video.width, height=video.height, frames=video.frames,
                        fps=video.fps, rotation=video.rotation)
