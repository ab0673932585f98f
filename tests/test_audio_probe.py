"""Audio probes against a full decode, bucket math, windows, and the ``audio`` block rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from audiofiles import full_decode, truncate, write_av_audio, write_soundfile, write_video_with_audio

from databackend.audio.buckets import bucket_name, bucket_seconds, crop_window, filter_reason
from databackend.audio.s2v import inject_s2v_audio
from databackend.audio.settings import audio_problems, audio_settings
from databackend.config.loader import parse_entries
from databackend.errors import ConfigError
from databackend.media.defaults import DEFAULT_PROBES
from databackend.media.probe import probe_local, probe_ranged
from databackend.media.record import CorruptMedia, MediaInfo, NotMedia
from databackend.options import FactoryOptions

# (name, seconds, rate, channels); lossy container formats carry encoder priming
EXACT = [("a.wav", 2.5, 22050, 1), ("b.flac", 7.4, 44100, 2), ("c.ogg", 1.2, 16000, 1),
         ("d.mp3", 3.3, 44100, 2), ("w/e.wav", 4.0, 48000, 2)]
LOSSY = [("f.m4a", 4.0, 48000, 2), ("g.opus", 2.0, 48000, 1)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    for i, (name, sec, rate, ch) in enumerate(EXACT + LOSSY):
        writer = write_soundfile if name.endswith((".wav", ".flac", ".ogg")) else write_av_audio
        writer(root / name, sec, rate, ch, seed=i)
    write_video_with_audio(root / "clip.mp4", 2.0)
    write_av_audio(root / "long.mp3", 30.0, 22050, 1)
    truncate(write_soundfile(root / "cut.wav", 3.0, 22050, 2))
    truncate(write_av_audio(root / "cut.m4a", 3.0, 22050, 1))
    (root / "text.wav").write_text("this is not audio\n" * 20)
    return root


def probe(files: Path, name: str) -> MediaInfo:
    return DEFAULT_PROBES.probe("audio", probe_local(str(files / name), name))


@pytest.mark.parametrize(("name", "seconds", "rate", "channels"), EXACT)
def test_probe_equals_full_decode(files: Path, name: str, seconds: float, rate: int,
                                  channels: int) -> None:
    info = probe(files, name)
    assert info.kind == "audio"
    assert (info.samples, info.sample_rate, info.channels) == full_decode(files / name)
    assert info.duration == pytest.approx(seconds, abs=1e-3)


@pytest.mark.parametrize(("name", "seconds", "rate", "channels"), LOSSY)
def test_probe_of_lossy_containers_within_one_codec_frame(files: Path, name: str,
                                                          seconds: float, rate: int,
                                                          channels: int) -> None:
    info = probe(files, name)
    frames, got_rate, got_channels = full_decode(files / name)
    assert (info.sample_rate, info.channels) == (got_rate, got_channels) == (rate, channels)
    assert abs(info.samples - frames) <= 1024  # decoded output includes codec priming
    assert info.duration == pytest.approx(seconds, abs=0.01)


def test_probe_reads_the_audio_track_of_a_video(files: Path) -> None:
    info = probe(files, "clip.mp4")
    assert (info.sample_rate, info.channels) == (16000, 1)
    assert info.duration == pytest.approx(2.0, abs=0.01)


def test_truncated_wav_probes_as_what_is_there(files: Path) -> None:
    info = probe(files, "cut.wav")
    assert (info.samples, info.sample_rate, info.channels) == full_decode(files / "cut.wav")
    assert 0 < info.duration < 2.0


def test_broken_and_foreign_files_are_skip_errors(files: Path) -> None:
    with pytest.raises(CorruptMedia):
        probe(files, "cut.m4a")  # starts like an MP4, its index is gone
    with pytest.raises(NotMedia):
        probe(files, "text.wav")
    (files / "empty.mp3").write_bytes(b"")
    with pytest.raises(NotMedia):
        probe(files, "empty.mp3")


def test_a_lost_libsndfile_error_is_classified_by_the_bytes(files: Path) -> None:
    # libsndfile reports a failed open through one process-wide code that another thread's
    # open can reset ("No Error."): then the file's first bytes decide (this made a text
    # file named .wav count as corrupt, depending on what ran before)
    from databackend.audio.probe import _classified_by_head

    assert isinstance(_classified_by_head(str(files / "text.wav"), "text.wav"), NotMedia)
    (files / "junk.wav").write_bytes(b"RIFF" + bytes(60))
    assert isinstance(_classified_by_head(str(files / "junk.wav"), "junk.wav"), CorruptMedia)
    assert isinstance(_classified_by_head(str(files / "gone.wav"), "gone.wav"), OSError)


@pytest.mark.parametrize(("name", "most"), [("w/e.wav", 4096), ("b.flac", 64 * 1024),
                                           ("long.mp3", 64 * 1024)])
def test_ranged_probe_reads_little_and_agrees(files: Path, name: str, most: int) -> None:
    data = (files / name).read_bytes()
    reads: list[int] = []

    def read(offset: int, length: int) -> bytes:
        reads.append(length)
        return data[offset:offset + length]

    ranged = DEFAULT_PROBES.probe("audio", probe_ranged(read, name, len(data), block=4096))
    assert ranged == probe(files, name)
    assert sum(reads) <= most < len(data)


@pytest.mark.parametrize(("duration", "interval", "key"), [
    (77, 3, "75s"), (77, 15, "75s"), (7.4, 3, "6s"), (7.4, 2.5, "5s"), (6.0, 3, "6s"),
    (0.9, 3, "3s"), (2.37, 3, "3s"), (7.4, 15, "15s"), (3.3, 1.1, "3.3s"), (2.0, 0.75, "1.5s")])
def test_bucket_keys(duration: float, interval: float, key: str) -> None:
    assert bucket_name(bucket_seconds(duration, interval)) == key


def test_filters_and_windows() -> None:
    assert filter_reason(1.0, minimum=2.0, maximum=None) == "too_short"
    assert filter_reason(31.0, minimum=None, maximum=30.0) == "too_long"
    assert filter_reason(30.0, minimum=2.0, maximum=30.0) is None
    def win(*a: object, **k: object) -> tuple[int, int]:
        w = crop_window(*a, **k)  # type: ignore[arg-type]
        return w.start, w.length

    assert win(100, 40, "beginning", seed=0, key="k") == (0, 40)
    assert win(100, 40, "end", seed=0, key="k") == (60, 40)
    assert win(30, 40, "random", seed=0, key="k") == (0, 30)  # padded
    starts = {win(100, 40, "random", seed=s, key=f"k{i}")[0]
              for s in range(3) for i in range(20)}
    assert all(0 <= s <= 60 for s in starts) and len(starts) > 10
    assert crop_window(100, 40, "random", seed=5, key="a") == \
        crop_window(100, 40, "random", seed=5, key="a")


def test_block_aliases_and_defaults() -> None:
    s = audio_settings({"audio_duration_interval": 2, "max_duration_seconds": 40},
                       {"truncation_mode": "end", "audio_channels": 2})
    assert (s.duration_interval, s.max_duration_seconds, s.truncation_mode, s.channels) == \
        (2.0, 40.0, "end", 2)
    assert audio_settings(None).duration_interval == 3.0
    assert audio_settings({"duration_interval": 5, "audio_bucket_interval": 9}) \
        .duration_interval == 5.0
    assert audio_problems({"duration_interval": 3, "truncation_mode": "beginning"}) == []


def test_audio_entry_reports_every_problem_with_the_rest(registry, tmp_path: Path) -> None:
    entries = [{"id": "music", "type": "local", "dataset_type": "audio",
                "instance_data_dir": str(tmp_path), "repeats": -1, "crop_style": "nope",
                "audio": {"duration_interval": 0, "truncation_mode": "rnd", "bogus": 1,
                          "min_duration_seconds": 9, "max_duration_seconds": 3}},
               {"id": "v", "type": "local", "dataset_type": "video",
                "instance_data_dir": str(tmp_path), "s2v_datasets": "missing"}]
    with pytest.raises(ConfigError) as caught:
        parse_entries(entries, registry, FactoryOptions())
    text = str(caught.value)
    for fragment in ("`repeats` must be >= 0", "crop_style", "audio.bogus",
                     "did you mean 'random'", "`audio.duration_interval` must be > 0",
                     "min_duration_seconds` (9) is larger", "'missing', which is not an audio"):
        assert fragment in text


def test_video_with_audio_block_gets_its_audio_dataset(registry, tmp_path: Path) -> None:
    raw = [{"id": "clips", "type": "local", "dataset_type": "video",
            "instance_data_dir": str(tmp_path), "audio": {"sample_rate": 16000,
                                                           "max_duration_seconds": 20}}]
    assert [e["id"] for e in inject_s2v_audio(raw)] == ["clips", "clips_audio"]
    plan = parse_entries(raw, registry, FactoryOptions())
    video, audio = plan.by_id["clips"], plan.by_id["clips_audio"]
    assert video.s2v_ids == ["clips_audio"]  # type: ignore[attr-defined]
    assert audio.dataset_type == "audio" and audio.probability == 0.0  # type: ignore[attr-defined]
    assert audio.source_dataset_id == "clips"  # type: ignore[attr-defined]
    assert audio.audio["source_from_video"] is True  # type: ignore[attr-defined]
    assert audio.storage.instance_data_dir == str(tmp_path)
    off = [{**raw[0], "audio": {"auto_split": False}}]
    assert len(parse_entries(off, registry, FactoryOptions()).entries) == 1
