"""Caption strategies during a scan: filename, textfile, instance prompt, tables, storage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from imagefiles import write_image
from test_metadata_support import make_meta

from databackend.build import build_metadata, build_storage
from databackend.config.loader import load_config
from databackend.context import BuildContext
from databackend.errors import ConfigError
from databackend.options import FactoryOptions
from databackend.pluginapi import CaptionStrategy, StorageBackend, StorageCaptions, hookimpl
from databackend.plugins import make_plugin_manager
from databackend.registry import PluginRegistry
from databackend_local import LocalBackend


def images(root: Path, *names: str, size: tuple[int, int] = (64, 64)) -> Path:
    for name in names:
        write_image(root / name, *size)
    return root


def captions(meta: Any) -> dict[str, tuple[str, ...]]:
    idx = meta.index
    return {p: idx.captions_of(i) for i, p in enumerate(idx.paths)}


def test_filename(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "a/red_car.jpg", "blue__sky.png")
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="filename")
    meta.scan(progress=False)
    assert captions(meta) == {"a/red_car.jpg": ("red car",), "blue__sky.png": ("blue  sky",)}


def test_textfile_lines_and_missing(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "one.jpg", "many.jpg", "none.jpg", "blank.jpg")
    (root / "one.txt").write_text("  a single caption \n")
    (root / "many.txt").write_text("first\n\nsecond\r\nthird\n")
    (root / "blank.txt").write_text("\n  \n")
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="textfile")
    report = meta.scan(progress=False)
    assert captions(meta) == {"many.jpg": ("first", "second", "third"),
                              "one.jpg": ("a single caption",)}
    assert report.skipped == {"no_caption": 2}
    assert report.examples["no_caption"] == ["blank.jpg", "none.jpg"]


def test_textfile_without_multiline_split(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "many.jpg")
    (root / "many.txt").write_text("first\nsecond\n")
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="textfile",
                     disable_multiline_split=True)
    meta.scan(progress=False)
    assert captions(meta) == {"many.jpg": ("first\nsecond",)}


def test_edited_caption_file_is_picked_up(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "a.jpg", "b.jpg", "c.jpg")
    (root / "a.txt").write_text("old a")
    (root / "b.txt").write_text("b stays")
    out = tmp_path / "out"
    first = make_meta(registry, out, root, caption_strategy="textfile").scan(progress=False)
    assert first.skipped == {"no_caption": 1}
    (root / "a.txt").write_text("the new caption of a")
    (root / "c.txt").write_text("c appears")
    meta = make_meta(registry, out, root, caption_strategy="textfile")
    report = meta.scan(progress=False)
    assert report.counts["probed"] == 0 and report.counts["captioned"] == 2
    assert report.counts["rederived"] == 1  # c.jpg was skipped: it is bucketed now
    assert captions(meta) == {"a.jpg": ("the new caption of a",), "b.jpg": ("b stays",),
                              "c.jpg": ("c appears",)}
    (root / "b.txt").unlink()
    again = make_meta(registry, out, root, caption_strategy="textfile")
    assert again.scan(progress=False).skipped == {"no_caption": 1}


def test_instance_prompt(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "x_y.jpg")
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="instanceprompt",
                     instance_prompt="sks dog")
    meta.scan(progress=False)
    assert captions(meta) == {"x_y.jpg": ("sks dog",)}


def test_prepend_and_only_instance_prompt(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "a_cat.jpg", "nocap.jpg")
    (root / "a_cat.txt").write_text("on a mat\nasleep")
    out = tmp_path / "out"
    meta = make_meta(registry, out, root, caption_strategy="filename", instance_prompt="sks",
                     prepend_instance_prompt=True)
    meta.scan(progress=False)
    assert captions(meta)["a_cat.jpg"] == ("sks a cat",)
    meta = make_meta(registry, out, root, caption_strategy="textfile", instance_prompt="sks",
                     prepend_instance_prompt=True)
    report = meta.scan(progress=False)
    assert captions(meta) == {"a_cat.jpg": ("sks on a mat", "sks asleep")}
    assert report.counts["probed"] == 0 and report.skipped == {"no_caption": 1}
    meta = make_meta(registry, out, root, caption_strategy="textfile", instance_prompt="sks",
                     only_instance_prompt=True)
    meta.scan(progress=False)
    assert captions(meta) == {"a_cat.jpg": ("sks",), "nocap.jpg": ("sks",)}


def _rows() -> list[dict[str, Any]]:
    return [{"id": "one", "description": "first caption", "alt": None, "tags": ["t1", "t2"],
             "width": 1000, "height": 500},
            {"id": "two", "description": "", "alt": "fallback two", "tags": [],
             "width": 300, "height": 600}]


def test_parquet_table_sizes_and_fallback(registry: PluginRegistry, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    root = images(tmp_path / "img", "one.jpg", "sub/two.png", "three.jpg")
    pq.write_table(pa.Table.from_pylist(_rows()), root / "captions.parquet")
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="parquet",
                     parquet={"path": "captions.parquet", "fallback_caption_column": "alt"})
    report = meta.scan(progress=False)
    assert captions(meta) == {"one.jpg": ("first caption",), "sub/two.png": ("fallback two",)}
    assert report.skipped == {"no_caption": 1}  # three.jpg has no row
    idx = meta.index
    assert tuple(idx.original[idx.position("one.jpg") or 0]) == (1000, 500)  # from the table
    assert report.counts["probed"] == 1 and report.counts["rederived"] == 2


def test_caption_column_list(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "one.jpg", "two.jpg")
    lines = [json.dumps({k: v for k, v in r.items() if k not in ("width", "height")})
             for r in _rows()]
    (tmp_path / "table.jsonl").write_text("\n".join(lines))
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="parquet",
                     parquet={"path": str(tmp_path / "table.jsonl"),
                              "caption_column": ["description", "tags"]})
    report = meta.scan(progress=False)
    assert captions(meta) == {"one.jpg": ("first caption", "t1", "t2")}
    assert report.counts["probed"] == 2 and report.skipped == {"no_caption": 1}


def test_csv_table_with_extensions(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "a/one.jpg", "two.jpg")
    (root / "meta.csv").write_text("file,text\na/one.jpg,caption one\ntwo.jpg,caption two\n")
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="parquet",
                     parquet={"path": "meta.csv", "filename_column": "file",
                              "caption_column": "text", "identifier_includes_extension": True})
    meta.scan(progress=False)
    assert captions(meta) == {"a/one.jpg": ("caption one",), "two.jpg": ("caption two",)}


def test_table_changes_refresh_captions(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "one.jpg")
    table = root / "meta.json"
    table.write_text(json.dumps([{"id": "one", "description": "v1"}]))
    out = tmp_path / "out"
    keys = {"caption_strategy": "parquet", "parquet": {"path": "meta.json"}}
    make_meta(registry, out, root, **keys).scan(progress=False)
    table.write_text(json.dumps([{"id": "one", "description": "version two"}]))
    os.utime(table, (1, 1))
    meta = make_meta(registry, out, root, **keys)
    report = meta.scan(progress=False)
    assert captions(meta) == {"one.jpg": ("version two",)} and report.counts["probed"] == 0


def test_table_errors_name_the_problem(registry: PluginRegistry, tmp_path: Path) -> None:
    root = images(tmp_path / "img", "one.jpg")
    (root / "meta.jsonl").write_text(json.dumps({"name": "one", "description": "x"}))
    meta = make_meta(registry, tmp_path / "out", root, caption_strategy="parquet",
                     parquet={"path": "meta.jsonl"})
    with pytest.raises(ConfigError, match=r"no column.*id"):
        meta.scan(progress=False)
    missing = make_meta(registry, tmp_path / "out", root, caption_strategy="parquet",
                        parquet={"path": "absent.parquet"})
    with pytest.raises(Exception, match=r"absent\.parquet"):
        missing.scan(progress=False)


class CaptionedBackend(LocalBackend):
    """A storage plugin that holds captions itself (like the csv and huggingface types) and
    names its own strategy as the type's default."""

    name = "captioned-local"
    default_caption_strategy = "held"

    def caption(self, path: str) -> str | list[str] | None:
        held: dict[str, str | list[str]] = {"a.jpg": "from storage", "b.jpg": ["x", "y"]}
        return held.get(path)


class HeldCaptions(StorageCaptions):
    name = "held"


class CaptionedPlugin:
    @hookimpl
    def databackend_register_backends(self) -> list[type[StorageBackend]]:
        return [CaptionedBackend]

    @hookimpl
    def databackend_register_caption_strategies(self) -> list[type[CaptionStrategy]]:
        return [HeldCaptions]


@pytest.mark.parametrize("keys", [{}, {"caption_strategy": "held"}])
def test_storage_captions(tmp_path: Path, keys: dict[str, str]) -> None:
    """Storage-held captions through the type's declared default strategy (no key) or the
    strategy named explicitly; decided by declarations, not by the type's name."""
    root = images(tmp_path / "img", "a.jpg", "b.jpg", "c.jpg")
    registry = PluginRegistry.collect(make_plugin_manager(entrypoints=False,
                                                          extra=[CaptionedPlugin()]))
    opts = FactoryOptions(output_dir=str(tmp_path / "out"), scan_workers=1)
    plan = load_config([{"id": "ds", "type": "captioned-local",
                         "instance_data_dir": str(root), **keys}], registry, opts)
    assert plan.datasets[0].caption_strategy == "held"
    context = BuildContext(options=opts, registry=registry)
    meta = build_metadata(plan.datasets[0], build_storage(plan.datasets[0], context), context)
    report = meta.scan(progress=False)
    assert captions(meta) == {"a.jpg": ("from storage",), "b.jpg": ("x", "y")}
    assert report.skipped == {"no_caption": 1}
