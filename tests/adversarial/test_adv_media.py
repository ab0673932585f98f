"""Names from data in the media, conditioning and scale code stay inside their roots: lyrics
sidecars built from ``lyrics_filename_format``, generated conditioning outputs of hostile
source keys, Hugging Face path cells (``video_column``/``audio_column``/``image_column``), and
the split (one-per-job) listing's top level."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
from advhelpers import image_folder, snapshot
from imagefiles import write_image

from databackend.audio.lyrics import lyrics_candidates, read_lyrics
from databackend.audio.settings import AudioSettings
from databackend.conditioning.generate import output_path
from databackend.safepath import check_key
from databackend.storage.localdir import LocalDirectory

SECRET = b"outside-secret"
HOSTILE_KEYS = ["../escape.jpg", "a/../../escape.jpg", "/etc/passwd.jpg", "a/\x00b.jpg",
                "../../../../../../tmp/x.png", "C:/win.png", "a//../../b.png"]
HOSTILE_FORMATS = ["../../secret.txt", "{dirname}/../../secret.txt", "/{parent}/secret.txt",
                   "{name}\x00.txt", "C:/{stem}.txt", "{name.__class__}", "{0}", "{nope}",
                   "{stem}/../../../secret.txt", "{"]


@pytest.fixture
def audio_root(tmp_path: Path) -> Path:
    """``data/sub/song.wav`` with a sidecar inside, and ``secret.txt`` files outside."""
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "song.wav").write_bytes(b"RIFF-not-needed")
    (root / "sub" / "song.lyrics").write_text("inside")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "secret.txt.lyrics").write_bytes(SECRET)
    return root


@pytest.mark.parametrize("fmt", HOSTILE_FORMATS)
def test_lyrics_sidecars_never_leave_the_dataset(tmp_path: Path, audio_root: Path,
                                                 fmt: str) -> None:
    settings = AudioSettings(lyrics_filename_format=fmt)
    for path in ("sub/song.wav", "song.wav"):
        for key in lyrics_candidates(path, settings, fmt):
            assert check_key(key) == key and not key.startswith("..")
    store = LocalDirectory(root=str(audio_root), dataset_id="ds")
    before = snapshot(tmp_path)
    assert read_lyrics(store, ["sub/song.wav"], settings, fmt) == [None]
    assert snapshot(tmp_path) == before


def test_lyrics_sidecar_inside_still_works(audio_root: Path) -> None:
    store = LocalDirectory(root=str(audio_root), dataset_id="ds")
    settings = AudioSettings(lyrics_filename_format="{filename}.lyrics")
    assert read_lyrics(store, ["sub/song.wav"], settings, "{filename}.lyrics") == ["inside"]
    fmt = "../{parent}/{stem}.lyrics"  # leaves sub/ but not the root: allowed
    assert read_lyrics(store, ["sub/song.wav"], settings, fmt) == ["inside"]


def test_generated_conditioning_of_hostile_keys_stays_in_its_folder(tmp_path: Path) -> None:
    """A source listed from S3/CSV/HF with ``..``/absolute/NUL keys: each generated output gets
    its own file inside the conditioning folder."""
    root = tmp_path / "deep" / "conditioning"
    store = LocalDirectory(root=str(root), dataset_id="cond")
    before = snapshot(tmp_path)
    paths = [output_path(key, f"{n:02d}" * 32, "png") for n, key in enumerate(HOSTILE_KEYS)]
    assert len(set(paths)) == len(paths)
    for path in paths:
        assert check_key(path) == path
        store.write(path, b"generated")
    new = set(snapshot(tmp_path)) - set(before)
    assert all(p == "deep" or p.startswith(os.path.join("deep", "conditioning")) for p in new)
    assert output_path("sub/a.jpg", "ab" * 32, "png") == "sub/a." + "ab" * 8 + ".png"


def test_hf_path_cells_stay_in_the_dataset_folder(tmp_path: Path) -> None:
    from databackend_huggingface.columns import image_cells

    outside = tmp_path / "outside"
    write_image(outside / "secret.png", 8, 8)
    root = image_folder(tmp_path / "data", 1)
    (root / "link").symlink_to(outside, target_is_directory=True)
    hostile = ["../outside/secret.png", "sub/../../outside/secret.png", "link/secret.png",
               "a\x00b.png", "C:/secret.png"]
    before = snapshot(tmp_path)
    for column in (pa.array([*hostile, "img0.png"]),
                   pa.array([{"bytes": None, "path": p} for p in [*hostile, "img0.png"]])):
        cells = image_cells(column, str(root))
        assert [cells.data(k) for k in range(len(hostile))] == [None] * len(hostile)
        assert cells.data(len(hostile)) == (root / "img0.png").read_bytes()
        hub = image_cells(column, None)  # a hub dataset has no folder: never the working dir
        assert all(hub.data(k) is None for k in range(len(hostile) + 1))
    assert snapshot(tmp_path) == before


def test_split_listing_skips_special_files_like_the_full_listing(tmp_path: Path) -> None:
    """The one-listing-per-job top level obeys the listing rules: a FIFO named like an image,
    a symlink loop and a non-UTF-8 name are skipped and counted, never opened."""
    root = image_folder(tmp_path / "data", 2)
    write_image(root / "sub" / "deep.png", 8, 8)
    os.mkfifo(root / "fifo.png")
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    os.close(os.open(os.fsencode(root) + b"/bad\xff.png", os.O_CREAT | os.O_WRONLY))
    before = snapshot(tmp_path)
    full = LocalDirectory(root=str(root), dataset_id="ds")
    expected = sorted(f.path for f in full.list(extensions=["png"]))
    split = LocalDirectory(root=str(root), dataset_id="ds")
    share = split.list_share(0, 1, extensions=["png"])
    assert share is not None
    found = sorted(f.path for f in share)
    assert found == expected == ["img0.png", "img1.png", "sub/deep.png"]
    assert sum(split.skipped.values()) == sum(full.skipped.values()) == 4, split.skipped
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("config", ['["not", "an", "object"]', '{"_class_name": "__class__"}',
                                    '{"_class_name": "os"}', '{"_class_name": ["x"]}',
                                    "[" * 100_000])
def test_model_folder_config_names_only_model_classes(tmp_path: Path, config: str) -> None:
    """A VAE folder's config.json cannot reach anything but a diffusers model class."""
    pytest.importorskip("diffusers")
    from databackend.adapters.folders import load_folder
    from databackend.errors import ConfigError

    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    with pytest.raises(ConfigError, match="vae"):
        load_folder(str(folder), "image")


def test_declared_audio_sizes_never_size_a_huge_window() -> None:
    """A header declaring billions of samples, an absurd rate or channel count: ``too_long``."""
    from databackend.audio.spec import MAX_WINDOW_VALUES, AudioSpec
    from databackend.media.record import MediaInfo

    spec = AudioSpec(AudioSettings())
    for samples, rate, channels in ((2**40, 44_100, 2), (2**31, 2**31 - 1, 1),
                                    (44_100 * 60, 44_100, 65_535)):
        info = MediaInfo(kind="audio", samples=samples, sample_rate=rate, channels=channels,
                         duration=samples / rate)
        assert spec.plan(info, "k", 0).reason == "too_long", (samples, rate, channels)
    fine = MediaInfo(kind="audio", samples=44_100 * 7, sample_rate=44_100, channels=2,
                     duration=7.0)
    plan = spec.plan(fine, "k", 0)
    assert plan.reason is None and plan.window is not None
    assert plan.window.length * 2 <= MAX_WINDOW_VALUES
