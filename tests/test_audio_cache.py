"""Audio datasets end to end: scan reasons, cache entries equal to a fresh encode, batches,
lyrics, and audio attached to the batches of a paired dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from audiofiles import truncate, write_av_audio, write_soundfile

from databackend.audio.encoders import ReferenceAudioEncoder
from databackend.audio.source import S2VSource
from databackend.factory import DataBackendFactory

MUSIC = [("a/one.wav", 7.4, 44100, 2), ("a/two.flac", 6.2, 22050, 1), ("three.mp3", 4.1, 44100, 2),
         ("four.m4a", 1.3, 48000, 2), ("five.wav", 3.0, 16000, 1), ("long.wav", 45.0, 8000, 1)]


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("music")
    for i, (name, sec, rate, ch) in enumerate(MUSIC):
        writer = write_soundfile if name.endswith((".wav", ".flac")) else write_av_audio
        writer(root / name, sec, rate, ch, seed=i)
        (root / name).with_suffix(".txt").write_text(f"track {i}\nsong number {i}\n")
    (root / "a/one.lyrics").write_text("la la la\n")
    truncate(write_soundfile(root / "cut.flac", 3.0, 22050, 1))
    (root / "cut.txt").write_text("cut")
    (root / "notes.wav").write_text("not audio at all\n" * 10)
    (root / "notes.txt").write_text("notes")
    return root


def music_config(root: Path, **audio: Any) -> list[dict[str, Any]]:
    """Shaped like the reference's minimaxmusic example: 44.1 kHz stereo, interval 3 s."""
    block = {"duration_interval": 3, "max_duration_seconds": 40, "sample_rate": 44100,
             "channels": 2, **audio}
    return [{"id": "music", "type": "local", "dataset_type": "audio",
             "instance_data_dir": str(root), "caption_strategy": "textfile",
             "train_batch_size": 2, "audio": block},
            {"id": "text", "type": "local", "dataset_type": "text_embeds", "default": True}]


def build(config: Any, out: Path, **kw: Any) -> DataBackendFactory:
    encoder = ReferenceAudioEncoder(44100, 2, hop=441, dim=4)
    return DataBackendFactory(config, use_reference_encoders=True, seed=3,
                              media_encoders={"audio": encoder},
                              options={"output_dir": str(out), "model_family": "minimaxmusic"},
                              **kw).build()


def labels(f: DataBackendFactory, dataset: str) -> dict[str, int]:
    """Clips per bucket label (``6s``) of a scanned audio dataset."""
    meta: Any = f.metadata[dataset]
    return {meta.spec.bucket_label(k): len(v) for k, v in meta.index.buckets().items()}


def source(f: DataBackendFactory, dataset: str) -> Any:
    return next(d.source for d in f.runtime.datasets if d.id == dataset)


def test_scan_counts_reasons_and_buckets(music: Path, tmp_path: Path) -> None:
    f = build(music_config(music, min_duration_seconds=1.5), tmp_path)
    report: Any = f.metadata["music"].report
    assert report is not None and report.kind == "audio"
    assert report.skipped == {"not_media": 1, "too_long": 1, "too_short": 1}
    assert report.examples["too_long"] == ["long.wav"]
    # four.m4a (1.3 s) is too short; cut.flac states 3 s in its header (found at cache time)
    assert labels(f, "music") == {"3s": 3, "6s": 2}
    assert "6s" in report.format_table()
    run = next(r for r in f.cache_runs if r.name == "music")
    assert [p for p, _ in run.report.failed] == ["cut.flac"]
    assert f.excluded["music"] == ["cut.flac"]
    music = source(f, "music")
    in_training = {int(i) for v in music.buckets().values() for i in v}
    index: Any = f.metadata["music"].index
    assert index.position("cut.flac") not in in_training
    assert music.lyrics(index.position("a/one.wav")) == "la la la"
    assert music.lyrics(index.position("three.mp3")) is None
    assert index.captions_of(index.position("three.mp3")) == ("track 2", "song number 2")
    f.close()


def test_cached_latents_equal_a_fresh_encode(music: Path, tmp_path: Path) -> None:
    f = build(music_config(music, truncation_mode="random"), tmp_path)
    cache: Any = f.latent_caches["music"]
    run = next(r for r in f.cache_runs if r.name == "music")
    assert run.report.encoded == 5 and len(run.report.failed) == 1
    encoder = ReferenceAudioEncoder(44100, 2, hop=441, dim=4)
    index: Any = f.metadata["music"].index
    for i in range(len(index)):
        if index.paths[i] == "cut.flac":
            continue
        audio = cache._load(i)
        assert audio.shape == (2, round(index.bucket_of(i)[0] * 44.1))
        assert not audio[:, cache.valid(i, 44100):].any()  # padding after the clip
        fresh = encoder(audio[None])[0]
        assert torch.equal(cache.tensors([i])[0], fresh)
    f.close()
    again = build(music_config(music, truncation_mode="random"), tmp_path)
    rerun = next(r for r in again.cache_runs if r.name == "music").report
    assert rerun.encoded == 0 and rerun.cached == 5
    again.close()


def test_batches_carry_latents_lengths_and_lyrics(music: Path, tmp_path: Path) -> None:
    f = build(music_config(music), tmp_path, max_epochs=1)
    batches = list(f.iterator(prefetch=False))
    assert batches and all(b.dataset_id == "music" for b in batches)
    for b in batches:
        seconds = b.bucket[0] / 1000
        assert b.latents.shape == (2, 4, int(seconds * 100))  # hop 441 at 44.1 kHz
        assert b.audio is not None and b.audio.lyrics is not None
        assert (b.audio.lengths <= b.latents.shape[-1]).all()
        assert b.text_embeds["prompt_embeds"].shape[0] == 2
    short = [b for b in batches if "music:four.m4a" in b.sample_ids]
    b = short[0]
    assert b.audio is not None
    assert int(b.audio.lengths[b.sample_ids.index("music:four.m4a")]) == 130  # 1.3 s of 3 s
    f.close()


def test_speech_with_lyrics_only_captions_from_instance_prompt(music: Path,
                                                               tmp_path: Path) -> None:
    config = [{"id": "speech", "type": "local", "dataset_type": "audio",
               "instance_data_dir": str(music / "a"), "caption_strategy": "instanceprompt",
               "instance_prompt": "a voice", "audio_duration_interval": 2,
               "audio": {"lyrics_filename_format": "{filename}.lyrics",
                         "truncation_mode": "end"}}]
    f = build(config, tmp_path, max_epochs=1)
    index: Any = f.metadata["speech"].index
    assert [(p, index.bucket_of(i)) for i, p in enumerate(index.paths)] == [
        ("one.wav", (6000, 1)), ("two.flac", (6000, 1))]
    seen = {b.sample_ids[0]: (b.audio.lyrics or [])[0]  # type: ignore[union-attr]
            for b in f.iterator(prefetch=False)}
    assert seen == {"speech:one.wav": "la la la", "speech:two.flac": None}
    f.close()


def test_audio_attached_to_the_batches_of_its_dataset(music: Path, tmp_path: Path) -> None:
    """S2V pairing by relative path and stem, subfolders kept; a clip without audio gets zeros
    and mask 0."""
    pics = tmp_path / "pics"
    from imagefiles import write_image

    for i, name in enumerate(["a/one.png", "three.png", "missing.png"]):
        write_image(pics / name, 64, 64, seed=i)
    config = [*music_config(music),
              {"id": "pics", "type": "local", "instance_data_dir": str(pics),
               "caption_strategy": "filename", "resolution": 64, "resolution_type": "pixel",
               "train_batch_size": 3}]
    f = build(config, tmp_path / "out")
    image_source = source(f, "pics")
    s2v = S2VSource(image_source, [source(f, "music")])
    indices = sorted(int(i) for v in image_source.buckets().values() for i in v)
    batch = s2v.batch(indices, epoch=1, step=0, bucket=(64, 64))
    paths = [s.split(":", 1)[1] for s in batch.sample_ids]
    audio = batch.audio
    assert audio is not None and audio.mask is not None and audio.latents is not None
    assert dict(zip(paths, audio.mask.tolist(), strict=True)) == {
        "a/one.png": 1, "three.png": 1, "missing.png": 0}
    gone = paths.index("missing.png")
    assert not audio.latents[gone].any() and int(audio.lengths[gone]) == 0
    assert audio.latents.shape[0] == 3 and audio.latents.shape[1] == 4
    f.close()


def test_example_configs_validate(registry: Any, tmp_path: Path) -> None:
    from databackend.config.loader import parse_entries
    from databackend.options import FactoryOptions

    folder = Path(__file__).parent / "configs" / "audio"
    for name in ("music.json", "speech.json", "video.json"):
        text = (folder / name).read_text().replace("{data}", str(tmp_path))
        plan = parse_entries(json.loads(text), registry, FactoryOptions())
        assert any(d.dataset_type == "audio" for d in plan.datasets), name
    shutil.rmtree(tmp_path, ignore_errors=True)
