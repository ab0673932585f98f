"""The marker plugins use on their hook implementations (re-exported as ``databackend.hookimpl``)."""

from __future__ import annotations

import pluggy

__all__ = ["hookimpl"]

#: Decorator to mark databackend plugin hook implementations.
hookimpl = pluggy.HookimplMarker("databackend")
