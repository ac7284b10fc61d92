"""/metrics for real: a gunicorn with two workers in Prometheus multiprocess mode, a scripted load
through the API (appends, context loads, a DAX that is not there, a Redis that goes away), and
the scrape that has to add both workers' numbers up with the right labels."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools import procs
from sessions_app.observability import metrics

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-metrics-token-0123456789"


def _request(base: str, method: str, path: str, *, key: str | None = None, body: dict | None = None,
             headers: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        **({"Authorization": f"Bearer {key}"} if key else {}),
        **({"Content-Type": "application/json"} if data else {}),
        **(headers or {}),
    })
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _samples(text: str) -> list[tuple[str, dict, float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples, name: str, **labels) -> float:
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in labels.items()))


@pytest.fixture
def server(ddb, infra, tmp_path):
    """gunicorn, two workers, on the test's table; its own Redis (this test stops it) and a DAX
    endpoint nobody listens on (every DAX read falls back to DynamoDB)."""
    redis_port, port = procs.free_port(), procs.free_port()
    redis_proc = procs.start_redis(redis_port, log=tmp_path / "redis.log")
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DYNAMODB_TABLE": ddb,
           "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/1",
           "DAX_ENDPOINTS": f"127.0.0.1:{procs.free_port()}", "DAX_REQUEST_TIMEOUT": "0.2",
           "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "METRICS_TOKEN": TOKEN, "METRICS_ENABLED": "1",
           "RATE_LIMIT_TURNS": "100000", "SUMMARY_EVERY_N_TURNS": "1000", "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([sys.executable, "manage.py", "create_api_key", "metrics-test", "--scope", "write"],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    key = re.search(r"key: (\S+)", out).group(1)
    proc = procs.spawn([sys.executable, "-m", "gunicorn", "mangaassist.wsgi:application", "-c", "python:mangaassist.gunicorn_conf",
                        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "30"],
                       tmp_path / "gunicorn.log", cwd=ROOT, env=env)
    try:
        procs.wait_for_port("127.0.0.1", port, timeout=60, proc=proc, name="gunicorn")
        yield {"base": f"http://127.0.0.1:{port}", "key": key, "redis": redis_proc, "dir": multiproc}
    finally:
        procs.stop(proc)
        procs.stop(redis_proc)


def _worker_files(directory: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in directory.glob("histogram_*.db")}


def test_metrics_add_up_both_workers_with_the_right_labels(server):
    base, key = server["base"], server["key"]
    status, body = _request(base, "POST", "/api/v1/sessions", key=key, body={"customer_id": "cust-metrics", "channel": "web"})
    assert status == 201, body
    session_id = json.loads(body)["session_id"]
    appends = 0

    def load(n: int) -> None:
        nonlocal appends
        for i in range(n):
            status, body = _request(base, "GET", f"/api/v1/sessions/{session_id}/context", key=key)
            assert status == 200, body

    for i in range(6):
        status, body = _request(base, "POST", f"/api/v1/sessions/{session_id}/turns", key=key,
                                body={"role": "user", "text": f"turn {i}", "client_msg_id": f"m-{i}"})
        assert status == 201, body
        appends += 1
    # A retry of the last one: answered from the stored turn.
    status, _ = _request(base, "POST", f"/api/v1/sessions/{session_id}/turns", key=key,
                         body={"role": "user", "text": "turn 5", "client_msg_id": "m-5"})
    assert status == 200
    # Concurrent clients keep both sync workers busy, so both serve some of the loads.
    threads = [threading.Thread(target=load, args=(15,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(_worker_files(server["dir"])) >= 2, "both workers should have served requests"

    procs.stop(server["redis"])  # Redis goes away: the product goes on without it
    status, body = _request(base, "POST", f"/api/v1/sessions/{session_id}/turns", key=key,
                            body={"role": "user", "text": "without redis", "client_msg_id": "m-r"})
    assert status == 201, body
    appends += 1
    status, _ = _request(base, "GET", f"/api/v1/sessions/{session_id}/context", key=key)
    assert status == 200

    assert _request(base, "GET", "/metrics")[0] == 401
    assert _request(base, "GET", "/metrics", key="wrong")[0] == 401
    status, raw = _request(base, "GET", "/metrics", key=TOKEN)
    assert status == 200
    samples = _samples(raw.decode())

    assert _value(samples, "mangaassist_turn_appends_total", outcome="201") == appends
    assert _value(samples, "mangaassist_turn_appends_total", outcome="replay") == 1
    route = "api/v1/sessions/<session_id>/turns"
    http = {l["route"] for n, l, _ in samples if n == "mangaassist_http_request_duration_seconds_count"}
    assert any(r.endswith("/turns") for r in http), http
    turns_route = next(r for r in http if r.endswith("/turns"))
    assert "<" in turns_route and session_id not in turns_route  # a pattern, never the id
    assert _value(samples, "mangaassist_http_request_duration_seconds_count", route=turns_route, status="201") == appends
    assert _value(samples, "mangaassist_http_request_duration_seconds_count", route=turns_route, status="200") == 1
    # 61 context loads: the cache serves most; the first (and the one without Redis) read the store.
    loads = {l["source"]: v for n, l, v in samples if n == "mangaassist_context_loads_total"}
    assert sum(loads.values()) == 61 and loads.get("redis", 0) >= 50 and loads.get("dynamodb", 0) >= 2, loads
    assert "dax" not in loads  # nobody listens on the DAX endpoint: every store read fell back
    assert _value(samples, "mangaassist_dynamodb_requests_total", route="fallback", outcome="ok") > 0
    assert _value(samples, "mangaassist_dynamodb_requests_total", route="dax", outcome="unavailable") > 0
    assert _value(samples, "mangaassist_dax_breaker_open") >= 1  # summed over the live workers
    assert _value(samples, "mangaassist_redis_degraded_events_total") >= 2
    assert _value(samples, "mangaassist_redis_degraded_events_total", operation="rate_limit_hit") == 1
    # Seven calls answered (six appends and the retry, before Redis went), one did not.
    assert _value(samples, "mangaassist_redis_request_duration_seconds_count", operation="rate_limit_hit") == 8
    assert _value(samples, "mangaassist_redis_errors_total", operation="rate_limit_hit", outcome="unavailable") == 1
    # No label carries a session or customer id.
    assert not [s for s in samples if any(session_id in v or "cust-metrics" in v for v in s[1].values())]
    # The scrape and the probes are not requests the dashboards count.
    assert not [l for n, l, _ in samples if n.startswith("mangaassist_http") and l.get("route") in ("metrics", "healthz", "readyz")]


def test_metrics_endpoint_is_a_404_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    assert b"mangaassist_http_request_duration_seconds" in response.content
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_every_project_metric_is_named_by_the_conventions():
    names = [m._name for m in vars(metrics).values() if hasattr(m, "_type") and hasattr(m, "_name")]
    assert len(names) >= 12
    for metric in (m for m in vars(metrics).values() if hasattr(m, "_type") and hasattr(m, "_name")):
        assert metric._name.startswith("mangaassist_"), metric._name
        if metric._type == "counter":
            assert not metric._name.endswith("_total")  # the client appends _total itself
        if metric._type == "histogram":
            assert metric._name.endswith("_seconds"), metric._name
        assert not {"session_id", "customer_id", "session", "customer"} & set(metric._labelnames)
