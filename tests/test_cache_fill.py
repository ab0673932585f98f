"""The latent fill pipeline: worker processes, JPEG draft decoding, uint8 batches normalised
at the encoder, out-of-memory halving, and the report's timing fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from test_cache_support import FolderSource, make_noise_images, params, write_noise

from databackend.caches import LatentCache, ReferenceVAE
from databackend.caches.decode import DRAFT_TOLERANCE, DecodeJob, decode, draft_request
from databackend.caches.fill import normalise
from databackend.caches.imaging import load_pixels, to_pixels
from databackend.storage.localdir import LocalDirectory


class RawSource(FolderSource):
    """A folder source whose files the fill may open itself (as the discovery backend)."""

    def raw_image(self, i: int) -> tuple[str | None, Any]:
        return str(self.root / self.index.paths[i]), None


class OomVAE(ReferenceVAE):
    """The reference VAE behind a memory limit: more than ``limit`` images per call raise
    torch's out-of-memory error, as a GPU would."""

    def __init__(self, limit: int) -> None:
        super().__init__(4)
        self.limit, self.calls = limit, [0]

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls.append(pixels.shape[0])
        if pixels.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().__call__(pixels)


def _source(tmp_path: Path, cls: type[FolderSource] = RawSource) -> FolderSource:
    return cls(make_noise_images(tmp_path / "images"), params(crop=True, crop_style="random"))


def test_normalise_matches_to_pixels(tmp_path: Path) -> None:
    image = Image.open(write_noise(tmp_path / "x.png", 40, 24, seed=3)).convert("RGB")
    u8 = torch.from_numpy(np.array(image)).unsqueeze(0)
    assert torch.equal(normalise(u8)[0], to_pixels(image))
    assert normalise(u8, torch.bfloat16).dtype == torch.bfloat16


class Uint8VAE(ReferenceVAE):
    """The reference VAE taking uint8 pixels and normalising them itself."""

    input_dtype = torch.uint8

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        assert pixels.dtype == torch.uint8 and pixels.shape[1] == 3
        return super().__call__((pixels.float() / 127.5 - 1.0).contiguous())


def test_uint8_encoder_gets_the_decoded_pixels(tmp_path: Path) -> None:
    image = Image.open(write_noise(tmp_path / "x.png", 40, 24, seed=3)).convert("RGB")
    u8 = torch.from_numpy(np.array(image)).unsqueeze(0)
    assert torch.equal(normalise(u8, torch.uint8), u8.permute(0, 3, 1, 2))
    source = _source(tmp_path)
    cache = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), source, encoder=Uint8VAE(4),
                        workers=2, batch_size=2)
    assert cache.precompute(progress=False).encoded == len(source.index)
    for i, entry in enumerate(cache.get_many(range(len(source.index)))):
        pixels = load_pixels(source, i)
        expected = ReferenceVAE(4)((pixels + 1.0).mul(127.5).round().unsqueeze(0) / 127.5 - 1.0)
        assert torch.equal(entry.latents, expected[0])


@pytest.mark.parametrize("workers", [0, 2])
def test_fill_equals_direct_encode(tmp_path: Path, workers: int) -> None:
    source = _source(tmp_path)
    vae = ReferenceVAE(4)
    cache = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), source, encoder=vae,
                        workers=workers, batch_size=2)
    report = cache.precompute(progress=False)
    assert report.encoded == len(source.index) and not report.failed
    assert report.seconds >= report.encode_seconds > 0 and report.wait_seconds >= 0
    fresh = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), source, identity=vae.identity)
    for i, entry in enumerate(fresh.get_many(range(len(source.index)))):
        assert torch.equal(entry.latents, vae(load_pixels(source, i).unsqueeze(0))[0])


def test_oom_halves_the_batch_and_completes(tmp_path: Path) -> None:
    source = _source(tmp_path)
    vae = OomVAE(limit=1)
    cache = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), source, encoder=vae,
                        workers=0, batch_size=4)
    report = cache.precompute(progress=False)
    assert report.encoded == len(source.index) and report.oom_retries >= 1
    assert max(vae.calls[vae.calls.index(4) + 1:]) <= 2  # later batches start smaller
    for i, entry in enumerate(cache.get_many(range(len(source.index)))):
        assert torch.equal(entry.latents, ReferenceVAE(4)(load_pixels(source, i).unsqueeze(0))[0])


def test_oom_of_a_single_image_is_raised(tmp_path: Path) -> None:
    cache = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), _source(tmp_path),
                        encoder=OomVAE(limit=0), workers=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        cache.precompute(progress=False)


def _job(path: Path, target: tuple[int, int], size: tuple[int, int], draft: bool) -> DecodeJob:
    return DecodeJob(name=path.name, original=size, downsample=None, intermediary=target,
                     box=(0, 0, *target), draft=draft, path=str(path))


def test_draft_decoding_stays_within_tolerance(tmp_path: Path) -> None:
    path = write_noise(tmp_path / "big.jpg", 1600, 1200, seed=5)
    for target in ((400, 300), (256, 192), (800, 600)):
        assert draft_request((1600, 1200), target) == target
        full = decode(_job(path, target, (1600, 1200), draft=False)).astype(np.float64)
        draft = decode(_job(path, target, (1600, 1200), draft=True)).astype(np.float64)
        assert full.shape == draft.shape == (target[1], target[0], 3)
        assert 0 < np.abs(full - draft).mean() <= DRAFT_TOLERANCE
    assert draft_request((1600, 1200), (801, 600)) is None


def test_draft_respects_exif_orientation(tmp_path: Path) -> None:
    image = Image.open(write_noise(tmp_path / "src.png", 1200, 800, seed=1))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: 800x1200 after orientation
    image.save(tmp_path / "rot.jpg", exif=exif)
    job = _job(tmp_path / "rot.jpg", (200, 300), (800, 1200), draft=True)
    full = decode(_job(tmp_path / "rot.jpg", (200, 300), (800, 1200), draft=False))
    out = decode(job)
    assert out.shape == full.shape == (300, 200, 3)
    assert np.abs(out.astype(float) - full.astype(float)).mean() <= DRAFT_TOLERANCE
    with pytest.raises(ValueError, match="scanned as"):
        decode(_job(tmp_path / "rot.jpg", (200, 300), (1200, 800), draft=True))


def test_draft_is_part_of_the_key(tmp_path: Path) -> None:
    write_noise(tmp_path / "images" / "big.jpg", 640, 640, seed=2)
    source = RawSource(tmp_path / "images", params())
    storage = LocalDirectory(root=str(tmp_path / "vae"))
    with_draft = LatentCache(storage, source, encoder=ReferenceVAE(4))
    without = LatentCache(storage, source, encoder=ReferenceVAE(4), draft=False)
    assert with_draft.key(0) != without.key(0)


class BytesSource(FolderSource):
    """A source whose files are not local: the fill reads their bytes from storage."""

    def raw_image(self, i: int) -> tuple[str | None, Any]:
        return None, LocalDirectory(root=str(self.root))


def test_process_decoders_read_bytes_from_remote_storage(tmp_path: Path) -> None:
    source = _source(tmp_path, BytesSource)
    vae = ReferenceVAE(4)
    cache = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), source, encoder=vae,
                        workers=2, batch_size=3)
    report = cache.precompute(progress=False)
    assert report.encoded == len(source.index) and not report.failed
    for i, entry in enumerate(cache.get_many(range(len(source.index)))):
        assert torch.equal(entry.latents, vae(load_pixels(source, i).unsqueeze(0))[0])


def test_a_broken_file_is_reported_not_fatal(tmp_path: Path) -> None:
    source = _source(tmp_path)
    (source.root / source.index.paths[1]).write_bytes(b"not an image")
    cache = LatentCache(LocalDirectory(root=str(tmp_path / "vae")), source,
                        encoder=ReferenceVAE(4), workers=2)
    report = cache.precompute(progress=False)
    assert [p for p, _ in report.failed] == [source.index.paths[1]]
    assert report.encoded == len(source.index) - 1


_KILLED_FILL = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_cache_fill import _source
from databackend.caches.loaders import ProcessLoader

if __name__ == "__main__":
    loader = ProcessLoader(_source(Path({tmp!r})), 2, draft=False)
    for future in [loader.submit(0), loader.submit(1)]:
        future.result()
    print(" ".join(str(pid) for pid in loader._procs._processes), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_decoders_exit_when_the_fill_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    script = tmp_path / "fill.py"
    script.write_text(_KILLED_FILL.format(tests=str(Path(__file__).parent), tmp=str(tmp_path)))
    with open(tmp_path / "out", "w") as out:  # a file: the decoders must not hold a pipe open
        run = subprocess.run([sys.executable, str(script)], stdout=out,
                             stderr=subprocess.STDOUT, timeout=120, check=False)
    pids = [int(p) for p in (tmp_path / "out").read_text().split()[-2:] if p.isdigit()]
    assert run.returncode == -9 and len(pids) == 2, (tmp_path / "out").read_text()

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().split(")")[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 60  # liveness bound, not a speed figure
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids)
