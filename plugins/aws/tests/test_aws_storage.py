"""S3Backend against a real S3 API over HTTP: conformance, listing, ranges, batches."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any

import pytest

from databackend.storage.base import FileInfo
from databackend.testing import StorageConformance
from databackend_aws import S3Backend


class TestS3Conformance(StorageConformance):
    """Every storage rule of the core suite, on S3."""

    @pytest.fixture
    def backend(self, make_backend: Callable[..., S3Backend]) -> S3Backend:
        return make_backend(aws_data_prefix="conformance")


def test_listing_paginates_past_1000_keys(make_backend: Callable[..., S3Backend],
                                          s3_admin: Any, bucket: str) -> None:
    """1,205 keys need two pages of 1000; every key comes back once, in key order."""
    backend = make_backend(aws_data_prefix="many", aws_max_pool_connections=16)
    names = [f"img_{i:05d}.jpg" for i in range(1205)]
    backend.write_many([(n, b"x" * (i % 7)) for i, n in enumerate(names)])
    before = backend.metrics.snapshot().get("requests.ListObjectsV2", 0)
    found = list(backend.list())
    assert [f.path for f in found] == names
    assert [f.size for f in found] == [i % 7 for i in range(1205)]
    pages = backend.metrics.snapshot()["requests.ListObjectsV2"] - before
    assert pages == 3  # one delimited planning page (truncated) + two flat pages
    assert len(s3_admin.list_objects_v2(Bucket=bucket, Prefix="many/")["Contents"]) == 1000


def test_small_page_size_is_honoured(make_backend: Callable[..., S3Backend]) -> None:
    """``aws_list_page_size`` sets the page size: 25 keys at 4 per page is 7 flat pages."""
    backend = make_backend(aws_list_page_size=4)
    backend.write_many([(f"k{i:02d}.bin", b"1") for i in range(25)])
    before = backend.metrics.snapshot().get("requests.ListObjectsV2", 0)
    assert [f.path for f in backend.list()] == [f"k{i:02d}.bin" for i in range(25)]
    assert backend.metrics.snapshot()["requests.ListObjectsV2"] - before == 1 + 7


def test_prefix_isolation(make_backend: Callable[..., S3Backend], s3_admin: Any,
                          bucket: str) -> None:
    """A backend sees only its own prefix; ``data`` does not match ``data2/``."""
    for key in ("data/a.jpg", "data/sub/b.jpg", "data2/c.jpg", "datafile.jpg", "other/d.jpg"):
        s3_admin.put_object(Bucket=bucket, Key=key, Body=b"x")
    backend = make_backend(aws_data_prefix="data")
    assert [f.path for f in backend.list()] == ["a.jpg", "sub/b.jpg"]
    assert [f.path for f in backend.list("sub")] == ["sub/b.jpg"]
    assert backend.read("a.jpg") == b"x"
    assert not backend.exists("c.jpg")
    backend.write("new.jpg", b"n")
    assert s3_admin.get_object(Bucket=bucket, Key="data/new.jpg")["Body"].read() == b"n"


def test_folder_fan_out_keeps_key_order(make_backend: Callable[..., S3Backend]) -> None:
    """Sub-folders are listed concurrently; the merged result is in exact key order."""
    backend = make_backend(aws_data_prefix="tree")
    keys = [f"{d}/{i:03d}.png" for d in ("a", "b", "b.x", "c") for i in range(30)]
    keys += ["a.jpg", "a0.jpg", "top.jpg", "b/deep/z.png"]
    backend.write_many([(k, k.encode()) for k in keys])
    found = [f.path for f in backend.list()]
    assert found == sorted(keys)
    assert backend.metrics.snapshot()["listed_folders_concurrently"] == 4
    assert [f.path for f in backend.list(extensions=["JPG"])] == ["a.jpg", "a0.jpg", "top.jpg"]


def test_single_folder_chain_is_descended(make_backend: Callable[..., S3Backend]) -> None:
    """``data/train/{x,y}/`` fans out below the single-folder chain."""
    backend = make_backend()
    keys = [f"data/train/{d}/{i}.jpg" for d in "xyz" for i in range(5)]
    backend.write_many([(k, b"1") for k in keys])
    assert [f.path for f in backend.list()] == sorted(keys)
    assert backend.metrics.snapshot()["listed_folders_concurrently"] == 3


def test_file_info_has_etag_and_mtime(make_backend: Callable[..., S3Backend]) -> None:
    """Listing and stat report the same size, mtime and (unquoted) ETag; rewrites change it."""
    backend = make_backend()
    backend.write("a.bin", b"first")
    listed = next(iter(backend.list()))
    assert listed == backend.stat("a.bin")
    assert listed.etag and '"' not in listed.etag and listed.mtime > 1e9
    backend.write("a.bin", b"second")
    assert backend.stat("a.bin").etag != listed.etag
    assert isinstance(listed, FileInfo)


def test_folder_markers_are_skipped(make_backend: Callable[..., S3Backend], s3_admin: Any,
                                    bucket: str) -> None:
    """Zero-byte ``folder/`` objects made by consoles are not files."""
    s3_admin.put_object(Bucket=bucket, Key="imgs/", Body=b"")
    s3_admin.put_object(Bucket=bucket, Key="imgs/a.jpg", Body=b"1")
    assert [f.path for f in make_backend().list()] == ["imgs/a.jpg"]


def test_read_range_edges(make_backend: Callable[..., S3Backend]) -> None:
    """Past the end and on empty objects a ranged read is empty; zero length costs nothing."""
    backend = make_backend()
    backend.write("r.bin", bytes(range(10)))
    backend.write("empty.bin", b"")
    assert backend.read_range("r.bin", 0, 4) == bytes(range(4))
    assert backend.read_range("r.bin", 10, 5) == b""
    assert backend.read_range("r.bin", 50, 5) == b""
    assert backend.read_range("empty.bin", 0, 64) == b""
    before = backend.metrics.snapshot()["requests"]
    assert backend.read_range("r.bin", 3, 0) == b""
    assert backend.metrics.snapshot()["requests"] == before
    with pytest.raises(FileNotFoundError):
        backend.read_range("missing.bin", 0, 10)
    with pytest.raises(ValueError):
        backend.read_range("r.bin", -1, 3)


def test_ranged_read_transfers_only_the_range(make_backend: Callable[..., S3Backend]) -> None:
    """A header read of a large object moves only the header bytes."""
    backend = make_backend()
    backend.write("big.bin", b"\xff" * 1_000_000)
    before = backend.metrics.snapshot().get("bytes_read", 0)
    assert len(backend.read_range("big.bin", 0, 4096)) == 4096
    assert backend.metrics.snapshot()["bytes_read"] - before == 4096


def test_overwrites_are_atomic_for_readers(make_backend: Callable[..., S3Backend]) -> None:
    """Readers racing a writer only ever see a complete old or new object."""
    backend = make_backend()
    versions = [bytes([v]) * 200_000 for v in range(6)]
    backend.write("x.bin", versions[0])
    seen: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(backend.read("x.bin"))

    thread = threading.Thread(target=reader)
    thread.start()
    for data in versions[1:]:
        backend.write("x.bin", data)
    done.set()
    thread.join()
    assert seen and all(data in versions for data in seen)


def test_read_many_and_write_many(make_backend: Callable[..., S3Backend]) -> None:
    """Order is kept, failures come back in place; write_many raises after finishing."""
    backend = make_backend(aws_max_pool_connections=4)
    assert backend.io_concurrency == 4
    backend.write_many([(f"m/{i}.bin", str(i).encode()) for i in range(40)])
    got = backend.read_many([f"m/{i}.bin" for i in range(40)] + ["m/none.bin", "m/3.bin"])
    assert got[:40] == [str(i).encode() for i in range(40)]
    assert isinstance(got[40], FileNotFoundError) and got[41] == b"3"
    with pytest.raises(ValueError):
        backend.write_many([("ok.bin", b"1"), ("bad/", b"2"), ("ok2.bin", b"3")])
    assert backend.exists("ok.bin") and backend.exists("ok2.bin")


def test_nested_batches_from_pool_threads_do_not_deadlock(
        make_backend: Callable[..., S3Backend]) -> None:
    """read_many called from inside the backend's own pool runs inline instead of waiting."""
    backend = make_backend(aws_max_pool_connections=2)
    backend.write_many([(f"n/{i}", bytes([i])) for i in range(6)])
    results = backend._pool.map(lambda i: backend.read_many([f"n/{i}", f"n/{i + 1}"]),
                                list(range(5)))
    assert results == [[bytes([i]), bytes([i + 1])] for i in range(5)]
    listed = backend._pool.map(lambda _: [f.path for f in backend.list("n")], [0, 1, 2])
    assert listed[0] == listed[2] == [f"n/{i}" for i in range(6)]


def test_root_override_is_a_prefix_under_the_data_prefix(
        make_backend: Callable[..., S3Backend], s3_admin: Any, bucket: str) -> None:
    """Caches: ``root`` is joined under ``aws_data_prefix``; ``s3://`` roots are absolute."""
    cache = make_backend(root="/cache/vae/ds", aws_data_prefix="proj/")
    cache.write("x.pt", b"latent")
    assert s3_admin.head_object(Bucket=bucket, Key="proj/cache/vae/ds/x.pt")
    absolute = make_backend(root=f"s3://{bucket}/elsewhere/te", aws_data_prefix="proj")
    absolute.write("y.pt", b"embed")
    assert s3_admin.head_object(Bucket=bucket, Key="elsewhere/te/y.pt")
    assert cache.describe().startswith(f"aws:s3://{bucket}/proj/cache/vae/ds/")


def test_pickled_backend_works_in_a_new_process_state(
        make_backend: Callable[..., S3Backend]) -> None:
    """DataLoader workers get a pickled copy; it reconnects on first use."""
    backend = make_backend()
    backend.write("p.bin", b"pickled")
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.read("p.bin") == b"pickled"
    assert clone.describe() == backend.describe()
    clone.close()


def test_default_credential_chain(make_backend: Callable[..., S3Backend],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without keys in the config boto3's chain (here: environment variables) is used."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
    backend = make_backend(aws_access_key_id=None, aws_secret_access_key=None,
                           aws_session_token=None)
    backend.write("env.bin", b"1")
    creds = backend.client._request_signer._credentials
    assert creds.access_key == "from-env"
    assert backend.read("env.bin") == b"1"


def test_close_then_reuse(make_backend: Callable[..., S3Backend]) -> None:
    """After close() the backend reconnects on the next call."""
    backend = make_backend()
    backend.write_many([("a", b"1"), ("b", b"2")])
    backend.close()
    assert backend.read_many(["a", "b"]) == [b"1", b"2"]
