"""Audio datasets from a Hugging Face dataset: the ``audio_column`` cells are the samples,
captions fall back to ``audio_caption_fields``, lyrics come from ``lyrics_column`` (all keys of
the ``huggingface`` block, as SimpleTuner reads them)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import datasets
import pytest

from databackend.factory import DataBackendFactory

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from audiofiles import tone


def _wav(seconds: float, rate: int, seed: int) -> bytes:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, tone(seconds, rate, 1, seed), rate, format="WAV")
    return buf.getvalue()


@pytest.fixture
def audio_parquet(tmp_path: Path) -> Path:
    rows = {"audio": [{"bytes": _wav(s, 16000, n), "path": f"clip{n}.wav"}
                      for n, s in enumerate([2.5, 4.0, 7.0])],
            "caption": ["a drum loop", "", None],
            "prompt": ["", "calm piano", "rock"], "tags": ["", "slow", "loud, fast"],
            "lyrics": ["", "la la", None], "norm_lyrics": ["", "", "hey hey"]}
    features = datasets.Features({
        # the Arrow layout of datasets.Audio(decode=False) (which needs torchcodec to encode)
        "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
        "caption": datasets.Value("string"),
        "prompt": datasets.Value("string"), "tags": datasets.Value("string"),
        "lyrics": datasets.Value("string"), "norm_lyrics": datasets.Value("string")})
    folder = tmp_path / "hfaudio"
    folder.mkdir()
    datasets.Dataset.from_dict(rows, features=features).to_parquet(
        str(folder / "train-00000-of-00001.parquet"))
    return folder


def test_audio_rows_with_caption_fields_and_lyrics(audio_parquet: Path, registry: Any,
                                                   tmp_path: Path) -> None:
    config = [{"id": "songs", "type": "huggingface", "dataset_type": "audio",
               "dataset_name": str(audio_parquet), "caption_strategy": "huggingface",
               "huggingface": {"audio_column": "audio", "caption_column": "caption",
                               "audio_caption_fields": ["prompt", "tags"]},
               "audio": {"duration_interval": 2}}]
    f = DataBackendFactory(config, plugin_manager=registry.pm, use_reference_encoders=True,
                           options={"output_dir": str(tmp_path / "out")}, max_epochs=1).build()
    meta: Any = f.metadata["songs"]
    index = meta.index
    assert [(p, index.bucket_of(i)) for i, p in enumerate(index.paths)] == [
        ("0.wav", (2000, 1)), ("1.wav", (4000, 1)), ("2.wav", (6000, 1))]
    assert [index.captions_of(i) for i in range(3)] == [
        ("a drum loop",), ("calm piano, slow",), ("rock, loud, fast",)]
    source = next(d.source for d in f.runtime.datasets if d.id == "songs")
    assert [source.lyrics(i) for i in range(3)] == [None, "la la", "hey hey"]
    batches = list(f.iterator(prefetch=False))
    assert sorted(s for b in batches for s in b.sample_ids) == \
        ["songs:0.wav", "songs:1.wav", "songs:2.wav"]
    f.close()


def test_audio_block_keys_are_checked(registry: Any, audio_parquet: Path) -> None:
    from databackend.config.loader import parse_entries
    from databackend.errors import ConfigError
    from databackend.options import FactoryOptions

    entry = {"id": "songs", "type": "huggingface", "dataset_type": "audio",
             "dataset_name": str(audio_parquet),
             "huggingface": {"audio_column": 3, "audio_caption_fields": "prompt"}}
    with pytest.raises(ConfigError) as caught:
        parse_entries([entry], registry, FactoryOptions())
    text = str(caught.value)
    assert "`huggingface.audio_column` must be a string" in text
    assert "`huggingface.audio_caption_fields` must be a list" in text
