"""Test-suite configuration and shared fixtures.

* The Hypothesis settings profile named by ``HYPOTHESIS_PROFILE``: ``ci`` (the default), ``dev``
  or ``thorough`` (:data:`theory.strategies.PROFILES`); e.g.
  ``HYPOTHESIS_PROFILE=thorough python -m pytest tests/theory/test_properties.py``.
* ``small_tmpfs``: a small, genuinely full file system for fault-injection tests (issue 21).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from theory.strategies import load_profile

load_profile()


@pytest.fixture
def small_tmpfs():
    """A freshly mounted 64 kB tmpfs, i.e. a disk that fills up (root on Linux).

    Skipped, with the reason, where mounting is not allowed (not root, no mount(8), not Linux);
    the in-process ENOSPC tests cover the same paths everywhere.
    """
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs Linux and mount(8)")
    root = Path("/tmp") / f"selfdistill-full-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)], capture_output=True
    )
    if proc.returncode != 0:
        root.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip() or 'not root'}")
    try:
        yield root
    finally:
        subprocess.run(["umount", str(root)], capture_output=True)
        root.rmdir()
