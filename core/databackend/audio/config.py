"""Config of ``dataset_type: audio`` entries, and the audio checks of the config rules.

An audio dataset has every key of an image dataset (captions, caches, sampling, schedule)
plus the ``audio`` block (:mod:`databackend.audio.settings`) and SimpleTuner's top-level
aliases of its keys. Geometry keys are accepted and unused, as in SimpleTuner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from databackend.audio.settings import TOP_LEVEL_ALIASES, AudioSettings, audio_problems, audio_settings
from databackend.config.models import BaseBackendConfig, ImageBackendConfig

__all__ = ["AUDIO_KIND", "AudioBackendConfig", "audio_reference_problems", "check_audio",
           "settings_of"]

AUDIO_KIND = "audio"


@attrs.frozen(kw_only=True)
class AudioBackendConfig(ImageBackendConfig):
    """An audio training dataset (``dataset_type: audio``); see docs/audio.md."""

    KINDS: ClassVar[tuple[str, ...]] = (AUDIO_KIND,)

    # SimpleTuner's top-level spellings of ``audio`` block keys (checked with the block)
    audio_bucket_strategy: Any = None
    audio_duration_interval: Any = None
    audio_duration_interval_seconds: Any = None
    audio_bucket_interval: Any = None
    audio_max_duration_seconds: Any = None
    audio_min_duration_seconds: Any = None
    audio_channels: Any = None
    audio_sample_rate: Any = None
    truncation_mode: Any = None


def _top(entry: ImageBackendConfig) -> dict[str, Any]:
    return {k: getattr(entry, k, None) for k in TOP_LEVEL_ALIASES}


def settings_of(entry: ImageBackendConfig) -> AudioSettings:
    """The resolved audio settings of an entry (its block and top-level aliases)."""
    return audio_settings(entry.audio, _top(entry))


def check_audio(entry: BaseBackendConfig) -> list[str]:
    """The ``audio`` block problems of one entry (audio sets, and video sets with a block)."""
    if not isinstance(entry, ImageBackendConfig):
        return []
    out = []
    if isinstance(entry, AudioBackendConfig) or entry.audio is not None:
        out += audio_problems(entry.audio, _top(entry))
    if entry.s2v_datasets is not None and not _ids_ok(entry.s2v_datasets):
        out.append(f"`s2v_datasets` must be a dataset id or a list of ids; got "
                   f"{entry.s2v_datasets!r}")
    elif entry.s2v_datasets is not None and entry.dataset_type != "video":
        out.append(f"`s2v_datasets` pairs audio with a video dataset; this dataset is "
                   f"{entry.dataset_type!r}")
    return out + _s2v_video_problems(entry)


def _s2v_video_problems(entry: ImageBackendConfig) -> list[str]:
    """``s2v_video`` (the followed video set's block) belongs on audio sets that take their
    audio from video files, and is checked as a ``video`` block."""
    block = entry.s2v_video
    if block is None:
        return []
    if not isinstance(entry, AudioBackendConfig) or not \
            (entry.audio or {}).get("source_from_video"):
        return ["`s2v_video` is for audio datasets with `audio.source_from_video: true` (the "
                "loader sets it from the video dataset that names them in `s2v_datasets`)"]
    from databackend.media.videoconfig import video_problems

    return [f"`s2v_video`: {p}" for p in video_problems(block)]


def _ids_ok(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def audio_reference_problems(entries: Sequence[BaseBackendConfig]) -> list[str]:
    """``s2v_datasets`` ids must name audio datasets; each audio set pairs one video set."""
    audio = {e.id for e in entries if isinstance(e, AudioBackendConfig)}
    out = []
    owners: dict[str, str] = {}
    for e in entries:
        if not isinstance(e, ImageBackendConfig) or not _ids_ok(e.s2v_datasets or "x"):
            continue
        for ident in e.s2v_ids:
            if ident not in audio:
                out.append(f"dataset {e.id!r}: `s2v_datasets` names {ident!r}, which is not "
                           f"an audio dataset (audio datasets: "
                           f"{', '.join(sorted(audio)) or 'none'})")
            elif ident in owners and owners[ident] != e.id:
                out.append(f"audio dataset {ident!r} is in `s2v_datasets` of both "
                           f"{owners[ident]!r} and {e.id!r}; pair it with one video dataset")
            owners.setdefault(ident, e.id)
    return out
