"""Settings for the bench's own gunicorn servers: the product's settings, plus the bench URLconf
(the bare ``/bench/ping`` view) and, when ``BENCH_COUNTERS_DIR`` is set, per-worker counters."""

import os

from mangaassist.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.urls"

if os.environ.get("BENCH_COUNTERS_DIR"):
    from django.apps import AppConfig  # noqa: F401  (apps are not ready yet; install on first request)

    _counters_dir = os.environ["BENCH_COUNTERS_DIR"]

    def _install_counters(sender, **kwargs):
        from bench import instrument

        instrument.install(_counters_dir)

    from django.core.signals import request_started as _request_started

    _request_started.connect(_install_counters, weak=False, dispatch_uid="bench-counters")
