"""Configuration: attrs models, strict parsing, variables, validation and dependency order."""

from __future__ import annotations

from databackend.config.loader import load_config, parse_entries, read_json
from databackend.config.models import (
    BaseBackendConfig,
    ImageBackendConfig,
    ImageEmbedBackendConfig,
    TextEmbedBackendConfig,
)
from databackend.config.plan import DataPlan

__all__ = [
    "BaseBackendConfig",
    "DataPlan",
    "ImageBackendConfig",
    "ImageEmbedBackendConfig",
    "TextEmbedBackendConfig",
    "load_config",
    "parse_entries",
    "read_json",
]
