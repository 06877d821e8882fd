"""Locust users for `bench.search_load`: one kind of query per run (BENCH_QUERY = text | image | filtered),
each user sending the next request as soon as the last one answered (closed loop: users = concurrency)."""

from __future__ import annotations

import io
import json
import os
import random

from locust import HttpUser, constant, task
from PIL import Image

from services.common.clip.toy.world import all_scenes, layout, render

KIND = os.environ.get("BENCH_QUERY", "text")
KEY = {"X-API-Key": os.environ.get("BENCH_API_KEY", "")}
SCENES = all_scenes()
FILTERS = [{"min_height": 1080}, {"tags": ["tag7"]}, {"max_duration_s": 60}]


def _png(index: int) -> bytes:
    scene = SCENES[index % len(SCENES)]
    buffer = io.BytesIO()
    Image.fromarray(render(scene, layout(scene, index), 320, 240)).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = [_png(i) for i in range(16)] if KIND == "image" else []


class Searcher(HttpUser):
    wait_time = constant(0)

    @task
    def query(self) -> None:
        if KIND == "image":
            files = {"file": ("q.png", random.choice(IMAGES), "image/png")}
            self.client.post("/v1/search/image", files=files, headers=KEY, name="image")
        elif KIND == "filtered":
            body = {"query": random.choice(SCENES).caption, "filters": random.choice(FILTERS)}
            self.client.post("/v1/search/text", data=json.dumps(body), headers=KEY, name="filtered")
        else:
            body = {"query": random.choice(SCENES).caption}
            self.client.post("/v1/search/text", data=json.dumps(body), headers=KEY, name="text")
