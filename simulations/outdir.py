"""Output directories checked before any work, so that finished results are never lost at the end.

Used by the command lines that write results (``python -m simulations probe --out``,
``python -m figures --out``; sweeps check their directory in :mod:`simulations.sweep`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["check_out_dir"]


def check_out_dir(path, option: str = "--out") -> Path:
    """Create directory ``path`` if needed and check that files can be written in it.

    Raises
    ------
    ValueError
        One line naming ``option`` and the problem: ``path`` is a file, or it cannot be created
        or written (no such parent, permissions, read-only file system).
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {str(out)!r} is a file; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # the real test: can a file be created there?
            pass
    except OSError as exc:
        raise ValueError(f"{option} {str(out)!r} is not writable: {exc.strerror or exc}") from None
    return out
