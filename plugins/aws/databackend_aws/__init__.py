"""databackend-aws: datasets and caches on Amazon S3 and S3-compatible stores (``"type": "aws"``).

Config keys are SimpleTuner's (``aws_bucket_name``, ``aws_data_prefix``, ``aws_endpoint_url``,
``aws_region_name``, ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``,
``aws_max_pool_connections``) plus retry, timeout and listing settings; see ``docs/aws.md``.

Registration imports only the config class: boto3 loads when a dataset is built (or when
:class:`S3Backend` is first accessed here).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from databackend.pluginapi import BackendType, hookimpl
from databackend_aws.config import AwsConfig

if TYPE_CHECKING:
    from databackend_aws.backend import S3Backend
    from databackend_aws.errors import S3StorageError

__all__ = ["DATABACKEND_PLUGIN_API", "AwsConfig", "S3Backend", "S3StorageError",
           "databackend_register_backends"]

#: The plugin API this plugin is built for (checked by the core at load time).
DATABACKEND_PLUGIN_API = "1.0"
_LAZY = {"S3Backend": "databackend_aws.backend", "S3StorageError": "databackend_aws.errors"}


def _location(config: Any) -> str | None:
    """``bucket/prefix``."""
    prefix = (getattr(config, "aws_data_prefix", "") or "").strip("/")
    return f"{config.aws_bucket_name}/{prefix}" if prefix else str(config.aws_bucket_name)


#: The ``aws`` type: declarations here, implementation loaded on first build.
AWS = BackendType(name="aws", Config=AwsConfig, implementation="databackend_aws.backend:S3Backend",
                  ignored_keys={"aws"}, install_hint="pip install databackend-aws",
                  location=_location)


@hookimpl
def databackend_register_backends() -> Sequence[BackendType]:
    """Register the ``aws`` backend type."""
    return [AWS]


def __getattr__(name: str) -> Any:
    """Load the boto3-backed names on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'databackend_aws' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
