"""databackend-aws: storage plugin (registers nothing yet)."""

from __future__ import annotations
