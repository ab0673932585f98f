"""TextEmbedCache: hits, misses, repairs, flags, precompute and the reference text encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from databackend.caches import ReferenceTextEncoder, TextEmbedCache, TextEncoder
from databackend.errors import CacheError
from databackend.storage.localdir import LocalDirectory

CAPTIONS = ["a cat", "a dog on a sofa", "", "a cat"]


class CountingEncoder(ReferenceTextEncoder):
    """The reference encoder, counting the captions it encodes."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(width=32, seq_len=16, pooled=24, **kw)
        self.seen: list[str] = []

    def __call__(self, captions: list[str]) -> dict[str, torch.Tensor]:
        self.seen += captions
        return super().__call__(captions)


@pytest.fixture
def storage(tmp_path: Path) -> LocalDirectory:
    return LocalDirectory(root=str(tmp_path / "text"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype
                                        for k in a)


def test_reference_encoder_is_deterministic_and_shaped() -> None:
    enc = ReferenceTextEncoder(width=32, seq_len=16, pooled=24)
    assert isinstance(enc, TextEncoder)
    out = enc(["a cat", "x " * 40])
    assert out["prompt_embeds"].shape == (2, 16, 32)
    assert out["pooled_prompt_embeds"].shape == (2, 24)
    assert out["attention_mask"].tolist()[0][:5] == [1, 1, 1, 1, 0]
    assert _same(out, ReferenceTextEncoder(width=32, seq_len=16, pooled=24)(["a cat", "x " * 40]))
    assert not torch.equal(enc(["a cat"])["prompt_embeds"], enc(["a dog"])["prompt_embeds"])
    assert enc.identity != ReferenceTextEncoder(width=32, seq_len=16, pooled=24, seed=1).identity


def test_miss_then_hit_equals_fresh_encode(storage: LocalDirectory) -> None:
    enc = CountingEncoder()
    cache = TextEmbedCache(storage, encoder=enc)
    first = cache.get_many(CAPTIONS)
    assert enc.seen == ["a cat", "a dog on a sofa", ""]  # one batch, deduplicated
    assert cache.stats.to_dict() == {"hits": 0, "misses": 3, "repairs": 0, "encoded": 3,
                                     "writes": 3}
    again = cache.get_many(CAPTIONS)
    assert cache.stats.hits == 3 and len(enc.seen) == 3
    fresh = CountingEncoder()(CAPTIONS)
    for j, (a, b) in enumerate(zip(first, again, strict=True)):
        expected = {k: v[j] for k, v in fresh.items()}
        assert _same(a, expected) and _same(b, expected)
    assert set(again[0]) == {"prompt_embeds", "pooled_prompt_embeds", "attention_mask"}


def test_read_only_cache_needs_identity_and_reads_entries(storage: LocalDirectory) -> None:
    enc = CountingEncoder()
    TextEmbedCache(storage, encoder=enc).precompute(CAPTIONS)
    with pytest.raises(ValueError, match="identity"):
        TextEmbedCache(storage)
    reader = TextEmbedCache(storage, identity=enc.identity)
    assert len(reader.get_many(["a cat"])) == 1 and reader.stats.hits == 1
    with pytest.raises(CacheError) as err:
        reader.get_many(["never cached"])
    assert "'never cached'" in str(err.value) and ".dbt" in str(err.value)
    assert "missing" in str(err.value)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "delete"])
def test_damaged_entries_are_repaired_or_reported(storage: LocalDirectory, damage: str) -> None:
    enc = CountingEncoder()
    cache = TextEmbedCache(storage, encoder=enc)
    expected = cache.get_many(["a cat"])[0]
    path = Path(storage.full(cache.path("a cat")))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) - 10]
    elif damage == "garbage":
        data = bytearray(b"not a cache file")
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(bytes(data))
    with pytest.raises(CacheError) as err:
        TextEmbedCache(storage, identity=enc.identity).get_many(["a cat"])
    assert str(path.relative_to(storage.root)) in str(err.value)
    assert "'a cat'" in str(err.value)
    fresh = TextEmbedCache(storage, encoder=enc)
    assert _same(fresh.get_many(["a cat"])[0], expected)
    assert fresh.stats.repairs == (0 if damage == "delete" else 1)
    assert fresh.stats.misses == 1
    assert TextEmbedCache(storage, identity=enc.identity).get_many(["a cat"])  # healed


def test_pooled_reads(storage: LocalDirectory) -> None:
    enc = CountingEncoder()
    captions = [f"caption {n}" for n in range(12)]
    TextEmbedCache(storage, encoder=enc).precompute(captions)
    pooled = TextEmbedCache(storage, identity=enc.identity, read_workers=3)
    fresh = enc(captions)
    for j, got in enumerate(pooled.get_many(captions)):
        assert _same(got, {k: v[j] for k, v in fresh.items()})
    assert pooled.stats.hits == 12
    Path(storage.full(pooled.path("caption 7"))).write_bytes(b"")
    with pytest.raises(CacheError, match="'caption 7'"):
        pooled.get_many(captions)
    pooled.close()


def test_encoder_identity_change_is_a_miss(storage: LocalDirectory) -> None:
    TextEmbedCache(storage, encoder=CountingEncoder()).precompute(["a cat"])
    other = CountingEncoder(seed=5)
    cache = TextEmbedCache(storage, encoder=other)
    cache.get_many(["a cat"])
    assert cache.stats.misses == 1 and cache.stats.hits == 0 and other.seen == ["a cat"]


def test_entry_under_wrong_name_is_stale_not_a_hit(storage: LocalDirectory) -> None:
    cache = TextEmbedCache(storage, encoder=CountingEncoder())
    cache.precompute(["a cat", "a dog"])
    storage.write(cache.path("a dog"), storage.read(cache.path("a cat")))  # copied file
    with pytest.raises(CacheError, match="another key"):
        TextEmbedCache(storage, identity=cache.identity).get_many(["a dog"])


def test_ondemand_and_disable(storage: LocalDirectory) -> None:
    enc = CountingEncoder()
    ondemand = TextEmbedCache(storage, encoder=enc, ondemand=True)
    assert not ondemand.precompute_at_startup
    ondemand.get_many(["x"])
    assert ondemand.stats.writes == 1 and storage.exists(ondemand.path("x"))

    disabled = TextEmbedCache(storage, encoder=enc, disable=True)
    assert disabled.ondemand and not disabled.precompute_at_startup
    assert disabled.precompute(["y"]).skipped == "text_cache_disable"
    out = disabled.get_many(["y", "x", "y"])
    assert len(out) == 3 and _same(out[0], out[2])
    assert not storage.exists(disabled.path("y"))  # never written
    assert disabled.stats.writes == 0 and disabled.stats.hits == 0  # nor read
    with pytest.raises(CacheError, match="disabled"):
        TextEmbedCache(storage, identity="x", disable=True).get_many(["y"])


def test_precompute_skips_cached_and_splits_ranks(storage: LocalDirectory) -> None:
    captions = [f"caption {n}" for n in range(100)]
    parts = []
    for rank in range(3):
        enc = CountingEncoder()
        report = TextEmbedCache(storage, encoder=enc).precompute(
            captions + captions[:10], rank=rank, world_size=3, batch_size=7)
        parts.append(set(enc.seen))
        assert report.encoded == report.total == len(enc.seen)
    assert set.union(*parts) == set(captions) and sum(map(len, parts)) == 100
    enc = CountingEncoder()
    report = TextEmbedCache(storage, encoder=enc).precompute(captions)
    assert (report.cached, report.encoded, enc.seen) == (100, 0, [])
    with pytest.raises(ValueError, match="rank"):
        TextEmbedCache(storage, encoder=enc).precompute(captions, rank=3, world_size=3)


def test_precompute_without_encoder_fails_clearly(storage: LocalDirectory) -> None:
    with pytest.raises(CacheError, match="2 captions are not cached"):
        TextEmbedCache(storage, identity="x").precompute(["a", "b"])


def test_compressed_round_trip_and_prefix(storage: LocalDirectory) -> None:
    enc = CountingEncoder()
    cache = TextEmbedCache(storage, encoder=enc, compress=True, prefix="text/model",
                           write_batch_size=2)
    cache.precompute(CAPTIONS)
    assert cache.path("a cat").startswith("text/model/")
    reader = TextEmbedCache(storage, identity=enc.identity, prefix="text/model")
    got = reader.get_many(CAPTIONS)
    fresh = enc(CAPTIONS)
    for j, entry in enumerate(got):
        assert _same(entry, {k: v[j] for k, v in fresh.items()})


def test_bad_encoder_output_is_a_clear_error(storage: LocalDirectory) -> None:
    class Bad:
        identity = "bad"

        def __call__(self, captions: list[str]) -> dict[str, torch.Tensor]:
            return {"prompt_embeds": torch.zeros(1, 4)}

    with pytest.raises(TypeError, match="first dimension 2"):
        TextEmbedCache(storage, encoder=Bad()).get_many(["a", "b"])


class ReadOnlyStorage(LocalDirectory):
    """A local folder whose writes fail (a full disk, a read-only bucket)."""

    def write(self, path: str, data: bytes) -> None:
        raise OSError("read-only file system")


def test_write_failures_warn_at_batch_time_and_raise_in_precompute(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = ReadOnlyStorage(root=str(tmp_path / "ro"))
    cache = TextEmbedCache(storage, encoder=CountingEncoder(), ondemand=True)
    got = cache.get_many(["a cat", "a dog"])
    assert len(got) == 2 and cache.stats.writes == 0
    assert "could not write 2 fresh entries" in caplog.text
    with pytest.raises(OSError, match="read-only"):
        cache.precompute(["a cat"])


def test_key_memo_computes_once_and_drops_the_oldest_past_its_bound() -> None:
    from databackend.caches.base import KeyMemo

    calls: list[int] = []

    def square(x: int) -> int:
        calls.append(x)
        return x * x

    memo = KeyMemo(square, maxsize=3)
    assert [memo[i] for i in (1, 2, 1, 3, 2)] == [1, 4, 1, 9, 4]
    assert calls == [1, 2, 3]
    assert memo[4] == 16 and list(memo) == [2, 3, 4]  # 1, the oldest, went
    assert memo[1] == 1 and calls == [1, 2, 3, 4, 1]
    for i in range(10_000):  # many evictions stay cheap and bounded (O(1) each)
        memo[i]
    assert len(memo) == 3
