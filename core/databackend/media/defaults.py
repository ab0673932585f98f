"""The built-in media probes: :data:`DEFAULT_PROBES` (``video`` through PyAV without decoding,
``audio`` through soundfile or PyAV, ``s2v`` the audio track of a video plus the video
stream's frame count and rate). Kept apart from :mod:`databackend.media.probe`, which the
probes themselves import."""

from __future__ import annotations

from databackend.media.probe import ProbeRegistry, ProbeSource
from databackend.media.record import MediaInfo

__all__ = ["DEFAULT_PROBES"]


def _video_probe(source: ProbeSource) -> MediaInfo:
    from databackend.media.video import probe_video

    return probe_video(source)


def _audio_probe(source: ProbeSource) -> MediaInfo:
    from databackend.audio.probe import probe_audio

    return probe_audio(source)


def _s2v_probe(source: ProbeSource) -> MediaInfo:
    from databackend.audio.probe import probe_audio_of_video

    return probe_audio_of_video(source)


#: The built-in probes.
DEFAULT_PROBES = ProbeRegistry({"video": _video_probe, "audio": _audio_probe,
                                "s2v": _s2v_probe})
