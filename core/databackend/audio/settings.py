"""The ``audio`` block of a dataset entry: SimpleTuner's keys, aliases and defaults, validated.

SimpleTuner reads the block's keys under several spellings, inside the block and at the top
level of the entry (``audio_duration_interval`` ...). :func:`audio_settings` merges them into one
:class:`AudioSettings`; :func:`audio_problems` lists every invalid value (never raises), so an
audio entry reports all of its problems together with the rest of the config.

Differences from the reference (docs/audio.md): an invalid ``duration_interval`` is an error
instead of a silent fallback to 3.0, ``min_duration_seconds`` filters, and
``min_duration_seconds > max_duration_seconds`` is an error.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

import attrs

__all__ = ["BLOCK_ALIASES", "BLOCK_KEYS", "TOP_LEVEL_ALIASES", "TRUNCATION_MODES",
           "AudioSettings", "audio_problems", "audio_settings", "fill_keeping_lyrics_format",
           "merged_block"]

TRUNCATION_MODES = ("beginning", "end", "random")
BUCKET_STRATEGIES = ("duration",)
#: canonical block key -> other spellings accepted inside the block
BLOCK_ALIASES: Mapping[str, tuple[str, ...]] = {
    "bucket_strategy": ("audio_bucket_strategy",),
    "duration_interval": ("audio_duration_interval", "duration_interval_seconds",
                          "audio_duration_interval_seconds", "audio_bucket_interval"),
    "max_duration_seconds": ("audio_max_duration_seconds",),
    "min_duration_seconds": ("audio_min_duration_seconds",),
    "channels": ("audio_channels",),
    "sample_rate": ("audio_sample_rate",),
}
#: every canonical key of the block (SimpleTuner's, all accepted)
BLOCK_KEYS = frozenset({
    *BLOCK_ALIASES, "truncation_mode", "lyrics_filename_format", "lyrics_extension",
    "lyrics_suffix", "audio_only", "target_resolution", "source_from_video", "auto_split",
    "allow_zero_audio", "source_dataset_id", "cache_dir", "duration",
})
#: top-level entry keys read as block keys (SimpleTuner's aliases; a top-level value wins
#: for ``truncation_mode``, the block wins otherwise)
TOP_LEVEL_ALIASES: Mapping[str, str] = {
    "audio_bucket_strategy": "bucket_strategy",
    "audio_duration_interval": "duration_interval",
    "audio_duration_interval_seconds": "duration_interval",
    "audio_bucket_interval": "duration_interval",
    "audio_max_duration_seconds": "max_duration_seconds",
    "audio_min_duration_seconds": "min_duration_seconds",
    "audio_channels": "channels",
    "audio_sample_rate": "sample_rate",
    "truncation_mode": "truncation_mode",
}
_ALIAS_OF = {alias: canon for canon, names in BLOCK_ALIASES.items() for alias in names}


@attrs.frozen(kw_only=True)
class AudioSettings:
    """The resolved ``audio`` block of one dataset (defaults are SimpleTuner's)."""

    bucket_strategy: str = "duration"
    duration_interval: float = 3.0
    max_duration_seconds: float | None = None
    min_duration_seconds: float | None = None
    channels: int | None = None
    sample_rate: int | None = None
    truncation_mode: str = "beginning"
    lyrics_filename_format: str | None = None
    lyrics_extension: str | None = None
    lyrics_suffix: str | None = None
    audio_only: bool | None = None
    target_resolution: Any = None
    source_from_video: bool = False
    auto_split: bool | None = None
    allow_zero_audio: bool = False
    source_dataset_id: str | None = None
    cache_dir: str | None = None
    duration: float | None = None

    @property
    def uses_lyrics_files(self) -> bool:
        """Whether any lyrics sidecar setting is given."""
        return bool(self.lyrics_filename_format or self.lyrics_extension or self.lyrics_suffix)

    def fingerprint_doc(self) -> dict[str, Any]:
        """What stored scan results depend on (bucketing, filters, lyrics lookup)."""
        return {k: getattr(self, k) for k in (
            "bucket_strategy", "duration_interval", "max_duration_seconds",
            "min_duration_seconds", "lyrics_filename_format", "lyrics_extension",
            "lyrics_suffix", "source_from_video", "allow_zero_audio")}


def merged_block(block: Mapping[str, Any] | None, top: Mapping[str, Any]) -> dict[str, Any]:
    """The block with in-block aliases renamed and top-level aliases filled in.

    Canonical spellings win over aliases; the top-level ``truncation_mode`` wins over the
    block's (as in SimpleTuner); other top-level aliases only fill keys the block lacks.
    """
    out: dict[str, Any] = {}
    raw = dict(block or {})
    for key, value in raw.items():
        canon = _ALIAS_OF.get(key, key)
        if canon != key and canon in raw:
            continue
        out[canon] = value
    for key, canon in TOP_LEVEL_ALIASES.items():
        value = top.get(key)
        if value is None:
            continue
        if canon == "truncation_mode" or canon not in out:
            out[canon] = value
    return out


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_problems(block: Mapping[str, Any]) -> list[str]:
    checks: list[tuple[tuple[str, ...], Any, str]] = [
        (("duration_interval", "max_duration_seconds", "min_duration_seconds", "duration"),
         _number, "a finite number"),
        (("channels", "sample_rate"), _int, "an integer"),
        (("audio_only", "source_from_video", "auto_split", "allow_zero_audio"),
         lambda v: isinstance(v, bool), "a boolean (true/false)"),
        (("bucket_strategy", "truncation_mode", "lyrics_filename_format", "lyrics_extension",
          "lyrics_suffix", "source_dataset_id", "cache_dir"),
         lambda v: isinstance(v, str), "a string"),
    ]
    out = []
    for keys, ok, what in checks:
        for key in keys:
            value = block.get(key)
            if value is not None and not ok(value):
                out.append(f"`audio.{key}`: expected {what}, got {type(value).__name__} "
                           f"{value!r}")
    return out


def _value_problems(block: Mapping[str, Any]) -> list[str]:
    out = []
    for key, choices in (("bucket_strategy", BUCKET_STRATEGIES),
                         ("truncation_mode", TRUNCATION_MODES)):
        value = block.get(key)
        if isinstance(value, str) and value not in choices:
            out.append(f"`audio.{key}` must be one of {', '.join(choices)}; got {value!r}"
                       f"{_suggest(value, choices)}")
    for key in ("duration_interval", "max_duration_seconds", "duration"):
        value = block.get(key)
        if _number(value) and value <= 0:
            out.append(f"`audio.{key}` must be > 0; got {value}")
    for key in ("duration_interval", "max_duration_seconds", "min_duration_seconds", "duration"):
        value = block.get(key)
        if _number(value) and value > _MAX_SECONDS:
            out.append(f"`audio.{key}` is out of range: {value:g} s (at most {_MAX_SECONDS:g})")
    lo, hi = block.get("min_duration_seconds"), block.get("max_duration_seconds")
    if _number(lo) and lo < 0:
        out.append(f"`audio.min_duration_seconds` must be >= 0; got {lo}")
    if _number(lo) and _number(hi) and lo > hi:
        out.append(f"`audio.min_duration_seconds` ({lo}) is larger than "
                   f"`audio.max_duration_seconds` ({hi})")
    for key in ("channels", "sample_rate"):
        value = block.get(key)
        if _int(value) and not 1 <= value <= _MAX_INT[key]:
            out.append(f"`audio.{key}` must be between 1 and {_MAX_INT[key]}; got {value}")
    return out


#: absurd values of the integer keys (they size resampling and decode buffers)
_MAX_INT = {"channels": 1024, "sample_rate": 10_000_000}
_MAX_SECONDS = 10_000_000.0  # durations: about 115 days


def _suggest(word: str, choices: Any) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def audio_problems(block: Any, top: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem of an ``audio`` block (plus its top-level aliases), as lines."""
    if block is not None and not isinstance(block, dict):
        return [f"`audio`: expected an object, got {type(block).__name__} {block!r}"]
    merged = merged_block(block, top or {})
    out = [f"`audio.{k}`: unknown key{_suggest(k, BLOCK_KEYS)}"
           for k in sorted(merged) if k not in BLOCK_KEYS]
    return out + _type_problems(merged) + _value_problems(merged) + _lyrics_problems(merged)


_LYRICS_TOKENS = {k: "x" for k in ("filename", "stem", "name", "suffix", "extension", "ext",
                                    "parent", "dirname")}


def _lyrics_problems(block: Mapping[str, Any]) -> list[str]:
    """A ``lyrics_filename_format`` that cannot be filled with the documented tokens."""
    fmt = block.get("lyrics_filename_format")
    if not isinstance(fmt, str):
        return []
    try:
        fmt.format(**_LYRICS_TOKENS)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        return [f"`audio.lyrics_filename_format` {fmt!r} cannot be filled ({type(exc).__name__}: "
                f"{exc}); tokens: {', '.join('{' + k + '}' for k in _LYRICS_TOKENS)}"]
    return []


def audio_settings(block: Mapping[str, Any] | None, top: Mapping[str, Any] | None = None
                   ) -> AudioSettings:
    """The resolved settings (call after :func:`audio_problems` found nothing)."""
    merged = {k: v for k, v in merged_block(block, top or {}).items()
              if k in BLOCK_KEYS and v is not None}
    for key in ("duration_interval", "max_duration_seconds", "min_duration_seconds", "duration"):
        if key in merged:
            merged[key] = float(merged[key])
    return AudioSettings(**merged)


def fill_keeping_lyrics_format(item: Any, variables: Mapping[str, str], where: str,
                               problems: list[str]) -> Any:
    """:func:`~databackend.config.variables.fill_variables` of ``item``, with
    ``audio.lyrics_filename_format`` left as written: its ``{stem}``, ``{name}``... are lyrics
    tokens (docs/audio.md), not config variables."""
    from databackend.config.variables import fill_variables

    block = item.get("audio") if isinstance(item, dict) else None
    if not isinstance(block, dict) or not isinstance(block.get("lyrics_filename_format"), str):
        return fill_variables(item, variables, where, problems)
    fmt = block["lyrics_filename_format"]
    rest = {k: v for k, v in block.items() if k != "lyrics_filename_format"}
    filled = fill_variables({**item, "audio": rest}, variables, where, problems)
    filled["audio"] = {**filled["audio"], "lyrics_filename_format": fmt}
    return filled
