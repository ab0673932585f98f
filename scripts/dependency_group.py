"""Print a PEP 735 dependency group of pyproject.toml, one requirement a line.

``make venv`` and ``.ci/run`` install the ``dev`` group with it (``pip install -r``), which works
with any pip; pip >= 25.1 can also do ``pip install --group dev``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib


def group(name: str, pyproject: Path) -> list[str]:
    """The requirements of group ``name`` (``{include-group = ...}`` entries expanded)."""
    groups = tomllib.loads(pyproject.read_text())["dependency-groups"]
    out: list[str] = []
    for item in groups[name]:
        out += group(item["include-group"], pyproject) if isinstance(item, dict) else [item]
    return out


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print("\n".join(group(sys.argv[1] if len(sys.argv) > 1 else "dev", root / "pyproject.toml")))
