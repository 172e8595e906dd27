"""The package's shape: no import cycles among flcore's modules, and the engine never imports
Streamlit. Imports inside functions count (a cycle through a lazy import is still a cycle);
imports under `if TYPE_CHECKING:` do not (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The flcore modules `path` imports, outside TYPE_CHECKING blocks."""
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


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (ROOT / "flcore").rglob("*.py")}
    modules = set(paths)
    return {m: imports(p, modules) - {m} for m, p in paths.items()}


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


def test_no_import_cycles_among_flcore_modules():
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
