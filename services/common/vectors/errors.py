"""Milvus failures sorted into the error tree: what a retry can fix, and what it never will.

Codes are Milvus's own (`common.proto` ErrorCode / the 2.3+ merr codes): the server says when data is
invalid (a VARCHAR longer than its column, a vector of the wrong dimension); everything else (unreachable,
rate-limited, a collection released or not yet created after a restart) is transient.
"""

from __future__ import annotations

import re

from pymilvus import MilvusException
from pymilvus.exceptions import (
    DataNotMatchException,
    DataTypeNotMatchException,
    DataTypeNotSupportException,
    FieldsTypeException,
    FieldTypeException,
    ParamError,
    PrimaryKeyException,
)

from services.common.errors import ClipstreamError, PermanentError, TransientError

COLLECTION_NOT_FOUND = 100
COLLECTION_NOT_LOADED = 101
# illegal argument / invalid data (2.2-2.3 ErrorCode 5-6, 2.4 merr 1100-1101: parameter invalid/missing)
_PERMANENT_CODES = frozenset({5, 6, 1100, 1101})
_PERMANENT_TYPES = (
    ParamError,
    DataNotMatchException,
    DataTypeNotMatchException,
    DataTypeNotSupportException,
    FieldsTypeException,
    FieldTypeException,
    PrimaryKeyException,
)
_RELEASED = re.compile(r"collection '?([A-Za-z0-9_]+)'? is in state 'released'|not loaded", re.IGNORECASE)


def classify(exc: MilvusException) -> ClipstreamError:
    message = str(getattr(exc, "message", "") or exc)
    if isinstance(exc, _PERMANENT_TYPES) or getattr(exc, "code", None) in _PERMANENT_CODES:
        return PermanentError(f"Milvus refused the rows: {message}", reason="milvus_rejected")
    return TransientError(f"Milvus: {message}", reason="milvus_unavailable")


def released_collection(exc: MilvusException) -> str | None:
    """The collection a "call load() first" error names ("" when it names none); None for other errors."""
    if getattr(exc, "code", None) != COLLECTION_NOT_LOADED and not _RELEASED.search(str(exc)):
        return None
    found = _RELEASED.search(str(exc))
    return found.group(1) or "" if found else ""
