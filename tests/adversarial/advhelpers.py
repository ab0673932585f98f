"""Shared helpers of the adversarial tests: folder snapshots, configs, the CLI in-process."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from imagefiles import write_image

from databackend.cli import main


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under ``root`` (links not followed): kind, size and content hash, so a test
    can assert that nothing in a dataset folder changed."""
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = ("link", 0, os.readlink(path))
            elif os.path.isfile(path) and not os.path.islink(path):
                out[rel] = ("file", st.st_size, hashlib.sha256(Path(path).read_bytes()).hexdigest())
            else:
                out[rel] = ("other", 0, oct(st.st_mode))
    return out


def image_folder(root: Path, n: int = 3, *, size: int = 64) -> Path:
    """``n`` small PNG images under ``root``."""
    for i in range(n):
        write_image(root / f"img{i}.png", size, size, seed=i)
    return root


def dataset(root: Path, **extra: Any) -> dict[str, Any]:
    """A small local dataset entry (64 px pixel buckets)."""
    return {"id": "ds", "type": "local", "instance_data_dir": str(root), "resolution": 64,
            "resolution_type": "pixel", "crop": True, "crop_style": "center",
            "aspect_bucket_alignment": 16, "caption_strategy": "filename", **extra}


def write_config(path: Path, entries: Any) -> Path:
    """Write ``entries`` as JSON."""
    path.write_text(json.dumps(entries))
    return path


def cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in-process; ``(exit status, stdout + stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()
