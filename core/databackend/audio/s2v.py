"""Audio attached to video (SimpleTuner's s2v pairing): the generated audio datasets.

A video dataset with an ``audio`` block and no ``s2v_datasets`` gets an audio dataset
``{id}_audio`` (``auto_split``, default true when the block exists), as SimpleTuner's
``_inject_s2v_audio_configs`` makes it: the same storage keys, ``source_dataset_id`` set to the
video set, ``probability: 0`` (never drawn on its own), and an ``audio`` block with
``source_from_video: true`` (the audio track of each clip). The video set gets
``s2v_datasets: [id]``. Every audio set that takes its audio from a video set's clips gets
that set's ``video`` block as ``s2v_video``, so its windows follow the video's
(:mod:`databackend.audio.align`). This runs on the raw entries, before validation, so
generated entries are validated like written ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["S2V_SAMPLE_RATE", "attach_s2v", "inject_s2v_audio", "is_attached"]

#: SimpleTuner's default extraction rate for audio taken from video
S2V_SAMPLE_RATE = 16000
#: raw keys that belong to the video set only (everything else describes the storage and is
#: inherited, like SimpleTuner's copy of ``type``, ``instance_data_dir``, ``aws_*`` ...)
_NOT_INHERITED = frozenset({
    "id", "dataset_type", "audio", "video", "s2v_datasets", "conditioning", "conditioning_data",
    "probability", "repeats", "cache_dir_vae", "text_embeds", "image_embeds",
    "caption_strategy", "instance_prompt", "prepend_instance_prompt", "only_instance_prompt",
    "resolution", "resolution_type", "minimum_image_size", "maximum_image_size",
    "target_downsample_size", "crop", "crop_style", "crop_aspect", "crop_aspect_buckets",
    "minimum_aspect_ratio", "maximum_aspect_ratio", "train_batch_size", "start_epoch",
    "start_step", "end_epoch", "end_step", "disable_after_epoch_step", "is_i2v",
    "vae_cache_ondemand", "vae_cache_disable", "vae_cache_clear_each_epoch", "parquet",
    "cache_file_suffix", "source_dataset_id", "is_regularisation_data",
    "is_regularization_data", "metadata_backend", "max_num_samples", "disabled", "disable",
})
_BLOCK_COPIED = ("allow_zero_audio", "channels", "duration", "max_duration_seconds",
                 "truncation_mode", "sample_rate", "min_duration_seconds", "duration_interval")


def _wants_split(entry: Mapping[str, Any]) -> bool:
    block = entry.get("audio")
    if entry.get("dataset_type") != "video" or not isinstance(block, dict):
        return False
    if entry.get("s2v_datasets") is not None or entry.get("disabled") or entry.get("disable"):
        return False
    return block.get("auto_split", True) is not False


def _audio_entry(video: Mapping[str, Any], ident: str) -> dict[str, Any]:
    block = video["audio"]
    audio: dict[str, Any] = {"source_from_video": True,
                             "sample_rate": block.get("sample_rate", S2V_SAMPLE_RATE),
                             "duration_interval": 3.0}
    audio.update({k: block[k] for k in _BLOCK_COPIED if k in block})
    entry = {k: v for k, v in video.items() if k not in _NOT_INHERITED}
    entry.update(id=ident, dataset_type="audio", source_dataset_id=video["id"],
                 probability=0.0, audio=audio, s2v_video=_video_block(video))
    if "cache_dir_vae" in video and isinstance(video["cache_dir_vae"], str):
        entry["cache_dir_vae"] = f"{video['cache_dir_vae'].rstrip('/')}/audio/{ident}"
    return entry


def _video_block(video: Mapping[str, Any]) -> dict[str, Any]:
    """The video set's ``video`` block (empty: its defaults), for the windows to follow."""
    block = video.get("video")
    return dict(block) if isinstance(block, dict) else {}


def _follow_named(raw: list[Any]) -> list[Any]:
    """Audio sets named in a video set's ``s2v_datasets`` that take their audio from the
    clips (``source_from_video``) get that set's ``video`` block as ``s2v_video``, unless
    they set one."""
    owners: dict[str, Mapping[str, Any]] = {}
    for e in raw:
        if isinstance(e, dict) and e.get("dataset_type") == "video":
            names = e.get("s2v_datasets")
            for name in [names] if isinstance(names, str) else \
                    names if isinstance(names, list) else []:
                if isinstance(name, str):
                    owners.setdefault(name, e)
    out = []
    for e in raw:
        ident = e.get("id") if isinstance(e, dict) else None
        video = owners.get(ident) if isinstance(ident, str) else None
        block = e.get("audio") if isinstance(e, dict) else None
        if (video is not None and isinstance(block, dict) and block.get("source_from_video")
                and "s2v_video" not in e):
            e = {**e, "s2v_video": _video_block(video)}
        out.append(e)
    return out


def inject_s2v_audio(raw: Any) -> Any:
    """``raw`` with a generated audio dataset after each video set that asks for one.

    Non-list input and malformed entries are returned untouched (validation reports them).
    """
    if not isinstance(raw, list):
        return raw
    taken = {e.get("id") for e in raw if isinstance(e, dict) and isinstance(e.get("id"), str)}
    out: list[Any] = []
    extra: list[dict[str, Any]] = []
    for entry in raw:
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), str)
                and _wants_split(entry)):
            out.append(entry)
            continue
        ident, n = f"{entry['id']}_audio", 1
        while ident in taken:
            ident, n = f"{entry['id']}_audio_{n}", n + 1
        taken.add(ident)
        out.append({**entry, "s2v_datasets": [ident]})
        extra.append(_audio_entry(entry, ident))
    return _follow_named(out) + extra


def is_attached(plan: Any, dataset: Any) -> bool:
    """Whether an audio dataset rides in a video set's batches instead of being drawn: it is
    named in a video set's ``s2v_datasets``, or takes its audio from the video files."""
    if dataset.dataset_type != "audio":
        return False
    named = {a for d in plan.datasets for a in d.s2v_ids}
    return dataset.id in named or bool((dataset.audio or {}).get("source_from_video"))


def attach_s2v(dataset: Any, sources: Mapping[str, Any]) -> Any:
    """The runtime source of ``dataset``, wrapped in an
    :class:`~databackend.audio.source.S2VSource` when it names ``s2v_datasets``."""
    from databackend.audio.source import AudioSource, S2VSource

    paired = [s for a in dataset.s2v_ids if isinstance(s := sources.get(a), AudioSource)]
    source = sources[dataset.id]
    return S2VSource(source, paired) if paired else source
