"""The packages' curated public API: every ``__all__`` name resolves, lazily and cheaply."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from tests.cli import ROOT, TIMEOUT, cli_env

PACKAGES = ("theory", "simulations", "figures")

#: What importing a package alone must not import (a fresh interpreter): the layers above it and
#: the heavy optional libraries. ``theory`` is pure maths, ``simulations`` must not need
#: scikit-learn or dask until the estimator or a cluster is asked for, ``figures`` no matplotlib
#: until a figure is.
NOT_IMPORTED = {
    "theory": ("simulations", "figures", "selfdistill_cli", "matplotlib", "sklearn"),
    "simulations": ("figures", "matplotlib", "sklearn", "dask"),
    "figures": ("matplotlib", "theory", "simulations"),
}


def _fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object, returned here."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves_to_its_definition(package):
    mod = importlib.import_module(package)
    assert mod.__all__ and len(set(mod.__all__)) == len(mod.__all__)
    for name in mod.__all__:
        value = getattr(mod, name)
        if isinstance(value, type(mod)):  # a submodule (the figures)
            assert value.__name__ == f"{package}.{name}"
        elif name != "FIGURES":
            # the very object of the defining module, which lists it in its own __all__
            home = importlib.import_module(value.__module__)
            assert getattr(home, name) is value
            assert name in getattr(home, "__all__", [name]), (package, name, home.__name__)
    assert set(mod.__all__) <= set(dir(mod))


@pytest.mark.parametrize("package", PACKAGES)
def test_unknown_names_are_attribute_errors(package):
    mod = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        mod.no_such_name  # noqa: B018
    assert not hasattr(mod, "_EXPORTS_typo")


def test_importing_a_package_is_cheap():
    code = (
        "import json, sys\n"
        f"not_imported = {NOT_IMPORTED!r}\n"
        "out = {}\n"
        "for pkg in not_imported:\n"
        "    before = set(sys.modules)\n"
        "    __import__(pkg)\n"
        "    new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "    out[pkg] = sorted(new & set(not_imported[pkg]))\n"
        "print(json.dumps(out))\n"
    )
    # One interpreter per package, so that one package's imports do not hide another's.
    for pkg in PACKAGES:
        only = code.replace("for pkg in not_imported:", f"for pkg in [{pkg!r}]:")
        assert _fresh(only) == {pkg: []}


def test_theory_public_api_needs_no_layer_above_it():
    # Resolving every name of theory.__all__ imports their modules: still no simulations,
    # figures, CLI layer or plotting (the import direction of tests/test_layering.py, at run time).
    found = _fresh(
        "import json, sys, theory\n"
        "[getattr(theory, n) for n in theory.__all__]\n"
        "bad = ('simulations', 'figures', 'selfdistill_cli', 'matplotlib')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(bad))))\n"
    )
    assert found == []
