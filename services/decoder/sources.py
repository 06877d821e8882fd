"""Resolve an upload's URI to something PyAV can open, refusing anything outside the allowlist."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from services.decoder.errors import DecodeError


def resolve_file(uri: str, allowed_roots: list[Path]) -> Path:
    """`file://` URIs (or plain absolute paths) that resolve, symlinks followed, under an allowed root."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise DecodeError("source_not_allowed", f"scheme {parsed.scheme!r} is not enabled")
    if parsed.netloc not in ("", "localhost"):
        raise DecodeError("source_not_allowed", f"file URI with remote host {parsed.netloc!r}")
    raw = unquote(parsed.path)
    if "\x00" in raw:
        raise DecodeError("source_not_allowed", "NUL byte in path")
    path = Path(raw).resolve()
    roots = [r.resolve() for r in allowed_roots]
    if not any(path.is_relative_to(root) for root in roots):
        raise DecodeError("source_not_allowed", f"{path} is outside the allowed roots")
    if not path.is_file():
        raise DecodeError("source_not_found", f"{path} does not exist or is not a file")
    return path
