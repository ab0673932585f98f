"""The audio of a video's training window: s2v audio cut to the frames the video set uses.

An audio dataset that takes its audio from the clips of a video set (``source_from_video``,
paired through ``s2v_datasets``) carries that set's ``video`` block as ``s2v_video`` (the
loader copies it, :mod:`databackend.audio.s2v`). Its probe also reads the video stream's frame
count and rate (the ``s2v`` probe), so the audio scan places the very window the video scan
places for the same clip (same settings, seed and key: :meth:`VideoSpec.plan
<databackend.media.spec.VideoSpec.plan>` is a pure function of them) and converts it to
samples: frames ``[s, s + span)`` at ``fps`` become samples ``[s / fps * rate, (s + span) /
fps * rate)``. The bucket is that exact duration, so every clip of a video bucket encodes
the same number of samples; audio that ends before the window does is zero-padded (its true
length is kept), as SimpleTuner pads s2v audio to ``num_frames / framerate`` seconds.

SimpleTuner always trains the first ``num_frames`` frames and trims the audio from its start;
here the video window may start anywhere (``window: center | random``, ``frame_stride``) and
the audio follows it. A clip whose audio ends before its window starts is ``too_short``.
"""

from __future__ import annotations

import attrs

from databackend.audio.buckets import bucket_key
from databackend.media.record import MediaInfo
from databackend.media.spec import MediaPlan, VideoSpec
from databackend.media.videoconfig import VideoSettings
from databackend.media.windows import Window, span

__all__ = ["aligned_plan"]


def aligned_plan(video: VideoSettings, info: MediaInfo, key: str, seed: int,
                 max_values: int) -> MediaPlan | None:
    """The plan of clip ``key`` following its video window; None when ``info`` holds no video
    stream (then the clip is planned as plain audio)."""
    if info.frames <= 0 or info.fps <= 0 or info.sample_rate <= 0:
        return None
    frames = VideoSpec(video).plan(attrs.evolve(info, kind="video"), key, seed)
    if frames.reason is not None or frames.window is None:
        return MediaPlan(frames.reason or "too_few_frames")
    rate, fps = info.sample_rate, info.fps
    w = frames.window
    start = round(w.start / fps * rate)
    target = round(span(w.length, w.stride) / fps * rate)
    length = min(target, info.samples - start)
    if length <= 0:
        return MediaPlan("too_short")
    if max(target, 1) * max(info.channels, 1) > max_values:
        return MediaPlan("too_long")
    return MediaPlan(None, bucket_key(target / rate), Window(start, length),
                     sizes=((info.samples, info.channels), (target, info.channels)))
