"""The package's shape: no import cycles among the modules of flcore and the dashboard together,
the engine never imports Streamlit, the dashboard never imports the CLI, and the engine's core
(the round, training, strategies, data, the store and the foundation modules) never imports the
service that runs it or the CLI that drives it. Imports inside functions count (a cycle through a
lazy import is still a cycle); imports under `if TYPE_CHECKING:` do not (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that `path` imports, outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)
    }
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from pkg import sub` depends on the submodule; `from pkg import NAME` on pkg's own code.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


PACKAGES = ("flcore", "dashboard")


def graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules it imports, over every module of `packages`."""
    paths = {module_name(p): p for package in packages for p in (ROOT / package).rglob("*.py")}
    modules = set(paths)
    return {m: imports(p, modules) - {m} for m, p in paths.items()}


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `module` is one of `prefixes` or inside one of those packages."""
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def path_to(edges: dict[str, set[str]], start: str, targets: tuple[str, ...]) -> list[str] | None:
    """An import chain from `start` to a module within `targets` (imported at any depth), or None."""
    seen, queue = {start: [start]}, [start]
    while queue:
        m = queue.pop(0)
        for n in sorted(edges.get(m, ())):
            if n in seen:
                continue
            seen[n] = [*seen[m], n]
            if within(n, targets):
                return seen[n]
            queue.append(n)
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == "open":
                found.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def test_no_import_cycles_among_flcore_and_dashboard_modules():
    edges = graph()
    # A package's __init__ importing its own submodules to register them is not a cycle unless a
    # submodule imports the package back; the graph keeps both directions, so that shows.
    assert cycles(edges) == []


def test_the_engine_never_imports_streamlit():
    for path in (ROOT / "flcore").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] == "streamlit" for n in names), path


def test_the_dashboard_never_imports_the_cli():
    """The dashboard is a client of the engine's library and service, not of its command line."""
    edges = graph()
    for module in sorted(m for m in edges if within(m, ("dashboard",))):
        chain = path_to(edges, module, ("flcore.cli",))
        assert chain is None, f"{module} imports the CLI: {' -> '.join(chain)}"


# The engine's core: the round and what shapes it, local training, strategies, data, the store,
# and the foundation modules at the top of flcore/. The service (runs, queues, budgets) and the
# CLI are built on it; the core never reaches up to them, directly or through another module.
CORE = (
    *("flcore.federation", "flcore.training", "flcore.strategies", "flcore.data", "flcore.store"),
    *("flcore.config", "flcore.registry", "flcore.problems", "flcore.seeding", "flcore.records"),
    *("flcore.settings", "flcore.auth", "flcore.models", "flcore.ray_support"),
)
ABOVE_THE_CORE = ("flcore.service", "flcore.cli")


def test_the_core_never_imports_the_service_or_the_cli():
    edges = graph()
    for module in sorted(m for m in edges if within(m, CORE)):
        chain = path_to(edges, module, ABOVE_THE_CORE)
        assert chain is None, f"{module} imports the service or the CLI: {' -> '.join(chain)}"


def test_the_checks_find_what_they_look_for():
    edges = {"flcore.data.split": {"flcore.records"}, "flcore.records": {"flcore.service.runs"}, "flcore.service.runs": set()}
    assert path_to(edges, "flcore.data.split", ABOVE_THE_CORE) == ["flcore.data.split", "flcore.records", "flcore.service.runs"]
    assert path_to(edges, "flcore.service.runs", ABOVE_THE_CORE) is None
    assert within("flcore.cli.run", ("flcore.cli",)) and within("flcore.cli", ("flcore.cli",))
    assert not within("flcore.client", ("flcore.cli",))
    # a lazy import counts (state starts the charts' warm-up from inside a function); one under
    # TYPE_CHECKING does not (records names the server state's type only for annotations)
    real = graph()
    assert "dashboard.charts" in real["dashboard.state"]
    assert "flcore.strategies.base" not in real["flcore.records"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_readme_lists_the_columns_the_records_define():
    from flcore.records import CLIENT_COLUMNS, ROUND_COLUMNS, TIMING_COLUMNS, names

    readme = (ROOT / "README.md").read_text()
    rounds_line = next(line for line in readme.splitlines() if line.startswith("| `rounds.csv`"))
    clients_line = next(line for line in readme.splitlines() if line.startswith("| `clients.csv`"))
    assert ", ".join(c for c in names(ROUND_COLUMNS) if c not in TIMING_COLUMNS) in rounds_line
    assert ", ".join(names(CLIENT_COLUMNS)) in clients_line
