"""Video on the huggingface backend: ``video_column`` cells (bytes, ``{bytes, path}`` structs
or paths) probed with the same PyAV probe through ranged reads, cached and batched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import databackend_huggingface
from databackend.errors import ConfigError
from databackend.factory import DataBackendFactory
from databackend.media.defaults import DEFAULT_PROBES
from databackend.media.encoders import ReferenceVideoVAE
from databackend.media.probe import probe_local
from databackend.media.synthetic import write_video
from databackend.plugins import make_plugin_manager

pytest.importorskip("av")
CLIPS = [(96, 64, 20, 0), (64, 96, 14, 90), (96, 64, 4, 0), (64, 64, 17, 0)]


def build(entry: dict[str, Any], tmp_path: Path) -> DataBackendFactory:
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE

    pm = make_plugin_manager(entrypoints=False, extra=[databackend_huggingface])
    return DataBackendFactory(
        [entry], plugin_manager=pm, max_epochs=1,
        options={"output_dir": str(tmp_path / "out"), "resolution": 64,
                 "resolution_type": "pixel", "aspect_bucket_alignment": 16},
        text_encoder=ReferenceTextEncoder(width=16, seq_len=8), image_encoder=ReferenceVAE(),
        media_encoders={"video": ReferenceVideoVAE(4)}).build()


@pytest.mark.parametrize("cells", ["bytes", "paths"])
def test_video_column(tmp_path: Path, cells: str) -> None:
    import datasets

    files = [Path(write_video(tmp_path / "src" / f"c{k}.mp4", w, h, n, rotation=r, seed=k))
             for k, (w, h, n, r) in enumerate(CLIPS)]
    column: list[Any] = ([{"bytes": p.read_bytes(), "path": None} for p in files]
                         if cells == "bytes" else [str(p) for p in files])
    column.append({"bytes": b"not a video", "path": None} if cells == "bytes" else
                  str(tmp_path / "src" / "missing.mp4"))
    datasets.Dataset.from_dict({"clip": column, "caption": [f"clip {k}" for k in range(5)]}
                               ).save_to_disk(str(tmp_path / "ds"))
    entry = {"id": "hfv", "type": "huggingface", "dataset_type": "video",
             "dataset_name": str(tmp_path / "ds"), "video_column": "clip",
             "train_batch_size": 1, "video": {"num_frames": 9, "window": "random"}}
    f = build(entry, tmp_path)
    idx = f.metadata["hfv"].index
    assert list(idx.paths) == ["0.mp4", "1.mp4", "3.mp4"]
    for i, path in enumerate(idx.paths):
        local = str(files[int(path.split(".")[0])])
        assert idx.info(i) == DEFAULT_PROBES.probe("video", probe_local(local))
        assert idx.captions_of(i) == (f"clip {path.split('.')[0]}",)
    skipped = f.metadata["hfv"].report.skipped
    assert skipped == ({"too_few_frames": 1, "not_media": 1} if cells == "bytes"
                       else {"too_few_frames": 1, "unreadable": 1})
    batches = list(f.iterator(prefetch=False))
    assert len(batches) == 3 and all(b.latents.ndim == 5 for b in batches)


def test_video_dataset_without_video_column(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"image": [b"x"], "caption": ["c"]}).save_to_disk(
        str(tmp_path / "ds"))
    entry = {"id": "hfv", "type": "huggingface", "dataset_type": "video",
             "dataset_name": str(tmp_path / "ds")}
    with pytest.raises(ConfigError, match="needs `video_column`"):
        build(entry, tmp_path)
