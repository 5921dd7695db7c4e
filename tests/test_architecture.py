"""The codebase's shape (DESIGN.md sections 2 and 3a), checked on the source.

Dependencies flow one way and form no circles (lazy imports inside functions
count too); the library holds no command-line code; no two modules define a
public function or class of the same name; functions stay short.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neural_synth"
MAX_FUNCTION_LINES = 60
# Folders that may not import the ones listed (the blocks sit below the loops).
FORBIDDEN = {
    "models": ("train", "optimize", "experiments", "viz", "retrieval", "data"),
    "losses": ("train", "optimize", "experiments", "viz", "retrieval", "data", "models"),
    "ops": ("train", "optimize", "experiments", "viz", "retrieval", "data", "losses"),
    "weights": ("train", "optimize", "experiments", "viz", "retrieval"),
    "data": ("train", "optimize", "experiments", "viz", "retrieval"),
    "train": ("experiments", "optimize", "viz", "retrieval"),
    "optimize": ("train", "experiments"),
}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return out


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Modules of the project that `name` imports anywhere (module or function level)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # Relative import.
                base = ".".join(name.split(".")[: -node.level] + [node.module])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known or m.split(".")[0] in ("scripts", "configs")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, tree, known) - {name} for name, tree in modules.items()}


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start, if one exists (depth-first search)."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _is_package_init(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def test_no_import_cycles(graph):
    # A package's __init__ importing its own submodules is how packages work.
    edges = {
        m: {d for d in deps if not (_is_package_init(d) and m.startswith(d + "."))}
        for m, deps in graph.items()
    }
    cycles = [c for m in sorted(edges) if (c := _cycle_from(m, edges))]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_dependencies_flow_one_way(graph):
    bad = []
    for module, deps in graph.items():
        parts = module.split(".")
        folder = parts[1] if len(parts) > 1 else ""
        for dep in deps:
            top = dep.split(".")
            if top[0] in ("scripts", "configs"):
                bad.append(f"{module} imports {dep} (the library never imports scripts/configs)")
            elif len(top) > 1 and top[1] in FORBIDDEN.get(folder, ()):
                bad.append(f"{module} imports {dep}")
    assert not bad, "\n".join(bad)


def test_library_holds_no_command_line_code():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "absl import flags" in text or "sys.exit(" in text or "DEFINE_" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"flags or exits in the library: {offenders}"


def test_public_names_are_defined_once():
    homes: dict[str, list[str]] = {}
    for name, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                homes.setdefault(node.name, []).append(name)
    twice = {n: m for n, m in homes.items() if len(m) > 1}
    assert not twice, f"public names defined in several modules: {twice}"


def test_functions_are_short():
    long = []
    for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "scripts").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, "functions over 60 lines: " + ", ".join(long)


def test_the_checks_catch_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_from("a", graph) == ["a", "b", "c", "a"]
    assert _cycle_from("d", graph) is None
