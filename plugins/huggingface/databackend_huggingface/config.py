"""The keys of a ``huggingface`` dataset and their resolved, validated form.

SimpleTuner accepts most Hugging Face keys either at the top level of the dataset entry or inside
its ``huggingface`` block (and its documentation and code disagree about ``caption_column``). Here
both places work for every key of :data:`SHARED_KEYS`; a key given in both places with different
values is a problem, never a silent choice. :meth:`HuggingfaceConfig.settings` merges them into one
:class:`HFSettings`, which is what the storage and metadata backends use.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "BLOCK_KEYS",
    "IGNORED_BLOCK_KEYS",
    "SHARED_KEYS",
    "CompositeSettings",
    "FilterSettings",
    "HFSettings",
    "HuggingfaceConfig",
    "load_predicate",
]

#: Keys accepted both at the top level and inside the ``huggingface`` block.
SHARED_KEYS = ("dataset_name", "split", "revision", "image_column", "caption_column",
               "fallback_caption_column",
               "width_column", "height_column", "split_composite_images",
               "composite_image_column", "cache_dir", "streaming", "num_proc",
               "filter_function", "video_column")
#: SimpleTuner keys of the block that databackend reads.
BLOCK_KEYS = frozenset({*SHARED_KEYS, "composite_image_config", "filter_func", "quality_column",
                        "description_column", "file_extension",
                        # audio datasets (docs/audio.md)
                        "audio_column", "lyrics_column", "audio_caption_fields"})
#: SimpleTuner keys of the block that are accepted and ignored (video/audio datasets, eager load).
IGNORED_BLOCK_KEYS = frozenset({"auto_load", "num_frames_column", "fps_column", "bbox_column"})
_FILTER_KEYS = frozenset({"collection", "collection_column", "quality_thresholds",
                          "quality_column", "min_width", "min_height", "function"})
_COMPOSITE_KEYS = frozenset({"enabled", "image_count", "select_index"})
_MISSING = object()


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_predicate(spec: str) -> Callable[[dict[str, Any]], Any]:
    """Import ``"package.module:function"`` (``function`` may be ``Class.attr``).

    Raises ``ValueError`` with a one-line reason when the spec is malformed, the module cannot be
    imported or the object is not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise ValueError(f"`filter_function` must look like 'module:function'; got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name.strip())
        for part in attr.strip().split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"`filter_function` {spec!r} cannot be loaded: {exc}") from None
    if not callable(obj):
        raise ValueError(f"`filter_function` {spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


def predicate_identity(fn: Callable[..., Any]) -> str:
    """A fingerprint of a predicate's code and constants, so an edited function rescans."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    digest = hashlib.sha256(code.co_code)
    digest.update(repr(code.co_consts).encode())
    digest.update(repr(getattr(fn, "__defaults__", None)).encode())
    return digest.hexdigest()[:16]


@attrs.frozen(kw_only=True)
class CompositeSettings:
    """Composite images: ``image_count`` equal-width tiles side by side in one image.

    ``tiles`` are the tile indices that become samples: ``(select_index,)``, or every tile when
    ``split_composite_images`` is set or no ``select_index`` is given.
    """

    enabled: bool = False
    image_count: int = 1
    tiles: tuple[int, ...] = (0,)
    column: str | None = None

    @property
    def split_all(self) -> bool:
        """Whether every tile is its own sample (paths ``{row}_{tile}.{ext}``)."""
        return self.enabled and len(self.tiles) > 1


@attrs.frozen(kw_only=True)
class FilterSettings:
    """Row filters (SimpleTuner's ``filter_func`` plus the ``filter_function`` predicate)."""

    collection: tuple[str, ...] | None = None
    collection_column: str = "collection"
    quality_thresholds: tuple[tuple[str, float], ...] = ()
    quality_column: str = "quality_assessment"
    min_width: int | None = None
    min_height: int | None = None
    function: str | None = None

    @property
    def active(self) -> bool:
        """Whether any filter is configured."""
        return bool(self.collection is not None or self.quality_thresholds or self.min_width
                    or self.min_height or self.function)


@attrs.frozen(kw_only=True)
class HFSettings:
    """The merged settings of one Hugging Face dataset (see :meth:`HuggingfaceConfig.settings`)."""

    dataset_name: str
    split: str = "train"
    revision: str | None = None
    image_column: str = "image"
    caption_columns: tuple[str, ...] = ("caption",)
    fallback_caption_column: str | None = None
    description_column: str | None = None
    width_column: str | None = None
    height_column: str | None = None
    cache_dir: str | None = None
    streaming: bool = False
    num_proc: int | None = None
    file_extension: str = "jpg"
    composite: CompositeSettings = CompositeSettings()
    filters: FilterSettings = FilterSettings()
    #: video datasets: the column holding the encoded clips (bytes, {bytes, path} or a path)
    video_column: str | None = None
    #: audio datasets: the audio column (its cells are the samples), the lyrics columns (the
    #: first non-empty one wins) and the columns joined into a caption when the caption
    #: columns are empty (SimpleTuner's keys of the ``huggingface`` block)
    audio_column: str | None = None
    lyrics_columns: tuple[str, ...] = ("lyrics", "norm_lyrics")
    audio_caption_fields: tuple[str, ...] = ("prompt", "tags")

    @property
    def source_column(self) -> str:
        """The column the samples come from: the video column of a video dataset, else the
        composite column when set, else the audio column when set, else the image column."""
        return self.video_column or self.composite.column or self.audio_column or \
            self.image_column

    @property
    def has_size_columns(self) -> bool:
        """Whether sizes come from width/height columns (no image reads)."""
        return bool(self.width_column and self.height_column)

    def fingerprint(self, predicate_id: str = "") -> str:
        """What the stored rows depend on besides the dataset itself and the geometry."""
        doc = attrs.asdict(self)
        doc.pop("cache_dir")
        doc.pop("num_proc")
        return _hash({"settings": doc, "predicate": predicate_id})


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, str) and v.strip() for v in value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@attrs.frozen(kw_only=True)
class HuggingfaceConfig:
    """Keys of a ``huggingface`` dataset (the JSON keys next to ``"type": "huggingface"``).

    ``dataset_name`` is a hub id (``user/name``), a local parquet/arrow/JSONL file or folder of
    them, or a folder written by ``Dataset.save_to_disk``. Every key of :data:`SHARED_KEYS`
    (``dataset_name`` included, where SimpleTuner's examples put it) may also be given inside
    the ``huggingface`` block; set in both places, the values must be equal. See
    ``docs/huggingface.md``.
    """

    dataset_name: str | None = None
    split: str | None = None
    revision: str | None = None
    image_column: str | None = None
    #: A column name, a dotted path into a struct column (``description.text``) or a list of them.
    caption_column: Any = None
    fallback_caption_column: str | None = None
    width_column: str | None = None
    height_column: str | None = None
    split_composite_images: bool | None = None
    composite_image_column: str | None = None
    cache_dir: str | None = None
    streaming: bool | None = None
    num_proc: int | None = None
    #: ``"module:function"``: a predicate called with each row's non-image columns.
    filter_function: str | None = None
    #: the column of encoded clips of a ``dataset_type: video`` dataset (docs/video.md)
    video_column: str | None = None
    huggingface: dict[str, Any] | None = None

    # --- merging -----------------------------------------------------------------------------
    def _block(self) -> dict[str, Any]:
        return dict(self.huggingface or {})

    def value(self, key: str, default: Any = None) -> Any:
        """A shared key's value: top level, else the block, else ``default``."""
        top = getattr(self, key, None)
        if top is not None:
            return top
        block = self._block().get(key)
        return default if block is None else block

    def conflicts(self) -> list[str]:
        """Shared keys set in both places with different values."""
        block = self._block()
        return [f"`{k}` is {getattr(self, k)!r} at the top level but {block[k]!r} in the "
                "`huggingface` block; set it once" for k in SHARED_KEYS
                if getattr(self, k) is not None and block.get(k) is not None
                and getattr(self, k) != block[k]]

    def settings(self) -> HFSettings:
        """The merged settings; call :meth:`problems` first (bad values raise here)."""
        name = self.value("dataset_name")
        if not name:
            raise ValueError("`dataset_name` is required for a huggingface dataset")
        columns = self.value("caption_column", "caption")
        block = self._block()
        return HFSettings(
            dataset_name=str(name), split=self.value("split", "train"),
            revision=self.value("revision"), image_column=self.value("image_column", "image"),
            caption_columns=(columns,) if isinstance(columns, str) else tuple(columns),
            fallback_caption_column=self.value("fallback_caption_column"),
            description_column=block.get("description_column"),
            width_column=self.value("width_column"), height_column=self.value("height_column"),
            cache_dir=self.value("cache_dir"), streaming=bool(self.value("streaming", False)),
            num_proc=self.value("num_proc"),
            file_extension=str(block.get("file_extension")
                               or ("mp4" if self.value("video_column") else
                                   "wav" if self._block().get("audio_column") else "jpg")
                               ).lstrip("."),
            composite=self._composite(), filters=self._filters(),
            video_column=self.value("video_column"), **self._audio())

    def _audio(self) -> dict[str, Any]:
        block = self._block()
        out: dict[str, Any] = {"audio_column": block.get("audio_column")}
        if block.get("lyrics_column"):
            out["lyrics_columns"] = (block["lyrics_column"],)
        if block.get("audio_caption_fields") is not None:
            out["audio_caption_fields"] = tuple(block["audio_caption_fields"])
        return out

    def _composite(self) -> CompositeSettings:
        cfg = dict(self._block().get("composite_image_config") or {})
        split = bool(self.value("split_composite_images", False))
        enabled = bool(cfg.get("enabled", False)) or split
        if not enabled:
            return CompositeSettings(column=self.value("composite_image_column"))
        count = int(cfg.get("image_count") or 2)
        select = cfg.get("select_index")
        tiles = tuple(range(count)) if split or select is None else (int(select),)
        return CompositeSettings(enabled=True, image_count=count, tiles=tiles,
                                 column=self.value("composite_image_column"))

    def _filters(self) -> FilterSettings:
        cfg = dict(self._block().get("filter_func") or {})
        coll = cfg.get("collection")
        quality = cfg.get("quality_thresholds") or {}
        return FilterSettings(
            collection=None if coll is None else ((coll,) if isinstance(coll, str) else tuple(coll)),
            collection_column=str(cfg.get("collection_column") or "collection"),
            quality_thresholds=tuple(sorted((str(k), float(v)) for k, v in quality.items())),
            quality_column=str(cfg.get("quality_column") or self._block().get("quality_column")
                               or "quality_assessment"),
            min_width=cfg.get("min_width"), min_height=cfg.get("min_height"),
            function=self.value("filter_function", cfg.get("function")))

    # --- validation --------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Every invalid value, one line each (shown by ``databackend validate``); never raises."""
        out: list[str] = []
        name = self.value("dataset_name")
        if not (isinstance(name, str) and name.strip()):
            out.append("`dataset_name` is required, at the top level or in the `huggingface` "
                       "block (a hub id, a local data file or folder, or a save_to_disk folder)")
        out += self.conflicts() + self._block_problems() + self._column_problems()
        out += self._composite_problems() + self._filter_problems()
        num_proc = self.value("num_proc")
        if num_proc is not None and not (_int(num_proc) and num_proc >= 1):
            out.append(f"`num_proc` must be an integer >= 1; got {num_proc!r}")
        for key in ("streaming", "split_composite_images"):
            if not isinstance(self.value(key, False), bool):
                out.append(f"`{key}` must be true or false; got {self.value(key)!r}")
        return out

    def _block_problems(self) -> list[str]:
        known = BLOCK_KEYS | IGNORED_BLOCK_KEYS
        out = []
        for key in sorted(set(self._block()) - known):
            match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {match[0]!r}?)" if match else ""
            out.append(f"`huggingface.{key}`: unknown key{hint}")
        for key in ("dataset_name", "split", "revision", "image_column", "fallback_caption_column",
                    "width_column", "height_column", "composite_image_column", "cache_dir",
                    "filter_function", "quality_column", "description_column", "file_extension",
                    "video_column", "audio_column", "lyrics_column"):
            value = self._block().get(key)
            if value is not None and not isinstance(value, str):
                out.append(f"`huggingface.{key}` must be a string; got {value!r}")
        return out

    def _column_problems(self) -> list[str]:
        out = []
        columns = self.value("caption_column")
        if columns is not None and not (isinstance(columns, str) and columns.strip()) \
                and not _is_str_list(columns):
            out.append(f"`caption_column` must be a column name or a non-empty list of names; "
                       f"got {columns!r}")
        width, height = self.value("width_column"), self.value("height_column")
        if bool(width) != bool(height):
            out.append("`width_column` and `height_column` must be given together")
        fields = self._block().get("audio_caption_fields")
        if fields is not None and not (fields == [] or _is_str_list(fields)):
            out.append(f"`huggingface.audio_caption_fields` must be a list of column names; "
                       f"got {fields!r}")
        for key in ("split", "image_column", "video_column"):
            value = self.value(key)
            if isinstance(value, str) and not value.strip():
                out.append(f"`{key}` must not be empty")
        return out

    def _composite_problems(self) -> list[str]:
        cfg = self._block().get("composite_image_config")
        if cfg is None:
            return []
        if not isinstance(cfg, dict):
            return [f"`huggingface.composite_image_config` must be an object; got {cfg!r}"]
        out = [f"`huggingface.composite_image_config.{k}`: unknown key"
               for k in sorted(set(cfg) - _COMPOSITE_KEYS)]
        count, select = cfg.get("image_count", _MISSING), cfg.get("select_index")
        if "enabled" in cfg and not isinstance(cfg["enabled"], bool):
            out.append("`composite_image_config.enabled` must be true or false")
        if count is not _MISSING and not (_int(count) and count >= 2):
            out.append(f"`composite_image_config.image_count` must be an integer >= 2; "
                       f"got {count!r}")
        n = count if _int(count) else 2
        if select is not None and not (_int(select) and 0 <= select < n):
            out.append(f"`composite_image_config.select_index` must be an integer in "
                       f"0..{n - 1}; got {select!r}")
        if select is not None and self.value("split_composite_images", False) is True:
            out.append("`split_composite_images` makes every tile a sample; remove "
                       "`composite_image_config.select_index` (or set split_composite_images "
                       "false to keep one tile)")
        return out

    def _filter_problems(self) -> list[str]:
        cfg = self._block().get("filter_func")
        out: list[str] = []
        if cfg is not None and not isinstance(cfg, dict):
            return [f"`huggingface.filter_func` must be an object; got {cfg!r}"]
        cfg = cfg or {}
        out += [f"`huggingface.filter_func.{k}`: unknown key" for k in sorted(set(cfg) - _FILTER_KEYS)]
        coll = cfg.get("collection")
        if coll is not None and not (isinstance(coll, str) or _is_str_list(coll)):
            out.append(f"`filter_func.collection` must be a string or a list of strings; "
                       f"got {coll!r}")
        quality = cfg.get("quality_thresholds")
        if quality is not None and not (isinstance(quality, dict)
                                        and all(_number(v) for v in quality.values())):
            out.append(f"`filter_func.quality_thresholds` must map names to numbers; "
                       f"got {quality!r}")
        for key in ("min_width", "min_height"):
            value = cfg.get(key)
            if value is not None and not (_int(value) and value >= 1):
                out.append(f"`filter_func.{key}` must be an integer >= 1; got {value!r}")
        spec = self.value("filter_function", cfg.get("function"))
        if spec is not None:
            try:
                load_predicate(spec) if isinstance(spec, str) else None
            except ValueError as exc:
                out.append(str(exc))
            if not isinstance(spec, str):
                out.append(f"`filter_function` must be a 'module:function' string; got {spec!r}")
        return out

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> HuggingfaceConfig:
        """Build a config from plain keys (tests and programmatic use)."""
        return cls(**dict(values))
