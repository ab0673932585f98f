"""``{variable}`` filling in config strings: ``{output_dir}``, ``{model_family}``, ``{id}``,
``{env:VAR}`` and any user-given ``--var k=v``. An unfilled variable is an error, not a silent
literal."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["fill_variables", "mask_env_values"]

_PATTERN = re.compile(r"\{(env:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)\}")


def _fill_string(text: str, variables: Mapping[str, str], where: str, problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        """The value of one ``{name}``, or the text unchanged after recording a problem."""
        name = match.group(1)
        if name.startswith("env:"):
            value = os.environ.get(name[4:])
            if value is None:
                problems.append(f"{where}: environment variable {name[4:]!r} (in {{{name}}}) "
                                "is not set")
                return match.group(0)
            return value
        if name in variables:
            return variables[name]
        known = ", ".join(sorted(variables)) + ", env:VAR"
        problems.append(f"{where}: unknown variable {{{name}}}; known: {known} "
                        "(add more with --var name=value)")
        return match.group(0)

    return _PATTERN.sub(replace, text)


def _key_path(where: str, key: str) -> str:
    """``dataset 'x'`` + ``k`` -> ``dataset 'x': `k```; nested keys join with dots."""
    if where.endswith("`"):
        return f"{where[:-1]}.{key}`"
    return f"{where}: `{key}`"


def fill_variables(value: Any, variables: Mapping[str, str], where: str,
                   problems: list[str]) -> Any:
    """Return ``value`` with every ``{name}`` in its strings (recursively) replaced.

    :param where: prefix for problem lines, e.g. ``dataset 'pets': `cache_dir_vae```.
    :param problems: list that receives one line per unfilled variable.
    """
    if isinstance(value, str):
        return _fill_string(value, variables, where, problems)
    if isinstance(value, list):
        return [fill_variables(v, variables, where, problems) for v in value]
    if isinstance(value, dict):
        return {k: fill_variables(v, variables, _key_path(where, k), problems)
                for k, v in value.items()}
    return value


def _env_names(value: Any, out: set[str]) -> None:
    if isinstance(value, str):
        out.update(m.group(1)[4:] for m in _PATTERN.finditer(value)
                   if m.group(1).startswith("env:"))
    elif isinstance(value, dict):
        for item in value.values():
            _env_names(item, out)
    elif isinstance(value, list):
        for item in value:
            _env_names(item, out)


def mask_env_values(lines: list[str], raw: Any) -> list[str]:
    """``lines`` with every value that came from an ``{env:VAR}`` placeholder of ``raw`` put
    back as the placeholder, so no message echoes a secret (values under 4 characters are
    left alone: they are not credentials and would mask unrelated text)."""
    names: set[str] = set()
    _env_names(raw, names)
    values = sorted(((os.environ[n], f"{{env:{n}}}") for n in names
                     if len(os.environ.get(n, "")) >= 4), key=lambda p: -len(p[0]))
    if not values:
        return lines
    out = []
    for line in lines:
        for value, placeholder in values:
            line = line.replace(value, placeholder).replace(repr(value)[1:-1], placeholder)
        out.append(line)
    return out
