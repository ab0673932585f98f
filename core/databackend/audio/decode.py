"""Decode one clip's window to float32 ``[channels, samples]`` at the encoder's rate.

The window (:func:`databackend.audio.buckets.crop_window`) is in the clip's native samples.
wav/flac/ogg are read with soundfile from the window's start (a seek, no decode before it);
other formats are decoded with PyAV up to the window's end, positioned by each frame's
timestamp (so encoder priming is dropped). Channels are mixed to the target count (mean to
mono; mono repeated; extra channels dropped), then PyAV's resampler converts the rate, and the
result is cut or zero-padded to exactly ``target_samples``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from databackend.audio.probe import SOUNDFILE_EXTENSIONS
from databackend.media.kinds import extension_of
from databackend.media.probe import ProbeSource
from databackend.media.windows import Window

__all__ = ["decode_window", "mix_channels", "resample"]


def mix_channels(data: np.ndarray, channels: int) -> np.ndarray:
    """``[C, n]`` -> ``[channels, n]``."""
    have = data.shape[0]
    if have == channels:
        return data
    if channels == 1:
        return np.asarray(data.mean(axis=0, keepdims=True, dtype=np.float32))
    if have == 1:
        return np.repeat(data, channels, axis=0)
    if have > channels:
        return data[:channels]
    return np.concatenate([data, np.repeat(data[-1:], channels - have, axis=0)])


def resample(data: np.ndarray, src: int, dst: int) -> np.ndarray:
    """``[C, n]`` float32 at ``src`` Hz -> at ``dst`` Hz (PyAV's resampler)."""
    if src == dst or data.shape[1] == 0:
        return data
    import av

    out = []
    for row in data:  # mono planes: no channel-layout bookkeeping
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(row[None, :]), format="fltp",
                                           layout="mono")
        frame.sample_rate = src
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=dst)
        parts = [f.to_ndarray() for f in resampler.resample(frame)]
        parts += [f.to_ndarray() for f in resampler.resample(None)]
        out.append(np.concatenate(parts, axis=1)[0] if parts else np.zeros(0, np.float32))
    n = min(len(r) for r in out)
    return np.stack([r[:n] for r in out]).astype(np.float32, copy=False)


def _read_soundfile(source: ProbeSource, window: Window) -> np.ndarray:
    import soundfile

    fh = None if source.local else source.open()
    try:
        with soundfile.SoundFile(source.local or fh) as f:
            f.seek(window.start)
            data = f.read(window.length, dtype="float32", always_2d=True)
    finally:
        if fh is not None:
            fh.close()
    return np.ascontiguousarray(data.T)


def _frame_samples(frame: Any, rate: int, fallback: int) -> int:
    if frame.pts is None or frame.time_base is None:
        return fallback
    return round(float(frame.pts * frame.time_base) * rate)


def _read_av(source: ProbeSource, window: Window, rate: int) -> np.ndarray:
    import av

    fh = None if source.local else source.open()
    stop, pieces, at = window.start + window.length, [], 0
    try:
        with av.open(source.local or fh, mode="r") as container:
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                at = _frame_samples(frame, rate, at)
                data = frame.to_ndarray().astype(np.float32, copy=False)
                if not frame.format.is_planar:
                    data = data.reshape(-1, frame.layout.nb_channels).T
                lo, hi = max(window.start - at, 0), min(stop - at, data.shape[1])
                if hi > lo:
                    pieces.append(data[:, lo:hi])
                at += data.shape[1]
                if at >= stop:
                    break
    finally:
        if fh is not None:
            fh.close()
    if not pieces:
        raise ValueError(f"{source.name}: no audio samples in the window")
    return np.concatenate(pieces, axis=1)


def decode_window(source: ProbeSource, window: Window, *, native_rate: int, target_rate: int,
                  channels: int, target_samples: int) -> tuple[np.ndarray, int]:
    """``(audio [channels, target_samples], valid samples)``; the rest is zero padding."""
    if extension_of(source.name) in SOUNDFILE_EXTENSIONS:
        data = _read_soundfile(source, window)
    else:
        data = _read_av(source, window, native_rate)
    data = resample(mix_channels(data, channels), native_rate, target_rate)
    valid = min(data.shape[1], target_samples)
    out = np.zeros((channels, target_samples), dtype=np.float32)
    out[:, :valid] = data[:, :valid]
    return out, valid
