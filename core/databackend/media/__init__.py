"""The media layer shared by video and audio datasets: kinds, probes, windows, encoders.

Modules (each with one job):

* :mod:`~databackend.media.kinds`: extension sets per media kind (image, video, audio; the
  reference's sets) and :func:`media_kinds` / :func:`extensions_for`.
* :mod:`~databackend.media.record`: :class:`MediaInfo` (what a probe returns: width, height,
  frames, fps, duration, rotation, sample_rate, channels, samples, ``counted``) and the two
  skip errors, :class:`NotMedia` (-> ``not_media``) and :class:`CorruptMedia` (-> ``corrupt``).
* :mod:`~databackend.media.probe`: :class:`ProbeSource` (a local path or a
  :class:`~databackend.media.reader.RangeFile` over ranged reads, so remote probes read only
  what the container needs) and the immutable :class:`ProbeRegistry` (kind -> probe);
  :data:`DEFAULT_PROBES` has ``video`` (:mod:`~databackend.media.video`, PyAV, no decoding).
* :mod:`~databackend.media.windows`: :func:`choose_window` (start, length, stride as a pure
  function of ``(seed, sample key)``) for frames or audio samples.
* :mod:`~databackend.media.encoders`: the :class:`MediaEncoder` protocol (one batched call,
  ``identity`` in every cache key), :class:`VideoEncoder` and the :class:`ReferenceVideoVAE`
  stand-in.
* :mod:`~databackend.media.scan` / :mod:`~databackend.media.index` /
  :mod:`~databackend.media.cache`: the media scan (probe -> filter -> bucket -> window, stored
  in a :class:`MediaIndex`) and the media latent cache; both are parametrised by a
  :class:`MediaKindSpec` so a new kind reuses them.

How audio plugs in (no fork of the video code):

1. write ``probe_audio(source: ProbeSource) -> MediaInfo`` (soundfile for wav/flac/ogg, PyAV
   for containers; raise ``NotMedia``/``CorruptMedia`` for files to skip) and add it to
   :data:`DEFAULT_PROBES` (``"audio": ...``);
2. describe the kind with a :class:`~databackend.media.spec.MediaKindSpec`: which probe,
   how a :class:`MediaInfo` becomes a bucket key and a :class:`Window` (duration buckets,
   ``too_short``/``too_long`` filters: the skip reasons exist already in the index), and
   how a window is decoded into a tensor for the encoder;
3. pass an audio :class:`MediaEncoder`; the media latent cache stores and verifies its output
   exactly like video latents.
"""

from __future__ import annotations

from databackend.media.encoders import MediaEncoder, ReferenceVideoVAE, VideoEncoder
from databackend.media.kinds import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    extensions_for,
    media_kinds,
)
from databackend.media.probe import DEFAULT_PROBES, ProbeRegistry, ProbeSource
from databackend.media.reader import RangeFile
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia
from databackend.media.windows import Window, choose_window

__all__ = [
    "AUDIO_EXTENSIONS", "DEFAULT_PROBES", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "CorruptMedia",
    "MediaEncoder", "MediaInfo", "NotMedia", "ProbeRegistry", "ProbeSource", "RangeFile",
    "ReferenceVideoVAE", "VideoEncoder", "Window", "choose_window", "extensions_for",
    "media_kinds",
]
