"""The one error tree every package raises from.

A stage decides what to do with a failed message by its family alone: a `TransientError` (a dependency is
unavailable, the same message may succeed later) is retried with backoff, a bounded number of times, then
dead-lettered with its history; a `PermanentError` (the message or its input can never succeed) is
dead-lettered at once. `reason` is machine-readable: it becomes the dead-letter record's `reason` and the
API's error code, so operators can count and route failures without parsing text.
"""

from __future__ import annotations


class ClipstreamError(Exception):
    reason: str = "error"

    def __init__(self, detail: str, reason: str | None = None) -> None:
        if reason is not None:
            self.reason = reason
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail

    def __reduce__(self) -> tuple[object, ...]:
        # errors cross process boundaries (decoding runs in a child): rebuild from the fields, whatever
        # signature a subclass gives its constructor
        return (_rebuild, (type(self), self.detail, self.reason))


def _rebuild(cls: type[ClipstreamError], detail: str, reason: str) -> ClipstreamError:
    error = cls.__new__(cls)
    ClipstreamError.__init__(error, detail, reason)
    return error


class TransientError(ClipstreamError):
    """A dependency is unavailable: retry the same work later; nothing it covers is committed meanwhile."""

    reason = "unavailable"


class PermanentError(ClipstreamError):
    """The input itself can never be processed: dead-letter it (or answer 4xx) with the reason."""

    reason = "rejected"


# Families an HTTP edge answers with their own status (services/common/http.py holds the one table); a stage
# treats each by its base, as above.


class InvalidRequest(PermanentError):
    """The request itself is unusable as sent (a bad image, an undecodable query video): 400."""

    reason = "bad_request"


class NotFound(PermanentError):
    """No such thing for this tenant: 404 (another tenant's is not found either)."""

    reason = "not_found"


class Conflict(PermanentError):
    """The request contradicts the current state (a deleted video, a reused key with another payload)."""

    reason = "conflict"


class TooLarge(PermanentError):
    reason = "too_large"


class UnsupportedMediaType(PermanentError):
    reason = "unsupported_media_type"


class Misconfigured(PermanentError):
    """The service's own state can never serve this (e.g. the served model does not match the collection):
    dead-lettered by a stage, but not the caller's fault at an HTTP edge (503)."""

    reason = "misconfigured"
