"""Layers point down only (docs/ARCHITECTURE.md): every import of a ready2unlearn module is checked.

The checker parses each module under ``src/ready2unlearn`` with :mod:`ast` (nothing is imported), maps it and
every ``ready2unlearn`` module it imports to a layer, and reports an import that points to a higher layer. An
import of one of our modules inside a function is reported wherever it points: it hides an arrow from
readers and from this test, and it is how cycles get dodged instead of fixed. Lazy imports of optional
third-party packages (transformers, peft, mlflow...) are not ours and stay allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "ready2unlearn"

#: Layer of the package root ``ready2unlearn/__init__.py``: the public facade over the API and the recipes.
ROOT_LAYER = 6

#: Layer of each module, by longest matching dotted prefix (see docs/ARCHITECTURE.md for what each holds).
LAYERS: dict[str, int] = {
    # 1: bottom — errors, configs, registries and small utilities that know nothing about data or models
    "errors": 1,
    "config": 1,
    "registry": 1,
    "runtime": 1,
    "progress": 1,
    "artifacts": 1,
    "optim": 1,
    "resume": 1,
    # 2: data, deletion requests and their planning; architectures and what loads them
    "data": 2,
    "models": 2,
    "hf": 2,
    "checkpoint": 2,
    "card": 2,
    # 3: how a model is scored
    "task": 3,
    # 4: the two loops, the method contract they drive and the stop rules
    "engine": 4,
    # 5: what plugs into the engines and what measures or reports them
    "unlearn": 5,
    "readiness": 5,
    "evaluate": 5,
    "attacks": 5,
    "integrations": 5,
    "tracking": 5,
    "report": 5,
    # 6: readable scripts that compose the engines, and the Python API (the package root is its facade)
    "recipes": 6,
    "api": 6,
    # 7: the deletion ledger, its HTTP service and the command line
    "ledger": 7,
    "service": 7,
    "cli": 7,
}


def layer_of(module: str) -> int | None:
    """The layer of dotted ``module`` (``ready2unlearn.x.y``), or ``None`` when no prefix names it."""
    if module == PACKAGE:
        return ROOT_LAYER
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    return None


def module_name(path: Path, src: Path = SRC) -> str:
    """``src/ready2unlearn/data/base.py`` → ``ready2unlearn.data.base`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The ready2unlearn modules an import statement loads (``from pkg import sub`` names ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == PACKAGE or a.name.startswith(PACKAGE + ".")]
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    if base != PACKAGE and not base.startswith(PACKAGE + "."):
        return []
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    return subs or [base]


def check_source(module: str, source: str, known: set[str], is_package: bool = False) -> list[str]:
    """Every upward or function-level import of a ready2unlearn module in ``source``, one message each."""
    own = layer_of(module)
    if own is None:
        return [f"{module}: no layer (add its package to LAYERS and to docs/ARCHITECTURE.md)"]
    problems: list[str] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in imported_modules(child, module, is_package, known):
                    where = f"{module}:{child.lineno}"
                    theirs = layer_of(target)
                    if function is not None:
                        problems.append(f"{where}: function-level import of {target} in {function}()")
                    elif theirs is None:
                        problems.append(f"{where}: imports {target}, which has no layer")
                    elif theirs > own:
                        problems.append(f"{where}: imports {target} (layer {theirs}) from layer {own}")
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else None
            visit(child, inner or function)

    visit(ast.parse(source, filename=module), None)
    return problems


def all_modules(src: Path = SRC) -> dict[str, Path]:
    """``module name → file`` for every module of the package under ``src``."""
    return {module_name(p, src): p for p in sorted((src / PACKAGE).rglob("*.py"))}


def check_tree(src: Path = SRC) -> list[str]:
    """The problems of every module of the package under ``src``."""
    modules = all_modules(src)
    known = set(modules)
    problems: list[str] = []
    for name, path in modules.items():
        problems += check_source(name, path.read_text(encoding="utf-8"), known, path.name == "__init__.py")
    return problems


def test_every_import_points_down() -> None:
    problems = check_tree()
    assert not problems, "imports that break the layering (docs/ARCHITECTURE.md):\n" + "\n".join(problems)


def test_every_module_has_a_layer() -> None:
    assert all_modules(), f"no modules found under {SRC}"
    missing = [m for m in all_modules() if layer_of(m) is None]
    assert not missing, f"modules without a layer: {missing}"


KNOWN = {"ready2unlearn.data.base", "ready2unlearn.recipes", "ready2unlearn.recipes.train", "ready2unlearn.errors",
         "ready2unlearn.engine.fit", "ready2unlearn.engine"}  # fmt: skip


BAD = [
    ("from ready2unlearn.recipes.train import TrainConfig", "ready2unlearn.recipes.train (layer 6) from layer 2"),
    ("import ready2unlearn.engine.fit", "imports ready2unlearn.engine.fit (layer 4) from layer 2"),
    ("from ready2unlearn.recipes import train", "imports ready2unlearn.recipes.train (layer 6)"),
    ("from ready2unlearn import engine", "imports ready2unlearn.engine (layer 4)"),
    ("from ready2unlearn import __version__", "imports ready2unlearn (layer 6)"),
    ("from ..engine import fit", "imports ready2unlearn.engine.fit (layer 4)"),
    ("def f():\n    from ready2unlearn.errors import R2UError\n", "function-level import of ready2unlearn.errors"),
    ("class A:\n    def m(self):\n        import ready2unlearn.data.base\n", "ready2unlearn.data.base in m()"),
]


@pytest.mark.parametrize(("source", "expected"), BAD)
def test_checker_catches_a_bad_import(source: str, expected: str) -> None:
    problems = check_source("ready2unlearn.data.fake", source, KNOWN)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    "source",
    [
        "from ready2unlearn.data.base import ArrayDataset",
        "from ready2unlearn.errors import R2UError",
        "import torch\ndef f():\n    import transformers\n",  # optional third-party deps may load lazily
        "from typing import TYPE_CHECKING",
    ],
)
def test_checker_accepts_downward_imports(source: str) -> None:
    assert check_source("ready2unlearn.data.fake", source, KNOWN) == []


def test_checker_runs_on_a_tree(tmp_path: Path) -> None:
    """The whole-tree walk finds an upward import in a file (a synthetic package, not ours)."""
    pkg = tmp_path / PACKAGE
    for sub in ("data", "recipes"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "recipes" / "train.py").write_text("from ready2unlearn.data.bad import x\n")
    (pkg / "data" / "bad.py").write_text("from ready2unlearn.recipes.train import fit\n")
    problems = check_tree(tmp_path)
    assert problems == ["ready2unlearn.data.bad:1: imports ready2unlearn.recipes.train (layer 6) from layer 2"]
    (pkg / "stray.py").write_text("")
    assert "ready2unlearn.stray: no layer" in "\n".join(check_tree(tmp_path))
