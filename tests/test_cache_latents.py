"""LatentCache against a stand-in sample source: equality with a fresh encode, invalidation,
repair, flags, precompute and the image pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from test_cache_support import FolderSource, make_noise_images, params, write_noise

from databackend.caches import ImageEncoder, LatentCache, ReferenceVAE
from databackend.caches.imaging import batches_by_size, load_pixels, to_pixels
from databackend.errors import CacheError
from databackend.geometry import apply_geometry
from databackend.storage.localdir import LocalDirectory


class CountingVAE(ReferenceVAE):
    """The reference VAE, counting samples and calls."""

    def __init__(self, **kw: object) -> None:
        super().__init__(4, **kw)  # type: ignore[arg-type]
        self.samples = 0
        self.calls = 0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.samples += pixels.shape[0]
        self.calls += 1
        return super().__call__(pixels)


@pytest.fixture
def source(tmp_path: Path) -> FolderSource:
    return FolderSource(make_noise_images(tmp_path / "images"), params(crop=True,
                                                                       crop_style="random"))


@pytest.fixture
def storage(tmp_path: Path) -> LocalDirectory:
    return LocalDirectory(root=str(tmp_path / "vae"))


def _fresh(source: FolderSource, i: int, vae: ImageEncoder) -> torch.Tensor:
    return vae(load_pixels(source, i).unsqueeze(0))[0]


def test_image_pipeline_uses_bucket_geometry(source: FolderSource) -> None:
    for i in range(len(source.index)):
        g = source.index.geometry(i)
        pixels = load_pixels(source, i)
        assert pixels.shape == (3, g.target_size[1], g.target_size[0])
        assert pixels.dtype == torch.float32 and pixels.min() >= -1 and pixels.max() <= 1
        expected = to_pixels(apply_geometry(source.load_image(i), g))
        assert torch.equal(pixels, expected)
    grey = to_pixels(Image.new("L", (2, 1), 255))
    assert grey.shape == (3, 1, 2) and torch.all(grey == 1)


def test_batches_share_one_size() -> None:
    sizes = {0: (64, 64), 1: (64, 32), 2: (64, 64), 3: (64, 64), 4: (64, 32)}
    assert batches_by_size(range(5), sizes.__getitem__, 2) == [[0, 2], [3], [1, 4]]


def test_reference_vae_shapes() -> None:
    for channels in (4, 16):
        vae = ReferenceVAE(channels)
        assert isinstance(vae, ImageEncoder)
        out = vae(torch.zeros(2, 3, 64, 48))
        assert out.shape == (2, channels, 8, 6) and out.dtype == torch.float16
    with pytest.raises(ValueError, match="multiples of 8"):
        ReferenceVAE()(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match="channels"):
        ReferenceVAE(3)


def test_get_many_equals_fresh_encode_and_carries_conditioning(
        source: FolderSource, storage: LocalDirectory) -> None:
    vae = CountingVAE()
    cache = LatentCache(storage, source, encoder=vae, name="ds")
    n = len(source.index)
    first = cache.get_many(list(range(n)))
    assert cache.stats.misses == n and cache.stats.writes == n
    reader = LatentCache(storage, source, identity=vae.identity)
    again = reader.get_many([3, 1, 3])
    assert reader.stats.hits == 2 and reader.stats.misses == 0
    for entry, i in zip(again, [3, 1, 3], strict=True):
        g = source.index.geometry(i)
        assert torch.equal(entry.latents, first[i].latents)
        assert torch.equal(entry.latents, _fresh(source, i, ReferenceVAE()))
        assert (entry.original_size, entry.crop_coordinates, entry.target_size) == (
            g.original_size, g.crop_coordinates, g.target_size)
        assert entry.path == source.index.paths[i]
        assert entry.latents.shape == (4, g.target_size[1] // 8, g.target_size[0] // 8)
    e = again[0]
    assert e.time_ids() == (e.original_size[1], e.original_size[0], *e.crop_coordinates,
                            e.target_size[1], e.target_size[0])


@pytest.mark.parametrize("read_workers", [2, 3, 4])
def test_pooled_reads_match_and_still_verify(source: FolderSource, storage: LocalDirectory,
                                             read_workers: int) -> None:
    vae = CountingVAE()
    LatentCache(storage, source, encoder=vae).precompute(progress=False)
    n = len(source.index)
    plain = LatentCache(storage, source, identity=vae.identity).get_many(range(n))
    pooled = LatentCache(storage, source, identity=vae.identity, read_workers=read_workers)
    got = pooled.get_many(list(range(n))[::-1])
    assert all(torch.equal(a.latents, b.latents) for a, b in zip(plain[::-1], got, strict=True))
    Path(storage.full(pooled.path(1))).write_bytes(b"DBTC")
    with pytest.raises(CacheError, match="truncated"):
        pooled.get_many(range(n))
    pooled.close()


def test_precompute_then_rerun_encodes_nothing(source: FolderSource,
                                               storage: LocalDirectory) -> None:
    vae = CountingVAE()
    report = LatentCache(storage, source, encoder=vae, batch_size=2).precompute(progress=False)
    n = len(source.index)
    assert (report.total, report.cached, report.encoded, report.failed) == (n, 0, n, ())
    assert vae.samples == n and 0 < report.encode_seconds <= report.seconds
    assert 0 <= report.outside_share < 1
    again = LatentCache(storage, source, encoder=vae).precompute(progress=False)
    assert (again.cached, again.encoded, vae.samples) == (n, 0, n)
    reader = LatentCache(storage, source, identity=vae.identity)
    reader.get_many(range(n))
    assert reader.stats.hits == n


def test_crop_settings_change_makes_misses(tmp_path: Path, source: FolderSource,
                                           storage: LocalDirectory) -> None:
    vae = CountingVAE()
    LatentCache(storage, source, encoder=vae).precompute(progress=False)
    centre = FolderSource(source.root, params(crop=True, crop_style="center"))
    changed = [i for i in range(len(source.index))
               if centre.index.geometry(i) != source.index.geometry(i)]
    assert changed
    cache = LatentCache(storage, centre, encoder=vae)
    report = cache.precompute(progress=False)
    assert report.encoded == len(changed)
    with pytest.raises(CacheError):  # and a reader never mistakes the old entry for a hit
        LatentCache(LocalDirectory(root=str(tmp_path / "empty")), centre,
                    identity=vae.identity).get_many(changed[:1])
    got = cache.get_many(changed)
    assert cache.stats.hits == len(changed)
    for entry, i in zip(got, changed, strict=True):
        assert torch.equal(entry.latents, _fresh(centre, i, ReferenceVAE()))


def test_encoder_identity_change_makes_misses(source: FolderSource,
                                              storage: LocalDirectory) -> None:
    LatentCache(storage, source, encoder=CountingVAE()).precompute(progress=False)
    other = CountingVAE(seed=3)
    report = LatentCache(storage, source, encoder=other).precompute(progress=False)
    assert report.cached == 0 and other.samples == len(source.index)


def test_changed_source_file_makes_a_miss(source: FolderSource, storage: LocalDirectory
                                          ) -> None:
    vae = CountingVAE()
    LatentCache(storage, source, encoder=vae).precompute(progress=False)
    write_noise(source.root / source.index.paths[0], *source.index.geometry(0).original_size,
                seed=99)
    rescanned = FolderSource(source.root, params(crop=True, crop_style="random"))
    cache = LatentCache(storage, rescanned, encoder=vae)
    cache.get_many([0, 1])
    assert (cache.stats.misses, cache.stats.hits) == (1, 1)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "delete", "wrong-shape"])
def test_damage_is_repaired_or_reported(source: FolderSource, storage: LocalDirectory,
                                        damage: str) -> None:
    vae = CountingVAE()
    cache = LatentCache(storage, source, encoder=vae)
    cache.precompute(progress=False)
    expected = cache.get_many([2])[0].latents
    path = Path(storage.full(cache.path(2)))
    data = path.read_bytes()
    if damage == "delete":
        path.unlink()
    elif damage == "wrong-shape":  # a valid entry, but not a latent of this target size
        from databackend.caches.format import pack, unpack_meta
        path.write_bytes(pack({"latents": torch.zeros(4, 3, 3)}, unpack_meta(data)))
    else:
        cut = {"flip": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],
               "truncate": data[: len(data) // 2], "empty": b""}
        path.write_bytes(cut[damage])
    with pytest.raises(CacheError) as err:
        LatentCache(storage, source, identity=vae.identity).get_many([0, 2])
    message = str(err.value)
    assert repr(source.index.paths[2]) in message and cache.path(2) in message
    healer = LatentCache(storage, source, encoder=vae)
    got = healer.get_many([0, 2])
    assert torch.equal(got[1].latents, expected)
    assert (healer.stats.hits, healer.stats.misses) == (1, 1)
    assert healer.stats.repairs == (0 if damage == "delete" else 1)
    assert torch.equal(LatentCache(storage, source, identity=vae.identity).get_many([2])[0]
                       .latents, expected)


def test_hash_filenames_false_names_by_file_and_overwrites_stale(
        source: FolderSource, storage: LocalDirectory) -> None:
    vae = CountingVAE()
    cache = LatentCache(storage, source, encoder=vae, hash_filenames=False)
    cache.precompute(progress=False)
    names = sorted(f.path for f in storage.list())
    assert names == sorted(f"{p}.dbt" for p in source.index.paths)  # one.jpg and one.png both
    other = CountingVAE(seed=4)
    stale = LatentCache(storage, source, encoder=other, hash_filenames=False)
    stale.get_many([0])
    assert (stale.stats.misses, stale.stats.repairs) == (1, 1)
    assert len(list(storage.list())) == len(names)  # overwritten in place


def test_compressed_latents_round_trip(source: FolderSource, storage: LocalDirectory) -> None:
    vae = CountingVAE()
    LatentCache(storage, source, encoder=vae, compress=True).precompute(progress=False)
    got = LatentCache(storage, source, identity=vae.identity).get_many(range(3))
    for i, entry in enumerate(got):
        assert torch.equal(entry.latents, _fresh(source, i, ReferenceVAE()))


def test_ondemand_disable_and_clear(source: FolderSource, storage: LocalDirectory) -> None:
    vae = CountingVAE()
    disabled = LatentCache(storage, source, encoder=vae, disable=True)
    assert disabled.precompute().skipped == "vae_cache_disable"
    assert not disabled.precompute_at_startup
    got = disabled.get_many([1, 1, 2])
    assert torch.equal(got[0].latents, got[1].latents) and vae.samples == 2
    assert list(storage.list()) == []
    with pytest.raises(CacheError, match="disabled"):
        LatentCache(storage, source, identity="x", disable=True).get_many([0])

    ondemand = LatentCache(storage, source, encoder=vae, ondemand=True,
                           clear_each_epoch=True)
    assert not ondemand.precompute_at_startup
    ondemand.get_many([0, 1])
    assert len(list(storage.list())) == 2
    ondemand.new_epoch(2)
    assert list(storage.list()) == []
    LatentCache(storage, source, encoder=vae).new_epoch(3)  # no clear without the flag


def test_precompute_splits_ranks_disjointly(source: FolderSource,
                                            storage: LocalDirectory) -> None:
    seen = []
    for rank in range(2):
        vae = CountingVAE()
        report = LatentCache(storage, source, encoder=vae).precompute(
            rank=rank, world_size=2, progress=False)
        seen.append(report.encoded)
    assert sum(seen) == len(source.index) and all(seen)


def test_unloadable_sample_is_reported_not_silently_skipped(
        source: FolderSource, storage: LocalDirectory) -> None:
    (source.root / source.index.paths[1]).write_bytes(b"broken")
    vae = CountingVAE()
    report = LatentCache(storage, source, encoder=vae).precompute(progress=False)
    assert [p for p, _ in report.failed] == [source.index.paths[1]]
    assert report.encoded == len(source.index) - 1
    with pytest.raises(CacheError, match="cannot load sample"):
        LatentCache(storage, source, encoder=vae).get_many([1])


def test_bad_encoder_output_is_refused(source: FolderSource, storage: LocalDirectory) -> None:
    class Wrong:
        identity = "wrong"

        def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
            return torch.zeros(pixels.shape[0], 4, 3, 3)

    with pytest.raises(TypeError, match="do not fit"):
        LatentCache(storage, source, encoder=Wrong()).get_many([0])
    assert list(storage.list()) == []
