"""The layers of docs/architecture.md §Layers, enforced: walk every project module's imports with
``ast`` and fail on an import that runs up the layers or on an import circle.

Every import counts, also one inside a function: a lazy import is the usual way to hide a circle.
Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` too, so those edges count as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mangaassist", "dashboard", "sessions_app", "daxlocal", "devtools", "bench")

# Top to bottom; a module may import its own layer and the ones below it. The longest matching
# prefix decides a module's layer. Keep this table and docs/architecture.md §Layers in step.
LAYERS: list[tuple[str, ...]] = [
    # tooling: starts the stack, measures it
    ("devtools", "bench"),
    # the project: settings, URLs, the Celery app, WSGI/ASGI
    ("mangaassist",),
    # entry points: console views, API handlers, admin, tasks, management commands
    ("dashboard", "sessions_app.api", "sessions_app.admin", "sessions_app.tasks",
     "sessions_app.management", "sessions_app.demo", "sessions_app.access", "sessions_app.downloads", "sessions_app.apps",
     "sessions_app.migrations", "sessions_app.aws_lambda", "sessions_app.live", "sessions_app.probes",
     "sessions_app.metrics_views", "sessions_app.iam"),
    # writes
    ("sessions_app.services",),
    # reads
    ("sessions_app.selectors",),
    # boundaries to the outside: declarations, Redis, the summarizers, the task broker, the search index
    ("sessions_app.models", "sessions_app.realtime", "sessions_app.summarizers", "sessions_app.jobs",
     "sessions_app.streams", "sessions_app.search"),
    # the one DynamoDB/DAX connection module and the pure key builders
    ("sessions_app.dynamo", "sessions_app.keys"),
    # neutral: imported by everything, importing nothing of the project's
    ("sessions_app.exceptions", "sessions_app.clock", "sessions_app.ids", "sessions_app.observability", "sessions_app"),
    # a product of its own: imports nothing of the project (tests/daxlocal/test_independence.py)
    ("daxlocal",),
]
_LAYER_OF = {prefix: rank for rank, group in enumerate(LAYERS) for prefix in group}
# Packages that import nothing of the others, whatever their rank.
ISOLATED = ("daxlocal",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")) / "__init__.py").exists()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    # A package's own name is its __init__: "from . import x" there means the package itself.
    drop = node.level - 1 if _is_package(module) else node.level
    base = base[: len(base) - drop]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports (each resolved to a module file that exists)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        for name in names:
            # import a.b.c runs a, a.b and a.b.c, except the packages this module is inside of:
            # Python has begun running those before the module itself.
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in MODULES and candidate != module and (candidate not in own_packages or i == len(parts)):
                    targets.add(candidate)
    return targets


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        rank = _LAYER_OF.get(".".join(parts[:i]))
        if rank is not None:
            return rank
    raise AssertionError(f"{module} has no layer: add it to LAYERS and to docs/architecture.md §Layers")


def _isolated_root(module: str) -> str | None:
    return next((p for p in ISOLATED if module == p or module.startswith(p + ".")), None)


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_runs_up_the_layers():
    upward = []
    for module, targets in GRAPH.items():
        for target in targets:
            if _isolated_root(target) and _isolated_root(target) == _isolated_root(module):
                continue
            if layer_of(target) < layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})")
            if _isolated_root(module) and _isolated_root(target) != _isolated_root(module):
                upward.append(f"{module} imports {target}, outside its own package")
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import circles:\n" + "\n".join(" ⇄ ".join(c) for c in cycles)


@pytest.mark.parametrize("source, expected", [
    ("from .. import keys\n", {"sessions_app.keys"}),
    ("from . import turns\n", {"sessions_app.services.turns"}),
    ("from ..realtime import presence_clear\n", {"sessions_app.realtime"}),
    ("import sessions_app.selectors.sessions\n", {"sessions_app.selectors", "sessions_app.selectors.sessions"}),
])
def test_the_walker_resolves_relative_and_dotted_imports(tmp_path, source, expected):
    """The walker itself: a layer test that resolved nothing would pass everything."""
    module = "sessions_app.services.sessions"
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _imports(module, path) - {"sessions_app"} == expected


def test_a_planted_upward_import_is_caught():
    assert layer_of("sessions_app.selectors.listing") > layer_of("sessions_app.services.turns")
    assert "sessions_app.selectors.sessions" in GRAPH["sessions_app.services.turns"]


def test_the_circle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
