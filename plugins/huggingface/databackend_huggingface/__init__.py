"""databackend-huggingface: storage plugin (registers nothing yet)."""

from __future__ import annotations
