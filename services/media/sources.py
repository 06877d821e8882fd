"""Open an upload's URI for PyAV, refusing anything outside the allowlist.

`file://` paths must resolve (symlinks followed) under an allowed root. `http(s)://` URIs must sit
under an allowed prefix (scheme, host, port and a whole-segment path prefix must match, no userinfo,
no redirects), and `s3://bucket/key` under an allowed bucket prefix; both are read with HTTP range
requests, so PyAV seeks inside the remote object (an MP4's index at the end, a sparse keyframe scan)
instead of copying the whole file first.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import httpx

from services.media.errors import DecodeError, SourceUnavailable

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class S3Access:
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None


@dataclass(frozen=True)
class SourcePolicy:
    allowed_roots: list[Path] = field(default_factory=list)
    http_prefixes: list[str] = field(default_factory=list)
    s3_prefixes: list[str] = field(default_factory=list)
    s3: S3Access = field(default_factory=S3Access)
    max_bytes: int = 4 * 1024**3
    timeout_s: float = 30.0


def _refuse(detail: str) -> DecodeError:
    return DecodeError("source_not_allowed", detail)


def resolve_file(uri: str, allowed_roots: list[Path]) -> Path:
    """`file://` URIs (or plain absolute paths) that resolve, symlinks followed, under an allowed root."""
    parsed = urlsplit(uri)
    if parsed.scheme not in ("file", ""):
        raise _refuse(f"scheme {parsed.scheme!r} is not a file URI")
    if parsed.netloc not in ("", "localhost"):
        raise _refuse(f"file URI with remote host {parsed.netloc!r}")
    raw = unquote(parsed.path)
    if "\x00" in raw:
        raise _refuse("NUL byte in path")
    try:
        path = Path(raw).resolve(strict=False)
        inside = any(path.is_relative_to(root.resolve()) for root in allowed_roots)
        if inside and not path.is_file():
            raise DecodeError("source_not_found", f"{path} does not exist or is not a file")
    except (OSError, RuntimeError) as exc:  # a name too long for the filesystem, a symlink loop (3.11: RuntimeError)
        raise DecodeError("bad_uri", f"the path cannot be resolved: {getattr(exc, 'strerror', None) or exc}") from exc
    if not inside:
        raise _refuse(f"{path} is outside the allowed roots")
    return path


def _normalised_path(raw: str) -> str:
    path = unquote(raw or "/")
    if "\x00" in path or "\\" in path:
        raise _refuse("NUL byte or backslash in path")
    if any(part == ".." for part in path.split("/")):
        raise _refuse("'..' in path")
    normal = posixpath.normpath(path)
    return normal + ("/" if path.endswith("/") and not normal.endswith("/") else "")  # a root prefix stays "/"


def _under(path: str, prefix_path: str) -> bool:
    if not prefix_path.endswith("/"):
        return path == prefix_path or path.startswith(prefix_path + "/")
    return path.startswith(prefix_path)


def check_http(uri: str, prefixes: list[str]) -> str:
    url = urlsplit(uri)
    if url.scheme not in _DEFAULT_PORTS:
        raise _refuse(f"scheme {url.scheme!r}")
    if url.username is not None or url.password is not None:
        raise _refuse("credentials in the URI")
    if not url.hostname:
        raise _refuse("no host")
    path = _normalised_path(url.path)
    port = url.port or _DEFAULT_PORTS[url.scheme]
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (
            allowed.scheme == url.scheme
            and (allowed.hostname or "").lower() == url.hostname.lower()
            and (allowed.port or _DEFAULT_PORTS.get(allowed.scheme)) == port
            and _under(path, _normalised_path(allowed.path))
        ):
            return uri
    raise _refuse(f"{url.scheme}://{url.hostname}{path} is under no allowed prefix")


def check_s3(uri: str, prefixes: list[str]) -> tuple[str, str]:
    url = urlsplit(uri)
    if url.scheme != "s3" or not url.netloc or url.username or url.password:
        raise _refuse("malformed s3 URI: use s3://bucket/key")
    key = unquote(url.path.lstrip("/"))
    if not key or any(part == ".." for part in key.split("/")) or "\x00" in key:
        raise _refuse("empty key, '..' or NUL in s3 key")
    for prefix in prefixes:
        allowed = urlsplit(prefix)
        if (
            allowed.scheme == "s3"
            and allowed.netloc == url.netloc
            and _under("/" + key, "/" + allowed.path.lstrip("/"))
        ):
            return url.netloc, key
    raise _refuse(f"s3://{url.netloc}/{key} is under no allowed prefix")


class RangeReader(io.RawIOBase):
    """A seekable, read-only file over HTTP range requests, with a read-ahead block."""

    block = 1024 * 1024

    def __init__(self, client: httpx.Client, url: str, size: int) -> None:
        super().__init__()
        self._client, self._url, self.size = client, url, size
        self._pos = 0
        self._buf_start, self._buf = 0, b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self.size:
            return 0
        if not (self._buf_start <= self._pos < self._buf_start + len(self._buf)):
            end = min(self.size, self._pos + max(self.block, len(buffer))) - 1
            try:
                response = self._client.get(self._url, headers={"Range": f"bytes={self._pos}-{end}"})
            except httpx.HTTPError as exc:
                raise SourceUnavailable("source_unreachable", f"reading at byte {self._pos}: {exc!r}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise SourceUnavailable("source_unavailable", f"range request answered HTTP {response.status_code}")
            if response.status_code != 206:
                raise DecodeError("source_unreadable", f"range request answered HTTP {response.status_code}")
            self._buf_start, self._buf = self._pos, response.content
        offset = self._pos - self._buf_start
        chunk = self._buf[offset : offset + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


@contextmanager
def _remote(url: str, policy: SourcePolicy) -> Iterator[BinaryIO]:
    with httpx.Client(follow_redirects=False, timeout=policy.timeout_s) as client:
        try:  # streamed: a server that ignores the range is refused without reading its body
            with client.stream("GET", url, headers={"Range": "bytes=0-0"}) as head:
                status, headers = head.status_code, head.headers
        except httpx.HTTPError as exc:
            raise SourceUnavailable("source_unreachable", f"{type(exc).__name__}: {exc}") from exc
        if status in (401, 403, 404, 410):
            raise DecodeError("source_not_found", f"the source answered HTTP {status}")
        if status >= 500 or status in (408, 429):
            raise SourceUnavailable("source_unavailable", f"the source answered HTTP {status}")
        if 300 <= status < 400:
            raise _refuse(f"redirect to {headers.get('location', '?')!r} is not followed")
        total = headers.get("content-range", "").rpartition("/")[2]
        if status != 206 or not total.isdigit():
            raise DecodeError("source_unreadable", f"no byte-range support (HTTP {status})")
        size = int(total)
        if size == 0:
            raise DecodeError("empty_file", "the source is empty")
        if size > policy.max_bytes:
            raise DecodeError("too_large", f"{size} bytes exceeds {policy.max_bytes}")
        with io.BufferedReader(RangeReader(client, url, size), buffer_size=64 * 1024) as reader:
            yield reader


def playable(uri: str, policy: SourcePolicy, expires_s: int = 300) -> Path | str:
    """Where a browser may fetch a source: a local path (served by us, with ranges), the allowed http(s)
    URL itself, or a short-lived presigned URL of an s3 object. Refused exactly as the decoder refuses."""
    admit(uri, policy)
    scheme = urlsplit(uri).scheme
    if scheme in ("file", ""):
        return resolve_file(uri, policy.allowed_roots)
    if scheme == "s3":
        bucket, key = check_s3(uri, policy.s3_prefixes)
        return _presign(bucket, key, policy.s3, expires_s)
    return uri


def _presign(bucket: str, key: str, access: S3Access, expires_s: int = 3600) -> str:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=access.endpoint_url,
        region_name=access.region,
        aws_access_key_id=access.access_key,
        aws_secret_access_key=access.secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url: str = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s)
    return url


def admit(uri: str, policy: SourcePolicy) -> None:
    """Refuse at once what the decoder would refuse before reading a byte (the gateway answers 422 with it)."""
    _check_chars(uri)
    scheme = urlsplit(uri).scheme
    if scheme in ("file", ""):
        resolve_file(uri, policy.allowed_roots)
    elif scheme in ("http", "https"):
        check_http(uri, policy.http_prefixes)
    elif scheme == "s3":
        check_s3(uri, policy.s3_prefixes)
    else:
        raise _refuse(f"scheme {scheme!r} is not enabled")


def _check_chars(uri: str) -> None:
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in uri):
        raise DecodeError("bad_uri", "white space or a control character in the URI (encode it as %XX)")


@contextmanager
def open_source(uri: str, policy: SourcePolicy) -> Iterator[Path | BinaryIO]:
    """The thing PyAV should open: a local path, or a seekable reader over a remote object."""
    _check_chars(uri)
    scheme = urlsplit(uri).scheme
    if scheme in ("file", ""):
        path = resolve_file(uri, policy.allowed_roots)
        size = path.stat().st_size
        if size == 0:
            raise DecodeError("empty_file", f"{path} is empty")
        if size > policy.max_bytes:
            raise DecodeError("too_large", f"{size} bytes exceeds {policy.max_bytes}")
        yield path
    elif scheme in ("http", "https"):
        with _remote(check_http(uri, policy.http_prefixes), policy) as reader:
            yield reader
    elif scheme == "s3":
        bucket, key = check_s3(uri, policy.s3_prefixes)
        with _remote(_presign(bucket, key, policy.s3), policy) as reader:
            yield reader
    else:
        raise _refuse(f"scheme {scheme!r} is not enabled")
