"""Install hints for backend types that are not installed, read from distribution metadata.

The core distribution publishes one extra per backend type it knows a distribution for
(``databackend[aws]`` requires ``databackend-aws``); a missing ``type: aws`` therefore says
``pip install databackend-aws``. No list of type names lives in the code: a new first- or
third-party plugin gets a hint by adding an extra to the core's ``pyproject.toml``.
"""

from __future__ import annotations

import functools
import re
from importlib import metadata

__all__ = ["extra_requirements", "install_hint"]

_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@functools.lru_cache(maxsize=1)
def extra_requirements(distribution: str = "databackend") -> dict[str, tuple[str, ...]]:
    """``{extra: (distribution names it requires...)}`` of an installed distribution."""
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, list[str]] = {}
    for req in requires:
        extra, name = _EXTRA.search(req), _NAME.match(req)
        if extra and name:
            out.setdefault(extra.group(1), []).append(name.group(1))
    return {k: tuple(v) for k, v in out.items()}


def install_hint(backend_type: str) -> str | None:
    """``pip install databackend-x`` when the core's extra ``backend_type`` names exactly one
    plugin distribution, else None."""
    names = [n for n in extra_requirements().get(backend_type, ()) if n != "databackend"]
    return f"pip install {names[0]}" if len(names) == 1 else None
