"""The shape of the code, checked so it stays easy to change (issue 25): no import cycles among
edgekit's modules, a thin CLI, no long file without a reason, and one declaration per plug-in."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

# The import names of the folders that make up the edgekit package (pyproject's package-dir).
PACKAGES = {"edgekit": ROOT / "edgekit", "edgekit.targets": ROOT / "targets",
            "edgekit.converters": ROOT / "converters", "edgekit.calibration": ROOT / "calibration"}
LONG = 500  # lines; a longer file says why in its first lines ("Over 500 lines ...")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, folder in PACKAGES.items():
        for f in folder.rglob("*.py"):
            rel = f.relative_to(folder).with_suffix("").parts
            name = ".".join([pkg, *rel])
            mods[name.removesuffix(".__init__")] = f
    return mods


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """Modules of edgekit that `name` imports anywhere in its file (functions included: an import
    inside a function is still a dependency, it only runs later)."""
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            b = base
            for _ in range(max(n.level - 1, 0)):
                b = b.rsplit(".", 1)[0]
            target = (b + (f".{n.module}" if n.module else "")) if n.level else (n.module or "")
            for a in n.names:
                out.add(f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target)
        elif isinstance(n, ast.Import):
            out.update(a.name for a in n.names)
    return {m for m in out if m in mods and m != name and m != "edgekit"}  # `edgekit` itself: version, load()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert len(graph) > 60  # the walk found the package
    assert graph["edgekit.cli"] >= {"edgekit.commands", "edgekit.errors"}  # and reads imports as they are
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # and would see one
    assert _cycles(graph) == []


def test_cli_only_dispatches():
    lines = (ROOT / "edgekit" / "cli.py").read_text().splitlines()
    assert len(lines) < 200, len(lines)


def test_long_files_say_why():
    long = []
    for path in [*_modules().values(), *(ROOT / "tests").glob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        text = path.read_text()
        if text.count("\n") > LONG and "Over 500 lines" not in "\n".join(text.splitlines()[:15]):
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert long == [], "files over 500 lines without 'Over 500 lines ...' (why) in their first 15 lines"


def test_each_plug_in_is_declared_once():
    """Converters and runtimes are typed records found through their registries, and every target's
    candidates name registered ones: a typo in a profile fails here, not in a user's compile."""
    from edgekit import converters
    from edgekit.converters import Converter
    from edgekit.runtimes import all_runners
    from edgekit.targets import all_profiles

    convs, runners = converters.all_converters(), all_runners()
    assert all(isinstance(c, Converter) and c.name == n for n, c in convs.items())
    assert all(c.shape_support in ("dynamic", "try", "buckets") for c in convs.values())
    assert all(r.runtime == n and r.toolchain for n, r in runners.items())
    for p in all_profiles():
        for c in p.candidates:
            assert c.converter in convs and c.runtime in runners, (p.name, c)
            assert p.setup in ("cpu", "mobile", "tvm", "web"), p.name
