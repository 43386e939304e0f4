"""The house's shape: data flows one way, no import cycles, no borrowed privates, modules a person can read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "timing"

#: Each step may import the steps before it (and itself), never one after it.
LAYERS = ("core", "config", "models", "store", "ingest", "features", "fitting", "scores", "schedule",
          "outputs", "report", "backtest", "demo", "engines", "serve", "simulate", "pipeline")
#: Steps that are not on the line of the flow but beside it: what each may import.
BESIDE = {
    "demo": {"core", "config", "demo"},  # writes exports; knows the contract, nothing of the pipeline
    "models": {"core", "models"},  # pure: usable on anyone's data
}
MAX_LINES = 520


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("timing")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("timing"):
                out.append((base, [a.name for a in node.names], node.lineno))
    return out


def resolve(target: str, names: list[str], known: dict[str, Path]) -> list[str]:
    """The modules an import statement loads (``from timing.x import y`` may name the module x.y)."""
    found = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
    return found or ([target] if target in known else [])


def graph() -> dict[str, set[str]]:
    known = modules()
    g: dict[str, set[str]] = {}
    for name, path in known.items():
        deps: set[str] = set()
        for target, names, _ in imports(path, name):
            deps.update(resolve(target, names, known))
        deps.discard(name)
        g[name] = deps
    return g


def step(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "timing"


def test_no_import_cycle() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    # a package's __init__ re-exporting its own modules is not a cycle between steps
    real = [c for c in cycles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not real, f"import cycles: {real}"


def test_each_step_imports_only_steps_before_it() -> None:
    bad = []
    for module, deps in graph().items():
        here = step(module)
        if here in ("timing", "__init__") or here not in LAYERS:
            continue
        allowed = BESIDE.get(here)
        for dep in deps:
            there = step(dep)
            if there == here:
                continue
            if allowed is not None:
                ok = there in allowed
            else:
                ok = there in LAYERS and LAYERS.index(there) < LAYERS.index(here)
            if not ok:
                bad.append(f"{module} -> {dep}")
    assert not bad, "imports against the flow:\n" + "\n".join(sorted(bad))


def test_the_floor_imports_nothing_above_it() -> None:
    core = [m for m in graph() if step(m) == "core"]
    assert core
    for m in core:
        assert all(step(d) == "core" for d in graph()[m]), m


def test_no_private_name_is_borrowed_from_another_module() -> None:
    known = modules()
    bad = []
    for name, path in known.items():
        for target, names, line in imports(path, name):
            for n in names:
                if n.startswith("_") and f"{target}.{n}" not in known and target != name:
                    bad.append(f"{path.relative_to(ROOT)}:{line} takes {n} from {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_is_short_enough_to_read_in_one_sitting(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
