"""`make run` installs requirements.txt only (test tools come from requirements-dev.txt). This
test imports every runtime entry point in a fresh interpreter and checks that each third-party
module it loads belongs to a distribution that requirements.txt pulls in — so a dependency that
happens to be present only because a test tool installed it fails here, not on a fresh machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent

ENTRY_POINTS = """
import django, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mangaassist.settings")
django.setup()
import gunicorn.app.wsgiapp, kombu.transport.redis, celery.bin.celery, whitenoise.middleware
import mangaassist.wsgi, mangaassist.urls, sessions_app.tasks, sessions_app.admin, sessions_app.summarizers
import daxlocal.server, sessions_app.management.commands.seed_demo, devtools.run
from django.core.management import get_commands
import json
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


# Imported only when present (try/except ImportError in botocore, django-ninja, celery...): a
# venv built from requirements.txt alone runs the entry points above without them. blinker:
# pynamodb.signals uses it when installed (the tests' Scan guard needs it; requirements-dev.txt).
# rich: structlog's console renderer looks for it (schemathesis brings it); our local log format
# works without it (sessions_app/observability/logs.py renders tracebacks as plain text).
OPTIONAL = {"setuptools", "certifi", "greenlet", "pygments", "pyyaml", "cython", "blinker", "rich"}


def _closure() -> set[str]:
    wanted = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            wanted.append(Requirement(line))
    seen: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = _norm(req.name)
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        for spec in metadata.requires(req.name) or []:
            dep = Requirement(spec)
            env_ok = dep.marker is None or any(
                dep.marker.evaluate({"extra": extra}) for extra in (req.extras or {""})
            )
            if env_ok:
                wanted.append(dep)
    return {s for s in seen if "[" not in s}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_runtime_imports_need_only_what_requirements_txt_installs():
    out = subprocess.run([sys.executable, "-c", ENTRY_POINTS], cwd=ROOT, capture_output=True, text=True, check=True)
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    owners = metadata.packages_distributions()
    allowed = _closure()
    missing = {}
    for module in modules:
        for dist in owners.get(module, []):
            if _norm(dist) not in allowed | OPTIONAL and module not in sys.stdlib_module_names:
                missing.setdefault(_norm(dist), []).append(module)
    assert not missing, f"imported at run time but not required by requirements.txt: {missing}"
