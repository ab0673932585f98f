"""The ``aws`` backend's config keys (SimpleTuner names) and their validation.

SimpleTuner keys: ``aws_bucket_name`` (required), ``aws_data_prefix``, ``aws_endpoint_url``,
``aws_region_name``, ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token`` and
``aws_max_pool_connections``. databackend adds the retry, timeout and listing settings below; all
are optional. The three credential keys are secrets: they are left out of ``repr`` and are never
echoed by :meth:`AwsConfig.problems`, whatever their value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs

__all__ = ["RETRY_MODES", "SECRET_KEYS", "AwsConfig", "normalise_prefix", "safe_url"]

#: botocore retry modes (``legacy`` is accepted for completeness; ``standard`` is the default).
RETRY_MODES = ("standard", "adaptive", "legacy")
#: The config keys whose values are secrets (never logged, printed or put in messages).
SECRET_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
_SECRET = {"secret": True}


def safe_url(url: str | None) -> str | None:
    """``url`` with any ``user:password@`` removed and its query string replaced by ``...``
    (signed or token-bearing endpoints carry credentials there), for messages and logs."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.username is None and parts.password is None and not parts.query:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _url_repr(url: str | None) -> str:
    return repr(safe_url(url))


@attrs.frozen(kw_only=True)
class AwsConfig:
    """Keys of an ``aws`` dataset or cache entry.

    Credentials: give ``aws_access_key_id`` with ``aws_secret_access_key`` (and optionally
    ``aws_session_token``), or none of them to use boto3's default credential chain
    (environment, ``~/.aws``, instance or container role). ``aws_endpoint_url`` is only needed
    for S3-compatible stores (MinIO, Cloudflare R2, Ceph).
    """

    aws_bucket_name: str
    aws_data_prefix: str | None = ""
    aws_endpoint_url: str | None = attrs.field(default=None, repr=_url_repr)
    aws_region_name: str | None = None
    # Secrets: hidden from repr; typed Any so that a value of the wrong type reaches
    # problems() (which never prints it) instead of a structuring error that would quote it.
    aws_access_key_id: Any = attrs.field(default=None, repr=False, metadata=_SECRET)
    aws_secret_access_key: Any = attrs.field(default=None, repr=False, metadata=_SECRET)
    aws_session_token: Any = attrs.field(default=None, repr=False, metadata=_SECRET)
    #: HTTP connections kept open; also the number of concurrent requests (``io_concurrency``).
    aws_max_pool_connections: int = 64
    #: botocore retry mode for throttling, 5xx and connection errors.
    aws_retry_mode: str = "standard"
    #: Attempts per request, the first included (botocore ``max_attempts``).
    aws_max_attempts: int = 5
    aws_connect_timeout: float = 5.0
    aws_read_timeout: float = 60.0
    #: Keys per ``ListObjectsV2`` page (S3 caps it at 1000).
    aws_list_page_size: int = 1000

    def secrets(self) -> list[str]:
        """The secret values that are set (for log redaction)."""
        values = [getattr(self, key) for key in SECRET_KEYS]
        if isinstance(self.aws_endpoint_url, str):
            values.append(urlsplit(self.aws_endpoint_url).password)
        return [v for v in values if isinstance(v, str) and v]

    def problems(self) -> list[str]:
        """Every invalid value, one line each; secret values are never quoted."""
        return [*self._bucket_problems(), *self._credential_problems(),
                *self._endpoint_problems(), *self._tuning_problems()]

    def _bucket_problems(self) -> list[str]:
        name = self.aws_bucket_name
        if not isinstance(name, str) or not name.strip():
            return ["`aws_bucket_name` must be a non-empty bucket name"]
        if name.startswith("s3://") or "/" in name:
            bucket, _, prefix = name.removeprefix("s3://").partition("/")
            return [f"`aws_bucket_name` must be a bare bucket name; got {name!r} (use "
                    f"\"aws_bucket_name\": {bucket!r}, \"aws_data_prefix\": {prefix!r})"]
        if name != name.strip():
            return [f"`aws_bucket_name` has leading or trailing spaces: {name!r}"]
        return []

    def _credential_problems(self) -> list[str]:
        out = [f"`{key}` must be a string" for key in SECRET_KEYS
               if getattr(self, key) is not None and not isinstance(getattr(self, key), str)]
        if out:
            return out
        key_id, secret = bool(self.aws_access_key_id), bool(self.aws_secret_access_key)
        if key_id != secret:
            given, missing = (("aws_access_key_id", "aws_secret_access_key") if key_id
                              else ("aws_secret_access_key", "aws_access_key_id"))
            out.append(f"`{given}` is set but `{missing}` is not; give both, or neither to use "
                       "the default AWS credential chain")
        if self.aws_session_token and not key_id:
            out.append("`aws_session_token` needs `aws_access_key_id` and "
                       "`aws_secret_access_key`")
        return out

    def _endpoint_problems(self) -> list[str]:
        url = self.aws_endpoint_url
        if url is None:
            return []
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return [f"`aws_endpoint_url` must be an http(s) URL such as "
                    f"'https://minio.example:9000'; got {safe_url(url)!r}"]
        return []

    def _tuning_problems(self) -> list[str]:
        out = []
        if self.aws_retry_mode not in RETRY_MODES:
            out.append(f"`aws_retry_mode` must be one of {', '.join(RETRY_MODES)}; "
                       f"got {self.aws_retry_mode!r}")
        for key in ("aws_max_pool_connections", "aws_max_attempts"):
            if getattr(self, key) < 1:
                out.append(f"`{key}` must be >= 1; got {getattr(self, key)}")
        for key in ("aws_connect_timeout", "aws_read_timeout"):
            if getattr(self, key) <= 0:
                out.append(f"`{key}` must be > 0 seconds; got {getattr(self, key)}")
        if not 1 <= self.aws_list_page_size <= 1000:
            out.append(f"`aws_list_page_size` must be 1..1000; got {self.aws_list_page_size}")
        return out


def normalise_prefix(*parts: str | None) -> str:
    """Join key prefixes: ``("data", "/cache/vae/")`` -> ``"data/cache/vae/"``; ``""`` for none.

    Leading and trailing slashes and empty segments are dropped, so ``"images"``,
    ``"images/"`` and ``"/images"`` all mean the folder ``images/`` of the bucket.
    """
    segments = [s for part in parts if part for s in part.split("/") if s]
    return "/".join(segments) + "/" if segments else ""
