"""Direct, resumable uploads against the real stack: parts PUT straight into SeaweedFS through presigned URLs, a
multi-GB upload cut at 90 % and resumed with only the missing parts, tenants kept apart, and every field checked
before the store's upload is created."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from services.cli import app as cli
from services.gateway.multipart_client import MultipartClient, UploadError
from services.gateway.object_store import ObjectStore
from services.gateway.settings import GatewaySettings
from services.media.synthetic import write_clip
from tests.integration.conftest import GATEWAY_URL, S3_URL, TEST_ENV

MULTI, MULTI_KEY = "gw-multi", "gw-key-multi"
OWNER = {"Authorization": f"Bearer {MULTI_KEY}"}
STRANGER = {"Authorization": "Bearer gw-key-multi-b"}
PUBLIC_S3 = TEST_ENV["CLIPSTREAM_GATEWAY_S3_PUBLIC_URL"]
LIMIT = int(TEST_ENV["CLIPSTREAM_GATEWAY_MAX_MULTIPART_BYTES"])
PERIOD = 1_048_573  # a prime: the pattern never lines up with a part or a chunk
PATTERN = bytes((i * 131 + (i >> 11) * 7) % 251 for i in range(PERIOD))


def _store() -> Any:
    """The bucket as the gateway sees it."""
    access, secret = (SecretStr(TEST_ENV[f"CLIPSTREAM_STACK_S3_{k}_KEY"]) for k in ("ACCESS", "SECRET"))
    settings = GatewaySettings(s3_endpoint_url=S3_URL, s3_access_key=access, s3_secret_key=secret)
    return ObjectStore(settings).client


def _open_uploads(tenant: str) -> set[str]:
    listed = _store().list_multipart_uploads(Bucket="uploads", Prefix=f"gateway/{tenant}/")
    return {u["UploadId"] for u in listed.get("Uploads", [])}


def _patterned(offset: int, length: int) -> Iterator[bytes]:
    """Bytes [offset, offset + length) of an endless deterministic pattern, 1 MiB at most at a time."""
    while length > 0:
        start = offset % PERIOD
        piece = PATTERN[start : start + min(length, PERIOD - start, 1024 * 1024)]
        yield piece
        offset, length = offset + len(piece), length - len(piece)


class Cut(BaseException):
    """The connection dropped (and the client with it) in the middle of a part."""


class Counting:
    """A source that counts the bytes it hands out, and can drop the connection halfway through a part."""

    def __init__(self, cut_at: int | None = None) -> None:
        self.sent = 0
        self.cut_at = cut_at
        self._lock = threading.Lock()

    def __call__(self, offset: int, length: int) -> Iterator[bytes]:
        cut = self.cut_at is not None and offset <= self.cut_at < offset + length
        for done, piece in enumerate(_patterned(offset, length)):
            if cut and done * 1024 * 1024 >= length // 2:
                raise Cut(f"connection dropped in the part at {offset}")
            with self._lock:
                self.sent += len(piece)
            yield piece


def _padded_clip(media_root: Path, name: str, size: int, seed: int) -> Path:
    """A real clip grown to `size` bytes by an MP4 `free` box (padding every reader skips)."""
    clip = write_clip(media_root / "multipart" / f"{name}-clip.mp4", seconds=2.0, size=(160, 90), seed=seed)
    data = clip.read_bytes()
    pad = size - len(data)
    path = media_root / "multipart" / name
    path.write_bytes(data + struct.pack(">I", pad) + b"free" + bytes(pad - 8))
    return path


@pytest.fixture(scope="module")
def client(stack: object) -> Iterator[MultipartClient]:
    with MultipartClient(GATEWAY_URL, MULTI_KEY, parallel=4, backoff_s=0.2) as made:
        yield made


def test_a_clip_sent_in_presigned_parts_is_completed_and_indexed(client: MultipartClient, media_root: Path) -> None:
    path = _padded_clip(media_root, "parts.mp4", 17 * 1024**2 + 1234, seed=811)
    data = path.read_bytes()
    created = httpx.post(
        f"{GATEWAY_URL}/v1/uploads/multipart",
        json={"filename": "parts.mp4", "size": len(data), "content_type": "video/mp4", "title": "in parts"},
        headers=OWNER,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    started = created.json()
    assert started["part_count"] == 3 and started["missing"] == 3 and len(started["parts"]) == 3
    upload_id = started["upload_id"]
    # the URLs name the store as clients reach it (s3_public_url), and go straight to it, in any order
    for part in reversed(started["parts"]):
        assert part["url"].startswith(f"{PUBLIC_S3}/uploads/gateway/{MULTI}/{upload_id}/"), part["url"]
        body = data[part["offset"] : part["offset"] + part["size"]]
        assert httpx.put(part["url"], content=body, timeout=60).status_code == 200
    state = httpx.get(f"{GATEWAY_URL}/v1/uploads/multipart/{upload_id}", headers=OWNER, timeout=30).json()
    assert state["missing"] == 0 and state["parts"] == []
    assert [(p["part_number"], p["size"]) for p in state["uploaded"]] == [
        (1, 8 * 1024**2),
        (2, 8 * 1024**2),
        (3, len(data) - 16 * 1024**2),
    ]
    done = httpx.post(f"{GATEWAY_URL}/v1/uploads/multipart/{upload_id}/complete", headers=OWNER, timeout=60)
    assert done.status_code == 202, done.text
    registered = done.json()
    assert registered["uri"] == f"s3://uploads/gateway/{MULTI}/{upload_id}/parts.mp4"
    # a retried complete replays the answer
    again = httpx.post(f"{GATEWAY_URL}/v1/uploads/multipart/{upload_id}/complete", headers=OWNER, timeout=60)
    assert again.status_code == 202 and again.json() == registered | {"replayed": True}, again.text
    outcome = client.follow(registered["event_id"], timeout_s=240, poll_s=0.5)
    assert outcome["stage"] == "indexed" and outcome["segment_count"] >= 1, outcome
    stored = _store().get_object(Bucket="uploads", Key=registered["uri"].removeprefix("s3://uploads/"))
    assert stored["Body"].read() == data


def test_the_cli_uploads_a_file_and_follows_it(stack: object, media_root: Path) -> None:
    path = _padded_clip(media_root, "cli.mp4", 6 * 1024**2, seed=812)
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        ["upload", str(path), "--gateway", GATEWAY_URL, "--key", MULTI_KEY, "--tag", "cli", "--wait"],
        env={"COLUMNS": "200"},
    )
    print(f"clipstream upload --wait: {time.monotonic() - started:.1f} s")
    assert result.exit_code == 0, result.output
    assert "indexed" in result.output and f"s3://uploads/gateway/{MULTI}/" in result.output, result.output


def test_a_multi_gb_upload_resumes_after_a_cut_connection(client: MultipartClient) -> None:
    size = 2 * 1024**3 + 12_345
    started = time.monotonic()
    state = client.start("big.bin", size, title="patterned bytes")
    upload_id, part_size, count = state["upload_id"], state["part_size"], state["part_count"]
    assert (part_size, count) == (8 * 1024**2, 257)
    first = Counting(cut_at=int(size * 0.9))
    with pytest.raises(Cut):
        client.send(upload_id, first, state)
    cut_s = time.monotonic() - started
    after_cut = client.state(upload_id)
    missing = count - len(after_cut["uploaded"])
    cut_part = int(size * 0.9) // part_size + 1
    assert cut_part in [p["part_number"] for p in after_cut["parts"]], after_cut["parts"][:3]
    assert 0 < missing == after_cut["missing"] < 0.15 * count
    with pytest.raises(UploadError) as early:  # completing now names what is missing
        client.complete(upload_id)
    assert early.value.status == 409 and early.value.reason == "parts_missing"
    assert f"{missing} of {count} parts are missing" in early.value.detail

    resumed = Counting()  # a new run: only what the store lacks is sent again
    sent = client.send(upload_id, resumed)
    assert sent == resumed.sent and resumed.sent < 0.15 * size, (resumed.sent, size)
    assert first.sent + resumed.sent < size * 1.01  # nothing sent twice but the part that was cut
    registered = client.complete(upload_id)
    total_s = time.monotonic() - started
    print(
        f"{size / 1024**3:.2f} GiB in {count} parts: cut after {first.sent / size:.0%} ({cut_s:.1f} s), "
        f"{missing} parts ({resumed.sent / size:.1%} of the bytes) sent again, completed in {total_s:.1f} s"
    )
    key = registered["uri"].removeprefix("s3://uploads/")
    store = _store()
    assert store.head_object(Bucket="uploads", Key=key)["ContentLength"] == size
    for offset in (0, part_size - 3, size // 2 + 7, int(size * 0.9), size - 100):
        expected = b"".join(_patterned(offset, 100))
        got = store.get_object(Bucket="uploads", Key=key, Range=f"bytes={offset}-{offset + 99}")["Body"].read()
        assert got == expected, offset
    # patterned bytes over the decoder's 64 MiB limit: a dead letter, the right outcome
    outcome = client.follow(registered["event_id"], timeout_s=120, poll_s=0.5)
    assert outcome["stage"] == "failed" and outcome["reason"] in ("too_large", "not_a_video"), outcome
    store.delete_object(Bucket="uploads", Key=key)


def test_another_tenant_can_neither_see_complete_nor_abort_an_upload(client: MultipartClient) -> None:
    upload_id = client.start("mine.mp4", 10 * 1024**2, "video/mp4")["upload_id"]
    url = f"{GATEWAY_URL}/v1/uploads/multipart/{upload_id}"
    assert httpx.get(url, headers=STRANGER).status_code == 404
    assert httpx.post(f"{url}/complete", headers=STRANGER).status_code == 404
    assert httpx.delete(url, headers=STRANGER).status_code == 404
    assert httpx.get(url, headers=OWNER).json()["missing"] == 2  # untouched
    assert httpx.delete(url, headers=OWNER).status_code == 204
    assert httpx.get(url, headers=OWNER).status_code == 404
    assert upload_id not in _open_uploads(MULTI)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"tags": ["bad!tag"]}, 422),
        ({"title": "映" * 600}, 422),  # 1,800 UTF-8 bytes: over the 1,024-byte title
        ({"creator": "x" * 300}, 422),
        ({"metadata": {"k": {"nested": 1}}}, 422),
        ({"size": 0}, 422),
        ({"filename": ""}, 422),
        ({"unknown": 1}, 422),
        ({"size": LIMIT + 1}, 413),
        ({"content_type": "text/html"}, 415),
    ],
)
def test_bad_fields_are_refused_before_the_store_upload_is_created(
    stack: object, fields: dict[str, Any], status: int
) -> None:
    before = _open_uploads(MULTI)
    body = {"filename": "a.mp4", "size": 10 * 1024**2, **fields}
    response = httpx.post(f"{GATEWAY_URL}/v1/uploads/multipart", json=body, headers=OWNER, timeout=30)
    assert response.status_code == status, response.text
    assert _open_uploads(MULTI) == before  # nothing created, nothing orphaned
