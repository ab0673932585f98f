"""Video on the csv backend: clip URLs keep their extension, are probed with the same PyAV
probe (the files are downloaded once into the csv cache), cached and served as video batches;
a text file behind a .mp4 URL is quarantined and never trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
from csvhelpers import write_csv

import databackend_csv
from databackend.media.defaults import DEFAULT_PROBES
from databackend.media.encoders import ReferenceVideoVAE
from databackend.media.probe import probe_local
from databackend.media.synthetic import write_video
from databackend_csv import key_for_url
from databackend_csv.testing import ImageServer

pytest.importorskip("av")


def test_video_urls_scan_cache_and_batch(tmp_path: Path) -> None:
    from databackend.caches import ReferenceTextEncoder, ReferenceVAE
    from databackend.factory import DataBackendFactory
    from databackend.plugins import make_plugin_manager

    clips = {"a.mp4": (96, 64, 20, 0), "b.mkv": (64, 96, 14, 0), "c.mp4": (64, 96, 16, 90)}
    with ImageServer() as server:
        for k, (name, (w, h, n, rot)) in enumerate(clips.items()):
            path = write_video(tmp_path / "src" / name, w, h, n, rotation=rot, seed=k)
            server.add(name, Path(path).read_bytes())
        server.add("notes.mp4", b"just some text, not a video\n")
        names = [*clips, "notes.mp4"]
        csv_file = write_csv(tmp_path / "clips.csv",
                             [(server.url(f"/img/{n}"), f"clip {n}") for n in names])
        entry = {"id": "web", "type": "csv", "dataset_type": "video",
                 "csv_file": str(csv_file), "csv_cache_dir": str(tmp_path / "downloads"),
                 "csv_caption_column": "caption", "csv_allow_private_addresses": True,
                 "csv_retries": 0, "train_batch_size": 1,
                 "video": {"num_frames": 9, "window": "random"}}
        pm = make_plugin_manager(entrypoints=False, extra=[databackend_csv])
        f = DataBackendFactory([entry], plugin_manager=pm, max_epochs=1,
                               options={"output_dir": str(tmp_path / "out"), "resolution": 64,
                                        "resolution_type": "pixel", "aspect_bucket_alignment": 16},
                               text_encoder=ReferenceTextEncoder(width=16, seq_len=8),
                               image_encoder=ReferenceVAE(),
                               media_encoders={"video": ReferenceVideoVAE(4)}).build()
        idx = f.metadata["web"].index
        keys = {key_for_url(server.url(f"/img/{n}")): n for n in names}
        assert sorted(keys[p] for p in idx.paths) == ["a.mp4", "b.mkv", "c.mp4"]
        assert all(p.endswith((".mp4", ".mkv")) for p in keys)
        for i, path in enumerate(idx.paths):
            local = str(tmp_path / "src" / keys[path])
            assert idx.info(i) == DEFAULT_PROBES.probe("video", probe_local(local))
            assert idx.captions_of(i) == (f"clip {keys[path]}",)
        batches = list(f.iterator(prefetch=False))
        assert len(batches) == 3 and all(b.latents.ndim == 5 for b in batches)
        summary = f.storages["web"].scan_summary()
        assert summary["quarantine"]["by_reason"] == {"not_image": 1}  # the text .mp4
        assert f.metadata["web"].report.skipped == {"unreadable": 1}
