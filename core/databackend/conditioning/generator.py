"""The conditioning generator interface and the registry of installed generators.

A generator turns one source image into one conditioning image (an edge map, a degraded copy, a
mask, ...). Generators are contributed by plugins through the
``databackend_register_conditioning_generators`` hook (the built-ins use the same hook), and
selected by a dataset's ``conditioning`` block (``{"type": "canny", ...}``).

Every output is a pure function of ``(generator identity, seed, source sample)``: the generator
gets a NumPy generator seeded from those values and must draw all its randomness from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pluggy

from databackend.errors import PluginLoadError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["ConditioningGenerator", "generator_classes"]


class ConditioningGenerator:
    """Base class of conditioning generators (subclass it in a plugin).

    Class attributes: ``name`` (the ``type`` value), ``aliases`` (other accepted spellings),
    ``defaults`` (every parameter with its default: other keys are config errors), ``version``
    (bump it when the output for the same parameters changes: outputs are regenerated) and
    ``extension`` (the output file format). ``params`` holds the defaults overridden by the
    config's values.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[Mapping[str, Any]] = {}
    version: ClassVar[int] = 1
    extension: ClassVar[str] = "png"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        """Merge ``params`` over :attr:`defaults` (call :meth:`problems` first to validate)."""
        self.params: dict[str, Any] = {**self.defaults, **dict(params or {})}

    @classmethod
    def problems(cls, params: Mapping[str, Any]) -> list[str]:
        """Every problem with ``params`` (unknown keys, then :meth:`check`), one line each."""
        unknown = sorted(set(params) - set(cls.defaults))
        out = [f"unknown parameter `{k}` (known: {', '.join(sorted(cls.defaults)) or 'none'})"
               for k in unknown]
        if not unknown:
            out += cls({k: v for k, v in params.items()}).check()
        return out

    def check(self) -> list[str]:
        """Value problems of :attr:`params` (override to validate ranges and choices)."""
        return []

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this generator cannot run in this environment (a missing package or model),
        or None. Checked at config time, so a missing model is a config error, not a crash
        once training runs."""
        return None

    def identity(self) -> str:
        """What the outputs depend on besides the seed and the sample: name, version and
        parameters (a short hash of them)."""
        doc = json.dumps([self.name, self.version, self.params], sort_keys=True, default=str)
        return f"{self.name}-v{self.version}-{hashlib.sha256(doc.encode()).hexdigest()[:16]}"

    def generate(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """The conditioning image for ``image`` (RGB, full resolution, EXIF applied).

        Return an image of the same size; draw every random choice from ``rng``.
        """
        raise NotImplementedError


def generator_classes(pm: pluggy.PluginManager) -> dict[str, type[ConditioningGenerator]]:
    """Every installed generator by name and alias (duplicate names are a PluginLoadError)."""
    from databackend.registry import _collect

    hook = getattr(pm.hook, "databackend_register_conditioning_generators", None)
    if hook is None:
        return {}
    found = _collect(pm, hook, "conditioning generator")
    out = {name: cls for name, (cls, _) in found.items()}
    for name, (cls, _) in found.items():
        for alias in getattr(cls, "aliases", ()):
            if alias in out and out[alias] is not cls:
                raise PluginLoadError(f"conditioning generator alias {alias!r} of {name!r} is "
                                      f"already a name of {out[alias].__qualname__}")
            out[alias] = cls
    return out

