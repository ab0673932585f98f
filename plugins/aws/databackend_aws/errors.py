"""Turning botocore and urllib3 failures into clear, secret-free databackend errors.

Every message names the dataset id, the bucket and the endpoint. The original botocore
exception is not chained (``from None``): its ``response`` can hold request dumps with
credentials, so the useful parts (error code, HTTP status) are copied onto
:class:`S3StorageError` instead.

A :class:`Breaker` remembers fatal errors (missing bucket, rejected credentials, unreachable
endpoint, and access denied per operation) for a short window, so the requests queued behind a
failing one fail at once with the same error instead of each going through its own retries.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import attrs
from botocore import exceptions as bx

from databackend.pluginapi import StorageError
from databackend_aws.redact import redact

__all__ = ["FATAL_KINDS", "Breaker", "S3StorageError", "Where", "translate"]

log = logging.getLogger(__name__)

#: Seconds a fatal error is remembered before a request is allowed to try again.
BREAKER_WINDOW = 30.0

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "TokenRefreshRequired", "InvalidSecurity"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
              "TooManyRequests", "ServiceUnavailable", "503"}
_UNREACHABLE = (bx.EndpointConnectionError, bx.ConnectTimeoutError)
_NO_CREDENTIALS = (bx.NoCredentialsError, bx.PartialCredentialsError,
                   bx.CredentialRetrievalError)
#: Errors that mean "every request will fail", whatever the key or operation.
_FATAL_FOR_ALL = frozenset({"no_bucket", "credentials", "unreachable"})
#: Kinds marked ``fatal`` (see :class:`databackend.errors.StorageError`): a scan stops on them.
FATAL_KINDS = _FATAL_FOR_ALL | {"access_denied"}


class S3StorageError(StorageError):
    """An S3 request failed; ``kind`` classifies it, ``code``/``status`` come from S3.

    ``fatal`` is True for the kinds in :data:`FATAL_KINDS` (missing bucket, rejected or missing
    credentials, access denied, unreachable endpoint): a metadata scan stops on them.
    """

    def __init__(self, message: str, *, kind: str, code: str | None = None,
                 status: int | None = None, key: str | None = None) -> None:
        """Keep the classification next to the (already secret-free) message."""
        super().__init__(message, fatal=kind in FATAL_KINDS)
        self.kind = kind
        self.code = code
        self.status = status
        self.key = key


@attrs.frozen
class Where:
    """What an error message names: the dataset, bucket, endpoint and the retry budget."""

    dataset_id: str
    bucket: str
    endpoint: str
    attempts: int

    def obj(self, key: str | None) -> str:
        """``s3://bucket/key`` (or just the bucket)."""
        return f"s3://{self.bucket}/{key}" if key is not None else f"s3://{self.bucket}"


def _client_error_fields(exc: bx.ClientError) -> tuple[str, int | None, str]:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code", "") or status or "?"), status, str(error.get("Message", ""))


def _reason(exc: BaseException) -> str:
    """A short cause such as ``[Errno 111] Connection refused`` (never a URL or header)."""
    for text in (str(getattr(exc, "kwargs", {}).get("error", "")), str(exc)):
        found = re.search(r"\[Errno -?\d+\][^'\">)]*", text)
        if found:
            return found.group(0).strip()
    return type(exc).__name__


def _client_error(exc: bx.ClientError, op: str, key: str | None, where: Where
                  ) -> BaseException:
    code, status, message = _client_error_fields(exc)
    head = f"dataset {where.dataset_id!r}:"
    if code in _NOT_FOUND and op != "check":
        return FileNotFoundError(f"{head} {where.obj(key)} does not exist")
    if code == "NoSuchBucket" or (op == "check" and code in _NOT_FOUND):
        return S3StorageError(
            f"{head} S3 bucket {where.bucket!r} does not exist at {where.endpoint}; check "
            "`aws_bucket_name` (and `aws_endpoint_url` / `aws_region_name`)",
            kind="no_bucket", code=code, status=status, key=key)
    if code in _BAD_CREDENTIALS:
        return S3StorageError(
            f"{head} {where.endpoint} rejected the AWS credentials ({code}) for bucket "
            f"{where.bucket!r}; check `aws_access_key_id`, `aws_secret_access_key` and "
            "`aws_session_token`", kind="credentials", code=code, status=status, key=key)
    if code in _DENIED:
        return S3StorageError(
            f"{head} access denied ({code}) to {op} {where.obj(key)} at {where.endpoint}; "
            "check the credentials and the bucket policy",
            kind="access_denied", code=code, status=status, key=key)
    if code == "InvalidRange":
        return S3StorageError(f"{head} range not satisfiable for {where.obj(key)}",
                              kind="range", code=code, status=status, key=key)
    kind = "throttled" if code in _THROTTLED else "server" if (status or 0) >= 500 else "client"
    tail = f" after {where.attempts} attempts" if kind != "client" else ""
    return S3StorageError(
        f"{head} S3 {op} of {where.obj(key)} failed at {where.endpoint}{tail}: {code} "
        f"(HTTP {status}) {redact(message)}".rstrip(),
        kind=kind, code=code, status=status, key=key)


def translate(exc: BaseException, op: str, key: str | None, where: Where) -> BaseException:
    """The databackend error for a failed S3 call (``op`` is read/write/list/...)."""
    head = f"dataset {where.dataset_id!r}:"
    if isinstance(exc, bx.ClientError):
        return _client_error(exc, op, key, where)
    if isinstance(exc, _UNREACHABLE):
        return S3StorageError(
            f"{head} cannot reach the S3 endpoint {where.endpoint} for bucket "
            f"{where.bucket!r} after {where.attempts} attempts ({_reason(exc)}); check "
            "`aws_endpoint_url` and the network", kind="unreachable")
    if isinstance(exc, _NO_CREDENTIALS):
        return S3StorageError(
            f"{head} no usable AWS credentials for bucket {where.bucket!r} "
            f"({type(exc).__name__}); set `aws_access_key_id` and `aws_secret_access_key`, "
            "or configure the default chain (environment, ~/.aws, instance role)",
            kind="credentials")
    if isinstance(exc, bx.ParamValidationError):
        return S3StorageError(f"{head} invalid S3 request for {where.obj(key)}: "
                              f"{redact(str(exc))}", kind="client", key=key)
    return S3StorageError(
        f"{head} S3 {op} of {where.obj(key)} failed at {where.endpoint} after "
        f"{where.attempts} attempts: {type(exc).__name__} ({_reason(exc)})",
        kind="connection", key=key)


class Breaker:
    """Fails fast for a while after a fatal error, so one failure is reported once."""

    def __init__(self, window: float = BREAKER_WINDOW) -> None:
        """``window``: seconds a tripped error stays in force."""
        self.window = window
        self._lock = threading.Lock()
        self._tripped: dict[str, tuple[float, S3StorageError]] = {}

    def check(self, op: str) -> None:
        """Raise the remembered error for ``op`` (or for every op), if still in force."""
        if not self._tripped:
            return
        now = time.monotonic()
        with self._lock:
            for scope in ("*", op):
                until, err = self._tripped.get(scope, (0.0, None))
                if err is not None and now < until:
                    raise S3StorageError(str(err), kind=err.kind, code=err.code,
                                         status=err.status, key=err.key)
                self._tripped.pop(scope, None)

    def forget(self, op: str) -> None:
        """Drop what was remembered for ``op`` (a denial that concerned one object only)."""
        with self._lock:
            self._tripped.pop(op, None)

    def record(self, err: BaseException, op: str) -> None:
        """Remember ``err`` if it is fatal: for all operations, or for ``op`` (access denied)."""
        if not isinstance(err, S3StorageError):
            return
        if err.kind in _FATAL_FOR_ALL:
            scope = "*"
        elif err.kind == "access_denied":
            scope = op
        else:
            return
        with self._lock:
            first = scope not in self._tripped
            self._tripped[scope] = (time.monotonic() + self.window, err)
        if first:
            log.debug("failing fast for %.0f s after: %s", self.window, err)
