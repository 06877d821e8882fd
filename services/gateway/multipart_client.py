"""Sending a file through the gateway's direct, resumable uploads (`clipstream upload`).

The client declares the file, PUTs its parts straight to the object store a few at a time (the URLs are presigned
by the gateway), and asks the gateway again which parts the store still lacks: after a cut connection, a failed
part or a restart (the same upload id, kept by `ResumeBook` between runs) it sends only those. Then it completes
the upload, which registers it. Only httpx: it runs wherever the CLI does.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

Source = Callable[[int, int], Iterable[bytes]]  # (offset, length) -> those bytes of the file, in chunks
CHUNK = 1024 * 1024
RETRIED = (502, 503, 504)
FINAL_STAGES = ("indexed", "failed", "deleted", "superseded")


class UploadError(Exception):
    def __init__(self, detail: str, status: int = 0, reason: str = "") -> None:
        super().__init__(f"{reason or 'error'}: {detail}" + (f" (HTTP {status})" if status else ""))
        self.detail, self.status, self.reason = detail, status, reason


@dataclass(frozen=True)
class Sent:
    upload_id: str
    registered: dict[str, Any]
    bytes_sent: int  # of the parts this run sent whole (a resumed run sends only what the store lacked)


def file_source(path: Path) -> Source:
    def read(offset: int, length: int) -> Iterator[bytes]:
        with path.open("rb") as file:
            file.seek(offset)
            left = length
            while left > 0:
                data = file.read(min(CHUNK, left))
                if not data:
                    raise OSError(f"{path} ended before byte {offset + length}: did it change while uploading?")
                left -= len(data)
                yield data

    return read


class MultipartClient:
    def __init__(
        self,
        gateway_url: str,
        api_key: str,
        *,
        parallel: int = 4,
        attempts: int = 8,
        backoff_s: float = 1.0,
        part_timeout_s: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`attempts`: rounds in a row without progress (or failed gateway calls) before giving up."""
        self._api = httpx.Client(
            base_url=gateway_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60.0,
            transport=transport,
        )
        # the presigned URLs carry their own authorisation: the gateway's key never goes to the store
        self._store = httpx.Client(
            timeout=httpx.Timeout(part_timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=parallel),
            transport=transport,
        )
        self._parallel, self._attempts, self._backoff_s = parallel, attempts, backoff_s
        self._progress: Callable[[int], None] = lambda _n: None
        self._notify: Callable[[str], None] = lambda _m: None

    def on_progress(self, progress: Callable[[int], None], notify: Callable[[str], None]) -> None:
        """`progress(n)`: n more bytes reached the store; `notify(message)`: a failure the client works around."""
        self._progress, self._notify = progress, notify

    def __enter__(self) -> MultipartClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._api.close()
        self._store.close()

    # ---- the gateway's API ------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One gateway call, retried through cut connections and 502/503/504 (after Retry-After); another
        error status is an UploadError with the gateway's reason."""
        for attempt in range(self._attempts):
            try:
                response = self._api.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                problem, wait_s = f"{type(exc).__name__}: {exc}", self._backoff_s * 2**attempt
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRIED:
                    raise _error(response)
                problem = f"HTTP {response.status_code}"
                wait_s = float(response.headers.get("retry-after") or self._backoff_s * 2**attempt)
            self._notify(f"{method} {path}: {problem}; trying again in {wait_s:.0f} s")
            time.sleep(min(wait_s, 30.0))
        raise UploadError(f"{method} {path} failed {self._attempts} times: {problem}", reason="gateway_unreachable")

    def start(self, filename: str, size: int, content_type: str = "application/octet-stream", **fields: Any) -> Any:
        body = {"filename": filename, "size": size, "content_type": content_type, **fields}
        return self._call("POST", "/v1/uploads/multipart", json=body).json()

    def state(self, upload_id: str) -> Any:
        return self._call("GET", f"/v1/uploads/multipart/{upload_id}").json()

    def exists(self, upload_id: str) -> bool:
        try:
            self.state(upload_id)
        except UploadError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def complete(self, upload_id: str, idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", f"/v1/uploads/multipart/{upload_id}/complete", headers=headers).json()

    def abort(self, upload_id: str) -> None:
        self._call("DELETE", f"/v1/uploads/multipart/{upload_id}")

    def follow(self, event_id: str, timeout_s: float = 600.0, poll_s: float = 1.0) -> Any:
        """The upload's status once it reaches an outcome (indexed, failed...), or the last one seen."""
        deadline = time.monotonic() + timeout_s
        status: Any = {}
        while time.monotonic() < deadline:
            try:
                status = self._call("GET", f"/v1/uploads/{event_id}").json()
            except UploadError as exc:
                if exc.status != 404:  # 404: the gateway's view has not seen the registration yet
                    raise
            if status.get("stage") in FINAL_STAGES:
                break
            time.sleep(poll_s)
        return status

    # ---- the bytes ----------------------------------------------------------------------------------------

    def send(self, upload_id: str, source: Source, state: Any = None) -> int:
        """PUT every part the store lacks, asking the gateway again after each round; the bytes sent. A round
        after which the store lacks as many parts as before (nothing went through, or nothing it kept) is a
        stall: `attempts` of them in a row give up."""
        state = state or self.state(upload_id)
        sent = stalled = 0
        while state["state"] == "uploading" and state["missing"]:
            before = state["missing"]
            sent += self._round(state["parts"], source)
            state = self.state(upload_id)
            stalled = 0 if state["missing"] < before else stalled + 1
            if stalled >= self._attempts:
                raise UploadError(
                    f"the store still lacks {state['missing']} parts after {stalled} rounds; run again to resume",
                    reason="store_unreachable",
                )
            if stalled:
                wait_s = min(self._backoff_s * 2**stalled, 30.0)
                self._notify(f"no part went through; resuming in {wait_s:.0f} s")
                time.sleep(wait_s)
        return sent

    def _round(self, parts: list[dict[str, Any]], source: Source) -> int:
        pool = ThreadPoolExecutor(self._parallel, thread_name_prefix="part")
        try:
            futures = [pool.submit(self._put, part, source) for part in parts]
            return sum(future.result() for future in as_completed(futures))
        finally:  # interrupted: parts not started are dropped, the ones in flight finish
            pool.shutdown(wait=True, cancel_futures=True)

    def _put(self, part: dict[str, Any], source: Source) -> int:
        size = int(part["size"])
        try:
            response = self._store.put(
                part["url"], content=source(int(part["offset"]), size), headers={"Content-Length": str(size)}
            )
        except (httpx.HTTPError, OSError) as exc:  # a cut connection: the next round asks what the store has
            self._notify(f"part {part['part_number']}: {type(exc).__name__}: {exc}")
            return 0
        if response.status_code != 200:  # e.g. an expired URL: the next round signs fresh ones
            self._notify(f"part {part['part_number']}: HTTP {response.status_code} {response.text[:200]}")
            return 0
        self._progress(size)
        return size

    def upload(
        self,
        path: Path,
        upload_id: str | None = None,
        content_type: str = "application/octet-stream",
        on_start: Callable[[str, Any], None] | None = None,
        **fields: Any,
    ) -> Sent:
        """Start (or with `upload_id`, resume) the upload of `path`, send what the store lacks, complete it."""
        size = path.stat().st_size
        if upload_id is None:
            state = self.start(path.name, size, content_type, **fields)
            upload_id = str(state["upload_id"])
        else:
            state = self.state(upload_id)
            if state["size"] != size:
                raise UploadError(f"upload {upload_id} is of {state['size']} bytes, {path} of {size}", reason="size")
        if on_start is not None:  # e.g. to note the upload id for a later run, and show what is there already
            on_start(upload_id, state)
        sent = self.send(upload_id, file_source(path), state)
        try:
            registered = self.complete(upload_id)
        except UploadError as exc:
            if exc.reason not in ("parts_missing", "part_size_mismatch"):
                raise
            sent += self.send(upload_id, file_source(path))  # the store lost a part meanwhile: once more
            registered = self.complete(upload_id)
        return Sent(upload_id=upload_id, registered=registered, bytes_sent=sent)


def _error(response: httpx.Response) -> UploadError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    text = detail if isinstance(detail, str) else json.dumps(detail) if detail else response.text[:500]
    return UploadError(text, status=response.status_code, reason=reason)


class ResumeBook:
    """Upload ids of unfinished uploads, by gateway, key and file (path, size, modification time), so that
    running the same command again resumes instead of starting over."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _entry(self, gateway_url: str, api_key: str, path: Path) -> Path:
        stat = path.stat()
        what = f"{gateway_url.rstrip('/')}\n{api_key}\n{path.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}"
        return self.folder / f"{hashlib.sha256(what.encode()).hexdigest()[:32]}.json"

    def get(self, gateway_url: str, api_key: str, path: Path) -> str | None:
        entry = self._entry(gateway_url, api_key, path)
        try:
            return str(json.loads(entry.read_text())["upload_id"])
        except (OSError, ValueError, KeyError):
            return None

    def put(self, gateway_url: str, api_key: str, path: Path, upload_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = self._entry(gateway_url, api_key, path)
        entry.write_text(json.dumps({"upload_id": upload_id, "path": str(path.resolve())}))

    def forget(self, gateway_url: str, api_key: str, path: Path) -> None:
        self._entry(gateway_url, api_key, path).unlink(missing_ok=True)
