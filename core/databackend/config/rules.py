"""Semantic checks that types alone cannot express; each returns problem lines, never raises."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from databackend.audio.config import audio_reference_problems, check_audio
from databackend.captionstrategy import BUILTIN_CAPTION_STRATEGIES
from databackend.config import limits
from databackend.config.models import (
    BaseBackendConfig,
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
)
from databackend.config.settings import resolve_settings
from databackend.config.suggest import suggest
from databackend.options import SAMPLING_POLICIES, SHORT_BUCKET_POLICIES, FactoryOptions

__all__ = ["CAPTION_STRATEGIES", "check_dataset", "check_references", "suggest"]

#: The built-in strategies; plugins add theirs (``check_dataset(..., choices=...)``).
CAPTION_STRATEGIES = BUILTIN_CAPTION_STRATEGIES
CROP_STYLES = ("random", "center", "centre", "corner", "face")
CROP_ASPECTS = ("square", "preserve", "closest", "random")
METADATA_BACKENDS = ("discovery", "json", "filesystem", "parquet")
SKIP_TOKENS = ("vae", "aspect", "metadata", "text")
#: ``rescan`` policies (docs/scale.md): list + stat, list names only, or trust the index.
RESCAN_POLICIES = ("always", "changed", "never")
CONDITIONING_TYPES = ("controlnet", "mask", "reference_strict", "reference_loose", "segmentation")


def _choice(key: str, value: str | None, choices: Sequence[str]) -> list[str]:
    if value is None or value in choices:
        return []
    return [f"`{key}` must be one of {', '.join(choices)}; got {value!r}{suggest(value, choices)}"]


def _geometry(d: ImageBackendConfig, opts: FactoryOptions) -> list[str]:
    out = _choice("resolution_type", d.resolution_type, ("pixel", "area", "pixel_area"))
    out += _choice("crop_style", d.crop_style, CROP_STYLES)
    out += _choice("crop_aspect", d.crop_aspect, CROP_ASPECTS)
    resolved = resolve_settings(d, opts)
    rtype, res = resolved.resolution_type, resolved.resolution
    if rtype == "pixel_area" and not float(res).is_integer():
        out.append(f"`resolution` must be a whole number of pixels with pixel_area; got {res}")
    if res <= 0:
        out.append(f"`resolution` must be positive; got {res}")
    if rtype == "area" and d.minimum_image_size is not None and d.minimum_image_size > 5:
        out.append(f"`minimum_image_size` is in megapixels with resolution_type area; "
                   f"{d.minimum_image_size} is most likely a pixel value")
    if d.maximum_image_size is not None and d.target_downsample_size is None:
        out.append("`maximum_image_size` needs `target_downsample_size`")
    if d.crop_aspect in ("closest", "random") and not d.crop_aspect_buckets:
        out.append(f"`crop_aspect_buckets` (a list of aspect ratios) is required with "
                   f"crop_aspect {d.crop_aspect!r}")
    for i, b in enumerate(d.crop_aspect_buckets or ()):
        ok = (isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0) or (
            isinstance(b, dict) and any(k in b for k in ("aspect", "aspect_ratio", "aspect_bucket")))
        if not ok:
            out.append(f"`crop_aspect_buckets[{i}]` must be a positive number or "
                       f"{{\"aspect\": x, \"weight\": w}}; got {b!r}")
    lo, hi = d.minimum_aspect_ratio, d.maximum_aspect_ratio
    if lo is not None and hi is not None and lo > hi:
        out.append(f"`minimum_aspect_ratio` ({lo}) is larger than `maximum_aspect_ratio` ({hi})")
    return out


def _sampling(d: ImageBackendConfig) -> list[str]:
    out = []
    if d.train_batch_size is not None and d.train_batch_size < 1:
        out.append(f"`train_batch_size` must be >= 1; got {d.train_batch_size}")
    if d.repeats < 0:
        out.append(f"`repeats` must be >= 0; got {d.repeats}")
    if d.probability < 0:
        out.append(f"`probability` must be >= 0; got {d.probability}")
    if d.start_epoch < 1:
        out.append(f"`start_epoch` must be >= 1; got {d.start_epoch}")
    if d.end_epoch is not None and d.end_epoch < d.start_epoch:
        out.append(f"`end_epoch` ({d.end_epoch}) is before `start_epoch` ({d.start_epoch})")
    if d.end_step is not None and d.end_step < d.start_step:
        out.append(f"`end_step` ({d.end_step}) is before `start_step` ({d.start_step})")
    if d.max_num_samples is not None and d.max_num_samples < 1:
        out.append(f"`max_num_samples` must be >= 1; got {d.max_num_samples}")
    out += _choice("short_bucket_policy", d.short_bucket_policy, SHORT_BUCKET_POLICIES)
    out += _choice("sampling_policy", d.sampling_policy, SAMPLING_POLICIES)
    return out


def _captions(d: ImageBackendConfig, choices: Mapping[str, Sequence[str]]) -> list[str]:
    out = _choice("caption_strategy", d.caption_strategy,
                  choices.get("caption_strategy", CAPTION_STRATEGIES))
    out += _choice("metadata_backend", d.metadata_backend,
                   choices.get("metadata_backend", METADATA_BACKENDS))
    out += _choice("conditioning_type", d.conditioning_type, CONDITIONING_TYPES)
    needs_prompt = d.caption_strategy == "instanceprompt" or d.prepend_instance_prompt
    if needs_prompt and not d.instance_prompt:
        out.append("`instance_prompt` is required with caption_strategy instanceprompt or "
                   "prepend_instance_prompt")
    if d.caption_strategy == "parquet" and not (d.parquet and d.parquet.get("path")):
        out.append("`parquet.path` is required with caption_strategy parquet")
    bad = [t for t in d.skip_file_discovery.replace(",", " ").split() if t not in SKIP_TOKENS]
    for token in bad:
        out.append(f"`skip_file_discovery`: unknown stage {token!r}; use any of "
                   f"{', '.join(SKIP_TOKENS)}{suggest(token, SKIP_TOKENS)}")
    return out


def _media(d: ImageBackendConfig, opts: FactoryOptions) -> list[str]:
    """The ``video`` block (databackend.media.videoconfig), for video and conditioning sets."""
    from databackend.media.videoconfig import video_problems

    if d.video is not None and d.dataset_type not in ("video", "conditioning"):
        return [f"`video` applies to dataset_type video (or a video conditioning set); this "
                f"dataset is {d.dataset_type!r}"]
    return video_problems(d.video, framerate=opts.framerate)


def check_dataset(entry: BaseBackendConfig, opts: FactoryOptions,
                  choices: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every value problem of one entry, as ``key: ...`` lines; ``choices`` extends the
    accepted values of ``caption_strategy``/``metadata_backend`` (plugins' contributions)."""
    out = []
    if isinstance(entry, (TextEmbedBackendConfig, ImageEmbedBackendConfig)) \
            and entry.write_batch_size < 1:
        out.append(f"`write_batch_size` must be >= 1; got {entry.write_batch_size}")
    if isinstance(entry, ImageBackendConfig):
        out += _geometry(entry, opts) + _sampling(entry) + _captions(entry, choices or {})
        out += _media(entry, opts)
        out += _choice("rescan", entry.rescan, RESCAN_POLICIES)
    out += check_audio(entry)
    check = getattr(entry.storage, "problems", None)
    if callable(check):
        out += list(check())
    out += limits.check_limits(entry, opts, out)  # hardening: NaN, absurd sizes, unsafe ids
    return out


def _ref(d: ImageBackendConfig, key: str, target: str | None, pool: Iterable[str],
         kind: str) -> list[str]:
    pool = list(pool)
    if target is None or target in pool:
        return []
    return [f"dataset {d.id!r}: `{key}` names {target!r}, which is not a {kind} entry"
            f"{suggest(target, pool)}"]


def check_references(entries: Sequence[BaseBackendConfig]) -> list[str]:
    """Duplicate ids, dangling ``text_embeds``/``image_embeds``/``conditioning_data`` ids,
    default text-embed rules, and shared VAE cache folders."""
    out = [f"id {i!r} is used by {n} entries; ids must be unique"
           for i, n in Counter(e.id for e in entries).items() if n > 1]
    texts = [e for e in entries if isinstance(e, TextEmbedBackendConfig)]
    images = [e.id for e in entries if isinstance(e, ImageEmbedBackendConfig)]
    datasets = [e for e in entries if isinstance(e, ImageBackendConfig)]
    defaults = [t.id for t in texts if t.default]
    if len(defaults) > 1:
        out.append(f"text_embeds entries {', '.join(map(repr, defaults))} are all `default`; "
                   "only one may be")
    data_ids = [d.id for d in datasets]
    for d in datasets:
        out += _ref(d, "text_embeds", d.text_embeds, (t.id for t in texts), "text_embeds")
        out += _ref(d, "image_embeds", d.image_embeds, images, "image_embeds")
        out += _ref(d, "source_dataset_id", d.source_dataset_id, data_ids, "dataset")
        for c in d.conditioning_ids:
            out += _ref(d, "conditioning_data", c, data_ids, "dataset")
        if d.text_embeds is None and len(texts) > 1 and not defaults:
            out.append(f"dataset {d.id!r}: `text_embeds` is not set and none of the "
                       f"{len(texts)} text_embeds entries is `default`; set one")
    vae_dirs = Counter(d.cache_dir_vae for d in datasets if d.cache_dir_vae)
    out += [f"`cache_dir_vae` {p!r} is used by {n} datasets; each needs its own"
            for p, n in vae_dirs.items() if n > 1]
    out += audio_reference_problems(entries)
    starts = [d for d in datasets if d.dataset_type != "eval"]
    if starts and not any(d.start_epoch <= 1 and d.start_step <= 1 for d in starts):
        out.append("no dataset is active at the start (every one has start_epoch > 1 or "
                   "start_step > 1)")
    out += _policy_agreement(datasets)
    return out


def _policy_agreement(datasets: Sequence[ImageBackendConfig]) -> list[str]:
    """``sampling_policy`` applies to the whole config: the datasets that set it must agree."""
    chosen = {d.id: d.sampling_policy for d in datasets
              if d.sampling_policy is not None and not d.disabled}
    if len(set(chosen.values())) < 2:
        return []
    return ["`sampling_policy` applies to the whole config, but datasets disagree: "
            + ", ".join(f"{i!r} {p}" for i, p in sorted(chosen.items()))]
