"""Filters, composite images, caption columns and missing-column errors."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hf_support import SIZES, basic_columns, composite, encode

from databackend.errors import ConfigError
from databackend.options import FactoryOptions
from databackend_huggingface import MissingColumnError

Opener = Callable[..., tuple[Any, Any]]
RED, GREEN, BLUE = (250, 0, 0), (0, 250, 0), (0, 0, 250)


def quality(n: int) -> list[dict[str, float]]:
    return [{"aesthetic": float(k % 4), "sharpness": 0.5 + (k % 2) / 2} for k in range(n)]


@pytest.mark.parametrize("streaming", [False, True], ids=["normal", "streaming"])
def test_filters_are_applied_and_counted_by_reason(write_parquet: Callable[..., Path],
                                                   open_hf: Opener, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   streaming: bool) -> None:
    n = 16
    columns = basic_columns(n, collection=["art" if k % 3 else "photo" for k in range(n)],
                            quality_assessment=quality(n), nsfw=[k == 5 for k in range(n)])
    folder = write_parquet(columns)
    module = tmp_path / "mods" / "hf_filters_for_test.py"
    module.parent.mkdir()
    module.write_text(textwrap.dedent("""
        def safe(row):
            assert "image" not in row  # image columns are never handed over
            return not row["nsfw"]
    """))
    monkeypatch.syspath_prepend(str(module.parent))
    storage, meta = open_hf(dataset_name=str(folder), filter_function="hf_filters_for_test:safe",
                            huggingface={"streaming": streaming, "filter_func": {
                                "collection": ["art"], "quality_thresholds": {"aesthetic": 1.0},
                                "min_width": 70}})
    assert storage.streaming is streaming
    report = meta.scan(progress=False)
    rows = set(range(n))
    rows -= {k for k in range(n) if k % 3 == 0}  # collection
    rows -= {k for k in rows if k % 4 == 0}  # quality
    rows -= {5}  # predicate
    small = {k for k in rows if (96, 64, 80, 128, 64, 112)[k % 6] < 70}
    assert report.skipped == {"collection": 6, "quality": 2, "filter_function": 1,
                              "min_size": len(small)}
    assert sorted(int(p.split(".")[0]) for p in meta.index.paths) == sorted(rows - small)
    assert report.counts["skipped"] == n - len(rows - small)
    assert report.examples["collection"][0] == "0.jpg"
    kept = sorted(rows - small)
    # paths are the rows' unfiltered positions, and each loads that row's image
    assert meta.index.paths == [f"{k}.jpg" for k in kept]
    assert [meta.load_image(i).size for i in range(len(kept))] == [SIZES[k % len(SIZES)]
                                                                   for k in kept]
    if streaming:  # only the kept rows were copied to the row store
        assert storage.row_store is not None and len(storage.row_store) == len(kept)
        assert not storage.exists("0.jpg") and storage.exists(f"{kept[0]}.jpg")
    # a reused index reports the filters again
    _, again = open_hf(dataset_name=str(folder), filter_function="hf_filters_for_test:safe",
                       huggingface={"streaming": streaming, "filter_func": {
                           "collection": ["art"], "quality_thresholds": {"aesthetic": 1.0},
                           "min_width": 70}})
    second = again.scan(progress=False)
    assert second.skipped == report.skipped
    assert again.index.paths == meta.index.paths


def test_quality_thresholds_on_top_level_columns(write_parquet: Callable[..., Path],
                                                 open_hf: Opener) -> None:
    folder = write_parquet(basic_columns(8, score=[float(k) for k in range(8)]))
    _, meta = open_hf(dataset_name=str(folder),
                      huggingface={"filter_func": {"quality_thresholds": {"score": 5}}})
    report = meta.scan(progress=False)
    assert report.skipped == {"quality": 5} and len(meta.index) == 3


def test_bad_predicate_is_a_config_error(write_parquet: Callable[..., Path],
                                         open_hf: Opener) -> None:
    folder = write_parquet(basic_columns(2))
    with pytest.raises(ConfigError, match="filter_function"):
        open_hf(dataset_name=str(folder), filter_function="no_such_module_anywhere:f")


def test_composite_select_index(write_parquet: Callable[..., Path], open_hf: Opener) -> None:
    columns = {"image": [composite([RED, GREEN], (64, 96)), composite([BLUE, RED], (80, 64))],
               "caption": ["a", "b"], "width": [128, 160], "height": [96, 64]}
    folder = write_parquet(columns)
    for size_cols in ({}, {"width_column": "width", "height_column": "height"}):
        _, meta = open_hf(id=f"c{len(size_cols)}", dataset_name=str(folder), huggingface={
            "composite_image_config": {"enabled": True, "image_count": 2, "select_index": 1},
            **size_cols})
        meta.scan(progress=False)
        assert meta.index.paths == ["0.jpg", "1.jpg"]
        assert [tuple(o) for o in meta.index.original] == [(64, 96), (80, 64)]
        first, second = meta.load_image(0), meta.load_image(1)
        assert first.size == (64, 96) and first.getpixel((10, 10)) == GREEN
        assert second.getpixel((10, 10)) == RED


def test_split_composite_images_makes_every_tile_a_sample(write_parquet: Callable[..., Path],
                                                          open_hf: Opener) -> None:
    columns = {"image": [composite([RED, GREEN, BLUE], (64, 64))] * 2,
               "description": [{"description_0": f"red {k}", "description_1": f"green {k}",
                                "description_2": f"blue {k}"} for k in range(2)]}
    folder = write_parquet(columns)
    for streaming in (False, True):
        storage, meta = open_hf(id=f"split{streaming}", dataset_name=str(folder),
                                split_composite_images=True,
                                caption_column="description.description_<tile>",
                                huggingface={"composite_image_config": {"image_count": 3},
                                             "streaming": streaming})
        report = meta.scan(progress=False)
        assert report.counts["kept"] == 6 and report.counts["listed"] == 2
        assert meta.index.paths == ["0_0.jpg", "0_1.jpg", "0_2.jpg", "1_0.jpg", "1_1.jpg",
                                    "1_2.jpg"]
        assert [meta.index.captions_of(i)[0] for i in range(3)] == ["red 0", "green 0", "blue 0"]
        colors = [meta.load_image(i).getpixel((5, 5)) for i in range(3)]
        assert colors == [RED, GREEN, BLUE]
        assert storage.exists("1_2.jpg") and not storage.exists("1.jpg")


def test_several_caption_columns_pick_one_per_sample_by_seed(
        write_parquet: Callable[..., Path], open_hf: Opener, tmp_path: Path) -> None:
    n = 24
    columns = basic_columns(n, short=[f"short {k}" for k in range(n)],
                            long=[f"long {k}" if k != 3 else "" for k in range(n)],
                            alt=[f"alt {k}" for k in range(n)])
    columns["short"][3] = None
    columns["caption"] = [None] * n
    columns["caption"][3] = None
    folder = write_parquet(columns)

    def pick(seed: int, key: str) -> list[str]:
        opts = FactoryOptions(output_dir=str(tmp_path / key), resolution=64,
                              resolution_type="pixel_area", seed=seed)
        _, meta = open_hf(opts, id="captions", dataset_name=str(folder),
                          caption_column=["short", "long"], fallback_caption_column="alt")
        meta.scan(progress=False)
        return [meta.index.captions_of(i)[0] for i in range(len(meta.index))]

    first, again, other = pick(1, "a"), pick(1, "b"), pick(2, "c")
    assert first == again
    assert first != other
    assert {c.split()[0] for c in first} == {"short", "long", "alt"}
    assert first[3] == "alt 3"


def test_list_cells_keep_every_caption(write_parquet: Callable[..., Path], open_hf: Opener) -> None:
    columns = {"image": [encode(64, 64)], "tags": [["one", "two"]]}
    _, meta = open_hf(dataset_name=str(write_parquet(columns)), caption_column="tags")
    meta.scan(progress=False)
    assert meta.index.captions_of(0) == ("one", "two")


def test_missing_caption_is_no_caption_and_instanceprompt_needs_no_column(
        write_parquet: Callable[..., Path], open_hf: Opener) -> None:
    columns = basic_columns(3)
    columns["caption"] = ["yes", "", None]
    folder = write_parquet(columns)
    _, meta = open_hf(dataset_name=str(folder))
    report = meta.scan(progress=False)
    assert report.skipped == {"no_caption": 2} and report.counts["probed"] == 1
    _, prompt = open_hf(id="p", dataset_name=str(folder), caption_strategy="instanceprompt",
                        instance_prompt="sks dog", caption_column="not_there")
    prompt.scan(progress=False)
    assert [prompt.index.captions_of(i) for i in range(3)] == [("sks dog",)] * 3


@pytest.mark.parametrize(("keys", "column", "key"), [
    ({"caption_column": "text"}, "text", "caption_column"),
    ({"image_column": "picture"}, "picture", "image_column"),
    ({"huggingface": {"width_column": "w", "height_column": "height"}}, "w", "width_column"),
    ({"huggingface": {"filter_func": {"collection": "x"}}}, "collection",
     "filter_func.collection"),
    ({"caption_column": "caption.inner"}, "caption.inner", "caption_column"),
])
def test_missing_column_is_a_clear_error(write_parquet: Callable[..., Path], open_hf: Opener,
                                         keys: dict[str, Any], column: str, key: str) -> None:
    folder = write_parquet(basic_columns(2))
    _, meta = open_hf(id="mydata", dataset_name=str(folder), **keys)
    with pytest.raises(MissingColumnError) as err:
        meta.scan(progress=False)
    text = str(err.value)
    assert "'mydata'" in text and repr(column) in text and f"`{key}`" in text
    assert str(folder) in text and "available columns: caption, height, image, width" in text


def test_missing_column_in_streaming_mode(write_parquet: Callable[..., Path],
                                          open_hf: Opener) -> None:
    folder = write_parquet(basic_columns(2))
    _, meta = open_hf(id="s", dataset_name=str(folder), caption_column="text",
                      huggingface={"streaming": True})
    with pytest.raises(MissingColumnError, match="'text'"):
        meta.scan(progress=False)
