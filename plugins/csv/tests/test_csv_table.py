"""The URL table: keys from the whole URL, duplicates, captions, CSV locations and formats."""

from __future__ import annotations

import gzip
from pathlib import Path

import fsspec
import pytest
from csvhelpers import write_csv

from databackend_csv import CsvConfig, key_for_url
from databackend_csv.table import load_table, rows_from_columns


def test_keys_hash_the_whole_url() -> None:
    """Same basename in two folders: two keys (the reference hashed only the basename)."""
    a = key_for_url("https://h.example/a/img.jpg")
    b = key_for_url("https://h.example/b/img.jpg")
    assert a != b and a.endswith(".jpg") and a[:2] == a[3:5]
    assert key_for_url("https://h/x.PNG?w=200").endswith(".png")
    assert key_for_url("https://h/render?id=3").endswith(".jpg")
    assert key_for_url("https://h/page.html").endswith(".jpg")


def test_duplicates_merge_captions() -> None:
    """A URL listed twice keeps both captions; empty URLs are skipped; NaN is no caption."""
    table = rows_from_columns(["http://h/1.jpg", "http://h/1.jpg", " ", "http://h/2.png",
                               "http://h/3.png"],
                              ["a cat", "a small cat", "x", float("nan"), "  "])
    assert len(table) == 3
    assert table.get(key_for_url("http://h/1.jpg")).caption == ["a cat", "a small cat"]  # type: ignore[union-attr]
    assert table.get(key_for_url("http://h/2.png")).caption is None  # type: ignore[union-attr]
    assert table.get(key_for_url("http://h/3.png")).caption is None  # type: ignore[union-attr]
    keys = [r.key for r in table]
    assert keys == sorted(keys)


def test_caption_column_defaults_to_caption(tmp_path: Path) -> None:
    """Without csv_caption_column a ``caption`` column is used if present; other columns are
    not kept in memory."""
    path = write_csv(tmp_path / "l.csv", [("http://h/1.jpg", "one", "9")],
                     ("url", "caption", "score"))
    table = load_table(CsvConfig(csv_file=str(path), csv_cache_dir=str(tmp_path)))
    assert [r.caption for r in table] == ["one"]
    path = write_csv(tmp_path / "n.csv", [("http://h/1.jpg", "9")], ("url", "score"))
    assert [r.caption for r in load_table(CsvConfig(csv_file=str(path),
                                                    csv_cache_dir=str(tmp_path)))] == [None]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    """A configured column the CSV lacks is an error listing the columns it has."""
    path = write_csv(tmp_path / "l.csv", [("http://h/1.jpg", "one")], ("link", "text"))
    with pytest.raises(ValueError, match=r"csv_url_column.*link, text"):
        load_table(CsvConfig(csv_file=str(path), csv_cache_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="csv_caption_column` 'caption'"):
        load_table(CsvConfig(csv_file=str(path), csv_cache_dir=str(tmp_path),
                             csv_url_column="link", csv_caption_column="caption"))


def test_tsv_gzip_and_fsspec_urls(tmp_path: Path) -> None:
    """``.tsv`` is tab separated, ``.gz`` is decompressed, fsspec URLs are read."""
    tsv = write_csv(tmp_path / "l.tsv", [("http://h/1.jpg", "a, b")], delimiter="\t")
    gz = tmp_path / "l.tsv.gz"
    gz.write_bytes(gzip.compress(tsv.read_bytes()))
    for where in (str(tsv), str(gz)):
        table = load_table(CsvConfig(csv_file=where, csv_cache_dir=str(tmp_path)))
        assert [r.caption for r in table] == ["a, b"]
    with fsspec.open("memory://lists/web.csv", "w") as fh:
        fh.write("url,caption\nhttp://h/1.jpg,one\nhttp://h/2.jpg,two\n")
    table = load_table(CsvConfig(csv_file="memory://lists/web.csv",
                                 csv_cache_dir=str(tmp_path)))
    assert sorted(str(r.caption) for r in table) == ["one", "two"]


def test_missing_csv(tmp_path: Path) -> None:
    """A missing CSV is FileNotFoundError naming the dataset."""
    from databackend_csv import CsvBackend

    cfg = CsvConfig(csv_file=str(tmp_path / "none.csv"), csv_cache_dir=str(tmp_path / "c"))
    with pytest.raises(FileNotFoundError, match=r"dataset 'web'.*none\.csv"):
        CsvBackend(cfg, dataset_id="web")


def test_local_paths_in_the_url_column(tmp_path: Path, image_bytes: dict[str, bytes]) -> None:
    """Rows may name local files (read in place, not copied into the cache) and fsspec URLs."""
    from databackend_csv import CsvBackend, DownloadError

    local = tmp_path / "pic.png"
    local.write_bytes(image_bytes["i1.png"])
    with fsspec.open("memory://imgs/pic.png", "wb") as fh:
        fh.write(image_bytes["i2.png"])
    rows = [(str(local), "local"), ("memory://imgs/pic.png", "mem"), (str(tmp_path / "x.png"),
                                                                     "gone")]
    path = write_csv(tmp_path / "l.csv", rows)
    backend = CsvBackend(CsvConfig(csv_file=str(path), csv_cache_dir=str(tmp_path / "c")),
                         dataset_id="web")
    assert backend.read(key_for_url(str(local))) == image_bytes["i1.png"]
    assert backend.read_range(key_for_url(str(local)), 0, 8) == image_bytes["i1.png"][:8]
    assert backend.read(key_for_url("memory://imgs/pic.png")) == image_bytes["i2.png"]
    with pytest.raises(DownloadError, match="not_found"):
        backend.read(key_for_url(str(tmp_path / "x.png")))
    cached = backend.scan_summary()["cache"]["files"]
    assert cached == 1  # the memory:// copy; the local file is read in place
    backend.close()
