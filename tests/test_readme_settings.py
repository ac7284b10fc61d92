"""Every environment variable the project's configuration reads (mangaassist/: settings.py and the
SSE app's own, through the readers of env.py or os.environ) has a row in the README's settings
table — so a new setting cannot ship undocumented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READERS = {"env_str", "env_int", "env_float", "env_bool", "env_list", "env_optional"}


def _env_reads(path: Path) -> set[str]:
    """Names read by ``env_*("NAME", …)``, ``os.environ.get("NAME")``, ``os.environ["NAME"]`` and
    ``os.getenv("NAME")`` (``os.environ.setdefault`` writes a default for others: not a read)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            reader = (isinstance(func, ast.Name) and func.id in READERS) or (
                isinstance(func, ast.Attribute) and (
                    (func.attr == "get" and ast.unparse(func.value) == "os.environ")
                    or (func.attr == "getenv" and ast.unparse(func.value) == "os")))
            if reader:
                names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" \
                and isinstance(node.slice, ast.Constant) and isinstance(node.ctx, ast.Load):
            names.add(node.slice.value)
    return names


def _settings_table() -> set[str]:
    """The backquoted names in the first column of the table under README's "## Configuration"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_every_environment_variable_read_has_a_row_in_the_readme_settings_table():
    read = set().union(*(_env_reads(path) for path in sorted((ROOT / "mangaassist").rglob("*.py"))))
    assert {"DJANGO_SECRET_KEY", "SESSION_IDLE_CLOSE_MINUTES", "SSE_MAX_STREAMS"} <= read  # the parse finds them
    missing = sorted(read - _settings_table())
    assert missing == [], f"README.md's settings table (## Configuration) lacks: {', '.join(missing)}"


def test_the_settings_table_names_nothing_that_is_never_read():
    """A row for a variable nothing reads misleads whoever sets it (``make run``'s own variables,
    read by devtools/run.py, count as read)."""
    read = set().union(*(_env_reads(path) for path in sorted((ROOT / "mangaassist").rglob("*.py"))))
    runner = (ROOT / "devtools" / "run.py").read_text()
    stale = sorted(name for name in _settings_table() - read if f'"{name}"' not in runner)
    assert stale == [], f"README.md's settings table names variables nothing reads: {', '.join(stale)}"
