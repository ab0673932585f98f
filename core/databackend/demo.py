"""A small sample dataset and config for ``databackend demo`` / ``make demo``.

:func:`make_demo` writes, under one folder:

* ``data/photos/{people,places}`` and ``data/art/sketches``: JPEG and PNG images of mixed sizes
  and aspect ratios, each with a ``.txt`` caption (some with two lines, i.e. two captions);
* a few broken files (a truncated JPEG, random bytes named ``.png``, an empty ``.jpg``) that
  the scan must skip and report;
* ``data/clips``: short H.264/VP9 clips (several sizes, lengths and frame rates, one rotated,
  one too short, one text file named ``.mp4``) with ``.txt`` captions: a video dataset with
  frame buckets (``WxH@F``), random windows and i2v first frames (docs/video.md);
* ``data/sounds``: short WAV and FLAC clips (several lengths, rates and channels, one longer
  than ``max_duration_seconds``, one text file named ``.wav``) with ``.txt`` captions and a
  lyrics sidecar: an audio dataset with duration buckets (docs/audio.md);
* ``multidatabackend.json``: two image datasets (``art`` with a generated ``canny`` ControlNet
  conditioning dataset), a video dataset, an audio dataset, a
  ``text_embeds`` and an ``image_embeds`` entry (both ``type: local``) and the factory options
  to run it with.

Everything is generated from a seed, so two runs produce the same files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

__all__ = ["DEMO_CLIPS", "DEMO_OPTIONS", "DEMO_SOUNDS", "demo_config", "make_clips", "make_demo",
           "make_images", "make_sounds"]

#: Factory options the demo runs with (small images keep it well under a minute on 2 cores).
DEMO_OPTIONS: dict[str, Any] = {"resolution": 256, "resolution_type": "pixel_area",
                                "train_batch_size": 2, "seed": 7, "sampling": "auto-weighting"}

_SUBJECTS = ("a red bicycle", "a mountain lake", "an old tram", "a sleeping cat",
             "a lighthouse at dusk", "a bowl of lemons", "a foggy forest", "a city square")
_STYLES = ("photo", "pencil sketch", "watercolour", "studio portrait")
#: (folder, count, sizes to cycle through as (W, H))
_FOLDERS = (
    ("photos/people", 14, ((384, 512), (512, 384), (448, 448), (300, 600))),
    ("photos/places", 16, ((640, 360), (512, 512), (360, 640), (500, 375))),
    ("art/sketches", 12, ((400, 400), (320, 480), (600, 300))),
)


def _image(width: int, height: int, rng: random.Random) -> Any:
    """A gradient with a few shapes: cheap to encode, varied enough to look like data."""
    from PIL import Image, ImageDraw

    base = [rng.randrange(256) for _ in range(3)]
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    img = Image.blend(img, Image.new("RGB", (width, height), tuple(base)), 0.6)
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return img


def make_images(data: Path, seed: int = 0) -> dict[str, int]:
    """Write the sample images and captions under ``data``; returns files per folder."""
    rng = random.Random(seed)
    written: dict[str, int] = {}
    for folder, count, sizes in _FOLDERS:
        target = data / folder
        target.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            w, h = sizes[n % len(sizes)]
            suffix = ".png" if n % 3 == 0 else ".jpg"
            stem = target / f"{folder.split('/')[-1]}_{n:03d}"
            _image(w, h, rng).save(stem.with_suffix(suffix))
            caption = f"{rng.choice(_STYLES)} of {rng.choice(_SUBJECTS)}"
            extra = f"\n{rng.choice(_SUBJECTS)}, {rng.choice(_STYLES)}" if n % 4 == 0 else ""
            stem.with_suffix(".txt").write_text(caption + extra + "\n", encoding="utf-8")
        written[folder] = count
    _broken(data)
    return written


def _broken(data: Path) -> None:
    """Three files the scan must skip: truncated JPEG, random bytes, empty file."""
    sample = next((data / "photos/people").glob("*.jpg"))
    (data / "photos/people/truncated_000.jpg").write_bytes(sample.read_bytes()[:40])
    (data / "photos/places/noise_000.png").write_bytes(random.Random(1).randbytes(700))
    (data / "art/sketches/empty_000.jpg").write_bytes(b"")
    for name in ("photos/people/truncated_000", "photos/places/noise_000",
                 "art/sketches/empty_000"):
        (data / f"{name}.txt").write_text("a broken file\n", encoding="utf-8")


#: (name, W, H, frames, fps, rotation) of the demo's clips
DEMO_CLIPS = (("beach_000.mp4", 160, 96, 33, 24, 0), ("beach_001.mp4", 160, 96, 25, 12, 0),
              ("street_000.mp4", 96, 160, 30, 30, 0), ("street_001.mkv", 96, 160, 41, 24, 0),
              ("garden_000.webm", 128, 128, 19, 10, 0), ("phone_000.mp4", 160, 96, 29, 30, 90),
              ("blink_000.mp4", 160, 96, 5, 12, 0))


def make_clips(data: Path, seed: int = 0) -> int:
    """Write the demo's clips and captions under ``data/clips``; returns how many."""
    from databackend.media.synthetic import write_video

    rng = random.Random(seed + 1)
    target = data / "clips"
    for k, (name, w, h, frames, fps, rotation) in enumerate(DEMO_CLIPS):
        write_video(target / name, w, h, frames, fps=fps, rotation=rotation, seed=k)
        caption = f"a {rng.choice(_STYLES)} clip of {rng.choice(_SUBJECTS)}"
        (target / name).with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    (target / "notes_000.mp4").write_text("this is not a video\n", encoding="utf-8")
    (target / "notes_000.txt").write_text("a text file named .mp4\n", encoding="utf-8")
    return len(DEMO_CLIPS)


#: (name, seconds, sample rate, channels) of the demo's audio clips
DEMO_SOUNDS = (("rain_000.wav", 1.2, 16000, 1), ("rain_001.flac", 2.6, 22050, 2),
               ("bells_000.wav", 3.4, 44100, 2), ("bells_001.flac", 6.3, 16000, 1),
               ("hum_000.wav", 31.0, 8000, 1))


def make_sounds(data: Path, seed: int = 0) -> int:
    """Write the demo's audio clips, captions and a lyrics sidecar under ``data/sounds``."""
    import numpy as np
    import soundfile

    target = data / "sounds"
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 2)
    for k, (name, seconds, rate, channels) in enumerate(DEMO_SOUNDS):
        t = np.arange(round(seconds * rate)) / rate
        wave = [0.3 * np.sin(2 * np.pi * (180 + 60 * k + 30 * c) * t) for c in range(channels)]
        noise = 0.02 * rng.standard_normal((len(t), channels))
        soundfile.write(str(target / name), (np.stack(wave, axis=1) + noise).astype("float32"),
                        rate)
        (target / name).with_suffix(".txt").write_text(f"the sound of {name.split('_')[0]}\n",
                                                       encoding="utf-8")
    (target / "bells_000.lyrics").write_text("ding dong\n", encoding="utf-8")
    (target / "notes_000.wav").write_text("this is not audio\n", encoding="utf-8")
    (target / "notes_000.txt").write_text("a text file named .wav\n", encoding="utf-8")
    return len(DEMO_SOUNDS)


def demo_config(root: Path) -> list[dict[str, Any]]:
    """The demo's multidatabackend entries (absolute paths under ``root``)."""
    cache = root / "cache"
    return [
        {"id": "text-cache", "dataset_type": "text_embeds", "type": "local", "default": True,
         "cache_dir": str(cache / "text")},
        {"id": "vae-cache", "dataset_type": "image_embeds", "type": "local",
         "cache_dir": str(cache / "vae")},
        {"id": "photos", "type": "local", "instance_data_dir": str(root / "data/photos"),
         "caption_strategy": "textfile", "image_embeds": "vae-cache",
         "text_embeds": "text-cache", "crop": True, "crop_style": "center",
         "crop_aspect": "preserve", "repeats": 1, "probability": 1.0},
        {"id": "art", "type": "local", "instance_data_dir": str(root / "data/art"),
         "caption_strategy": "textfile", "image_embeds": "vae-cache",
         "text_embeds": "text-cache", "resolution": 192, "resolution_type": "pixel",
         "train_batch_size": 3,
         "probability": 0.5, "short_bucket_policy": "pad",
         # a generated ControlNet hint per sketch (docs/conditioning.md)
         "conditioning": {"type": "canny", "conditioning_type": "controlnet",
                          "low_threshold": 80, "high_threshold": 160}},
        {"id": "clips", "type": "local", "dataset_type": "video",
         "instance_data_dir": str(root / "data/clips"), "caption_strategy": "textfile",
         "image_embeds": "vae-cache", "text_embeds": "text-cache", "resolution": 128,
         "resolution_type": "pixel", "train_batch_size": 1, "probability": 0.5,
         "video": {"num_frames": 9, "min_frames": 9, "bucket_strategy": "resolution_frames",
                   "window": "random", "frame_stride": 2, "is_i2v": True}},
        {"id": "sounds", "type": "local", "dataset_type": "audio",
         "instance_data_dir": str(root / "data/sounds"), "caption_strategy": "textfile",
         "image_embeds": "vae-cache", "text_embeds": "text-cache", "train_batch_size": 2,
         "probability": 0.5,
         "audio": {"duration_interval": 3, "max_duration_seconds": 30,
                   "truncation_mode": "random", "lyrics_filename_format": "{stem}.lyrics"}},
    ]


def make_demo(root: str | Path, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Create the demo under ``root`` (once; again with ``overwrite``); returns the config path.

    ``options.json`` beside the config holds :data:`DEMO_OPTIONS` plus ``output_dir``.
    """
    root = Path(root).resolve()
    config = root / "multidatabackend.json"
    if config.exists() and not overwrite:
        return config
    make_images(root / "data", seed=seed)
    make_clips(root / "data", seed=seed)
    make_sounds(root / "data", seed=seed)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(demo_config(root), indent=2) + "\n", encoding="utf-8")
    options = {**DEMO_OPTIONS, "output_dir": str(root / "out")}
    (root / "options.json").write_text(json.dumps(options, indent=2) + "\n", encoding="utf-8")
    return config
