"""Import direction and private names, read from the source (``ast``), never by importing it.

The layout follows the argument (docs/STYLE: ``theory/`` pure maths, ``simulations/``
experiments, ``figures/`` consumers only), so imports may only point down:

* ``theory`` imports none of ``simulations``, ``figures``, ``selfdistill_cli``, ``benchmarks``;
* ``simulations`` never imports ``figures`` or ``benchmarks``;
* nothing in ``theory``, ``simulations`` or ``figures`` imports ``benchmarks`` or ``tests``.

And no module of ``theory``, ``simulations``, ``figures`` or ``benchmarks`` imports another
module's private (``_``-prefixed) name, neither ``from m import _x`` nor ``m._x``: what is
shared is public. Every import counts, including those inside functions (lazy imports still
run), and ``importlib.import_module`` with a literal (or f-string) module name.

Known exceptions are listed below with their reason; an entry that no longer matches anything
fails too, so the lists only shrink.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Packages whose modules are checked.
CHECKED = ("theory", "simulations", "figures", "benchmarks")
#: Every first-party top-level package (imports of anything else are third-party).
FIRST_PARTY = ("theory", "simulations", "figures", "selfdistill_cli", "benchmarks", "tests")

#: package -> first-party packages it must not import.
FORBIDDEN = {
    "theory": {"simulations", "figures", "selfdistill_cli", "benchmarks", "tests"},
    "simulations": {"figures", "benchmarks", "tests"},
    "figures": {"benchmarks", "tests"},
}

#: (importing module, imported module) pairs that break the layering today, with the reason.
ALLOWED_UPWARD = {
    # theory/__main__.py is only the ``python -m theory predict`` entry point (its import sits
    # under the ``__main__`` guard): the command line itself lives in selfdistill_cli.predict
    # (issue 23, "The CLI layer"); importing the package ``theory`` never reaches it.
    ("theory.__main__", "selfdistill_cli"),
    ("theory.__main__", "selfdistill_cli.predict"),
}

#: (importing module, "module._name") private names used across modules today, with the reason.
ALLOWED_PRIVATE: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    """One imported module (and the names taken from it) at ``path:line``."""

    importer: str
    module: str
    names: tuple[str, ...]
    path: str
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> tuple:
    """``(module name, path, ast)`` of every module of the :data:`CHECKED` packages."""
    return tuple(
        (_module_name(path), path, ast.parse(path.read_text(), filename=str(path)))
        for pkg in CHECKED
        for path in sorted((ROOT / pkg).rglob("*.py"))
    )


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """Absolute module name of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _literal_prefix(arg) -> str | None:
    """The module name of ``import_module("a.b")``, or its literal head for an f-string."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value).rstrip(".")
    return None


def _imports(importer: str, path: Path, tree: ast.AST):
    rel = str(path.relative_to(ROOT))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(importer, alias.name, (), rel, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(importer, is_package, node)
            names = tuple(a.name for a in node.names)
            yield Import(importer, module, names, rel, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
        ):
            module = _literal_prefix(node.args[0])
            if module:
                yield Import(importer, module, (), rel, node.lineno)


def _top(module: str) -> str:
    return module.split(".")[0]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _upward_imports(modules=None):
    """Every forbidden import, allowed or not: ``{(importer, module): Import}``."""
    found = {}
    for importer, path, tree in _modules() if modules is None else modules:
        forbidden = FORBIDDEN.get(_top(importer), set())
        for imp in _imports(importer, path, tree):
            if _top(imp.module) in forbidden:
                found.setdefault((importer, imp.module), imp)
    return found


def _bindings(importer: str, path: Path, tree: ast.AST) -> dict:
    """Local name -> the first-party module (or module attribute) an import binds it to."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                # ``import a.b`` binds ``a``; ``import a.b as m`` binds ``m`` to ``a.b``
                out[a.asname or _top(a.name)] = a.name if a.asname else _top(a.name)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(importer, path.name == "__init__.py", node)
            for a in node.names:  # e.g. ``from simulations import solver``
                out[a.asname or a.name] = f"{module}.{a.name}"
    return {k: v for k, v in out.items() if _top(v) in FIRST_PARTY}


def _private_uses(modules=None):
    """Private names taken from another first-party module: ``{(importer, "m._x"): where}``."""
    found = {}
    for importer, path, tree in _modules() if modules is None else modules:
        rel = str(path.relative_to(ROOT))
        for imp in _imports(importer, path, tree):
            if _top(imp.module) in FIRST_PARTY and imp.module != importer:
                for name in filter(_is_private, imp.names):
                    found.setdefault((importer, f"{imp.module}.{name}"), imp.where())
        bound = _bindings(importer, path, tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):  # ``pkg.module._x``
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                module = ".".join([bound[value.id], *reversed(chain)])
                if module != importer:
                    found.setdefault((importer, f"{module}.{node.attr}"), f"{rel}:{node.lineno}")
    return found


def test_modules_are_found():
    # Guards the tests below against passing vacuously (e.g. after a move of the packages).
    names = {name for name, _, _ in _modules()}
    assert {"theory.groups", "simulations.solver", "figures.common", "benchmarks.figures"} <= names


def test_imports_point_down_only():
    found = _upward_imports()
    bad = [
        f"{imp.where()}: {imp.importer} imports {imp.module}"
        for key, imp in sorted(found.items())
        if key not in ALLOWED_UPWARD
    ]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_upward_allow_list_has_no_stale_entries():
    stale = sorted(ALLOWED_UPWARD - set(_upward_imports()))
    assert not stale, f"remove from ALLOWED_UPWARD (no longer imported): {stale}"


def test_no_private_name_crosses_modules():
    found = _private_uses()
    bad = [
        f"{where}: {importer} uses {name}"
        for (importer, name), where in sorted(found.items())
        if (importer, name) not in ALLOWED_PRIVATE
    ]
    assert not bad, "private names used from another module (make them public):\n" + "\n".join(bad)


def test_private_allow_list_has_no_stale_entries():
    stale = sorted(ALLOWED_PRIVATE - set(_private_uses()))
    assert not stale, f"remove from ALLOWED_PRIVATE (no longer used): {stale}"


def _planted(module: str, source: str):
    """A one-module source tree holding ``source`` as ``module`` (tests of the checker itself)."""
    path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    return [(module, path, ast.parse(source))]


@pytest.mark.parametrize(
    "source, imported",
    [
        ("from simulations.solver import solve_probe", "simulations.solver"),
        ("import figures.common", "figures.common"),
        ("def f():\n    from selfdistill_cli import run_cli", "selfdistill_cli"),  # lazy
        ("import importlib\nimportlib.import_module('benchmarks.figures')", "benchmarks.figures"),
        ("from importlib import import_module\nimport_module(f'tests.{x}')", "tests"),
    ],
)
def test_an_upward_import_is_seen(source, imported):
    assert list(_upward_imports(_planted("theory.x", source))) == [("theory.x", imported)]


@pytest.mark.parametrize(
    "source, used",
    [
        ("from theory.groups import _group_sums", "theory.groups._group_sums"),
        ("from ..groups import _group_sums", "theory.groups._group_sums"),
        ("import theory.groups as g\ng._group_sums(1, 2)", "theory.groups._group_sums"),
        ("import theory.groups\ntheory.groups._group_sums", "theory.groups._group_sums"),
        ("from theory import groups\ngroups._group_sums", "theory.groups._group_sums"),
    ],
)
def test_a_private_import_is_seen(source, used):
    assert list(_private_uses(_planted("theory.finite_exact.x", source))) == [
        ("theory.finite_exact.x", used)
    ]


def test_own_private_names_and_third_party_ones_are_fine():
    source = "import numpy as np\n_x = 1\nprint(_x, np._NoValue)\nfrom .groups import BlockModel"
    assert _private_uses(_planted("theory.x", source)) == {}
