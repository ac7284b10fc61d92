"""``daxlocal`` is a standalone package: it must not import the web app, its tooling or the tests.

The check reads every module of ``daxlocal/`` with :mod:`ast` (nothing is imported), so an import
hidden in a function body or behind a condition is caught as well as a top-level one. Relative
imports are resolved against the module's package; one that climbs out of ``daxlocal`` is a
violation whatever it names. A second test imports the node's entry points in a fresh interpreter
and looks at ``sys.modules``, which also catches imports made by name at run time.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = "daxlocal"
PACKAGE_DIR = ROOT / PACKAGE
FORBIDDEN = {"django", "sessions_app", "mangaassist", "dashboard", "devtools", "bench", "tests"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: Path) -> str:
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(package: str, level: int, module: str | None) -> str | None:
    """The absolute name of ``from <level dots><module> import ...``, or None if it climbs above the root."""
    parts = package.split(".") if package else []
    if level - 1 > len(parts) - 1:
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def violations(source: str, package: str, filename: str = "<source>") -> list[str]:
    """Every import in ``source`` (a module of ``package``) that leaves ``daxlocal`` for a forbidden place."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:
                resolved = _resolve(package, node.level, node.module)
                if resolved is None or resolved.split(".")[0] != PACKAGE:
                    found.append(f"{filename}:{node.lineno}: relative import "
                                 f"{'.' * node.level}{node.module or ''} leaves the package ({resolved})")
                    continue
                names = [resolved]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"{filename}:{node.lineno}: imports {name}")
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_the_package_has_modules_to_check():
    names = {p.name for p in _modules()}
    assert {"__init__.py", "__main__.py", "server.py", "handlers.py", "cli.py"} <= names


def test_no_module_of_daxlocal_imports_the_app_its_tools_or_the_tests():
    found = []
    for path in _modules():
        found += violations(path.read_text(encoding="utf-8"), _package_of(path), str(path.relative_to(ROOT)))
    assert found == []


@pytest.mark.parametrize("source", [
    "import django",
    "import django.conf as conf",
    "from sessions_app.models import Session",
    "from mangaassist import settings",
    "import os, dashboard.views",
    "def f():\n    from devtools import procs",
    "try:\n    import bench.stack\nexcept ImportError:\n    pass",
    "from tests.daxlocal.helpers import norm",
    "from .. import sessions_app",
    "from ..mangaassist import settings",
    "from ... import anything",
    "import importlib\nimportlib.import_module('django.conf')",
    "__import__('sessions_app')",
])
def test_the_checker_catches_forbidden_imports(source):
    assert violations(source, "daxlocal")


@pytest.mark.parametrize("source, package", [
    ("import json, socket\nimport botocore.session\nfrom botocore.config import Config", "daxlocal"),
    ("from . import cbor\nfrom .server import DaxNode", "daxlocal"),
    ("from .. import cbor\nfrom ..codec import encode_av", "daxlocal.sub"),
    ("import djangofix\nimport testsuite", "daxlocal"),
])
def test_the_checker_allows_the_standard_library_botocore_and_the_package_itself(source, package):
    assert violations(source, package) == []


def test_importing_the_node_loads_nothing_from_the_app():
    code = (
        "import json, sys\n"
        "import daxlocal, daxlocal.cli, daxlocal.server, daxlocal.handlers, daxlocal.stats\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) & FORBIDDEN == set()
