"""Why a video could not be read or decoded; `reason` becomes the dead-letter record's machine-readable class."""

from __future__ import annotations

from services.common.errors import PermanentError, TransientError


class DecodeError(PermanentError):
    """The source or its bytes can never be decoded as they are (not allowed, corrupt, over a limit)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason)


class SourceUnavailable(TransientError):
    """The source's server failed or the network dropped: the same read may succeed later."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason)
