"""Locust users for `bench.search_load`: one kind of query per run (BENCH_QUERY = text | image | filtered |
video: a 10-s excerpt, two shots of the toy world, H.264 320x240),
each user sending the next request as soon as the last one answered (closed loop: users = concurrency)."""

from __future__ import annotations

import io
import os
import random
import tempfile
from pathlib import Path

from locust import HttpUser, constant, task
from PIL import Image

from services.clip.toy.world import all_scenes, layout, render
from services.media.synthetic import write_world_clip

KIND = os.environ.get("BENCH_QUERY", "text")
KEY = {"X-API-Key": os.environ.get("BENCH_API_KEY", "")}
SCENES = all_scenes()
FILTERS = [{"min_height": 1080}, {"tags": ["tag7"]}, {"max_duration_s": 60}]


def _png(index: int) -> bytes:
    scene = SCENES[index % len(SCENES)]
    buffer = io.BytesIO()
    Image.fromarray(render(scene, layout(scene, index), 320, 240)).save(buffer, format="PNG")
    return buffer.getvalue()


def _excerpt() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_world_clip(Path(tmp) / "excerpt.mp4", SCENES[:2], scene_s=5.0, seed=3)
        return path.read_bytes()


IMAGES = [_png(i) for i in range(16)] if KIND == "image" else []
EXCERPT = _excerpt() if KIND == "video" else b""


class Searcher(HttpUser):
    wait_time = constant(0)

    @task
    def query(self) -> None:
        if KIND == "video":
            files = {"file": ("q.mp4", EXCERPT, "video/mp4")}
            self.client.post("/v1/search/video", files=files, headers=KEY, name="video")
        elif KIND == "image":
            files = {"file": ("q.png", random.choice(IMAGES), "image/png")}
            self.client.post("/v1/search/image", files=files, headers=KEY, name="image")
        elif KIND == "filtered":
            body = {"query": random.choice(SCENES).caption, "filters": random.choice(FILTERS)}
            self.client.post("/v1/search/text", json=body, headers=KEY, name="filtered")
        else:
            body = {"query": random.choice(SCENES).caption}
            self.client.post("/v1/search/text", json=body, headers=KEY, name="text")
