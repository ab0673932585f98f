"""Aspect-ratio bucket geometry: from an image's size to its target size, resize and crop.

This implements ``BUCKETING.md`` (SimpleTuner's size calculators, ``calculate_target_size`` and
the resize/crop step, Python's rounding and truncation), except where we deliberately differ:

1. a bucket is identified by its target size ``(W, H)``; there is no process-global
   "aspect -> size" map, so results never depend on scan order;
2. area mode uses the table edge ``P`` (0.25 -> 512, 0.5 -> 768, 1 -> 1024, 2 -> 1536,
   4 -> 2048 MP) as the calculator edge too;
3. the crop box always fits inside the resized image, and random crops record the real offset;
4. ``maximum_image_size`` is compared with the image (pixel: short edge, area: megapixels);
5. bad values raise :class:`GeometryConfigError` (a ``ValueError``) naming the key.

See ``docs/bucketing.md`` for the rules and worked examples.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import random
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["AREA_EDGES", "CROP_ASPECTS", "CROP_STYLES", "GEOMETRY_VERSION", "RESOLUTION_TYPES",
           "GeometryConfigError", "GeometryParams", "SampleGeometry", "apply_geometry",
           "aspect_out_of_range", "compute_geometry", "crop_offsets", "filter_reason",
           "pixel_resolution"]

#: Bumped when the rules change, invalidating cached geometry (2: keyed BLAKE2b random crops).
GEOMETRY_VERSION = 2
RESOLUTION_TYPES = ("pixel", "area", "pixel_area")
CROP_STYLES = ("random", "center", "centre", "corner", "face")
CROP_ASPECTS = ("square", "preserve", "closest", "random")
AREA_EDGES: dict[float, int] = {0.25: 512, 0.5: 768, 1.0: 1024, 2.0: 1536, 4.0: 2048}  # MP: edge
_AREA_MIN_LIMIT, _AREA_MAX_LIMIT = 5.0, 20.0  # MP: larger minimum / maximum sizes are mistakes
_ASPECT_KEYS, _WEIGHT_KEYS = ("aspect", "aspect_ratio", "aspect_bucket"), ("weight", "probability")
_SIZE_KEYS = ("minimum_image_size", "maximum_image_size", "target_downsample_size")
Size = tuple[int, int]


class GeometryConfigError(ValueError):
    """Invalid geometry settings; ``problems`` lists each one, naming the key."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("; ".join(self.problems))


@attrs.frozen(kw_only=True)
class GeometryParams:
    """A dataset's validated geometry settings, in the units the calculators use.

    ``resolution`` is a pixel edge (``pixel``) or megapixels (``area``); :meth:`create` builds it
    from raw config values (and converts ``pixel_area``).
    """

    resolution: float
    resolution_type: str
    crop: bool = False
    crop_style: str = "random"
    crop_aspect: str = "square"
    crop_aspect_buckets: tuple[tuple[float, float], ...] = ()
    minimum_image_size: float | None = None
    maximum_image_size: float | None = None
    target_downsample_size: float | None = None
    alignment: int = 64
    rounding: int = 2
    maximum_canvas_size: int | None = None
    minimum_aspect_ratio: float | None = None
    maximum_aspect_ratio: float | None = None

    def __attrs_post_init__(self) -> None:
        problems = _validate(self)
        if problems:
            raise GeometryConfigError(problems)

    @classmethod
    def create(cls, *, resolution: Any, resolution_type: str, **kw: Any) -> GeometryParams:
        """Validate raw config values; ``pixel_area`` becomes ``area`` (R -> R^2/1e6 MP).

        The three image sizes are squared and divided by 1e6 too. Raises
        :class:`GeometryConfigError` (a ``ValueError``) listing every bad value.
        """
        problems = _unknown_keys(kw)
        problems += _number_problems("resolution", resolution, positive=True)
        if resolution_type == "pixel_area" and not problems:
            if not float(resolution).is_integer():  # config models hold 192 as 192.0
                problems.append(f"`resolution` must be an integer edge in pixels with "
                                f"resolution_type pixel_area; got {resolution!r}")
            else:
                resolution, resolution_type = int(resolution)**2 / 1e6, "area"
                kw = {**kw, **_squared_sizes(kw)}
        if problems:
            raise GeometryConfigError(problems)
        kw["crop_aspect_buckets"] = _normalise_buckets(kw.get("crop_aspect_buckets"))
        kw.update({n: None for n in _SIZE_KEYS if kw.get(n) == 0})  # 0 means unset
        return cls(resolution=float(resolution), resolution_type=resolution_type, **kw)

    def fingerprint(self) -> str:
        """A stable 16-hex-digit hash of every field and the geometry version (cache keys)."""
        payload = {"version": GEOMETRY_VERSION, **attrs.asdict(self)}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.frozen
class SampleGeometry:
    """Where one sample goes: the sizes of each step and the crop, all as ``(W, H)``.

    ``target_size`` identifies the bucket, ``aspect_bucket`` is its rounded aspect key, and
    ``crop_coordinates`` is ``(top, left)`` within ``intermediary_size`` (the pre-crop size).
    """

    original_size: Size
    intermediary_size: Size
    target_size: Size
    crop_coordinates: Size
    aspect_bucket: float
    downsample_size: Size | None = None

    @property
    def bucket_key(self) -> str:
        """The bucket identity as text, ``"{W}x{H}"``."""
        return f"{self.target_size[0]}x{self.target_size[1]}"

    @property
    def crop_box(self) -> tuple[int, int, int, int]:
        """The crop as a PIL box ``(left, top, right, bottom)``."""
        top, left = self.crop_coordinates
        return (left, top, left + self.target_size[0], top + self.target_size[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number_problems(name: str, value: Any, *, positive: bool) -> list[str]:
    """One problem if ``value`` is not a real number (or not > 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return [f"`{name}` must be a number; got {value!r}"]
    if positive and value <= 0:
        return [f"`{name}` must be > 0; got {value!r}"]
    return []


def _unknown_keys(kw: Mapping[str, Any]) -> list[str]:
    known = {f.name for f in attrs.fields(GeometryParams)}
    return [f"unknown geometry key `{k}`; known: {', '.join(sorted(known))}"
            for k in sorted(set(kw) - known)]


def _squared_sizes(kw: Mapping[str, Any]) -> dict[str, Any]:
    """``pixel_area`` sizes in megapixels: each positive number v becomes v^2 / 1e6."""
    return {name: kw[name] ** 2 / 1e6 for name in _SIZE_KEYS
            if not _number_problems(name, kw.get(name), positive=True)}


def _normalise_buckets(raw: Any) -> Any:
    """Floats become ``(aspect, 1.0)``; dicts give ``aspect`` (or ``aspect_ratio``,
    ``aspect_bucket``) and ``weight`` (or ``probability``, default 1.0). Bad entries pass
    through for validation to report."""
    if raw is None or not isinstance(raw, (list, tuple)):
        return () if raw is None else raw
    out: list[Any] = []
    for item in raw:
        if isinstance(item, Mapping):
            aspect = next((item[k] for k in _ASPECT_KEYS if k in item), None)
            out.append((aspect, next((item[k] for k in _WEIGHT_KEYS if k in item), 1.0)))
        else:
            out.append(tuple(item) if isinstance(item, (list, tuple)) else (item, 1.0))
    return tuple(out)


def _validate(p: GeometryParams) -> list[str]:
    """Every problem with a constructed :class:`GeometryParams`, one line each."""
    problems = _choice_problems(p) + _number_problems("resolution", p.resolution, positive=True)
    if not problems and p.resolution_type == "pixel" and p.resolution != int(p.resolution):
        problems.append(f"`resolution` must be a whole number of pixels; got {p.resolution!r}")
    problems += _size_problems(p) + _bucket_problems(p) + _misc_problems(p)
    return problems


def _choice_problems(p: GeometryParams) -> list[str]:
    out = []
    if p.resolution_type not in ("pixel", "area"):
        hint = " (use GeometryParams.create to convert it)" if p.resolution_type == "pixel_area" \
            else ""
        out.append(f"`resolution_type` must be pixel or area{hint}; got {p.resolution_type!r}")
    if p.crop_style not in CROP_STYLES:
        out.append(f"`crop_style` must be one of {', '.join(CROP_STYLES)}; got {p.crop_style!r}")
    if p.crop_aspect not in CROP_ASPECTS:
        out.append(f"`crop_aspect` must be one of {', '.join(CROP_ASPECTS)}; "
                   f"got {p.crop_aspect!r}")
    return out


def _size_problems(p: GeometryParams) -> list[str]:
    out: list[str] = []
    for name in _SIZE_KEYS:
        if getattr(p, name) is not None:
            out += _number_problems(name, getattr(p, name), positive=True)
    if p.maximum_image_size is not None and p.target_downsample_size is None:
        out.append("`maximum_image_size` needs `target_downsample_size` (the size to "
                   "downsample large images to)")
    if out or p.resolution_type != "area":
        return out
    if p.minimum_image_size is not None and p.minimum_image_size > _AREA_MIN_LIMIT:
        out.append(f"`minimum_image_size` is in megapixels in area mode and must be <= 5; "
                   f"got {p.minimum_image_size!r}")
    return out + [f"`{n}` is in megapixels in area mode and must be < 20; got {getattr(p, n)!r}"
                  for n in _SIZE_KEYS[1:] if (getattr(p, n) or 0) >= _AREA_MAX_LIMIT]


def _bucket_problems(p: GeometryParams) -> list[str]:
    buckets = p.crop_aspect_buckets
    if not isinstance(buckets, tuple):
        return [f"`crop_aspect_buckets` must be a list; got {buckets!r}"]
    out = []
    for entry in buckets:
        ok = isinstance(entry, tuple) and len(entry) == 2 and not any(
            _number_problems("", v, positive=False) for v in entry)
        if not ok or entry[0] <= 0 or entry[1] < 0:
            out.append("`crop_aspect_buckets` entries must be aspects > 0 (optionally with a "
                       f"weight >= 0); got {entry!r}")
    if not out and buckets and sum(w for _, w in buckets) <= 0:
        out.append("`crop_aspect_buckets` weights must not all be 0")
    if p.crop_aspect in ("closest", "random") and not buckets:
        out.append(f"crop_aspect {p.crop_aspect!r} needs a non-empty `crop_aspect_buckets` list")
    return out


def _misc_problems(p: GeometryParams) -> list[str]:
    out = []
    if not _is_int(p.alignment) or p.alignment < 1:
        out.append(f"`alignment` must be an integer >= 1; got {p.alignment!r}")
    if not _is_int(p.rounding) or p.rounding < 0:
        out.append(f"`rounding` must be an integer >= 0; got {p.rounding!r}")
    canvas = p.maximum_canvas_size
    if canvas is not None and (not _is_int(canvas) or canvas < 1):
        out.append(f"`maximum_canvas_size` must be a positive integer; got {canvas!r}")
    elif canvas is not None and not out and canvas < p.alignment**2:
        out.append(f"`maximum_canvas_size` must be >= alignment^2 ({p.alignment**2}); "
                   f"got {canvas}")
    lo, hi = p.minimum_aspect_ratio, p.maximum_aspect_ratio
    for name, value in (("minimum_aspect_ratio", lo), ("maximum_aspect_ratio", hi)):
        if value is not None:
            out += _number_problems(name, value, positive=True)
    if not out and lo is not None and hi is not None and lo > hi:
        out.append(f"`minimum_aspect_ratio` ({lo}) is above `maximum_aspect_ratio` ({hi})")
    return out


def _align(value: float, alignment: int) -> int:
    """``R(v) = max(round(v / A) * A, A)`` with round-half-to-even."""
    return max(round(value / alignment) * alignment, alignment)


def _aspect(width: float, height: float, rounding: int) -> float:
    """The rounded aspect ``round(w / h, rounding)``."""
    return round(width / height, rounding)


def _edge_for(resolution: float, params: GeometryParams) -> int:
    """The square edge of a resolution: pixel ``int(res)``; area: the preset table or R(sqrt)."""
    if params.resolution_type == "pixel":
        return int(resolution)
    area = next((edge * edge for mp, edge in AREA_EDGES.items() if abs(resolution - mp) <= 0.05),
                resolution * 1e6)
    return _align(math.sqrt(area), params.alignment)


def pixel_resolution(params: GeometryParams) -> int:
    """The edge ``P`` of the dataset's square bucket (also the area-mode calculator edge)."""
    return _edge_for(params.resolution, params)


def _pixel_sizes(aspect: float, edge: int, size: Size, alignment: int) -> tuple[Size, Size]:
    """Pixel-edge calculator: short edge = ``edge``; returns (target, intermediary)."""
    width, height = size
    if width < height:
        w_t, h_t = edge, int(edge / aspect)
    else:
        w_t, h_t = int(edge * aspect), edge
    target = (_align(w_t, alignment), _align(h_t, alignment))
    ratio = width / height
    if ratio >= 1:
        h_i = max(target[1], h_t)
        w_i = int(h_i * ratio)
        if w_i < target[0]:
            w_i, h_i = target[0], int(target[0] / ratio)
    else:
        w_i = max(target[0], w_t)
        h_i = int(w_i / ratio)
        if h_i < target[1]:
            w_i, h_i = int(target[1] * ratio), target[1]
    return target, (w_i, h_i)


def _area_sizes(aspect: float, edge: int, size: Size, alignment: int) -> tuple[Size, Size]:
    """Area calculator around a square of side ``edge``; returns (target, intermediary)."""
    width, height = size
    if aspect == 1.0 and width == height:
        return (edge, edge), (edge, edge)
    root = math.sqrt(aspect)
    w_t, h_t = _align(edge * root, alignment), _align(edge / root, alignment)
    ratio = width / height
    if w_t < h_t:
        w_i, h_i = w_t, int(w_t / ratio)
    else:
        w_i, h_i = int(h_t * ratio), h_t
    if w_t > w_i:  # grow the intermediary by the shortfall, keeping the original ratio
        w_i, h_i = w_t, h_i + int((w_t - w_i) / ratio)
    elif h_t > h_i:
        w_i, h_i = w_i + int((h_t - h_i) * ratio), h_t
    return (w_t, h_t), (w_i, h_i)


def _calculate(aspect: float, edge: int, size: Size, params: GeometryParams) -> tuple[Size, Size]:
    """Dispatch to the resolution type's calculator; aspects that round to 0 are clamped."""
    aspect = max(aspect, 10.0**-params.rounding)
    calc = _pixel_sizes if params.resolution_type == "pixel" else _area_sizes
    return calc(aspect, edge, size, params.alignment)


def _cover(inner: Size, box: Size) -> Size:
    """``inner`` scaled up (keeping its aspect) until it contains ``box``; unchanged if it does."""
    (w_i, h_i), (w_b, h_b) = inner, box
    if w_i >= w_b and h_i >= h_b:
        return inner
    w_i, h_i = max(w_i, 1), max(h_i, 1)
    factor = max(w_b / w_i, h_b / h_i)
    return (max(w_b, math.ceil(w_i * factor)), max(h_b, math.ceil(h_i * factor)))


def _choose_aspect(size: Size, params: GeometryParams, rng: random.Random) -> float:
    """The aspect to bucket at: closest/random bucket (crop on), else the rounded original."""
    original = _aspect(size[0], size[1], params.rounding)
    buckets = params.crop_aspect_buckets
    if params.crop and params.crop_aspect == "closest":
        return min((a for a, _ in buckets), key=lambda a: abs(a - original))
    if params.crop and params.crop_aspect == "random":
        return rng.choices([a for a, _ in buckets], weights=[w for _, w in buckets])[0]
    return original


def _base_target(size: Size, params: GeometryParams, rng: random.Random) -> tuple[Size, Size]:
    """``calculate_target_size`` without the canvas cap: (target, intermediary)."""
    edge = pixel_resolution(params)
    if params.crop and params.crop_aspect == "square":
        target, inter = (edge, edge), _calculate(1.0, edge, size, params)[1]
    else:
        aspect = _choose_aspect(size, params, rng)
        target, inter = _calculate(aspect, edge, size, params)
    if _aspect(target[0], target[1], params.rounding) == 1.0:
        if inter[0] < edge:
            inter = (edge, edge)  # the reference's square fix
        target = (edge, edge)
    return target, inter


def _limit_canvas(target: Size, params: GeometryParams) -> Size:
    """Shrink ``target`` to at most ``maximum_canvas_size`` pixels; squares stay square."""
    limit, step = params.maximum_canvas_size, params.alignment
    width, height = target
    if limit is None or width * height <= limit:
        return target
    scale = math.sqrt(limit / (width * height))
    w_c, h_c = _align(int(width * scale), step), _align(int(height * scale), step)
    larger_is_w = w_c >= h_c
    for shrink_w in (larger_is_w, not larger_is_w):
        if w_c * h_c > limit:
            w_c, h_c = (max(w_c - step, step), h_c) if shrink_w else (w_c, max(h_c - step, step))
    if width == height:
        w_c = h_c = min(w_c, h_c)
    return (w_c, h_c)


def _apply_canvas(target: Size, inter: Size, params: GeometryParams) -> tuple[Size, Size]:
    """Cap the target's canvas and rescale the intermediary by the same factor."""
    limited = _limit_canvas(target, params)
    if limited == target:
        return target, inter
    factor = max(limited[0] / target[0], limited[1] / target[1])
    inter = (max(1, int(inter[0] * factor)), max(1, int(inter[1] * factor)))
    return limited, inter


def _downsample_size(size: Size, target: Size, params: GeometryParams) -> Size | None:
    """The pre-crop downsample for images larger than ``maximum_image_size`` (crop on only).

    Pixel mode compares the short edge, area mode the megapixels. ``None`` when the step does
    not apply or would upscale the image.
    """
    limit, goal = params.maximum_image_size, params.target_downsample_size
    if not params.crop or limit is None or goal is None:
        return None
    width, height = size
    measure = min(width, height) if params.resolution_type == "pixel" else width * height / 1e6
    if measure <= limit:
        return None
    aspect = _aspect(width, height, params.rounding)
    d_w, d_h = _calculate(aspect, _edge_for(goal, params), size, params)[1]
    if d_w < target[0]:
        d_w, d_h = target[0], int(d_h * target[0] / d_w)
    elif d_h < target[1]:
        d_w, d_h = int(d_w * target[1] / d_h), target[1]
    down = _cover((d_w, d_h), target)
    return down if down[0] <= width and down[1] <= height else None


@functools.lru_cache(maxsize=16)  # BLAKE2b fed with f"{seed}:" once, copied per sample
def _crop_hasher(seed: int) -> Any:
    return hashlib.blake2b(f"{seed}:".encode(), digest_size=16, person=b"databackend-crop")


def crop_offsets(before: Size, target: Size, style: str, *, seed: int = 0, key: str = ""
                 ) -> Size:
    """``(top, left)`` of ``target`` inside ``before``; ``random`` (and ``face``) offsets are
    uniform over the slack, a pure function of ``f"{seed}:{key}"`` (BLAKE2b, cheap to seed)."""
    slack_w, slack_h = before[0] - target[0], before[1] - target[1]
    if style in ("center", "centre"):
        return (slack_h // 2, slack_w // 2)
    if style == "corner" or (slack_w <= 0 and slack_h <= 0):
        return (0, 0)
    hasher = _crop_hasher(seed).copy()
    hasher.update(key.encode("utf-8", "surrogateescape"))
    digest = hasher.digest()
    top, left = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")
    return (top % (slack_h + 1), left % (slack_w + 1))


def compute_geometry(width: int, height: int, params: GeometryParams, *, seed: int = 0,
                     key: str = "") -> SampleGeometry:
    """The geometry of one ``width x height`` image (after EXIF orientation).

    Random choices (``crop_aspect``: ``Random(f"{seed}:{key}")``; crops: :func:`crop_offsets`)
    depend only on ``seed`` and ``key``: a sample always gets the same geometry.
    """
    if not all(isinstance(v, numbers.Integral) and v >= 1 for v in (width, height)):
        raise ValueError(f"image size must be positive integers; got {width!r} x {height!r}")
    size = (int(width), int(height))
    rng = random.Random(f"{seed}:{key}")
    target, inter = _base_target(size, params, rng)
    target, inter = _apply_canvas(target, inter, params)
    down = _downsample_size(size, target, params)
    before = down or _cover(inter, target)
    coords = crop_offsets(before, target, params.crop_style, seed=seed, key=key)
    bucket = _aspect(target[0], target[1], params.rounding)
    return SampleGeometry(size, before, target, coords, bucket, down)


def filter_reason(width: int, height: int, params: GeometryParams) -> str | None:
    """``None`` if the image is kept, else why it is dropped (``"too_small"``).

    Pixel mode needs both edges >= ``minimum_image_size``; area mode needs
    ``W*H >= min*1e6`` and, with crop on and square, both edges >= ``floor(sqrt(min*1e6))``.
    """
    minimum = params.minimum_image_size
    if minimum is None:
        return None
    if params.resolution_type == "pixel":
        return None if minimum <= width and minimum <= height else "too_small"
    pixels = minimum * 1e6
    edge = math.floor(math.sqrt(pixels)) if params.crop and params.crop_aspect == "square" else 0
    return None if pixels <= width * height and edge <= min(width, height) else "too_small"


def aspect_out_of_range(geometry: SampleGeometry, params: GeometryParams) -> bool:
    """Whether the bucket aspect is outside ``minimum_aspect_ratio``..``maximum_aspect_ratio``."""
    aspect = geometry.aspect_bucket
    low, high = params.minimum_aspect_ratio, params.maximum_aspect_ratio
    return (low is not None and aspect < low) or (high is not None and aspect > high)


def apply_geometry(image: Image.Image, geometry: SampleGeometry) -> Image.Image:
    """Downsample (if any), resize to the intermediary size (LANCZOS), crop the target box: the
    result is exactly ``geometry.target_size``. ``image`` must be EXIF-oriented already."""
    from PIL import Image as PILImage

    if image.size != geometry.original_size:
        raise ValueError(f"image size {image.size} differs from the geometry's original size "
                         f"{geometry.original_size} (was EXIF orientation applied?)")
    lanczos = PILImage.Resampling.LANCZOS
    if geometry.downsample_size is not None and image.size != geometry.downsample_size:
        image = image.resize(geometry.downsample_size, lanczos)
    if image.size != geometry.intermediary_size:
        image = image.resize(geometry.intermediary_size, lanczos)
    if image.size != geometry.target_size:
        image = image.crop(geometry.crop_box)
    return image
