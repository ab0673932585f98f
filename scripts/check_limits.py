#!/usr/bin/env python3
"""Fail when library code breaks the size and documentation limits of the design.

Limits: files <= 500 lines, functions <= 50 lines, every public function fully annotated and
documented, every public class and module documented. Tests, benchmarks and docs are exempt.
Usage: check_limits.py DIR [DIR ...]; exits 1 listing every violation.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SKIP = {"tests", "benchmarks", "docs", "build", "dist", ".venv"}
MAX_FILE, MAX_FUNC = 500, 50


def _public(name: str) -> bool:
    return not name.startswith("_")


def _annotated(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    params = [a for a in args if a.arg not in ("self", "cls")]
    star = [a for a in (fn.args.vararg, fn.args.kwarg) if a is not None]
    return fn.returns is not None and all(a.annotation is not None for a in params + star)


def _check_defs(tree: ast.Module, rel: str) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNC:
                out.append(f"{rel}:{node.lineno}: function {node.name} has {length} lines")
            if _public(node.name) and not node.name.startswith("test_"):
                if not _annotated(node):
                    out.append(f"{rel}:{node.lineno}: public {node.name} lacks type hints")
                if ast.get_docstring(node) is None and node.name != "__init__":
                    out.append(f"{rel}:{node.lineno}: public {node.name} lacks a docstring")
        elif isinstance(node, ast.ClassDef) and _public(node.name) \
                and ast.get_docstring(node) is None:
            out.append(f"{rel}:{node.lineno}: public class {node.name} lacks a docstring")
    return out


def check_file(path: Path, root: Path) -> list[str]:
    """Every violation in one file."""
    rel = str(path.relative_to(root))
    text = path.read_text(encoding="utf-8")
    out = []
    lines = text.count("\n") + 1  # as ../shared/tools/quality.py counts
    if lines > MAX_FILE:
        out.append(f"{rel}: {lines} lines (limit {MAX_FILE})")
    tree = ast.parse(text)
    if ast.get_docstring(tree) is None:
        out.append(f"{rel}: module lacks a docstring")
    return out + _check_defs(tree, rel)


def main(argv: list[str]) -> int:
    """Check the given folders; print violations; return 1 if there are any."""
    root = Path.cwd()
    problems: list[str] = []
    for top in argv or ["."]:
        for path in sorted(Path(top).rglob("*.py")):
            if SKIP & set(path.parts):
                continue
            problems += check_file(path.resolve(), root)
    for line in problems:
        print(line)
    print(f"check_limits: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
