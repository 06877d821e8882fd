"""The embedder against a real Triton: every transport gives the same vectors, and a Triton restart
in the middle of a stream loses and duplicates nothing (Triton comes back through the image's entry point)."""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from services.clip.loader import load_clip
from services.common.filters import Filters
from services.common.messages import ModelRef, Topics
from services.common.settings import CommonSettings
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore
from services.intake.registration import register
from services.intake.watch import UploadWatch, publish_and_wait
from services.media.synthetic import write_clip
from services.stack.manager import ensure_model
from services.stack.process import Proc, http_ok, wait_until
from services.stack.settings import StackSettings
from services.stack.triton import start_triton, triton_ready
from tests.integration.conftest import TEST_ENV
from tests.ledger import TopicTap


@pytest.mark.parametrize(
    ("transport", "shared_memory"), [("grpc", "none"), ("grpc", "system"), ("http", "none"), ("http", "system")]
)
def test_transports_give_identical_embeddings(stack: StackSettings, transport: str, shared_memory: str) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 320, 3), dtype=np.uint8) for _ in range(70)]
    images += [rng.integers(0, 256, (200, 200, 3), dtype=np.uint8) for _ in range(3)]
    reference, ref_model = ClipClient(TEST_ENV["CLIPSTREAM_TRITON_GRPC_URL"], max_in_flight=1).embed_images(images)
    url = TEST_ENV[f"CLIPSTREAM_TRITON_{transport.upper()}_URL"]
    client = ClipClient(url, max_batch=16, max_in_flight=3, transport=transport, shared_memory=shared_memory)  # type: ignore[arg-type]
    try:
        vectors, model = client.embed_images(images)
        texts, _ = client.embed_texts(["a dog", "aerial sunset"])
    finally:
        client.close()
    assert model == ref_model
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    assert texts.shape == (2, ref_model.dim)


def _retries() -> float:
    port = TEST_ENV["CLIPSTREAM_EMBEDDER_HEALTH_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r'clipstream_transient_retries_total\{service="embedder"\} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else 0.0


def _restart_through_the_container_entry_point(stack: StackSettings) -> Proc:
    """`clipstream triton serve` (the image's Triton command) in the stack's place: it must exec tritonserver in
    the foreground (same PID, so Kubernetes' signals reach it) with the stack's own command line and ports."""
    triton = Proc("triton", stack.run_dir)
    http = TEST_ENV["CLIPSTREAM_TRITON_HTTP_URL"]
    triton.start(
        [sys.executable, "-m", "services.cli", "triton", "serve"],
        env={"CLIPSTREAM_CLIP_MODEL": ensure_model(stack)},
        ports=[("127.0.0.1", int(u.rsplit(":", 1)[1])) for u in (http, TEST_ENV["CLIPSTREAM_TRITON_GRPC_URL"])],
    )
    wait_until(lambda: triton_ready(http), triton, "`clipstream triton serve`", 180)
    return triton


def _embed_probe_images() -> tuple[np.ndarray, ModelRef]:
    images = [np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(4)]
    client = ClipClient(TEST_ENV["CLIPSTREAM_TRITON_GRPC_URL"], max_in_flight=1)
    try:
        return client.embed_images(images)
    finally:
        client.close()


def test_triton_restart_mid_stream_loses_and_duplicates_nothing(
    stack: StackSettings, common: CommonSettings, media_root: Path
) -> None:
    folder = media_root / "restart"
    clips = [write_clip(folder / f"r{i}.mp4", seconds=8.0, seed=200 + i, cuts=(4.0,)) for i in range(8)]
    uploads = [register(c, creator="restart") for c in clips]
    retries_before = _retries()
    reference, reference_model = _embed_probe_images()  # what the stack's Triton answers before the restart
    ready_url = f"http://127.0.0.1:{TEST_ENV['CLIPSTREAM_EMBEDDER_HEALTH_PORT']}/readyz"
    triton = Proc("triton", stack.run_dir)
    watch = UploadWatch(common)
    first = UploadWatch(common)
    tap = TopicTap(common)
    half = len(uploads) // 2
    publish_and_wait(common, uploads[:half], None)
    try:
        # stop Triton mid-stream: once the first upload is through (the rest of the first half in flight)
        early, deadline = 0, time.monotonic() + 120
        while not early and time.monotonic() < deadline:
            early = len(first.wait([u.event_id for u in uploads[:half]], 0.2).indexed)
        first.close()
        assert early >= 1, "nothing went through before Triton stopped"
        triton.stop()
        # the second half is decoded while Triton is down: its segments reach an embedder that cannot embed
        # them (however fast the first half went through), which says so on /readyz and retries
        publish_and_wait(common, uploads[half:], None)
        deadline = time.monotonic() + 30
        seen_unready = False
        while time.monotonic() < deadline and not (seen_unready and _retries() > retries_before):
            seen_unready |= not http_ok(ready_url)
            time.sleep(0.2)
        assert seen_unready, "the embedder stayed ready while Triton was down"
    finally:
        try:
            triton = _restart_through_the_container_entry_point(stack)
        except Exception:
            start_triton(stack, ensure_model(stack))  # later tests need it, whatever happened here
            raise
    pid = triton.pid()
    assert pid is not None and Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"tritonserver"), (
        "the entry point did not exec tritonserver in its own process"
    )
    vectors, model = _embed_probe_images()
    assert model == reference_model
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    outcomes = watch.wait([u.event_id for u in uploads], 300)
    watch.close()
    deadline = time.monotonic() + 60
    while not http_ok(ready_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert http_ok(ready_url), "the embedder did not become ready again after Triton came back"
    assert outcomes.failed == {}
    assert set(outcomes.indexed) == {u.event_id for u in uploads}
    ledger = tap.read({u.event_id for u in uploads})
    tap.close()
    assert ledger.duplicates() == {}, "a message was committed twice on some topic"
    assert all(ledger.count(Topics.INDEXED, u.event_id) == 1 for u in uploads)
    assert _retries() > retries_before, "the outage never reached the embedder"
    rows = SegmentStore(common).count(Filters(video_ids=[u.video_id for u in uploads]).compile())
    assert rows == sum(i.segment_count for i in outcomes.indexed.values()) == 2 * len(uploads)


def test_triton_and_in_process_torch_agree_on_images_and_texts(stack: StackSettings) -> None:
    """Search embeds in-process after a reindex switch and the embedder does while Triton lags: both paths
    must give the same vectors as Triton for the same model (images of several shapes, and texts)."""
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((256, 320, 3), (200, 200, 3), (90, 400, 3))]
    texts = ["a dog", "aerial sunset over the sea", "two small red circles moving left"]
    client = ClipClient(TEST_ENV["CLIPSTREAM_TRITON_GRPC_URL"], max_in_flight=1)
    try:
        remote_images, model = client.embed_images(images)
        remote_texts, _ = client.embed_texts(texts)
    finally:
        client.close()
    local = load_clip(ensure_model(stack))
    assert local.ref == model
    local_images = np.concatenate([local.embed_pixels(image[None]) for image in images])
    np.testing.assert_allclose(remote_images, local_images, atol=1e-4)
    np.testing.assert_allclose(remote_texts, local.embed_texts(texts), atol=1e-4)
    # different texts are different vectors: a tokenizer that dropped the text would make them equal
    assert np.abs(remote_texts[0] - remote_texts[1]).max() > 1e-3
