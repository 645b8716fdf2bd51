"""The import structure of ``src/dgm``: data flows one way (docs/ARCHITECTURE: data ->
model -> trainer -> evaluate / tasks / report -> CLI), so no module imports a layer above
its own, no module imports another module's private (underscore) names, and no two
modules import each other, directly or round a loop. Function-level imports count: a
cycle hidden inside a function is still a cycle.

Read from the source with ``ast`` (nothing is imported), so a violation names the file and
line to fix.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The layers, lowest first: a module may import its own layer and the ones before it. A
# module belongs to the layer of the longest prefix that names it ("dgm" names only the
# package's own __init__, so a new top-level module must be placed here). Derived from the
# architecture's one-way flow and from what each layer needs: the models register
# themselves with the registry (so it sits below them); the package (dgm.load, dgm.create)
# sits on the run directory and imports nothing that trains or uses a model; the trainer
# evaluates validation NLL (evaluate below train) and draws sample grids (report.plots,
# pictures of tensors, below train); the rest of report gathers from tasks and runs, so it
# sits above them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("dgm.version", "dgm.io", "dgm.config"),
    ("dgm.data",),
    ("dgm.nn",),
    ("dgm.model", "dgm.distributions"),
    ("dgm.registry",),
    ("dgm.capabilities",),
    ("dgm.models",),
    ("dgm.run_dir",),
    ("dgm",),
    ("dgm.evaluate",),
    ("dgm.report.plots",),
    ("dgm.train",),
    ("dgm.tasks",),
    ("dgm.sampling",),
    ("dgm.report",),
    ("dgm.cli",),
    ("dgm.demo", "dgm.__main__"),
)

EXEMPT: set[str] = set()  # files allowed to break the rules: none


class Import(NamedTuple):
    source: str  # importing module, e.g. "dgm.tasks.compression.range_coding"
    target: str  # imported module
    name: str | None  # the name taken from it (``from target import name``), else None
    where: str  # file:line


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted((SRC / "dgm").rglob("*.py"))}


def is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path) -> list[Import]:
    """Every import of a dgm module in ``module``'s source ``path``, at any depth. ``from
    pkg import sub`` where ``pkg.sub`` is a module counts as importing the module
    ``pkg.sub``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    shown = path.relative_to(SRC) if path.is_relative_to(SRC) else path
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = {  # imports under `if TYPE_CHECKING:` never run: annotations only
        id(n)
        for block in ast.walk(tree)
        if is_type_checking(block)
        for stmt in block.body  # its `else:` runs
        for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        where = f"{shown}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(module, a.name, None, where) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([target] if target else []))
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in MODULES:
                    found.append(Import(module, sub, None, where))
                else:
                    found.append(Import(module, target, a.name, where))
    return [i for i in found if i.target == "dgm" or i.target.startswith("dgm.")]


@functools.cache
def all_imports() -> tuple[Import, ...]:
    """Every dgm import of every module, parsed once, when a test first asks (not at
    collection, which every pytest-xdist worker repeats: about 2 CPU-s each)."""
    return tuple(i for m, path in MODULES.items() for i in imports_of(m, path))


def exempt(module: str) -> bool:
    return str(MODULES[module].relative_to(SRC)) in EXEMPT


def layer(module: str) -> int:
    best = (-1, -1)  # (prefix length, layer)
    for rank, prefixes in enumerate(LAYERS):
        for p in prefixes:
            inside = module == p or (p != "dgm" and module.startswith(p + "."))
            if inside and len(p) > best[0]:
                best = (len(p), rank)
    if best[1] < 0:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS")
    return best[1]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def underscore_imports() -> list[Import]:
    return [
        i
        for i in all_imports()
        if (i.name is not None and is_private(i.name))
        or any(is_private(part) for part in i.target.split("."))
    ]


def upward_imports() -> list[Import]:
    return [i for i in all_imports() if layer(i.target) > layer(i.source)]


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in all_imports():
        if i.target in MODULES and i.target != i.source:
            graph[i.source].add(i.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def show(found: list[Import]) -> str:
    return "\n".join(
        f"  {i.where}: {i.source} imports {i.target}" + (f".{i.name}" if i.name else "")
        for i in found
    )


def test_every_module_has_a_layer() -> None:
    for m in MODULES:
        layer(m)


def test_no_module_imports_a_private_name_of_another() -> None:
    found = [i for i in underscore_imports() if not exempt(i.source)]
    assert not found, "make these names public (named for what they are):\n" + show(found)


def test_no_module_imports_a_layer_above_it() -> None:
    found = [i for i in upward_imports() if not exempt(i.source)]
    assert not found, "these imports run upward; move the code down:\n" + show(found)


def test_no_import_cycles() -> None:
    found = [c for c in cycles() if not all(exempt(m) for m in c)]
    assert not found, f"modules importing each other round a loop: {found}"


@pytest.mark.parametrize(
    "source, check",
    [
        ("from dgm.data.images import _split_seed\n", "private"),
        ("from dgm import _MODELS\n", "private"),
        ("def f():\n    from dgm.train.trainer import Trainer\n", "upward"),
        ("from dgm import train\n", "upward"),
        ("from ..registry import create\n", "upward"),
    ],
)
def test_the_checks_catch_a_planted_import(source: str, check: str, tmp_path: Path) -> None:
    """A private or upward import planted in the data layer is found (the checks can fail),
    in a function body and in relative form too."""
    planted = tmp_path / "planted.py"
    planted.write_text(source)
    (found,) = imports_of("dgm.data.planted", planted)
    if check == "private":
        assert found.name is not None and is_private(found.name)
    else:
        assert layer(found.target) > layer(found.source), found


def test_a_new_top_level_module_must_be_placed_in_a_layer() -> None:
    assert layer("dgm") < layer("dgm.train") < layer("dgm.cli")
    assert layer("dgm.tasks.compression.bits_back") == layer("dgm.tasks")
    with pytest.raises(AssertionError, match="in no layer"):
        layer("dgm.newcomer")
