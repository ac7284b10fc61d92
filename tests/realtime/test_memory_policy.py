"""Redis's ``maxmemory-policy`` against the documented choice (``REDIS_MAXMEMORY_POLICY``): the
deployment check (an error in production, a warning elsewhere) and the start-up log line.

Each test changes its own redis-server (``own_redis``), or the cluster of test_cluster_mode.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from django.core import checks
from django.core.checks.registry import registry

from sessions_app.apps import redis_memory_policy_check, redis_memory_policy_log_at_start
from sessions_app.realtime import memory_policy
from sessions_app.realtime.memory_policy import memory_policies_read, memory_policy_log, memory_policy_mismatches

from .conftest import _use_cache_location

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 256 * 1024 * 1024


def _evicting(client, policy: str, *, maxmemory: int = LIMIT) -> None:
    client.config_set("maxmemory", maxmemory)
    client.config_set("maxmemory-policy", policy)


def test_the_documented_policy_passes(own_redis):
    _evicting(own_redis.client, "volatile-lru")
    assert memory_policy_mismatches() == []
    assert redis_memory_policy_check() == []


def test_another_policy_is_a_warning_locally(own_redis, settings):
    _evicting(own_redis.client, "noeviction")
    [reading] = memory_policy_mismatches()
    assert (reading.policy, reading.maxmemory, reading.source) == ("noeviction", LIMIT, "config")
    [message] = redis_memory_policy_check()
    assert isinstance(message, checks.Warning) and message.id == "mangaassist.W003"
    assert "noeviction" in message.msg and "volatile-lru" in message.msg
    assert "parameter group" in message.hint


def test_another_policy_is_an_error_in_production(own_redis, settings):
    settings.PRODUCTION = True
    _evicting(own_redis.client, "allkeys-lfu")
    [message] = redis_memory_policy_check()
    assert isinstance(message, checks.Error) and message.id == "mangaassist.E003"


def test_without_a_memory_limit_the_policy_never_acts_and_is_not_compared(own_redis):
    _evicting(own_redis.client, "noeviction", maxmemory=0)  # a stock redis-server
    assert memory_policy_mismatches() == []


def test_a_different_documented_choice_is_honoured_and_any_turns_the_check_off(own_redis, settings):
    _evicting(own_redis.client, "allkeys-lru")
    assert memory_policy_mismatches() != []
    settings.REDIS_MAXMEMORY_POLICY = "allkeys-lru"
    assert memory_policy_mismatches() == []
    _evicting(own_redis.client, "noeviction")
    settings.REDIS_MAXMEMORY_POLICY = "any"
    assert memory_policy_mismatches() == [] and redis_memory_policy_check() == []


def test_redis_down_says_nothing_and_never_raises(own_redis, settings):
    settings.PRODUCTION = True
    own_redis.kill()
    assert memory_policy_mismatches() is None
    assert redis_memory_policy_check() == []
    memory_policy_log()  # no exception


def test_where_config_is_refused_info_is_read(own_redis):
    # ElastiCache renames CONFIG; an ACL user may lack it: the same answer comes from INFO memory.
    _evicting(own_redis.client, "noeviction")
    own_redis.client.execute_command("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all", "-config")
    _use_cache_location(f"redis://app:app-password@127.0.0.1:{own_redis.port}/0")  # AUTH from the URL
    [reading] = memory_policies_read()
    assert (reading.policy, reading.maxmemory, reading.source) == ("noeviction", LIMIT, "info")
    assert [r.policy for r in memory_policy_mismatches()] == ["noeviction"]


def test_the_policy_uses_a_client_of_its_own_and_leaves_the_pool_alone(own_redis):
    from django_redis.pool import ConnectionFactory

    before = dict(ConnectionFactory._pools)
    memory_policies_read()
    assert ConnectionFactory._pools == before


def test_every_node_of_a_cluster_is_read(cluster):
    readings = memory_policies_read()
    assert len(readings) == 3 and {r.source for r in readings} == {"config"}
    node = cluster.get_primaries()[0]
    direct = cluster.get_redis_connection(node)
    _evicting(direct, "noeviction")
    try:
        assert [(r.node, r.policy) for r in memory_policy_mismatches()] == [(node.name, "noeviction")]
        [message] = redis_memory_policy_check()
        assert node.name in message.msg
    finally:
        _evicting(direct, "noeviction", maxmemory=0)


def test_start_up_logs_a_warning_in_a_thread_of_its_own(own_redis, caplog, monkeypatch):
    _evicting(own_redis.client, "noeviction")
    with caplog.at_level(logging.WARNING, logger="sessions_app.realtime"):
        memory_policy_log()
    [record] = [r for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert "noeviction" in record.getMessage() and "volatile-lru" in record.getMessage()

    ran = threading.Event()
    seen: list[threading.Thread] = []
    def fake_log() -> None:
        seen.append(threading.current_thread())
        ran.set()

    monkeypatch.setattr(memory_policy, "memory_policy_log", fake_log)
    redis_memory_policy_log_at_start()
    assert ran.wait(5)
    assert seen[0] is not threading.main_thread() and seen[0].daemon and seen[0].name == "redis-memory-policy"


def test_the_check_is_a_deployment_check():
    assert redis_memory_policy_check in registry.get_checks(include_deployment_checks=True)
    assert redis_memory_policy_check not in registry.get_checks(include_deployment_checks=False)


PRODUCTION = {"MANGAASSIST_ENV": "production", "DJANGO_ALLOWED_HOSTS": "console.example.com",
              "DJANGO_SECRET_KEY": "x" * 20 + "production-secret-key-for-the-check-0123456789",
              "SEARCH_ENGINE": "postgres", "SEARCH_DATABASE_URL": "postgresql://search.example.com/mangaassist",
              "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="metrics-check-")}


def _check_deploy(**env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MANGAASSIST_", "REDIS_"))}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=base | PRODUCTION | env, capture_output=True, text=True)


def test_check_deploy_fails_in_production_on_the_wrong_policy(own_redis):
    _evicting(own_redis.client, "noeviction")
    failed = _check_deploy(REDIS_URL=own_redis.url)
    assert failed.returncode != 0 and "mangaassist.E003" in failed.stdout + failed.stderr
    _evicting(own_redis.client, "volatile-lru")
    passed = _check_deploy(REDIS_URL=own_redis.url)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_check_deploy_passes_without_a_reachable_redis():
    # `make check` has no Redis: nothing can be said, so nothing is.
    from devtools import procs

    result = _check_deploy(REDIS_URL=f"redis://127.0.0.1:{procs.free_port()}/0")
    assert result.returncode == 0, result.stdout + result.stderr

