"""The built-in conditioning generators (no model weights): ``superresolution``,
``jpeg_artifacts``, ``random_masks`` and ``canny``, with the reference's aliases and defaults.

They are registered through the same hook a third-party generator uses
(:mod:`databackend.builtin.generators`). Every output keeps the source image's size.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from databackend.conditioning.generator import ConditioningGenerator

__all__ = ["Canny", "JpegArtifacts", "RandomMasks", "Superresolution"]


def _noise(image: Image.Image, level: float, rng: np.random.Generator) -> Image.Image:
    """Gaussian noise of standard deviation ``level`` (fraction of the 0..255 range)."""
    array = np.asarray(image, dtype=np.float32)
    array = array + rng.normal(0.0, level * 255.0, array.shape).astype(np.float32)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, quality: int, **kw: Any) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(quality), **kw)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _positive(params: dict[str, Any], *keys: str) -> list[str]:
    return [f"`{k}` must be a positive number; got {params[k]!r}" for k in keys
            if params[k] is not None and not (isinstance(params[k], (int, float))
                                              and not isinstance(params[k], bool)
                                              and params[k] > 0)]


class Superresolution(ConditioningGenerator):
    """A degraded copy for super-resolution training: optional down/up-scaling, blur, noise and
    JPEG compression."""

    name = "superresolution"
    aliases = ("super_resolution", "lowres")
    defaults: ClassVar[dict[str, Any]] = {
        "blur_radius": 2.0, "blur_type": "gaussian", "add_noise": True, "noise_level": 0.02,
        "jpeg_quality": None, "downscale_factor": None}

    def check(self) -> list[str]:
        """Blur type choice and positive sizes."""
        p = self.params
        out = _positive(p, "blur_radius", "noise_level", "jpeg_quality", "downscale_factor")
        if p["blur_type"] not in ("gaussian", "box", "both"):
            out.append(f"`blur_type` must be gaussian, box or both; got {p['blur_type']!r}")
        return out

    def generate(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Scale down and back, blur, add noise, compress (each when configured)."""
        p, size = self.params, image.size
        if p["downscale_factor"]:
            small = (max(1, round(size[0] / p["downscale_factor"])),
                     max(1, round(size[1] / p["downscale_factor"])))
            image = image.resize(small, Image.Resampling.BICUBIC).resize(
                size, Image.Resampling.BICUBIC)
        if p["blur_type"] in ("gaussian", "both"):
            image = image.filter(ImageFilter.GaussianBlur(p["blur_radius"]))
        if p["blur_type"] in ("box", "both"):
            image = image.filter(ImageFilter.BoxBlur(p["blur_radius"]))
        if p["add_noise"]:
            image = _noise(image, p["noise_level"], rng)
        return _jpeg(image, p["jpeg_quality"]) if p["jpeg_quality"] else image


class JpegArtifacts(ConditioningGenerator):
    """A JPEG-compressed copy (fixed, random, range or list quality; several rounds)."""

    name = "jpeg_artifacts"
    aliases = ("jpeg", "compression")
    defaults: ClassVar[dict[str, Any]] = {
        "quality_mode": "fixed", "quality": 25, "quality_range": [10, 50],
        "quality_list": [10, 20, 30, 40], "compression_rounds": 1, "round_quality_decay": 0.9,
        "subsampling": None, "optimize": False, "progressive": False, "pre_blur": False,
        "pre_blur_radius": 0.5, "add_noise": False, "noise_level": 0.01,
        "enhance_blocks": False, "block_noise_level": 0.02}

    def check(self) -> list[str]:
        """Mode choice, quality bounds, rounds."""
        p = self.params
        out = []
        if p["quality_mode"] not in ("fixed", "random", "range"):
            out.append(f"`quality_mode` must be fixed, random or range; got {p['quality_mode']!r}")
        lo, hi = [*p["quality_range"], 0, 0][:2]
        if not (1 <= int(p["quality"]) <= 100 and 1 <= lo <= hi <= 100):
            out.append("`quality` and `quality_range` must lie within 1..100 (range low <= high)")
        if not p["quality_list"] or not all(1 <= int(q) <= 100 for q in p["quality_list"]):
            out.append("`quality_list` must be a non-empty list of qualities within 1..100")
        if int(p["compression_rounds"]) < 1:
            out.append("`compression_rounds` must be >= 1")
        return out

    def _quality(self, rng: np.random.Generator) -> int:
        p = self.params
        if p["quality_mode"] == "range":
            lo, hi = p["quality_range"]
            return int(rng.integers(int(lo), int(hi) + 1))
        if p["quality_mode"] == "random":
            return int(p["quality_list"][int(rng.integers(len(p["quality_list"])))])
        return int(p["quality"])

    def generate(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Optional pre-blur and noise, then ``compression_rounds`` JPEG round trips."""
        p = self.params
        if p["pre_blur"]:
            image = image.filter(ImageFilter.GaussianBlur(p["pre_blur_radius"]))
        if p["add_noise"]:
            image = _noise(image, p["noise_level"], rng)
        kw: dict[str, Any] = {"optimize": bool(p["optimize"]),
                              "progressive": bool(p["progressive"])}
        if p["subsampling"] is not None:
            kw["subsampling"] = p["subsampling"]
        quality = float(self._quality(rng))
        for _ in range(int(p["compression_rounds"])):
            image = _jpeg(image, max(1, round(quality)), **kw)
            quality *= float(p["round_quality_decay"])
        if p["enhance_blocks"]:
            image = _block_noise(image, p["block_noise_level"], rng)
        return image


def _block_noise(image: Image.Image, level: float, rng: np.random.Generator) -> Image.Image:
    """One random brightness offset per 8x8 block (exaggerated blocking)."""
    array = np.asarray(image, dtype=np.float32)
    h, w = array.shape[:2]
    offsets = rng.normal(0.0, level * 255.0, (-(-h // 8), -(-w // 8))).astype(np.float32)
    array = array + np.kron(offsets, np.ones((8, 8), np.float32))[:h, :w, None]
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


class Canny(ConditioningGenerator):
    """An RGB Canny edge map (OpenCV), the usual ControlNet hint."""

    name = "canny"
    aliases = ("edges",)
    defaults: ClassVar[dict[str, Any]] = {"low_threshold": 50, "high_threshold": 100}

    def check(self) -> list[str]:
        """``0 <= low <= high``."""
        lo, hi = self.params["low_threshold"], self.params["high_threshold"]
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 <= lo <= hi):
            return [f"`low_threshold` ({lo!r}) and `high_threshold` ({hi!r}) must be numbers "
                    "with 0 <= low <= high"]
        return []

    @classmethod
    def unavailable(cls) -> str | None:
        """OpenCV must be importable."""
        try:
            import cv2  # noqa: F401
        except ImportError:
            return ("needs OpenCV: pip install opencv-python-headless "
                    "(or databackend[conditioning])")
        return None

    def generate(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Edges of the grey image, white on black, as RGB."""
        import cv2

        grey = np.asarray(image.convert("L"))
        edges = cv2.Canny(grey, float(self.params["low_threshold"]),
                          float(self.params["high_threshold"]))
        return Image.fromarray(edges).convert("RGB")


class RandomMasks(ConditioningGenerator):
    """Random inpainting masks (rectangles, circles, brush strokes, irregular polygons) until the
    covered fraction reaches a random target in ``[min_coverage, max_coverage]``."""

    name = "random_masks"
    aliases = ("masks", "inpainting")
    defaults: ClassVar[dict[str, Any]] = {
        "mask_types": ["rectangle", "circle", "brush", "irregular"], "mask_type_weights": None,
        "min_coverage": 0.1, "max_coverage": 0.5, "min_masks": 1, "max_masks": 5,
        "edge_blur": 2.0, "output_mode": "mask", "mask_value": 255, "invert_mask": False}
    SHAPES: ClassVar[tuple[str, ...]] = ("rectangle", "circle", "brush", "irregular")

    def check(self) -> list[str]:
        """Known shapes, weights per shape, coverage and count bounds, output mode."""
        p, out = self.params, []
        bad = [t for t in p["mask_types"] if t not in self.SHAPES]
        if bad or not p["mask_types"]:
            out.append(f"`mask_types` must be a non-empty list of {', '.join(self.SHAPES)}; "
                       f"got {p['mask_types']!r}")
        weights = p["mask_type_weights"]
        if weights is not None and (len(weights) != len(p["mask_types"]) or min(weights) < 0
                                    or sum(weights) <= 0):
            out.append("`mask_type_weights` needs one non-negative weight per mask type")
        if not 0 <= p["min_coverage"] <= p["max_coverage"] <= 1:
            out.append("coverage must satisfy 0 <= min_coverage <= max_coverage <= 1")
        if not 1 <= int(p["min_masks"]) <= int(p["max_masks"]):
            out.append("mask counts must satisfy 1 <= min_masks <= max_masks")
        if p["output_mode"] not in ("mask", "masked_image"):
            out.append(f"`output_mode` must be mask or masked_image; got {p['output_mode']!r}")
        return out

    def generate(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Draw shapes into an L mask, blur its edges, then output it (or the masked image)."""
        p = self.params
        mask = Image.new("L", image.size, 0)
        draw = ImageDraw.Draw(mask)
        goal = rng.uniform(p["min_coverage"], p["max_coverage"])
        count = int(rng.integers(int(p["min_masks"]), int(p["max_masks"]) + 1))
        weights = np.asarray(p["mask_type_weights"] or [1.0] * len(p["mask_types"]), float)
        for n in range(count * 8):  # shapes until the goal (and at least ``count`` shapes)
            shape = p["mask_types"][int(rng.choice(len(weights), p=weights / weights.sum()))]
            _draw_shape(draw, shape, image.size, rng)
            if n + 1 >= count and np.asarray(mask).mean() / 255 >= goal:
                break
        if p["edge_blur"]:
            mask = mask.filter(ImageFilter.GaussianBlur(float(p["edge_blur"])))
        if p["invert_mask"]:
            mask = Image.eval(mask, lambda v: 255 - v)
        if p["output_mode"] == "masked_image":
            return Image.composite(Image.new("RGB", image.size, (0, 0, 0)), image, mask)
        scaled = Image.eval(mask, lambda v: v * int(p["mask_value"]) // 255)
        return scaled.convert("RGB")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, size: tuple[int, int],
                rng: np.random.Generator) -> None:
    w, h = size
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    rx, ry = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
    if shape == "rectangle":
        draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    elif shape == "circle":
        r = min(rx, ry)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "brush":
        points = [(cx, cy)]
        for _ in range(int(rng.integers(3, 8))):
            angle = rng.uniform(0, 2 * np.pi)
            points.append((points[-1][0] + np.cos(angle) * rx, points[-1][1] + np.sin(angle) * ry))
        draw.line(points, fill=255, width=max(1, int(min(w, h) * rng.uniform(0.03, 0.1))))
    else:
        n = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.4, 1.0, n)
        draw.polygon([(cx + np.cos(a) * r * rx, cy + np.sin(a) * r * ry)
                      for a, r in zip(angles, radii, strict=True)], fill=255)
