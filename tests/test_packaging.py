"""Packaging: wheels and sdists of all five distributions, built with the real build backend
(hatchling, in the dev dependency group), checked for what a published release needs."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: (project folder, distribution, import package, its entry point in the `databackend` group)
DISTS = [(".", "databackend", "databackend", None),
         ("plugins/local", "databackend_local", "databackend_local", "local"),
         ("plugins/aws", "databackend_aws", "databackend_aws", "aws"),
         ("plugins/csv", "databackend_csv", "databackend_csv", "csv"),
         ("plugins/huggingface", "databackend_huggingface", "databackend_huggingface",
          "huggingface")]
OUR_DISTS = re.compile(r"^databackend(-[a-z]+)?\b")


def _source_version(folder: str, package: str) -> str:
    base = ROOT / folder / ("core" if folder == "." else "")
    text = (base / package / "_version.py").read_text()
    found = re.search(r'__version__ = "([^"]+)"', text)
    assert found, f"no __version__ in {package}/_version.py"
    return found.group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import importlib.util

    assert importlib.util.find_spec("hatchling"), "hatchling (dev group) missing: run make venv"
    out = tmp_path_factory.mktemp("dist")
    for folder, *_ in DISTS:
        subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-t", "sdist",
                        "-d", str(out)], cwd=ROOT / folder, check=True, capture_output=True,
                       timeout=300)
    return out


def _metadata(wheel: zipfile.ZipFile) -> tuple[str, dict[str, list[str]]]:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    msg = Parser().parsestr(wheel.read(name).decode())
    return name.split("/")[0], {k: msg.get_all(k) or [] for k in
                                ("Version", "Requires-Dist", "Provides-Extra", "License-File")}


@pytest.mark.parametrize(("folder", "dist", "package", "entry"), DISTS)
def test_wheel(built: Path, folder: str, dist: str, package: str, entry: str | None) -> None:
    version = _source_version(folder, package)
    wheel = zipfile.ZipFile(built / f"{dist}-{version}-py3-none-any.whl")
    names = set(wheel.namelist())
    info, meta = _metadata(wheel)
    assert meta["Version"] == [version]  # one source: the package's _version.py
    assert f"{info}/licenses/LICENSE" in names and meta["License-File"] == ["LICENSE"]
    assert f"{package}/py.typed" in names
    points = wheel.read(f"{info}/entry_points.txt").decode()
    if entry is not None:
        assert f"[databackend]\n{entry} = {package}\n" in points
        assert "test" in meta["Provides-Extra"]
    else:
        assert "databackend = databackend.cli:main" in points and "[pytest11]" in points
        assert {"local", "aws", "csv", "huggingface", "all"} <= set(meta["Provides-Extra"])
        assert "dev" not in meta["Provides-Extra"]  # dev tools are a dependency group
    ours = [r for r in meta["Requires-Dist"] if OUR_DISTS.match(r)]
    assert ours and all("<" in r for r in ours), ours  # bounded ranges between our dists
    assert all(".pyc" not in n and "/tests/" not in n for n in names)


def test_sdists_hold_what_a_build_needs(built: Path, tmp_path: Path) -> None:
    """Each sdist has the sources, pyproject, README and LICENSE; the core's builds into the
    same wheel as the source tree."""
    for folder, dist, package, _ in DISTS:
        version = _source_version(folder, package)
        with tarfile.open(built / f"{dist}-{version}.tar.gz") as tar:
            names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
            if dist == "databackend":
                tar.extractall(tmp_path, filter="data")
        prefix = "core/" if folder == "." else ""
        assert {"pyproject.toml", "LICENSE", "PKG-INFO", f"{prefix}{package}/__init__.py",
                f"{prefix}{package}/py.typed"} <= names, dist
        assert not any(n.startswith((".venv", "build/")) for n in names)
    source = tmp_path / f"databackend-{_source_version('.', 'databackend')}"
    subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d",
                    str(tmp_path / "again")], cwd=source, check=True, capture_output=True,
                   timeout=300)
    again = zipfile.ZipFile(next((tmp_path / "again").glob("*.whl")))
    first = zipfile.ZipFile(next(built.glob("databackend-*.whl")))
    assert sorted(again.namelist()) == sorted(first.namelist())
