"""Keeping credentials out of log records and messages.

botocore logs full HTTP requests at DEBUG: the ``Authorization`` header (which names the access
key id) and ``X-Amz-Security-Token`` (the session token itself), and its canonical request
dumps repeat them. :func:`install_log_redaction` wraps the process's log-record factory once so
that records from the ``botocore``, ``boto3``, ``s3transfer``, ``urllib3`` and ``databackend``
loggers have every registered secret, and those two headers, replaced by ``***`` before any
handler sees them. Records are only created for enabled levels, so this costs nothing when
DEBUG logging is off.

The registry of secrets is process-wide because logging is: it holds the values of the
configs that built an :class:`~databackend_aws.backend.S3Backend` (values already in memory).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["MASK", "install_log_redaction", "redact", "register_secrets"]

MASK = "***"
_WATCHED = ("botocore", "boto3", "s3transfer", "urllib3", "databackend")
_MIN_SECRET = 4  # shorter values would mask unrelated text and are not real credentials
_HEADER_PATTERNS = (
    # header dicts in botocore's request dumps: 'X-Amz-Security-Token': b'...'
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,}]+"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*b?['\"]?)[^'\"}]+"),
    re.compile(r"(?i)(credential=)[^,\s'\"]+"),
    re.compile(r"(?i)(<AWSAccessKeyId>)[^<]+"),
)


class _Registry:
    """The secrets to mask; a lock guards updates, reads use an immutable snapshot."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: tuple[str, ...] = ()
        self.previous_factory: Any = None


_REGISTRY = _Registry()


def register_secrets(values: list[str]) -> None:
    """Add secret strings to mask (longest first, so no secret is half-masked)."""
    new = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET}
    with _REGISTRY.lock:
        merged = set(_REGISTRY.values) | new
        _REGISTRY.values = tuple(sorted(merged, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with registered secrets and credential-bearing headers masked."""
    for secret in _REGISTRY.values:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _HEADER_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def _scrub(record: logging.LogRecord) -> None:
    """Mask the formatted message and any exception text of a record, in place."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging's own error path
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record: logging.LogRecord = _REGISTRY.previous_factory(*args, **kwargs)
    if record.name.startswith(_WATCHED):
        _scrub(record)
    return record


def install_log_redaction() -> None:
    """Wrap the log-record factory once (idempotent; keeps any factory installed before)."""
    with _REGISTRY.lock:
        if _REGISTRY.previous_factory is not None:
            return
        _REGISTRY.previous_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_factory)
