"""The memory-mapped index (format 2): zero-copy open, migration from format 1, generations,
precomputed buckets, packed strings; the on-the-fly permutations of the sampler."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_metadata_index import assert_same, sample_index

from databackend.metadata import indexfile, indexv1
from databackend.metadata.index import (
    DatasetIndex,
    IndexFormatError,
    PackedStrings,
    group_by_target,
)
from databackend.runtime.permutation import Permutation
from databackend.runtime.sampler import BucketSampler
from databackend.storage.localdir import LocalDirectory


def _v1_bytes(idx: DatasetIndex) -> bytes:
    """The index as the previous release wrote it (zlib'ed sections, caption lengths)."""
    arrays, texts = idx._file_sections("")
    arrays.update(target=idx.target, intermediary=idx.intermediary, crop=idx.crop,
                  downsample=idx.downsample, aspect=idx.aspect)
    arrays.update({f"captions.{k}": v for k, v in idx.captions.sections().items()})
    s_arrays, s_texts = idx.skipped._file_sections("skipped.")
    arrays.update(s_arrays, **{"skipped.reason": idx.skipped.reason})
    texts.update(s_texts)
    texts = {k: [e or "" for e in v] for k, v in texts.items()}
    header = {"format": "databackend-index", "version": 1, "count": len(idx),
              "skipped": len(idx.skipped), "params_fingerprint": idx.params_fingerprint,
              "meta": idx.meta}
    return bytes(indexv1.pack(header, arrays, texts))


def test_load_maps_the_file_and_views_its_columns(tmp_path: Path) -> None:
    store = LocalDirectory(root=str(tmp_path))
    sample_index().save(store, "index.dbi")
    got = DatasetIndex.load(store, "index.dbi")
    assert got is not None
    assert_same(sample_index(), got)
    assert isinstance(got.paths, PackedStrings) and got.paths[1] == "d/1.jpg"
    for col in (got.file_size, got.target, got.aspect, got.skipped.reason):
        assert not col.flags.writeable and not col.flags.owndata  # a view of the mapping
    assert got._buckets is not None  # stored, not regrouped
    assert {k: v.tolist() for k, v in got.buckets().items()} == {
        k: v.tolist() for k, v in group_by_target(got.target).items()}
    assert got.etag(1) is None and got.etag(2) == "c"


def test_save_streams_the_columns_without_a_copy_of_the_file(tmp_path: Path) -> None:
    """A local save writes views of the columns one by one: the memory it allocates is a
    small part of the file (a 100M-entry index is not held twice on rank 0)."""
    import tracemalloc

    n = 200_000
    target = np.tile(np.array([[512, 512], [768, 512]]), (n // 2, 1))
    width = 14
    names = np.frombuffer(b"".join(b"d/%08d.jpg" % i for i in range(n)), np.uint8)
    index = DatasetIndex(PackedStrings(names, np.arange(n + 1, dtype=np.int64) * width),
                         file_size=np.arange(n), mtime=np.ones(n), original=target,
                         target=target, intermediary=target, crop=np.zeros((n, 2)),
                         downsample=np.full((n, 2), -1), aspect=np.ones(n),
                         captions=[()] * n, params_fingerprint="fp")
    store = LocalDirectory(root=str(tmp_path))
    index.buckets()
    tracemalloc.start()
    index.save(store, "index.dbi")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = (tmp_path / "index.dbi").stat().st_size
    assert size > 8_000_000
    assert peak < size / 3, (peak, size)
    loaded = DatasetIndex.load(store, "index.dbi")
    assert loaded is not None and loaded.to_bytes() == index.to_bytes()
    assert loaded.paths[n - 1] == f"d/{n - 1:08d}.jpg"


def test_format_1_is_read_and_migrated_by_the_next_save(tmp_path: Path) -> None:
    store = LocalDirectory(root=str(tmp_path))
    store.write("index.dbi", _v1_bytes(sample_index()))
    old = DatasetIndex.load(store, "index.dbi")
    assert old is not None
    assert_same(sample_index(), old)
    old.save(store, "index.dbi")
    assert store.read("index.dbi").startswith(indexfile.MAGIC)
    again = DatasetIndex.load(store, "index.dbi")
    assert again is not None
    assert_same(sample_index(), again)


def test_a_new_generation_replaces_the_file_while_the_old_stays_mapped(tmp_path: Path) -> None:
    store = LocalDirectory(root=str(tmp_path))
    sample_index(5).save(store, "index.dbi")
    first = DatasetIndex.load(store, "index.dbi")
    sample_index(3).save(store, "index.dbi")  # atomic replace: a new inode
    second = DatasetIndex.load(store, "index.dbi")
    assert first is not None and second is not None
    assert len(first) == 5 and first.paths[4] == "d/4.jpg" and len(second) == 3
    assert [f for f in tmp_path.iterdir() if f.name != "index.dbi"] == []


def test_large_payloads_defer_section_checks_to_verify(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(sample_index().to_bytes())
    data[-3] ^= 0xFF  # inside the last section
    with pytest.raises(IndexFormatError, match="checksum"):
        DatasetIndex.from_bytes(bytes(data))
    monkeypatch.setattr(indexfile, "VERIFY_ALL_BELOW", 0)
    (tmp_path / "i.dbi").write_bytes(data)
    found = indexfile.open_sections(str(tmp_path / "i.dbi"))  # header only: O(1)
    with pytest.raises(indexfile.SectionError, match="checksum"):
        found.verify()
    data[30] ^= 0xFF  # the header itself is always checked
    (tmp_path / "i.dbi").write_bytes(data)
    with pytest.raises(IndexFormatError):
        DatasetIndex.open_file(str(tmp_path / "i.dbi"))


def test_packed_strings_behave_like_a_list() -> None:
    items = ["a.jpg", "", "ü/\udcff.png", "z"]
    packed = PackedStrings.from_strings(items)
    assert packed == items and list(packed) == items and packed[-1] == "z"
    tail, head = packed + ["q"], ["q"] + packed  # noqa: RUF005 (the operators are tested)
    assert packed[1:3] == items[1:3] and tail == [*items, "q"]
    assert head == ["q", *items] and packed != items[:3]
    assert pickle.loads(pickle.dumps(packed)) == items
    with pytest.raises(IndexError):
        _ = packed[4]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 64, 1000, 4097])
def test_permutations_are_bijections_and_keyed(n: int) -> None:
    pos = np.arange(n)
    image = Permutation(n, 11)[pos]
    assert sorted(image.tolist()) == list(range(n))
    if n > 8:
        assert not np.array_equal(image, Permutation(n, 12)[pos])
        assert not np.array_equal(image, pos)
    assert np.array_equal(Permutation(n, 11)[pos[::-1]], image[::-1])
    assert [Permutation(n, 11).at(int(k)) for k in pos] == image.tolist()  # scalar path


def test_sampler_batches_are_computed_on_the_fly_and_match_the_plan() -> None:
    buckets = {(512, 512): np.arange(0, 37), (640, 512): np.arange(37, 40),
               (768, 512): np.arange(40, 100)}
    s = BucketSampler("d", buckets, batch_size=4, world_size=2, repeats=1, seed=3)
    plan = s.native_plan(1)
    got = []
    while not s.exhausted:
        got.append(s.take())
    assert len(got) == len(plan) == s.num_batches
    for i, (key, idx) in enumerate(got):
        assert np.array_equal(idx, plan.batch(i)) and key == s.bucket_keys[plan.buckets[i]]
    counts = Counter(int(i) for _, idx in got for i in idx)
    assert set(counts) == set(range(100))
    assert s._plan is None  # nothing materialised


def test_a_checkpoint_of_the_previous_order_warns_mid_epoch(
        caplog: pytest.LogCaptureFixture) -> None:
    s = BucketSampler("d", {(512, 512): np.arange(40)}, batch_size=4, seed=3)
    assert s.state_dict()["order_version"] == 2
    s.load_state_dict({"epoch": 2, "position": 0, "base_global_batch": 4, "regroups": []})
    assert "order version" not in caplog.text  # an epoch boundary is exact
    s.load_state_dict({"epoch": 2, "position": 3, "base_global_batch": 4, "regroups": []})
    assert "sample order version 1" in caplog.text and s.remaining == 7
