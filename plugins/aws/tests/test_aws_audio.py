"""Audio datasets on S3 (moto over HTTP): ranged header probes, lyrics sidecars read through
the storage backend (SimpleTuner only finds them on a local disk), cache entries on S3 equal
to an encode of the same clips from a local copy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from e2e_support import aws_keys, factory

from databackend_aws import S3Backend

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from audiofiles import write_av_audio, write_soundfile

from databackend.audio.encoders import ReferenceAudioEncoder

CLIPS = [("a/long.wav", 12.0, 16000, 1), ("a/two.flac", 4.2, 22050, 2),
         ("three.mp3", 3.3, 44100, 2)]


def _upload(tmp_path: Path, backend: S3Backend) -> Path:
    local = tmp_path / "local"
    items = []
    for n, (name, sec, rate, ch) in enumerate(CLIPS):
        writer = write_soundfile if name.endswith((".wav", ".flac")) else write_av_audio
        path = writer(local / name, sec, rate, ch, seed=n)
        items.append((f"music/{name}", path.read_bytes()))
        items.append((f"music/{Path(name).with_suffix('.txt')}", f"clip {n}".encode()))
    items.append(("music/a/long.lyrics", b"remote words\n"))
    items.append(("music/notes.wav", b"not audio\n" * 50))
    backend.write_many(items)
    return local


def test_audio_dataset_on_s3(tmp_path: Path, make_backend: Any, bucket: str,
                             s3_endpoint: str) -> None:
    local = _upload(tmp_path, make_backend())
    encoder = ReferenceAudioEncoder(16000, 1, hop=160, dim=4)
    config = [{"id": "music", **aws_keys(bucket, s3_endpoint), "aws_data_prefix": "music",
               "dataset_type": "audio", "caption_strategy": "textfile",
               "audio": {"lyrics_filename_format": "{filename}.lyrics"}},
              {"id": "text", "dataset_type": "text_embeds", **aws_keys(bucket, s3_endpoint),
               "cache_dir": "cache/text", "default": True}]
    events: list[Any] = []
    f = factory(config, tmp_path / "out", media_encoders={"audio": encoder}, max_epochs=1)
    f.build()
    meta: Any = f.metadata["music"]
    assert meta.report.skipped == {"not_media": 1}
    index = meta.index
    assert sorted(index.paths) == ["a/long.wav", "a/two.flac", "three.mp3"]
    info = index.info(index.position("a/long.wav"))
    assert (info.samples, info.sample_rate, info.channels) == (192000, 16000, 1)
    meta.storage.add_listener(events.append)
    f.metadata["music"].scan(progress=False)  # a rescan reads nothing (sizes and mtimes)
    assert not [e for e in events if e.kind in ("download", "range")]
    source = next(d.source for d in f.runtime.datasets if d.id == "music")
    assert source.lyrics(index.position("a/long.wav")) == "remote words"
    cache: Any = f.latent_caches["music"]
    for i, path in enumerate(index.paths):
        stored = cache.tensors([i])[0]
        fresh = encoder(cache._load(i)[None])[0]
        assert torch.equal(stored, fresh), path
    batches = list(f.iterator(prefetch=False))
    assert {s for b in batches for s in b.sample_ids} == {f"music:{p}" for p in index.paths}
    f.close()
    assert local.is_dir()
