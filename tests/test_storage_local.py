"""The local backend and the core LocalDirectory pass the storage conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from databackend.storage.localdir import LocalDirectory
from databackend.testing import StorageConformance
from databackend_local import LocalBackend, LocalConfig


class TestLocalDirectory(StorageConformance):
    """Core's directory storage."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalDirectory:
        return LocalDirectory(root=str(tmp_path / "store"))


class TestLocalBackend(StorageConformance):
    """The ``local`` plugin backend rooted at ``instance_data_dir``."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> LocalBackend:
        (tmp_path / "data").mkdir()
        return LocalBackend(LocalConfig(instance_data_dir=str(tmp_path / "data")), dataset_id="t")


def test_missing_folder_names_dataset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dataset 'pets'.*does not exist"):
        LocalBackend(LocalConfig(instance_data_dir=str(tmp_path / "nope")), dataset_id="pets")


def test_symlink_cycle_and_ignored_dirs(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"1")
    (root / "a" / "loop").symlink_to(root)
    (root / ".Trashes").mkdir()
    (root / ".Trashes" / "y.jpg").write_bytes(b"2")
    backend = LocalDirectory(root=str(root))
    assert [f.path for f in backend.list()] == ["a/x.jpg"]


def test_failed_write_leaves_old_content(tmp_path: Path) -> None:
    backend = LocalDirectory(root=str(tmp_path))
    backend.write("f.bin", b"old")

    with pytest.raises(TypeError):
        backend.write("f.bin", 123)  # type: ignore[arg-type]
    assert backend.read("f.bin") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
