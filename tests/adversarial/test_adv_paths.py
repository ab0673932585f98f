"""Names from data or config never leave their root: hostile keys, dataset ids, symlinked
folders on delete and write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from advhelpers import dataset, image_folder, snapshot
from imagefiles import write_image

from databackend.caches import keys
from databackend.safepath import UnsafePathError, check_key, confined, neutralise_key
from databackend.storage.localdir import LocalDirectory

HOSTILE = ["../escape.jpg", "a/../../escape.jpg", "/etc/passwd.jpg", "a/\x00b.jpg",
           "../../../../../../tmp/x.png", "..", "C:/win.png", "a//../../b.png"]


@pytest.mark.parametrize("key", HOSTILE)
def test_unsafe_keys_are_refused_and_neutralised(key: str) -> None:
    with pytest.raises(UnsafePathError) as info:
        check_key(key, "object key")
    assert repr(key) in str(info.value)
    safe = neutralise_key(key)
    assert check_key(safe) == safe
    assert neutralise_key("cats/ok.jpg") == "cats/ok.jpg"
    assert len({neutralise_key(k) for k in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("hash_filenames", [True, False])
def test_latents_of_hostile_object_keys_stay_in_the_cache(tmp_path: Path,
                                                          hash_filenames: bool) -> None:
    """An S3/CSV/HF key with ``../`` segments maps to a latent file inside the cache folder."""
    cache_root = tmp_path / "deep" / "cache"
    store = LocalDirectory(root=str(cache_root), dataset_id="latents")
    outside_before = snapshot(tmp_path)
    for n, key in enumerate(HOSTILE):
        path = keys.latent_path(key, f"{n:02d}" * 32, hash_filenames=hash_filenames)
        store.write(keys.join("model/ds", path), b"entry")
    after = snapshot(tmp_path)
    new = set(after) - set(outside_before)
    inside = os.path.join("deep", "cache")
    assert new and all(p == "deep" or p.startswith(inside) for p in new), new
    assert len([p for p in new if after[p][0] == "file"]) == len(HOSTILE)


@pytest.mark.parametrize("key", HOSTILE)
def test_local_storage_refuses_unsafe_keys(tmp_path: Path, key: str) -> None:
    root = image_folder(tmp_path / "data", 1)
    store = LocalDirectory(root=str(root), dataset_id="ds")
    before = snapshot(tmp_path)
    for op in (store.read, store.delete, lambda k: store.write(k, b"x")):
        with pytest.raises(UnsafePathError, match="'ds'"):
            op(key)
    assert snapshot(tmp_path) == before


def test_symlinked_folder_is_not_a_way_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_image(outside / "victim.png", 8, 8)
    root = image_folder(tmp_path / "data", 1)
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "deeper").mkdir()
    (root / "deeper" / "up").symlink_to(tmp_path, target_is_directory=True)
    store = LocalDirectory(root=str(root), dataset_id="ds")
    before = snapshot(tmp_path)
    for key in ("link/victim.png", "deeper/up/outside/victim.png"):
        with pytest.raises(UnsafePathError, match="outside"):
            store.delete(key)
        with pytest.raises(UnsafePathError, match="outside"):
            store.write(key, b"overwritten")
    with pytest.raises(UnsafePathError):
        confined(str(root), "link/new.png")
    assert snapshot(tmp_path) == before


def test_delete_unwanted_never_deletes_through_a_symlink(tmp_path: Path,
                                                         make_context: object) -> None:
    """delete_unwanted_images on a dataset with a symlinked subfolder pointing outside: the
    small image outside stays; the one inside the root is deleted (the config asked)."""
    from databackend.build import build_metadata, build_storage
    from databackend.config.loader import load_config

    outside = tmp_path / "outside"
    write_image(outside / "tiny.png", 8, 8)
    root = image_folder(tmp_path / "data", 2)
    write_image(root / "tiny_inside.png", 8, 8)
    (root / "linked").symlink_to(outside, target_is_directory=True)
    context = make_context()  # type: ignore[operator]
    plan = load_config([dataset(root, minimum_image_size=32, delete_unwanted_images=True)],
                       context.registry, context.options)
    ds = plan.datasets[0]
    meta = build_metadata(ds, build_storage(ds, context), context)
    report = meta.scan(progress=False)
    assert (outside / "tiny.png").exists()
    assert not (root / "tiny_inside.png").exists()
    assert report.deleted == {"too_small": 1}
    assert any("linked/tiny.png" in w and "outside" in w for w in report.warnings), \
        report.warnings


def test_hugging_face_path_cells_stay_in_the_dataset_folder(tmp_path: Path) -> None:
    columns = pytest.importorskip("databackend_huggingface.columns")
    write_image(tmp_path / "secret.png", 8, 8)
    root = image_folder(tmp_path / "hf", 1)
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    paths = ["img0.png", "../secret.png", "a/../../secret.png", "out/secret.png"]
    cells = columns.ImageCells([None] * len(paths), list(paths), str(root))
    assert cells.file_of(0) is not None and cells.data(0) is not None
    assert [cells.data(k) for k in range(1, len(paths))] == [None, None, None]
