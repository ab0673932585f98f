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
   for containers; fill ``sample_rate``, ``channels``, ``samples``, ``duration``; raise
   ``NotMedia``/``CorruptMedia`` for files to skip; ``source.local`` is a path or None, else
   ``source.open()`` gives a seekable file over ranged reads) and add it to
   :data:`DEFAULT_PROBES` (``"audio": ...``);
2. write an ``AudioSpec`` satisfying :class:`~databackend.media.spec.MediaKindSpec` with
   ``kind="audio"``, ``spatial=False`` (no image geometry; the bucket key is ``plan.bucket``
   alone, e.g. ``(duration_ms,)``), ``plan()`` returning the skip reason (``too_short``,
   ``too_long``, ``not_media`` exist in ``metadata.index.REASONS`` already) or the bucket
   and the :class:`Window` (in samples) from :func:`choose_window`, and ``bucket_label()``
   (``"6s"``); return it from :func:`databackend.media.select.media_spec_for` for
   ``dataset_type: audio``. The media scan, :class:`~databackend.media.index.MediaIndex`
   (its probe table and columns hold ``sample_rate``/``channels``/``samples``), the report and
   the runtime source then work unchanged;
3. subclass :class:`~databackend.media.cache.MediaLatentCache` overriding ``_load`` (decode
   the window into the encoder's input) and ``_problem`` (the stored layout); pass an audio
   :class:`MediaEncoder` as ``media_encoders={"audio": ...}`` (``wiring`` picks the encoder by
   ``spec.kind`` and the cache class from ``spec.cache_class`` when the spec has one; add the
   stand-in to ``wiring.reference_media_encoders``). Keys, storage,
   verification, repair, precompute and counters are shared with video.
"""

from __future__ import annotations

from databackend.media.defaults import DEFAULT_PROBES
from databackend.media.encoders import MediaEncoder, ReferenceVideoVAE, VideoEncoder
from databackend.media.kinds import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    extensions_for,
    media_kinds,
)
from databackend.media.probe import ProbeRegistry, ProbeSource
from databackend.media.reader import RangeFile
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia
from databackend.media.windows import Window, choose_window

__all__ = [
    "AUDIO_EXTENSIONS", "DEFAULT_PROBES", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "CorruptMedia",
    "MediaEncoder", "MediaInfo", "NotMedia", "ProbeRegistry", "ProbeSource", "RangeFile",
    "ReferenceVideoVAE", "VideoEncoder", "Window", "choose_window", "extensions_for",
    "media_kinds",
]
