"""Sources and bad input through the running decoder: s3:// from a real SeaweedFS, http(s)://, and a
dead-letter record with a precise reason for every class of bad upload, while good uploads go on."""

from __future__ import annotations

from pathlib import Path

import boto3
import httpx
import pytest

from services.common.messages import Topics, VideoUploaded
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import UploadWatch, publish_and_wait
from services.media.synthetic import write_clip
from tests import media
from tests.integration.conftest import FILER_URL, TEST_ENV

TIMEOUT_S = 300


def _s3_put(key: str, data: bytes) -> str:
    client = boto3.client(
        "s3",
        endpoint_url=TEST_ENV["CLIPSTREAM_DECODER_S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=TEST_ENV["CLIPSTREAM_STACK_S3_ACCESS_KEY"],
        aws_secret_access_key=TEST_ENV["CLIPSTREAM_STACK_S3_SECRET_KEY"],
    )
    client.put_object(Bucket="uploads", Key=key, Body=data)
    return f"s3://uploads/{key}"


def _filer_put(path: str, data: bytes) -> str:
    response = httpx.post(f"{FILER_URL}{path}", files={"file": (path.rsplit("/", 1)[1], data)}, timeout=30)
    response.raise_for_status()
    return f"{FILER_URL}{path}"


@pytest.fixture(scope="module")
def remote_clips(stack: object, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("remote")
    mp4 = write_clip(folder / "remote.mp4", seconds=6.0, seed=11, cuts=(3.0,)).read_bytes()
    webm = write_clip(folder / "remote.webm", seconds=4.0, seed=12, codec="libvpx").read_bytes()
    return {
        "s3": _s3_put("allowed/remote.mp4", mp4),
        "s3-forbidden": _s3_put("private/remote.mp4", mp4),
        "http": _filer_put("/public/remote.webm", webm),
        "http-forbidden": _filer_put("/private/remote.webm", webm),
    }


def test_s3_and_http_sources(common: CommonSettings, remote_clips: dict[str, str]) -> None:
    uploads = {name: VideoUploaded(video_id=f"remote-{name}", uri=uri) for name, uri in remote_clips.items()}
    outcomes = publish_and_wait(common, list(uploads.values()), TIMEOUT_S)
    assert outcomes.indexed[uploads["s3"].event_id].segment_count == 2  # one cut at 3 s
    assert outcomes.indexed[uploads["http"].event_id].segment_count == 1  # 4 s, no cut
    assert outcomes.failed[uploads["s3-forbidden"].event_id].reason == "source_not_allowed"
    assert outcomes.failed[uploads["http-forbidden"].event_id].reason == "source_not_allowed"


def test_every_bad_input_class_is_dead_lettered(common: CommonSettings, media_root: Path) -> None:
    folder = media_root / "bad"
    folder.mkdir()
    good = write_clip(folder / "good.avi", seconds=2.0)
    files = {
        "corrupt_video": media.write_corrupt(folder / "corrupt.avi", good),
        "truncated_video": media.write_truncated(folder / "truncated.mkv", folder),
        "empty_file": media.write_large(folder / "empty.mp4", 0),
        "not_a_video": media.write_text(folder / "notes.mp4"),
        "no_video_stream": media.write_audio_only(folder / "audio.m4a"),
        "unsupported_codec": media.write_unsupported_codec(folder / "unknown.avi", folder),
        "too_large": media.write_large(folder / "huge.mp4", 65 * 1024**2),
        "too_long": media.write_long(folder / "long.mp4", 130.0),
        "too_many_pixels": media.write_many_pixels(folder / "big.mp4", (2048, 1280)),
    }
    uploads = {reason: register(path) for reason, path in files.items()}
    uploads["source_not_found"] = register(folder / "missing.mp4")
    after = register(good)
    watch = UploadWatch(common)
    publish_and_wait(common, [*uploads.values(), after], None)
    outcomes = watch.wait([*(u.event_id for u in uploads.values()), after.event_id], TIMEOUT_S)
    watch.close()
    assert after.event_id in outcomes.indexed, "the upload after the bad ones must still be indexed"
    seen = {
        reason: outcomes.failed[u.event_id].reason for reason, u in uploads.items() if u.event_id in outcomes.failed
    }
    assert seen == {reason: reason for reason in uploads}
    letter = outcomes.failed[uploads["corrupt_video"].event_id]
    assert (letter.service, letter.source_topic) == ("decoder", Topics.UPLOADED)
    assert letter.detail == "the video stream holds no decodable frame"
