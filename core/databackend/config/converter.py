"""A strict cattrs converter: no silent ``"false" -> True`` or ``"12" -> 12`` coercions.

Errors are turned into one line per key: ``key: expected int, got str "12"``. The value is
left out for keys that hold credentials (``*secret*``, ``*token*``, ``*password*``, ...), so a
mistyped secret never reaches an error message or a log.
"""

from __future__ import annotations

import re
from typing import Any

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

__all__ = ["make_converter", "structure_errors"]

_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}
_SECRET_KEY = re.compile(r"secret|token|passw|credential|access_key|api_key|private", re.I)


class _Mismatch(ValueError):
    """A value of the wrong JSON type; the key decides whether the value may be shown."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(f"expected {expected}, got {type(value).__name__} {value!r}")
        self.expected, self.value = expected, value

    def describe(self, key: str) -> str:
        """The message, with the value hidden when ``key`` holds a credential."""
        if _SECRET_KEY.search(key):
            return f"expected {self.expected}, got {type(self.value).__name__} (value hidden)"
        return str(self)


def _strict_hook(target: type) -> Any:
    def hook(value: Any, _: Any) -> Any:
        """Accept only values of the exact JSON type (ints widen to float)."""
        if target is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if type(value) is not target:
            raise _Mismatch(_NAMES[target], value)
        return value
    return hook


def _dict_hook(value: Any, _: Any) -> Any:
    if not isinstance(value, dict):
        raise _Mismatch("an object", value)
    return value


def _list_hook(value: Any, _: Any) -> Any:
    if not isinstance(value, list):
        raise _Mismatch("a list", value)
    return value


def make_converter() -> cattrs.Converter:
    """A fresh converter with strict scalar hooks (never a shared global one)."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    for target in (bool, int, float, str):
        conv.register_structure_hook(target, _strict_hook(target))
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _dict_hook)
    conv.register_structure_hook_func(lambda t: t == list[Any], _list_hook)
    return conv


def _format(exc: BaseException, path: str) -> str:
    key = path.removeprefix("$").lstrip(".") or "?"
    if isinstance(exc, _Mismatch):
        return f"`{key}`: {exc.describe(key)}"
    if isinstance(exc, KeyError):
        return f"`{key}`: required key is missing"
    return f"`{key}`: {type(exc).__name__}: {exc}"


def structure_errors(exc: BaseException) -> list[str]:
    """Flatten a cattrs validation error group into ``key: message`` lines."""
    if isinstance(exc, ForbiddenExtraKeysError):
        return [f"`{k}`: unknown key" for k in sorted(exc.extra_fields)]
    if not isinstance(exc, ClassValidationError):
        return [f"{type(exc).__name__}: {exc}"]
    with_notes, without = exc.group_exceptions()
    out: list[str] = []
    for sub, note in with_notes:
        if isinstance(sub, ClassValidationError):
            out.extend(f"{note.name}.{line}" for line in structure_errors(sub))
        else:
            out.append(_format(sub, f"$.{note.name}"))
    for sub in without:
        out.extend(structure_errors(sub))
    return out
