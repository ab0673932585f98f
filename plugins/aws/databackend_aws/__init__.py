"""databackend-aws: datasets and caches on Amazon S3 and S3-compatible stores (``"type": "aws"``).

Config keys are SimpleTuner's (``aws_bucket_name``, ``aws_data_prefix``, ``aws_endpoint_url``,
``aws_region_name``, ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``,
``aws_max_pool_connections``) plus retry, timeout and listing settings; see ``docs/aws.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from databackend import StorageBackend, hookimpl
from databackend_aws.backend import S3Backend
from databackend_aws.config import AwsConfig
from databackend_aws.errors import S3StorageError

__all__ = ["AwsConfig", "S3Backend", "S3StorageError", "databackend_register_backends"]


@hookimpl
def databackend_register_backends() -> Sequence[type[StorageBackend]]:
    """Register the ``aws`` backend type."""
    return [S3Backend]
