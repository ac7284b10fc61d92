"""MangaAssist Console settings: one module, driven by the environment.

Local development and tests run on the embedded defaults below. Production differs only by
environment variables (``MANGAASSIST_ENV=production`` plus the endpoints); see README.md
"Configuration" and ``.env.example``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from sessions_app.observability.logs import logging_config

from .env import env_bool, env_float, env_int, env_list, env_optional, env_str, file_secret

BASE_DIR = Path(__file__).resolve().parent.parent

MANGAASSIST_ENV = env_str("MANGAASSIST_ENV", "local")
if MANGAASSIST_ENV not in {"local", "production"}:
    raise ImproperlyConfigured(f"MANGAASSIST_ENV={MANGAASSIST_ENV!r} must be 'local' or 'production'")
PRODUCTION = MANGAASSIST_ENV == "production"

# --- Django core -----------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when MANGAASSIST_ENV=production")
# Runtime state of this checkout (generated secret, `make run`'s data and logs); ignored by git.
LOCAL_DIR = Path(env_str("MANGAASSIST_LOCAL_DIR", str(BASE_DIR / ".local")))
# Production brings its own key. Locally the key is generated once per checkout (never a constant
# anyone can read in the repository: it signs sessions, CSRF tokens and the listing cursors).
if PRODUCTION:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak ({len(SECRET_KEY)} characters, {len(set(SECRET_KEY))} distinct): "
            "use at least 50 random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'")
else:
    SECRET_KEY = env_optional("DJANGO_SECRET_KEY") or file_secret(LOCAL_DIR / "django-secret-key")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "sessions_app.admin.apps.AdminConfig",  # django.contrib.admin with the project's default site
    "django.contrib.auth",
    "axes",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "csp",
    # Its templates and static files: the API docs use the self-hosted Swagger UI (the CSP allows
    # no CDN), not the CDN copy django-ninja falls back to when it is not installed.
    "ninja",
    "sessions_app",
    "dashboard",
]

MIDDLEWARE = [
    # Before the host check and the HTTPS redirect: a load balancer probes the target's own
    # address over plain HTTP (sessions_app/probes.py).
    "sessions_app.probes.ProbeMiddleware",
    # Then: every log line of the request carries its id (X-Request-ID, honoured or made), and
    # the request's latency includes every middleware below (docs/operating.md).
    "sessions_app.observability.logs.RequestIdMiddleware",
    "sessions_app.observability.http.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in staff member's time zone for every time rendered (dashboard/timezone.py).
    "dashboard.timezone.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a login that axes refused into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mangaassist.urls"
WSGI_APPLICATION = "mangaassist.wsgi.application"
ASGI_APPLICATION = "mangaassist.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default (users, groups, API keys, audit log); any DATABASE_URL overrides it,
# e.g. postgres://user:pass@host:5432/mangaassist.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# axes' backend first: it refuses a locked-out user or address before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security (production) ---------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie-less template tag; kept default
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): scripts and styles only from this origin — no inline
# script, event-handler attribute or style attribute anywhere (tests/dashboard/test_csp.py scans
# the templates; the browser tests fail on any violation Chromium reports). The overview's chart
# data is a json_script data block, which CSP does not treat as script. data: images: the API
# docs' stylesheet (Swagger UI) uses a few.
# Server-Sent Events (live updates of the console) are served by a separate ASGI process, so that
# long-lived connections never hold the sync gunicorn workers that serve the API. In production a
# load-balancer path rule sends /events/ to it (same origin: leave SSE_ORIGIN empty); `make run`
# runs it on its own port, a cross-origin URL the console's pages name in SSE_ORIGIN.
SSE_ORIGIN = env_str("SSE_ORIGIN", "").rstrip("/")
SSE_KEEPALIVE_SECONDS = env_float("SSE_KEEPALIVE_SECONDS", 15.0, minimum=1.0)
# The SSE process's Redis timeouts (connect, read). Longer than REDIS_SOCKET_TIMEOUT, which keeps a
# bot request from waiting on a slow Redis: here no request waits, but one event loop serves every
# stream, and a burst of reconnects (a deploy, a restart) keeps it busy past 0.25 s — a connect
# timed out then would tell a healthy page "unavailable" and send it polling for 30 s.
SSE_REDIS_TIMEOUT = env_float("SSE_REDIS_TIMEOUT", 2.0, minimum=0.1)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF, *([SSE_ORIGIN] if SSE_ORIGIN else [])],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)

# --- Login throttling (django-axes) ---------------------------------------------------------------
# Both login pages (/accounts/login/, /admin/login/) count failures per username and per client
# address; at the limit that user, or every login from that address, is refused for the cool-off,
# even with the right password. Attempts live in the database (axes' database handler): no cache.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_COOLOFF_MINUTES = env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1)
# Reverse proxies in front of the app that append to X-Forwarded-For (1 behind an ALB); 0 = the
# client is REMOTE_ADDR. Set it only if every request passes through them.
LOGIN_PROXY_COUNT = env_int("LOGIN_PROXY_COUNT", 0, minimum=0)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
# The cool-off runs from the lockout: refused attempts neither extend it nor write rows.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "sessions_app.services.login_throttle.AuditedDatabaseHandler"
AXES_CLIENT_IP_CALLABLE = "sessions_app.services.login_throttle.login_client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no start-up banner in every manage.py command's output

# --- DynamoDB / DAX ----------------------------------------------------------------------------
AWS_REGION = env_str("AWS_REGION", env_str("AWS_DEFAULT_REGION", "us-east-1"))
DYNAMODB_TABLE = env_str("DYNAMODB_TABLE", "mangaassist-sessions")
# Unset in production (the regional AWS endpoint is used); set to DynamoDB Local locally.
DYNAMODB_ENDPOINT = env_optional("DYNAMODB_ENDPOINT") if PRODUCTION else env_str("DYNAMODB_ENDPOINT", "http://127.0.0.1:8100")
if DYNAMODB_ENDPOINT and not PRODUCTION and not os.environ.get("AWS_PROFILE"):
    # DynamoDB Local accepts any credentials but botocore signs nothing without some: a manage.py
    # command from a plain shell (stream_consume --status, dynamodb_init) then just works.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
DYNAMODB_CONNECT_TIMEOUT = env_float("DYNAMODB_CONNECT_TIMEOUT", 1.0, minimum=0.05)
DYNAMODB_READ_TIMEOUT = env_float("DYNAMODB_READ_TIMEOUT", 3.0, minimum=0.05)
DYNAMODB_MAX_RETRIES = env_int("DYNAMODB_MAX_RETRIES", 3, minimum=0)
# Write sharding of the session indexes. On a live table only raise these: readers query shards
# 0..N-1, so raising one still finds every older session, lowering one would hide some.
DYNAMODB_DAY_SHARDS = env_int("DYNAMODB_DAY_SHARDS", 8, minimum=1)
DYNAMODB_STATUS_SHARDS = env_int("DYNAMODB_STATUS_SHARDS", 4, minimum=1)
# A channel's share of a day needs fewer shards than the whole day, and each shard is one more
# Query per listing page.
DYNAMODB_CHANNEL_SHARDS = env_int("DYNAMODB_CHANNEL_SHARDS", 4, minimum=1)
# A staff member's hold on a handed-off session lapses after this long without a staff reply:
# the session goes back to the "needs a human" queue (never silently back to the bot).
HANDOFF_IDLE_MINUTES = env_int("HANDOFF_IDLE_MINUTES", 15, minimum=1)
SESSION_TTL_DAYS = env_int("SESSION_TTL_DAYS", 365, minimum=1)
# An open session (active, or handed off and waiting) with no turn for this long is closed by the
# beat sweep "sessions-idle-close" (reason idle, audited, summarised); one a staff member owns is
# left to them (services/idle_close.py).
SESSION_IDLE_CLOSE_MINUTES = env_int("SESSION_IDLE_CLOSE_MINUTES", 60, minimum=1)

DAX_ENDPOINTS = env_list("DAX_ENDPOINTS", [])
DAX_WRITE_THROUGH = env_bool("DAX_WRITE_THROUGH", True)
DAX_BREAKER_FAILURES = env_int("DAX_BREAKER_FAILURES", 3, minimum=1)
DAX_BREAKER_RESET_SECONDS = env_float("DAX_BREAKER_RESET_SECONDS", 10.0, minimum=0.0)
DAX_REQUEST_TIMEOUT = env_float("DAX_REQUEST_TIMEOUT", 1.0, minimum=0.05)
# Faster reply decoding (cbor2's C decoder) for the pinned amazon-dax-client 2.1.0
# (sessions_app/dax_client_tuning.py). Off: the stock client. On any other client version it
# stays off by itself (with a warning).
DAX_CLIENT_TUNING = env_bool("DAX_CLIENT_TUNING", True)
DAX_STATS_URL = env_optional("DAX_STATS_URL")
# DAX's item cache TTL (the cluster's parameter group; 5 minutes by default). A change made
# behind DAX's back (the change feed reports it) is read strongly consistent for this long.
DAX_ITEM_TTL_SECONDS = env_float("DAX_ITEM_TTL_SECONDS", 300.0, minimum=0.0)

# --- The table's configuration (manage.py dynamodb_init applies it; docs/infrastructure.md) -----
# Capacity: PAY_PER_REQUEST (on demand) or PROVISIONED. AWS allows one switch to on demand per
# 24 hours; dynamodb_init says so instead of failing half-way.
DYNAMODB_BILLING_MODE = env_str("DYNAMODB_BILLING_MODE", "PAY_PER_REQUEST").upper()
if DYNAMODB_BILLING_MODE not in ("PAY_PER_REQUEST", "PROVISIONED"):
    raise ImproperlyConfigured("DYNAMODB_BILLING_MODE must be PAY_PER_REQUEST or PROVISIONED")
# Provisioned only: the table's read/write capacity units, and each index's ("index=read:write",
# comma-separated; an index not named gets the table's).
DYNAMODB_READ_CAPACITY = env_int("DYNAMODB_READ_CAPACITY", 5, minimum=1)
DYNAMODB_WRITE_CAPACITY = env_int("DYNAMODB_WRITE_CAPACITY", 5, minimum=1)
DYNAMODB_INDEX_CAPACITY = env_list("DYNAMODB_INDEX_CAPACITY", [])
# Provisioned only: Application Auto Scaling of every table/index read and write dimension
# between MIN and MAX capacity units, aiming at TARGET percent utilisation.
DYNAMODB_AUTOSCALING = env_bool("DYNAMODB_AUTOSCALING", False)
DYNAMODB_AUTOSCALING_MIN = env_int("DYNAMODB_AUTOSCALING_MIN", 5, minimum=1)
DYNAMODB_AUTOSCALING_MAX = env_int("DYNAMODB_AUTOSCALING_MAX", 1000, minimum=1)
DYNAMODB_AUTOSCALING_TARGET = env_float("DYNAMODB_AUTOSCALING_TARGET", 70.0, minimum=20.0)
# Point-in-time recovery (35 days of restorable history; off by default, as on AWS).
DYNAMODB_PITR = env_bool("DYNAMODB_PITR", False)
DYNAMODB_DELETION_PROTECTION = env_bool("DYNAMODB_DELETION_PROTECTION", PRODUCTION)
# Encryption at rest: "aws-owned" (DynamoDB's default key), "aws-managed" (aws/dynamodb in KMS) or
# "customer" (DYNAMODB_KMS_KEY: a key ARN, id or alias of your own).
DYNAMODB_SSE = env_str("DYNAMODB_SSE", "aws-owned")
if DYNAMODB_SSE not in ("aws-owned", "aws-managed", "customer"):
    raise ImproperlyConfigured("DYNAMODB_SSE must be aws-owned, aws-managed or customer")
DYNAMODB_KMS_KEY = env_optional("DYNAMODB_KMS_KEY")
if DYNAMODB_SSE == "customer" and not DYNAMODB_KMS_KEY:
    raise ImproperlyConfigured("DYNAMODB_SSE=customer needs DYNAMODB_KMS_KEY (a KMS key ARN, id or alias)")
DYNAMODB_TABLE_CLASS = env_str("DYNAMODB_TABLE_CLASS", "STANDARD").upper()
if DYNAMODB_TABLE_CLASS not in ("STANDARD", "STANDARD_INFREQUENT_ACCESS"):
    raise ImproperlyConfigured("DYNAMODB_TABLE_CLASS must be STANDARD or STANDARD_INFREQUENT_ACCESS")
# Tags on the table, "key=value" pairs, comma-separated.
DYNAMODB_TAGS = env_list("DYNAMODB_TAGS", [])
# Global tables (version 2019.11.21): the other regions holding a replica. This deployment reads
# and writes its own region (AWS_REGION); a session is written only in its home region.
DYNAMODB_REPLICA_REGIONS = env_list("DYNAMODB_REPLICA_REGIONS", [])
# On-demand backups (manage.py dynamodb_backup; beat runs it when the interval is set).
DYNAMODB_BACKUP_RETENTION_DAYS = env_int("DYNAMODB_BACKUP_RETENTION_DAYS", 35, minimum=1)
DYNAMODB_BACKUP_INTERVAL_HOURS = env_int("DYNAMODB_BACKUP_INTERVAL_HOURS", 0, minimum=0)  # 0: not scheduled

# --- Change feed (DynamoDB Streams; docs/architecture.md §Change feed) ------------------------------
# dynamodb_init enables the table's stream (NEW_AND_OLD_IMAGES) unless this is off.
DYNAMODB_STREAM = env_bool("DYNAMODB_STREAM", True)
# Leases and checkpoints: a table of their own (default: "<DYNAMODB_TABLE>-leases").
STREAM_LEASE_TABLE = env_str("STREAM_LEASE_TABLE", "")
# A dead consumer's shards are taken over this long after its last renewal.
STREAM_LEASE_SECONDS = env_float("STREAM_LEASE_SECONDS", 10.0, minimum=0.5)
STREAM_BATCH_SIZE = env_int("STREAM_BATCH_SIZE", 500, minimum=1)  # GetRecords allows 1,000
# A caught-up shard is polled this often (DynamoDB Streams allows ~5 GetRecords/s per shard).
STREAM_POLL_SECONDS = env_float("STREAM_POLL_SECONDS", 0.25, minimum=0.01)
STREAM_DISCOVERY_SECONDS = env_float("STREAM_DISCOVERY_SECONDS", 10.0, minimum=0.1)
# A record a handler keeps failing on (not an outage) is skipped after this many attempts.
STREAM_MAX_ATTEMPTS = env_int("STREAM_MAX_ATTEMPTS", 5, minimum=1)
STREAM_LAG_ALERT_SECONDS = env_float("STREAM_LAG_ALERT_SECONDS", 30.0, minimum=0.0)
# What each change goes through, in order (sessions_app.streams.dispatch). A new consumer of
# changes (an indexer) is one function and one line here.
STREAM_HANDLERS = env_list("STREAM_HANDLERS", [
    "sessions_app.services.changes.cache_coherence",
    "sessions_app.services.changes.live_events",
    "sessions_app.services.changes.fleet_counters",
    "sessions_app.services.search_index.search_index",
])

# --- Search (docs/architecture.md §Search) ------------------------------------------------------
# "sqlite": the embedded engine, a file beside the other local state (one host's indexer);
# "postgres": the production engine, at SEARCH_DATABASE_URL (RDS/Aurora PostgreSQL).
SEARCH_ENGINE = env_str("SEARCH_ENGINE", "sqlite")
if SEARCH_ENGINE not in ("sqlite", "postgres"):
    raise ImproperlyConfigured("SEARCH_ENGINE must be sqlite or postgres")
SEARCH_SQLITE_PATH = env_str("SEARCH_SQLITE_PATH", str(LOCAL_DIR / "search.sqlite3"))
SEARCH_DATABASE_URL = env_str("SEARCH_DATABASE_URL", "")
if SEARCH_ENGINE == "postgres" and not SEARCH_DATABASE_URL:
    raise ImproperlyConfigured("SEARCH_ENGINE=postgres needs SEARCH_DATABASE_URL (postgresql://user:pass@host/db)")

# --- Metrics (docs/operating.md) -----------------------------------------------------------------
# GET /metrics answers only "Authorization: Bearer $METRICS_TOKEN"; unset, it is a 404. Every
# process adds its numbers to the files in PROMETHEUS_MULTIPROC_DIR (an environment variable read
# by prometheus-client itself, set before the process starts: gunicorn, Celery, the consumer) so
# /metrics and the console see all of them; without it each process reports only itself.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# /readyz: one round of dependency checks per process per READYZ_CACHE_SECONDS, answered within
# READYZ_TIMEOUT_SECONDS (sessions_app/selectors/readiness.py).
READYZ_TIMEOUT_SECONDS = env_float("READYZ_TIMEOUT_SECONDS", 1.0, minimum=0.05)
READYZ_CACHE_SECONDS = env_float("READYZ_CACHE_SECONDS", 1.0, minimum=0.0)
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)  # read by observability.metrics at import
PROMETHEUS_MULTIPROC_DIR = env_optional("PROMETHEUS_MULTIPROC_DIR")

# --- Redis ------------------------------------------------------------------------------------
# redis://host:6379/0, or rediss://… for TLS (ElastiCache in-transit encryption); AUTH / RBAC go in
# the URL: rediss://:<auth-token>@host:6379/0 or rediss://<user>:<password>@host:6379/0
# (percent-encode special characters).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 0.25, minimum=0.01)
# ElastiCache with cluster mode enabled (or any Redis Cluster): REDIS_URL is the configuration
# endpoint, and sessions_app.realtime talks to it through redis-py's RedisCluster (slot routing,
# MOVED/ASK redirects) instead of django-redis's single-node client. A cluster has database 0 only.
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
if REDIS_CLUSTER:
    from urllib.parse import urlsplit

    if urlsplit(REDIS_URL).path.strip("/") not in ("", "0"):
        raise ImproperlyConfigured("REDIS_CLUSTER=1: REDIS_URL must name database 0 (or none); a cluster has no other")
# The eviction policy the app is built for (README "Redis: eviction"): every key of ours has a TTL,
# so volatile-lru evicts exactly what allkeys-lru would among them, and never a key without a TTL
# (a Celery broker sharing the server keeps its queues). Start-up logs a warning, and
# `check --deploy` an error in production, when a Redis with a memory limit uses another policy.
# `any`: no check.
REDIS_MAXMEMORY_POLICY = env_str("REDIS_MAXMEMORY_POLICY", "volatile-lru")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("REDIS_KEY_PREFIX", "ma"),
        "TIMEOUT": 300,
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "CONNECTION_POOL_KWARGS": {"max_connections": env_int("REDIS_MAX_CONNECTIONS", 200, minimum=1)},
        },
    }
}

# --- Product limits -------------------------------------------------------------------------------
TURN_TEXT_MAX_BYTES = env_int("TURN_TEXT_MAX_BYTES", 16 * 1024, minimum=1)
CONTEXT_DEFAULT_TURNS = env_int("CONTEXT_DEFAULT_TURNS", 20, minimum=1)
CONTEXT_MAX_TURNS = env_int("CONTEXT_MAX_TURNS", 200, minimum=1)
CONTEXT_CACHE_TTL = env_int("CONTEXT_CACHE_TTL", 300, minimum=1)
RATE_LIMIT_TURNS = env_int("RATE_LIMIT_TURNS", 30, minimum=1)
RATE_LIMIT_WINDOW_SECONDS = env_int("RATE_LIMIT_WINDOW_SECONDS", 60, minimum=1)
SESSION_LOCK_TIMEOUT = env_float("SESSION_LOCK_TIMEOUT", 5.0, minimum=0.1)
SESSION_LOCK_WAIT = env_float("SESSION_LOCK_WAIT", 0.5, minimum=0.0)
PRESENCE_TTL_SECONDS = env_int("PRESENCE_TTL_SECONDS", 90, minimum=1)
CONNECTION_TTL_SECONDS = env_int("CONNECTION_TTL_SECONDS", 7200, minimum=1)
PAGE_SIZE = env_int("PAGE_SIZE", 25, minimum=1)
# How long a process trusts an API key it has verified; revocations elsewhere take this long.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 10, minimum=0)

# --- Celery -------------------------------------------------------------------------------------
# The Celery app tasks are published to (sessions_app.jobs): named here so that apps need not
# import the project package.
TASK_APP = "mangaassist.celery.app"
# Any kombu URL works: redis://, rediss://, amqp:// (RabbitMQ), sqs://. The Redis-only transport
# options below are applied by mangaassist/celery.py for Redis URLs only.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
CELERY_RESULT_BACKEND = env_optional("CELERY_RESULT_BACKEND")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Redis broker: an unacknowledged message (acks_late) is handed to another worker once it has been
# reserved this long, so a SIGKILLed worker's task is redelivered. It must exceed the longest
# task run plus the longest retry countdown (a reserved countdown task is also "unacked"), or
# healthy tasks get delivered twice (harmless — tasks are idempotent — but wasted work).
# https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout
_visibility_timeout = env_int("CELERY_VISIBILITY_TIMEOUT", 600, minimum=1)
# How often an idle worker looks for messages past their visibility timeout (seconds).
_restore_interval = env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10, minimum=1)
# Publishing happens inside the append request: never wait long for a broker that is down.
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1.0, minimum=0.05)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "visibility_timeout": _visibility_timeout,
        "unacked_restore_interval": _restore_interval,
        "unacked_restore_throttle": 1,  # scan on every restore tick: the interval is the one knob
        "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
        "socket_timeout": env_float("CELERY_BROKER_SOCKET_TIMEOUT", 5.0, minimum=0.1),
    }
    if CELERY_BROKER_URL.split("://", 1)[0] in {"redis", "rediss", "sentinel"}
    else {}  # RabbitMQ (amqp://) redelivers unacked messages on connection loss by itself
)
SUMMARY_EVERY_N_TURNS = env_int("SUMMARY_EVERY_N_TURNS", 10, minimum=1)
SUMMARY_IDLE_MINUTES = env_int("SUMMARY_IDLE_MINUTES", 15, minimum=1)
SUMMARY_SWEEP_SECONDS = env_int("SUMMARY_SWEEP_SECONDS", 60, minimum=1)
# Shards of the sparse summary_due index (like the status index: one hot partition avoided).
SUMMARY_DUE_SHARDS = env_int("SUMMARY_DUE_SHARDS", 4, minimum=1)
# Shards of the by_summary_state index. Every session is in it (one partition set per state), so
# it is sharded like by_day; a list filtered by summary state reads STATE shards at once.
SUMMARY_STATE_SHARDS = env_int("SUMMARY_STATE_SHARDS", 8, minimum=1)
SUMMARY_SOFT_TIME_LIMIT = env_int("SUMMARY_SOFT_TIME_LIMIT", 120, minimum=1)
SUMMARY_TIME_LIMIT = env_int("SUMMARY_TIME_LIMIT", 150, minimum=2)
SUMMARY_MAX_RETRIES = env_int("SUMMARY_MAX_RETRIES", 6, minimum=0)
# A "pending" request older than this without a result is shown as stale (the sweep re-requests).
SUMMARY_PENDING_MINUTES = env_int("SUMMARY_PENDING_MINUTES", 30, minimum=1)
# "extractive" (offline, deterministic), "bedrock", or a dotted path to a Summarizer class.
SUMMARIZER = env_str("SUMMARIZER", "extractive")
BEDROCK_MODEL_ID = env_str("BEDROCK_MODEL_ID", "anthropic.claude-3-haiku-20240307-v1:0")
BEDROCK_REGION = env_str("BEDROCK_REGION", AWS_REGION)
BEDROCK_MAX_TOKENS = env_int("BEDROCK_MAX_TOKENS", 600, minimum=16)
BEDROCK_READ_TIMEOUT = env_float("BEDROCK_READ_TIMEOUT", 60.0, minimum=1.0)
# The bot's models' prices, USD per 1M input / output tokens (sessions_app/usage.py): JSON
# {"model": {"input": n, "output": n}}. Cost is computed for these models only ("no price" for
# others), and they are the only values of the per-model metrics' `model` label (others: "other").
_DEFAULT_MODEL_PRICES = {
    "claude-3-haiku": {"input": "0.25", "output": "1.25"},
    "claude-3-5-haiku": {"input": "0.80", "output": "4.00"},
    "claude-3-5-sonnet": {"input": "3.00", "output": "15.00"},
    "claude-sonnet-4": {"input": "3.00", "output": "15.00"},
    BEDROCK_MODEL_ID: {"input": "0.25", "output": "1.25"},
}
try:
    from sessions_app.usage import prices_parse as _prices_parse

    MODEL_PRICES = _prices_parse(env_optional("MODEL_PRICES") or _DEFAULT_MODEL_PRICES)
except ValueError as _exc:
    raise ImproperlyConfigured(f"MODEL_PRICES: {_exc}") from None
# Staff replies reach the customer through the bot runtime, which owns their WebSocket: an outbound
# webhook (services.webhooks), HMAC-SHA256-signed with BOT_WEBHOOK_SECRET, retried with backoff
# until acknowledged (2xx). Unset URL: replies are stored and shown, delivery is "not configured".
BOT_WEBHOOK_URL = env_optional("BOT_WEBHOOK_URL")
BOT_WEBHOOK_SECRET = env_str("BOT_WEBHOOK_SECRET", "")
BOT_WEBHOOK_TIMEOUT = env_float("BOT_WEBHOOK_TIMEOUT", 5.0, minimum=0.1)
BOT_WEBHOOK_MAX_ATTEMPTS = env_int("BOT_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
BOT_WEBHOOK_BACKOFF_SECONDS = env_float("BOT_WEBHOOK_BACKOFF_SECONDS", 2.0, minimum=0.01)
HANDOFF_SWEEP_SECONDS = env_int("HANDOFF_SWEEP_SECONDS", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    # expires: with no worker running, beat must not pile up sweeps that would all run at once later.
    "summary-sweep": {"task": "sessions_app.summary_sweep", "schedule": float(SUMMARY_SWEEP_SECONDS),
                      "options": {"expires": float(SUMMARY_SWEEP_SECONDS)}},
    # Holds idle for HANDOFF_IDLE_MINUTES go back to the "needs a human" queue.
    "handoff-lapse-sweep": {"task": "sessions_app.handoff_lapse_sweep", "schedule": float(HANDOFF_SWEEP_SECONDS),
                            "options": {"expires": float(HANDOFF_SWEEP_SECONDS)}},
    # The search index's months past every session's TTL are dropped whole (PostgreSQL engine).
    "search-retention-sweep": {"task": "sessions_app.search_retention_sweep", "schedule": 86400.0,
                               "options": {"expires": 3600.0}},
    # "alerts-evaluate" is added by the Alerts block below, beside the setting it runs on.
}
# Sessions idle for SESSION_IDLE_CLOSE_MINUTES are closed; every 5 minutes keeps a session at most
# 5 minutes past its idle limit, and each run is bounded (services/idle_close.py).
CELERY_BEAT_SCHEDULE["sessions-idle-close"] = {"task": "sessions_app.sessions_idle_close", "schedule": 300.0,
                                               "options": {"expires": 300.0}}

# --- Alerts (services.alerts; deploy/prometheus/alerts.yml carries the same rules) -------------
# Transitions (fired, resolved) are POSTed as Slack-compatible JSON, signed like the bot webhook
# (HMAC-SHA256 over "<timestamp>." + body with ALERT_WEBHOOK_SECRET). No URL or no secret: alerts
# are still evaluated and shown on the overview, nothing is sent (never unsigned).
ALERT_WEBHOOK_URL = env_optional("ALERT_WEBHOOK_URL")
ALERT_WEBHOOK_SECRET = env_str("ALERT_WEBHOOK_SECRET", "")
ALERT_WEBHOOK_TIMEOUT = env_float("ALERT_WEBHOOK_TIMEOUT", 5.0, minimum=0.1)
# Beat runs the sweep this often; it must stay well under the shortest rule window (5 min).
ALERT_EVALUATE_SECONDS = env_int("ALERT_EVALUATE_SECONDS", 60, minimum=5)
# Each run also stores the metrics sample later runs (and the overview) take differences from.
CELERY_BEAT_SCHEDULE["alerts-evaluate"] = {
    "task": "sessions_app.alerts_evaluate", "schedule": float(ALERT_EVALUATE_SECONDS),
    "options": {"expires": float(ALERT_EVALUATE_SECONDS)},
}
# DAX item/query and Redis context cache hit ratios below this over 15 minutes fire.
ALERT_HIT_RATIO_BELOW = env_float("ALERT_HIT_RATIO_BELOW", 0.80, minimum=0.0)
# HTTP 5xx share of requests above this over 5 minutes fires.
ALERT_ERROR_RATE_ABOVE = env_float("ALERT_ERROR_RATE_ABOVE", 0.05, minimum=0.0)
ALERT_SUMMARY_BACKLOG = env_int("ALERT_SUMMARY_BACKLOG", 100, minimum=0)
# A ratio judged on a handful of requests is noise (3 requests turned the band red once): a hit
# ratio rule needs this many lookups in its window, the error rate ALERT_MIN_HTTP_REQUESTS.
ALERT_MIN_REQUESTS = env_int("ALERT_MIN_REQUESTS", 100, minimum=1)
ALERT_MIN_HTTP_REQUESTS = env_int("ALERT_MIN_HTTP_REQUESTS", 50, minimum=1)
# Production DAX has no stats endpoint: with DAX_STATS_URL unset, the hit ratios come from
# CloudWatch's AWS/DAX metrics of this cluster (ClusterId), in AWS_REGION.
DAX_CLUSTER_NAME = env_optional("DAX_CLUSTER_NAME")
# The console's public URL, for the link in each alert (optional).
CONSOLE_URL = env_str("CONSOLE_URL", "").rstrip("/")

# --- Scheduled backups (manage.py dynamodb_backup; services.backups) --------------------------------
# Beat asks for an on-demand backup every DYNAMODB_BACKUP_INTERVAL_HOURS and prunes this table's
# backups older than DYNAMODB_BACKUP_RETENTION_DAYS (never the newest). Backups are regional: each
# region's beat backs up its own replica.
if DYNAMODB_BACKUP_INTERVAL_HOURS > 0:
    CELERY_BEAT_SCHEDULE["dynamodb-backup"] = {
        "task": "sessions_app.dynamodb_backup_scheduled",
        "schedule": DYNAMODB_BACKUP_INTERVAL_HOURS * 3600.0,
        "options": {"expires": DYNAMODB_BACKUP_INTERVAL_HOURS * 1800.0},
    }

# --- Logging ------------------------------------------------------------------------------------
# Structured lines (structlog over the standard library's logging; sessions_app/observability/logs.py):
# one JSON object per line in production, aligned text locally. Every line of a request carries
# its request id (X-Request-ID), also the lines of the Celery tasks it enqueued.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "console")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be 'json' or 'console'")
# Applies LOGGING and routes structlog.get_logger() into it.
LOGGING_CONFIG = "sessions_app.observability.logs.configure"
LOGGING = logging_config(
    level=LOG_LEVEL,
    json=LOG_FORMAT == "json",
    levels={"botocore": "WARNING", "pynamodb": "WARNING", "amazondax": "WARNING"},
)
