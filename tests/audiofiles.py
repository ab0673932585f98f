"""Audio test files: real wav/flac/ogg (soundfile) and mp3/m4a/mp4 (PyAV) files of known length."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def tone(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """A deterministic ``(frames, channels)`` float32 signal in [-0.5, 0.5]."""
    frames = round(seconds * rate)
    t = np.arange(frames, dtype=np.float64) / rate
    rng = np.random.default_rng(seed)
    cols = [0.4 * np.sin(2 * np.pi * (220 + 110 * c + 7 * seed) * t)
            + 0.05 * rng.standard_normal(frames) for c in range(channels)]
    return np.clip(np.stack(cols, axis=1), -0.5, 0.5).astype(np.float32)


def write_soundfile(path: Path, seconds: float, rate: int, channels: int, seed: int = 0) -> Path:
    """A wav/flac/ogg file (format from the suffix)."""
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), tone(seconds, rate, channels, seed), rate)
    return path


def _encode_audio(container: object, stream: object, data: np.ndarray, rate: int) -> None:
    import av

    layout = "mono" if data.shape[1] == 1 else "stereo"
    step = 1024
    for start in range(0, len(data), step):
        chunk = np.ascontiguousarray(data[start:start + step].T)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):  # type: ignore[attr-defined]
            container.mux(packet)  # type: ignore[attr-defined]
    for packet in stream.encode(None):  # type: ignore[attr-defined]
        container.mux(packet)  # type: ignore[attr-defined]


def write_av_audio(path: Path, seconds: float, rate: int, channels: int, seed: int = 0) -> Path:
    """An mp3 (``.mp3``), AAC-in-MP4 (``.m4a``/``.mp4``) or opus (``.opus``) file via PyAV."""
    import av

    codec = {".mp3": "libmp3lame", ".opus": "libopus"}.get(path.suffix, "aac")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono" if channels == 1 else "stereo"  # type: ignore[attr-defined]
        _encode_audio(container, stream, tone(seconds, rate, channels, seed), rate)
    return path


def write_video_with_audio(path: Path, seconds: float, *, fps: int = 8, rate: int = 16000,
                           size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """A small H.264 mp4 with an AAC mono audio track of the same length."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = size  # type: ignore[attr-defined]
        video.pix_fmt = "yuv420p"  # type: ignore[attr-defined]
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"  # type: ignore[attr-defined]
        for i in range(int(seconds * fps)):
            img = np.full((size[1], size[0], 3), (i * 20 + seed * 40) % 255, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        _encode_audio(container, audio, tone(seconds, rate, 1, seed), rate)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to ``keep`` of its bytes, in place."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def full_decode(path: Path) -> tuple[int, int, int]:
    """``(frames, rate, channels)`` by decoding every sample (soundfile, else PyAV)."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), always_2d=True)
        return data.shape[0], rate, data.shape[1]
    except Exception:
        pass
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        total = sum(f.samples for f in container.decode(stream))
        return total, stream.rate, stream.codec_context.channels
