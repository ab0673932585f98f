"""The shared media layer: kinds, the decode-free video probe (local and ranged), windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from databackend.media import (
    DEFAULT_PROBES,
    CorruptMedia,
    NotMedia,
    RangeFile,
    choose_window,
    media_kinds,
)
from databackend.media.encoders import ReferenceVideoVAE, latent_frames
from databackend.media.probe import probe_local, probe_ranged
from databackend.media.synthetic import write_video
from databackend.media.windows import keyed_unit

av = pytest.importorskip("av")

CLIPS = [  # name, width, height, frames, fps, rotation
    ("wide.mp4", 64, 32, 9, 12, 0), ("tall.mp4", 32, 48, 5, 24, 0),
    ("square.mkv", 40, 40, 11, 10, 0), ("rot90.mp4", 64, 48, 6, 12, 90),
    ("rot270.mov", 48, 32, 4, 8, 270), ("long.webm", 32, 32, 13, 25, 0),
]


def full_decode(path: Path) -> tuple[int, int, int, float]:
    """(displayed W, H, decoded frames, fps) by decoding every frame."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        rate = float(c.streams.video[0].average_rate)
    first = frames[0]
    w, h = first.width, first.height
    if first.rotation % 180:
        w, h = h, w
    return w, h, len(frames), rate


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for i, (name, w, h, n, fps, rot) in enumerate(CLIPS):
        write_video(root / name, w, h, n, fps=fps, rotation=rot, seed=i)
    (root / "notes.mp4").write_text("not a video at all\n")
    data = (root / "wide.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])
    (root / "empty.mp4").write_bytes(b"")
    return root


@pytest.mark.parametrize("name", [c[0] for c in CLIPS])
def test_probe_matches_full_decode(clips: Path, name: str) -> None:
    info = DEFAULT_PROBES.probe("video", probe_local(str(clips / name)))
    w, h, frames, fps = full_decode(clips / name)
    assert (info.width, info.height, info.frames) == (w, h, frames)
    assert info.fps == pytest.approx(fps)
    assert info.duration == pytest.approx(frames / fps, abs=1.5 / fps)
    assert info.counted == name.endswith((".mkv", ".webm"))  # no frame count in Matroska


def test_moov_walk_agrees_with_pyav_and_falls_back(clips: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import databackend.media.video as video

    frag = write_video(tmp_path / "frag.mp4", 48, 32, 10, fragmented=True)
    names = [str(clips / c[0]) for c in CLIPS if c[0].endswith((".mp4", ".mov"))] + [frag]
    fast = [video._fast_mp4(probe_local(p)) for p in names]
    assert fast[-1] is None  # fragmented: PyAV opens it
    monkeypatch.setattr(video, "_fast_mp4", lambda source: None)
    slow = [DEFAULT_PROBES.probe("video", probe_local(p)) for p in names]
    assert fast[:-1] == slow[:-1] and slow[-1].frames == full_decode(Path(frag))[2]


def test_ranged_probe_equals_local_and_reads_less(clips: Path, tmp_path: Path) -> None:
    big = write_video(tmp_path / "big.mp4", 128, 96, 30, fps=30, rotation=90, noise=80)
    data = Path(big).read_bytes()
    files: list[RangeFile] = []

    def read_at(at: int, n: int) -> bytes:
        return data[at:at + n]

    source = probe_ranged(read_at, "big.mp4", len(data), block=4096)
    original = source.opener
    object.__setattr__(source, "opener", lambda: files.append(original()) or files[-1])
    ranged = DEFAULT_PROBES.probe("video", source)
    assert ranged == DEFAULT_PROBES.probe("video", probe_local(big))
    assert (ranged.width, ranged.height, ranged.rotation) == (96, 128, 90)
    assert sum(f.bytes_read for f in files) < len(data) / 2


@pytest.mark.parametrize(("name", "error"), [("notes.mp4", NotMedia), ("cut.mp4", CorruptMedia),
                                             ("empty.mp4", NotMedia)])
def test_bad_files_are_classified(clips: Path, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        DEFAULT_PROBES.probe("video", probe_local(str(clips / name)))


def test_kinds_follow_the_reference_sets() -> None:
    assert media_kinds("a/b.MP4") == {"video", "audio"}
    assert media_kinds("x.ogv") == {"video"} and media_kinds("x.flac") == {"audio"}
    assert media_kinds("x.png") == {"image"} and media_kinds("mp4") == frozenset()


def test_windows_are_pure_and_in_range() -> None:
    seen = set()
    for k in range(200):
        w = choose_window(40, 9, stride=3, mode="random", seed=7, key=f"clip{k}")
        assert w is not None and w.start >= 0 and w.stop <= 40 and len(w.positions()) == 9
        assert w == choose_window(40, 9, stride=3, mode="random", seed=7, key=f"clip{k}")
        seen.add(w.start)
    assert seen == set(range(40 - 25 + 1))  # every start that fits is drawn
    assert choose_window(24, 9, stride=3) is None
    assert choose_window(25, 9, stride=3, mode="center") == choose_window(25, 9, stride=3)
    assert keyed_unit(1, "a") != keyed_unit(2, "a")


def test_reference_video_vae_shapes_and_batch_invariance() -> None:
    import torch

    vae = ReferenceVideoVAE(channels=4, temporal=4)
    clip = torch.rand(2, 3, 9, 16, 24) * 2 - 1
    out = vae(clip)
    assert out.shape == (2, 4, latent_frames(9, 4), 2, 3) == (2, 4, 3, 2, 3)
    assert torch.equal(vae(clip[1:]), out[1:])
