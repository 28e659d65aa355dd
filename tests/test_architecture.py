"""Package shape: imports inside `deepwas` form no cycle, and only `deepwas.formats` reads or writes
project files with numpy / torch serialisation (np.load, np.save*, torch.save, torch.load)."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "deepwas"

# calls that open project files; allowed only under formats/
IO_CALLS = {("np", "load"), ("np", "save"), ("np", "savez"), ("np", "savez_compressed"), ("numpy", "load"),
            ("numpy", "savez"), ("torch", "save"), ("torch", "load")}
# explicit exceptions (module path relative to the package -> why)
IO_WHITELIST: dict = {}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute `deepwas.*` modules an ImportFrom refers to (a name may be a submodule)."""
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_pkg else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    if not base.startswith("deepwas"):
        return []
    return [base] + [f"{base}.{a.name}" for a in node.names]


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                targets = _resolve(mod, path.name == "__init__.py", node)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("deepwas")]
            else:
                continue
            for t in targets:
                if t in files and t != mod:
                    graph[mod].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]):
    """One import cycle as a list of modules, or None (depth-first search with colours)."""
    colour, stack = {}, []

    def visit(u):
        colour[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if colour.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in colour:
                found = visit(v)
                if found:
                    return found
        stack.pop()
        colour[u] = 2
        return None

    for u in sorted(graph):
        if u not in colour:
            found = visit(u)
            if found:
                return found
    return None


def test_import_graph_is_acyclic():
    graph = import_graph()
    # the graph is real: the test can fail
    assert len(graph) > 30 and sum(map(len, graph.values())) > 40
    assert "deepwas.formats.factors" in graph["deepwas.sources"]
    assert "deepwas.linalg.cg" in graph["deepwas.likelihood.iterative"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# Top-level modules and packages in import order (README "Where things are"): a module may import only
# modules of its own entry or of entries before it. A new module goes where its imports put it.
LAYERS = ["config", "io", "windows", "harmonise", "liftover", "encode", "downloads", "ldscore", "ld_factors",
          "whitening", "formats", "panel", "linalg",
          "likelihood", "window", "features", "ldsr", "sources", "networks", "priors", "s2", "shared_forward", "distributed", "training",
          "inference",
          "evaluation", "export", "h2", "region", "plots", "simulation"]


def test_imports_run_one_way():
    graph = import_graph()
    top = {m.split(".")[1] for m in graph if m.count(".") >= 1}
    assert not top - set(LAYERS), f"add {sorted(top - set(LAYERS))} to LAYERS in tests/test_architecture.py"
    layer = {name: i for i, name in enumerate(LAYERS)}
    upward = [f"{m} -> {d}" for m, deps in graph.items() if m != "deepwas" for d in deps
              if d != "deepwas" and layer[d.split(".")[1]] > layer[m.split(".")[1]]]
    assert not upward, "imports against the layer order: " + ", ".join(sorted(upward))


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _io_calls(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in IO_CALLS:
            yield node.lineno, f"{node.func.value.id}.{node.func.attr}"


def test_file_io_only_in_formats():
    offenders, seen_formats = [], 0
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        calls = list(_io_calls(path))
        if rel.startswith("formats/"):
            seen_formats += len(calls)
            continue
        if rel in IO_WHITELIST:
            continue
        offenders += [f"{rel}:{line}: {call}" for line, call in calls]
    assert seen_formats >= 5          # the scan sees the calls where they belong
    assert not offenders, "file I/O outside deepwas/formats: " + ", ".join(offenders)
