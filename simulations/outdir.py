"""Output directories checked before any work, so that finished results are never lost at the end.

Used by the command lines that write results (``python -m simulations probe --out``,
``python -m figures --out`` and ``--gallery``; sweeps check their directory in
:mod:`simulations.sweep`). The check itself is :func:`selfdistill_cli.files.check_writable_dir`,
next to the atomic writer every command uses.
"""

from __future__ import annotations

from pathlib import Path

from selfdistill_cli.files import check_writable_dir

__all__ = ["check_out_dir"]


def check_out_dir(path, option: str = "--out") -> Path:
    """Create directory ``path`` if needed and check that files can be written in it.

    Raises
    ------
    ValueError
        One line naming ``option`` and the problem: an empty name, ``path`` is a file, or it
        cannot be created or written (no such parent, permissions, read-only file system).
    """
    return check_writable_dir(path, option)
