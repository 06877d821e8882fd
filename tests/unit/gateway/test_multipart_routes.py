"""Direct uploads through the gateway's routes and the resuming client, against an in-memory S3 (the real
SeaweedFS is in tests/integration/test_multipart.py): what a failed registration leaves behind, replays, and a
client that carries on across a cut connection."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from botocore.exceptions import ClientError
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.common.errors import ClipstreamError, PermanentError
from services.common.http import ApiKeys, KeyGuard, install_error_handlers
from services.common.kafka.publisher import NotDelivered
from services.common.settings import CommonSettings
from services.gateway.deps import Parts
from services.gateway.multipart_client import MultipartClient, UploadError
from services.gateway.object_store import ObjectStore
from services.gateway.routes import multipart
from services.gateway.settings import GatewaySettings
from services.intake.models import Registered, Registration
from services.intake.registration import event_id_for, upload_of
from services.media.sources import SourcePolicy

A, B = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}
MIB = 1024**2
POLICY = SourcePolicy(s3_prefixes=["s3://uploads/gateway/"])


def _gone(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "NoSuchUpload", "Message": "gone"}}, operation)


class FakeS3:
    """The S3 calls the gateway makes, in memory; presigned part URLs point at http://store.test/."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, tuple[str, dict[int, bytes]]] = {}  # upload id -> (key, parts)

    def create_multipart_upload(self, Bucket: str, Key: str, ContentType: str) -> dict[str, Any]:
        upload_id = f"u{len(self.uploads)}"
        self.uploads[upload_id] = (Key, {})
        return {"UploadId": upload_id}

    def _parts(self, Key: str, UploadId: str, operation: str) -> dict[int, bytes]:
        if UploadId not in self.uploads or self.uploads[UploadId][0] != Key:
            raise _gone(operation)
        return self.uploads[UploadId][1]

    def list_parts(self, Bucket: str, Key: str, UploadId: str, PartNumberMarker: int, MaxParts: int) -> Any:
        listed = sorted(n for n in self._parts(Key, UploadId, "ListParts") if n > PartNumberMarker)
        page = listed[:2]  # small pages: the gateway must follow them
        parts = self.uploads[UploadId][1]
        found = [{"PartNumber": n, "Size": len(parts[n]), "ETag": f'"e{n}"'} for n in page]
        return {"Parts": found, "IsTruncated": len(listed) > 2, "NextPartNumberMarker": page[-1] if page else 0}

    def complete_multipart_upload(self, Bucket: str, Key: str, UploadId: str, MultipartUpload: Any) -> None:
        parts = self._parts(Key, UploadId, "CompleteMultipartUpload")
        self.objects[Key] = b"".join(parts[p["PartNumber"]] for p in MultipartUpload["Parts"])
        del self.uploads[UploadId]

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> None:
        self._parts(Key, UploadId, "AbortMultipartUpload")
        del self.uploads[UploadId]

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        self.objects[Key] = Body

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404", "Message": "no"}}, "HeadObject")
        return {"ContentLength": len(self.objects[Key])}

    def delete_object(self, Bucket: str, Key: str) -> None:
        self.objects.pop(Key, None)

    def generate_presigned_url(self, operation: str, Params: dict[str, Any], ExpiresIn: int) -> str:
        query = urlencode({"uploadId": Params["UploadId"], "partNumber": Params["PartNumber"]})
        return f"http://store.test/{Params['Bucket']}/{Params['Key']}?{query}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        """A presigned UploadPart PUT (the body is read first: a body that breaks off stores nothing)."""
        body = request.read()
        query = parse_qs(request.url.query.decode())
        upload_id, number = query["uploadId"][0], int(query["partNumber"][0])
        key = request.url.path.split("/", 2)[2]
        if upload_id not in self.uploads or self.uploads[upload_id][0] != key:
            return httpx.Response(404)
        self.uploads[upload_id][1][number] = body
        return httpx.Response(200, headers={"ETag": f'"e{number}"'})


class FakeStore(ObjectStore):
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._client = self.presigner = FakeS3()


class FakeRegistrar:
    """Admission as the real one; registrations answered from memory, or failing with `fail`."""

    def __init__(self) -> None:
        self.answers: dict[str, Registered] = {}
        self.fail: ClipstreamError | None = None
        self.registered: list[Registration] = []

    def admit(self, tenant: str, body: Registration) -> None:
        upload_of(tenant, body, POLICY)

    def replay(self, tenant: str, body: Registration, key: str | None) -> Registered | None:
        found = self.answers.get(event_id_for(tenant, key) or "")
        return found.model_copy(update={"replayed": True}) if found else None

    def register(self, tenant: str, body: Registration, key: str | None, door: str) -> tuple[Registered, Any]:
        if self.fail is not None:
            raise self.fail
        upload = upload_of(tenant, body, POLICY, event_id_for(tenant, key))
        self.registered.append(body)
        self.answers[upload.event_id] = Registered.of(upload.event_id, upload.video_id, upload.uri)
        return self.answers[upload.event_id], upload


class FakeView:
    def note(self, upload: Any) -> None:
        pass


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    settings = GatewaySettings(
        common=CommonSettings(home=tmp_path), api_keys={"ka": "ta", "kb": "tb"}, upload_part_bytes=5 * MIB
    )
    return Parts(settings, store=FakeStore(settings), registrar=FakeRegistrar(), view=FakeView())


@pytest.fixture
def api(parts: Parts) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.api_keys = ApiKeys(parts.settings.api_keys)
    app.add_middleware(KeyGuard, keys=app.state.api_keys)
    install_error_handlers(app)
    app.state.parts = parts
    app.include_router(multipart.router)
    with TestClient(app) as client:
        yield client


class Bridge(httpx.BaseTransport):
    """The client's two ends: the gateway (the app under test) and the store's presigned URLs."""

    def __init__(self, api: TestClient, s3: FakeS3) -> None:
        self.api, self.s3 = api, s3

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "store.test":
            return self.s3.handle(request)
        return self.api._transport.handle_request(request)


def _s3(parts: Parts) -> FakeS3:
    s3 = parts.get("store").client
    assert isinstance(s3, FakeS3)
    return s3


def _send(s3: FakeS3, started: dict[str, Any], data: bytes, skip: tuple[int, ...] = ()) -> None:
    for part in started["parts"]:
        if part["part_number"] not in skip:
            url = httpx.URL(part["url"])
            s3.handle(httpx.Request("PUT", url, content=data[part["offset"] : part["offset"] + part["size"]]))


def _start(api: TestClient, size: int, headers: dict[str, str] = A) -> dict[str, Any]:
    created = api.post("/v1/uploads/multipart", json={"filename": "clip.mp4", "size": size}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()


def test_a_complete_upload_is_registered_once_and_replayed(api: TestClient, parts: Parts) -> None:
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: parts of 5, 5 and 2 MiB
    started = _start(api, len(data))
    assert started["part_count"] == 3 and api.get(started["parts"][0]["url"]).status_code == 404  # not ours to serve
    _send(_s3(parts), started, data)
    url = f"/v1/uploads/multipart/{started['upload_id']}"
    state = api.get(url, headers=A).json()  # ListParts pages followed
    assert [p["part_number"] for p in state["uploaded"]] == [1, 2, 3] and state["missing"] == 0
    done = api.post(f"{url}/complete", headers=A)
    assert done.status_code == 202, done.text
    assert _s3(parts).objects[done.json()["uri"].removeprefix("s3://uploads/")] == data
    assert api.post(f"{url}/complete", headers=A).json() == done.json() | {"replayed": True}
    assert len(parts.get("registrar").registered) == 1
    assert api.get(url, headers=A).json()["state"] == "completed"
    assert api.delete(url, headers=A).status_code == 409  # registered: the video is taken down, not the upload


def test_complete_names_the_missing_parts_and_the_parts_of_another_size(api: TestClient, parts: Parts) -> None:
    data = b"x" * (21 * MIB)
    started = _start(api, len(data))
    url = f"/v1/uploads/multipart/{started['upload_id']}"
    _send(_s3(parts), started, data, skip=(2, 4))
    missing = api.post(f"{url}/complete", headers=A)
    assert missing.status_code == 409 and missing.json()["reason"] == "parts_missing"
    assert missing.json()["detail"] == "2 of 5 parts are missing: 2, 4"
    state = api.get(url, headers=A).json()
    assert [p["part_number"] for p in state["parts"]] == [2, 4]
    _send(_s3(parts), state, data[: 16 * MIB])  # part 2 whole, part 4 cut short
    wrong = api.post(f"{url}/complete", headers=A)
    assert wrong.status_code == 422 and wrong.json()["reason"] == "part_size_mismatch", wrong.text
    assert [p["part_number"] for p in api.get(url, headers=A).json()["parts"]] == [4]  # sent again on resume
    assert not parts.get("registrar").registered


@pytest.mark.parametrize(
    ("failure", "kept"),
    [
        (PermanentError("refused", reason="source_not_allowed"), False),
        (NotDelivered("kafka is down"), False),
        (NotDelivered("no report in time", maybe=True), True),  # may still land: the object must stay
    ],
)
def test_an_object_whose_registration_certainly_failed_is_deleted(
    api: TestClient, parts: Parts, failure: ClipstreamError, kept: bool
) -> None:
    data = b"v" * (6 * MIB)
    started = _start(api, len(data))
    _send(_s3(parts), started, data)
    parts.get("registrar").fail = failure
    url = f"/v1/uploads/multipart/{started['upload_id']}"
    assert api.post(f"{url}/complete", headers=A).status_code in (422, 503)
    key = f"gateway/ta/{started['upload_id']}/clip.mp4"
    assert (key in _s3(parts).objects) is kept
    if kept:  # the retry registers the completed object
        parts.get("registrar").fail = None
        assert api.post(f"{url}/complete", headers=A).status_code == 202
    else:
        assert api.get(url, headers=A).status_code == 404


def test_another_tenant_finds_nothing(api: TestClient, parts: Parts) -> None:
    url = f"/v1/uploads/multipart/{_start(api, 10)['upload_id']}"
    assert api.get(url, headers=B).status_code == 404
    assert api.post(f"{url}/complete", headers=B).status_code == 404
    assert api.delete(url, headers=B).status_code == 404
    assert api.get(url, headers=A).status_code == 200
    assert api.delete(url, headers=A).status_code == 204 and not _s3(parts).uploads
    assert api.get(url, headers=A).status_code == 404


def test_a_source_the_decoder_would_refuse_creates_nothing(api: TestClient, parts: Parts) -> None:
    parts.settings.upload_prefix = "elsewhere"  # outside the decoder's allowed s3:// prefixes
    refused = api.post("/v1/uploads/multipart", json={"filename": "a.mp4", "size": 10}, headers=A)
    assert refused.status_code == 422 and refused.json()["reason"] == "source_not_allowed", refused.text
    assert not _s3(parts).uploads


class Flaky:
    """A file's bytes whose connection breaks halfway through the parts at the given offsets, once each."""

    def __init__(self, data: bytes, cuts: set[int], fatal: type[BaseException] = ConnectionResetError) -> None:
        self.data, self.cuts, self.fatal, self.sent = data, set(cuts), fatal, 0

    def __call__(self, offset: int, length: int) -> Iterator[bytes]:
        half = length // 2
        self.sent += half
        yield self.data[offset : offset + half]
        if offset in self.cuts:
            self.cuts.discard(offset)
            raise self.fatal("connection reset")
        self.sent += length - half
        yield self.data[offset + half : offset + length]


def test_the_client_carries_on_across_cut_connections(api: TestClient, parts: Parts) -> None:
    data = bytes(range(251)) * (100 * 1024)  # 24.5 MiB: 5 parts
    source = Flaky(data, cuts={5 * MIB, 15 * MIB})
    with MultipartClient("http://testserver", "ka", backoff_s=0.01, transport=Bridge(api, _s3(parts))) as client:
        started = client.start("clip.mp4", len(data))
        assert client.send(started["upload_id"], source) == len(data)
        registered = client.complete(started["upload_id"])
    assert _s3(parts).objects[registered["uri"].removeprefix("s3://uploads/")] == data
    assert source.sent == len(data) + 5 * MIB  # the two cut parts' first halves went twice, nothing else


def test_a_new_run_resumes_with_only_the_missing_parts(api: TestClient, parts: Parts, tmp_path: Path) -> None:
    data = bytes(range(253)) * (100 * 1024)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)

    class Killed(BaseException):
        pass

    first = Flaky(data, cuts={10 * MIB}, fatal=Killed)
    with MultipartClient("http://testserver", "ka", parallel=1, transport=Bridge(api, _s3(parts))) as client:
        upload_id = client.start("clip.mp4", len(data))["upload_id"]
        with pytest.raises(Killed):
            client.send(upload_id, first)
        left = client.state(upload_id)["parts"]  # part 3 and what had not started (4 may have been in flight)
        assert [p["part_number"] for p in left][:1] == [3] and len(left) in (2, 3)
        with pytest.raises(UploadError) as early:
            client.complete(upload_id)
        assert early.value.status == 409 and early.value.reason == "parts_missing"
        noted: list[str] = []
        resumed = client.upload(path, upload_id, on_start=lambda found, _state: noted.append(found))
    assert noted == [upload_id] and resumed.bytes_sent == sum(p["size"] for p in left)
    assert _s3(parts).objects[resumed.registered["uri"].removeprefix("s3://uploads/")] == data
