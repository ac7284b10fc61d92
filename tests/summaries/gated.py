"""A test-only summarizer (selected with ``SUMMARIZER=tests.summaries.gated.GatedSummarizer``)
that announces itself in Redis and then blocks until the test opens the gate — so a test can
hold a worker mid-summary (to SIGKILL it, or to make five runs overlap)."""

from __future__ import annotations

import os
import time

import redis
from django.conf import settings

from sessions_app.summarizers.extractive import ExtractiveSummarizer

ARRIVED_KEY = "test:gate:arrived"
OPEN_KEY = "test:gate:open"
WAIT_SECONDS = 60


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


class GatedSummarizer:
    def summarize(self, transcript):
        client = _client()
        client.rpush(ARRIVED_KEY, f"{os.getpid()}:{transcript.session_id}")
        deadline = time.monotonic() + WAIT_SECONDS
        while not client.exists(OPEN_KEY):
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the summarizer gate")
            time.sleep(0.02)
        client.close()
        return ExtractiveSummarizer().summarize(transcript)
