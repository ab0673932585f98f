"""Helpers for the plugin API tests: the import-boundary checker and zip datasets."""

from __future__ import annotations

import ast
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The one core module a plugin may import.
PUBLIC = "databackend.pluginapi"


def plugin_sources() -> Iterator[Path]:
    """Every Python file of every plugin package in the repository (shipped code only)."""
    for pattern in ("plugins/*/databackend_*/**/*.py", "tests/plugins/*/databackend_*/**/*.py"):
        yield from sorted(ROOT.glob(pattern))


def core_imports(source: str) -> list[str]:
    """The ``databackend`` modules (or ``module.name``) a source file imports, anywhere in the
    file (``TYPE_CHECKING`` blocks and function bodies included)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "databackend"]
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] == "databackend"):
            found.append(node.module if node.module != "databackend"
                         else "databackend." + ",".join(a.name for a in node.names))
    return found


def boundary_violations(source: str) -> list[str]:
    """Core imports other than :data:`PUBLIC`."""
    return [m for m in core_imports(source) if m != PUBLIC]


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """A small real PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (seed * 40 % 256, 90, 160)).save(buf, "PNG")
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, tuple[bytes, str]]) -> Path:
    """A zip archive of ``{name: (bytes, comment)}``."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, (data, comment) in members.items():
            info = zipfile.ZipInfo(name)
            info.comment = comment.encode()
            zf.writestr(info, data)
    return path
