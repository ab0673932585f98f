"""The audio kind of the shared media scan: filters, duration buckets and crop windows.

:class:`AudioSpec` is the :class:`~databackend.media.spec.MediaKindSpec` of audio datasets
(``spatial`` false: no image geometry). Per probed clip it decides the skip reason
(``too_short``/``too_long``), the bucket (:mod:`databackend.audio.buckets`, keyed
``(milliseconds, 1)``, printed ``6s``), the window of the bucket's length in native samples
(``truncation_mode``; ``random`` a pure function of the seed and the clip's path), and the
sizes the index keeps: original ``(samples, channels)`` and target ``(bucket samples,
channels)``, as SimpleTuner's placeholders. An s2v set that follows a video set's windows
(``s2v_video``) is planned by :mod:`databackend.audio.align` instead.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import attrs

from databackend.audio.align import aligned_plan
from databackend.audio.buckets import bucket_key, bucket_name, bucket_seconds, crop_window, filter_reason
from databackend.audio.config import settings_of
from databackend.audio.s2v import S2V_SAMPLE_RATE
from databackend.audio.settings import AudioSettings
from databackend.media.kinds import extensions_for
from databackend.media.record import MediaInfo
from databackend.media.spec import MediaPlan
from databackend.media.videoconfig import VideoSettings

#: The most values (samples x channels) one decoded window may hold (1 GiB of float32, about
#: 46 minutes of 48 kHz stereo): a header declaring more (a hostile sample count, rate or
#: channel count) makes the clip ``too_long`` instead of sizing a huge decode buffer.
MAX_WINDOW_VALUES = 2**28

if TYPE_CHECKING:
    from databackend.config.models import ImageBackendConfig
    from databackend.options import FactoryOptions

__all__ = ["AudioSpec", "audio_spec_for"]


@attrs.frozen
class AudioSpec:
    """The audio kind (see the module docstring)."""

    settings: AudioSettings
    kind: str = "audio"
    spatial: bool = False
    #: the paired video set's settings (``s2v_video``): windows follow its frames
    #: (:mod:`databackend.audio.align`); None: plain audio
    video: VideoSettings | None = None

    @property
    def probe_kind(self) -> str:
        """The probe that reads this set's files: ``s2v`` (the audio track plus the video
        stream's frame count and rate) when the windows follow a video set, else ``audio``."""
        return "s2v" if self.video is not None else "audio"

    @property
    def cache_class(self) -> type[Any]:
        """The audio latent cache (the media wiring opens a kind's own cache class)."""
        from databackend.audio.cache import AudioLatentCache

        return AudioLatentCache

    def extensions(self) -> frozenset[str]:
        """The reference's audio extensions; its video ones for ``source_from_video``."""
        return extensions_for("video" if self.settings.source_from_video else "audio")

    def fingerprint(self) -> str:
        """A hash of the audio settings that change a plan."""
        doc = {"kind": self.kind, **self.settings.fingerprint_doc(),
               "truncation_mode": self.settings.truncation_mode}
        if self.video is not None:
            doc["s2v_video"] = self.video.fingerprint_doc()
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def plan(self, info: MediaInfo, key: str, seed: int) -> MediaPlan:
        """Filter by duration, bucket, and place the window (see the module docstring)."""
        s = self.settings
        if info.channels == 0 and info.frames > 0:  # a video without an audio stream
            return self._silent(info, key, seed)
        if info.samples <= 0 or info.sample_rate <= 0:
            return MediaPlan("corrupt")
        reason = filter_reason(info.duration, minimum=s.min_duration_seconds,
                               maximum=s.max_duration_seconds)
        if reason is not None:
            return MediaPlan(reason)
        if self.video is not None:
            aligned = aligned_plan(self.video, info, key, seed, MAX_WINDOW_VALUES)
            if aligned is not None:
                return aligned
        seconds = bucket_seconds(info.duration, s.duration_interval)
        target = round(seconds * info.sample_rate)
        if max(target, 1) * max(info.channels, 1) > MAX_WINDOW_VALUES:
            return MediaPlan("too_long")
        window = crop_window(info.samples, target, s.truncation_mode, seed=seed, key=key)
        return MediaPlan(None, bucket_key(seconds), window,
                         sizes=((info.samples, info.channels), (target, info.channels)))

    def _silent(self, info: MediaInfo, key: str, seed: int) -> MediaPlan:
        """A clip without audio: ``no_audio``, or with ``allow_zero_audio`` (s2v sets that
        follow a video) silence over the video's window, at the set's ``sample_rate``."""
        if not self.settings.allow_zero_audio or self.video is None or info.fps <= 0:
            return MediaPlan("no_audio")
        rate = self.settings.sample_rate or S2V_SAMPLE_RATE
        silent = attrs.evolve(info, sample_rate=rate, channels=1,
                              samples=round(info.frames / info.fps * rate))
        plan = aligned_plan(self.video, silent, key, seed, MAX_WINDOW_VALUES)
        return plan if plan is not None else MediaPlan("no_audio")

    def bucket_label(self, bucket: tuple[int, ...]) -> str:
        """SimpleTuner's key: ``6s``, ``7.4s``."""
        return bucket_name(bucket[0] / 1000)


def audio_spec_for(dataset: ImageBackendConfig, options: FactoryOptions) -> AudioSpec:
    """The spec of an audio dataset (its ``audio`` block and top-level aliases; its paired
    video set's block when it follows one, ``s2v_video``)."""
    block = getattr(dataset, "s2v_video", None)
    video = None if block is None else VideoSettings.from_block(
        block, framerate=options.framerate, dataset_id=dataset.id)
    return AudioSpec(settings_of(dataset), video=video)
