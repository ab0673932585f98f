"""The example audio configs (tests/configs/audio, shaped like the reference's: music at
44.1 kHz stereo with duration intervals, speech with lyrics, video with attached audio)
validate and run one epoch with the stand-in encoders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from audiofiles import write_av_audio, write_soundfile, write_video_with_audio

from databackend.audio.encoders import ReferenceAudioEncoder
from databackend.factory import DataBackendFactory

CONFIGS = Path(__file__).parent / "configs" / "audio"


def load(name: str, data: Path) -> list[dict[str, Any]]:
    return json.loads((CONFIGS / name).read_text().replace("{data}", str(data)))  # type: ignore[no-any-return]


def run(config: list[dict[str, Any]], out: Path, family: str, **kw: Any) -> tuple[Any, list[Any]]:
    f = DataBackendFactory(config, use_reference_encoders=True, seed=1, max_epochs=1,
                           options={"output_dir": str(out), "model_family": family,
                                    "resolution": 64, "resolution_type": "pixel"}, **kw)
    batches = list(f.build().iterator(prefetch=False))
    f.close()
    return f, batches


def test_music_44k_stereo(tmp_path: Path) -> None:
    data = tmp_path / "music"
    for n, (sec, rate, ch) in enumerate([(4.5, 44100, 2), (5.1, 48000, 2), (2.2, 22050, 1)]):
        write_soundfile(data / f"song{n}.flac", sec, rate, ch, seed=n)
        (data / f"song{n}.txt").write_text(f"an upbeat song {n}")
    encoder = ReferenceAudioEncoder(44100, 2, hop=882, dim=8)
    _, batches = run(load("music.json", data), tmp_path / "out", "minimaxmusic",
                     media_encoders={"audio": encoder})
    assert sorted(len(b) for b in batches) == [1, 1, 1]  # train_batch_size 1
    shapes = {b.sample_ids[0].split(":")[1]: tuple(b.latents.shape) for b in batches}
    assert shapes == {"song0.flac": (1, 8, 200), "song1.flac": (1, 8, 200),  # 4 s buckets
                      "song2.flac": (1, 8, 100)}  # 2 s
    assert (tmp_path / "out" / "cache" / "audio" / "vae" / "minimaxmusic").is_dir()


def test_speech_with_lyrics(tmp_path: Path) -> None:
    data = tmp_path / "speech"
    for n, sec in enumerate([0.6, 3.5, 7.0]):
        write_av_audio(data / f"line{n}.mp3", sec, 16000, 1, seed=n)
        (data / f"line{n}.txt").write_text(f"a voice {n}")
    (data / "line1.lyrics").write_text("hello there\n")
    f, batches = run(load("speech.json", data), tmp_path / "out", "acestep")
    assert f.metadata["acestep-speech"].report.skipped == {"too_short": 1}
    lyrics = {b.sample_ids[0]: b.audio.lyrics[0] for b in batches}
    assert lyrics == {"acestep-speech:line1.mp3": "hello there",
                      "acestep-speech:line2.mp3": None}


def test_video_with_attached_audio(tmp_path: Path) -> None:
    data = tmp_path / "drums"
    for n, sec in enumerate([2.0, 2.0, 3.0]):
        write_video_with_audio(data / f"take{n}.mp4", sec, fps=8, seed=n)
        (data / f"take{n}.txt").write_text(f"drumming {n}")
    config = load("video.json", data)
    config[0].update(resolution=64, resolution_type="pixel")  # small frames: a fast test
    f, batches = run(config, tmp_path / "out", "wan")
    assert [d.id for d in f.runtime.datasets] == ["drumming"]  # the audio rides along
    assert f.metadata["drumming_audio"].report.counts["kept"] == 3
    for b in batches:
        assert b.video is not None and b.audio is not None
        assert b.audio.mask is not None and b.audio.mask.tolist() == [1] * len(b)
        assert b.audio.latents is not None and b.audio.latents.shape[0] == len(b)
        assert (b.audio.lengths > 0).all()


def test_cli_run_and_scan_an_audio_config(tmp_path: Path, capsys: Any) -> None:
    from databackend.cli import main

    data = tmp_path / "clips"
    for n, sec in enumerate([2.5, 4.0, 6.5]):
        write_soundfile(data / f"c{n}.wav", sec, 16000, 1, seed=n)
    config = tmp_path / "c.json"
    config.write_text(json.dumps([{"id": "clips", "type": "local", "dataset_type": "audio",
                                   "instance_data_dir": str(data),
                                   "audio": {"duration_interval": 2}}]))
    out = f"output_dir={tmp_path / 'out'}"
    assert main(["run", str(config), "--steps", "2", "--no-progress", "--option", out,
                 "--audio-encoder", "databackend.audio.encoders:ReferenceAudioEncoder"]) == 0
    assert "precompute latents clips: 0 cached, 3 encoded" in capsys.readouterr().out
    assert main(["scan", str(config), "--option", out]) == 0
    printed = capsys.readouterr().out
    assert "[audio]" in printed and " 6s " in printed
    assert main(["cache", str(config), "--no-progress", "--option", out, "--audio-encoder",
                 "databackend.audio.encoders:ReferenceAudioEncoder"]) == 0
    assert "3 entries, 3 already cached, 0 encoded" in capsys.readouterr().out


def test_s2v_audio_follows_the_video_window(tmp_path: Path) -> None:
    """The audio of each clip is cut to the frames its video set trains on (here the middle
    9 frames, every second frame, of 3-4 s clips at 8 fps), not to a duration bucket."""
    data = tmp_path / "drums"
    for n, sec in enumerate([3.0, 3.0, 4.0]):
        write_video_with_audio(data / f"take{n}.mp4", sec, fps=8, seed=n)
        (data / f"take{n}.txt").write_text(f"drumming {n}")
    config = load("video.json", data)
    config[0]["video"] = {"num_frames": 9, "window": "center", "frame_stride": 2}
    f, batches = run(config, tmp_path / "out", "wan")
    video, audio = f.metadata["drumming"].index, f.metadata["drumming_audio"].index
    assert len(audio) == 3
    for i, path in enumerate(audio.paths):
        frames = video.window(video.position(path))
        assert frames.start > 0 and frames.stride == 2  # a window from the middle
        rate = audio.info(i).sample_rate
        assert audio.info(i).fps == 8 and audio.info(i).frames == video.info(
            video.position(path)).frames
        assert audio.window(i).start == round(frames.start / 8 * rate)
        assert audio.window(i).length == round(17 / 8 * rate)  # 9 frames 2 apart: 17 frames
        assert tuple(audio.bucket_of(i)) == (2125, 1)  # 17 / 8 s, for every clip
    for b in batches:  # the same audio length for every clip of a batch, no padding
        assert b.audio is not None and b.audio.mask.tolist() == [1] * len(b)
        assert len(set(b.audio.lengths.tolist())) == 1


def test_named_s2v_sets_follow_their_video_set(registry: Any, tmp_path: Path) -> None:
    from databackend.audio.s2v import inject_s2v_audio
    from databackend.config.loader import parse_entries
    from databackend.errors import ConfigError
    from databackend.options import FactoryOptions

    block = {"num_frames": 17, "window": "random"}
    raw = [{"id": "v", "type": "local", "dataset_type": "video", "video": block,
            "instance_data_dir": str(tmp_path), "s2v_datasets": ["a", "b"]},
           {"id": "a", "type": "local", "dataset_type": "audio", "instance_data_dir": str(tmp_path),
            "audio": {"source_from_video": True}},
           {"id": "b", "type": "local", "dataset_type": "audio", "instance_data_dir": str(tmp_path)}]
    out = inject_s2v_audio(raw)
    assert out[1]["s2v_video"] == block  # takes its audio from the clips: follows them
    assert "s2v_video" not in out[2]  # separate audio files: its own windows
    wrong = [*raw[:2], {**raw[2], "s2v_video": {"num_frames": "x"}}]
    with pytest.raises(ConfigError) as caught:
        parse_entries(wrong, registry, FactoryOptions())
    assert "`s2v_video` is for audio datasets with `audio.source_from_video: true`" in str(
        caught.value)


def test_clips_without_audio_get_silence_or_mask_zero(tmp_path: Path) -> None:
    """A clip without an audio stream: with ``allow_zero_audio`` it carries the encoded
    silence of its window and mask 1 (the reference's zero audio); without, it is skipped
    by the audio set as ``no_audio`` and its video batch says mask 0."""
    from databackend.media.synthetic import write_video

    data = tmp_path / "drums"
    write_video_with_audio(data / "take0.mp4", 3.0, fps=8, size=(64, 64))
    write_video(data / "mute.mp4", 64, 64, 24, fps=8)
    for name in ("take0", "mute"):
        (data / f"{name}.txt").write_text(name)
    masks = {}
    for allow in (True, False):
        config = load("video.json", data)
        config[0]["audio"]["allow_zero_audio"] = allow
        config[0]["train_batch_size"] = 1
        f, batches = run(config, tmp_path / f"out-{allow}", "wan")
        report = f.metadata["drumming_audio"].report
        masks[allow] = {b.sample_ids[0]: int(b.audio.mask[0]) for b in batches}
        if allow:
            import torch

            mute = next(b for b in batches if b.sample_ids[0].endswith("mute.mp4"))
            enc = ReferenceAudioEncoder()
            n = round(1125 * enc.sample_rate / 1000)  # 9 frames at 8 fps
            silence = enc(torch.zeros(1, enc.channels, n))[0]
            assert torch.equal(mute.audio.latents[0], silence)  # the encoded silence
        else:
            assert report.examples["no_audio"] == ["mute.mp4"]
    assert masks[True] == {"drumming:take0.mp4": 1, "drumming:mute.mp4": 1}
    assert masks[False] == {"drumming:take0.mp4": 1, "drumming:mute.mp4": 0}
