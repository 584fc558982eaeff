r"""The one memory check of every command: the memory available, the limit and the refusal.

Every command estimates the peak memory of what it is about to allocate and compares it, before
allocating, with a limit; this module owns the machine side of that comparison:

* :func:`available_bytes` reads the memory a new allocation can use now (``MemAvailable`` of
  ``/proc/meminfo``, the cgroup's remaining limit if lower, else the physical memory), with the
  name of its source for messages;
* :func:`parse_max_memory` validates ``--max-memory GB`` (bytes, or None for "available");
* :func:`check_memory` is the one checker: the limit is the given one (``--max-memory``) or the
  memory available now; an estimate above it raises :class:`MemoryLimitError` (a ``ValueError``)
  with one line naming the estimate, the limit and the override. A command whose refusal says more
  (``theory predict`` adds the floating-point operations) passes its own ``message``.

The estimates themselves are pure arithmetic and live next to what they estimate: the theory's in
``theory/`` (:func:`theory.groups.prediction_memory_bytes`,
:func:`theory.report.resource_estimate`, :func:`theory.finite.finite_resource_estimate`,
:func:`theory.finite_exact.exact_resource_estimate`, ...), the Monte Carlo's in
:mod:`simulations.memory` (one trial, one probe, one estimator fit, the theory printed beside a
run). ``docs/reliability.md`` ("Memory") lists them and their callers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "GB",
    "MemoryLimitError",
    "available_bytes",
    "check_memory",
    "format_gb",
    "memory_limit",
    "parse_max_memory",
]

#: Bytes per gigabyte in messages and ``--max-memory`` (decimal, like ``free -g`` is not).
GB = 1e9


class MemoryLimitError(ValueError):
    """The estimated memory of a run exceeds the limit (raised before allocating)."""


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _cgroup_headroom() -> int | None:
    """Memory left under this process's cgroup limit (v2 or v1), or None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit = _read_int(Path(limit_file))
        if limit is None or limit >= 1 << 60:  # "max" or the v1 'unlimited' sentinel
            continue
        usage = _read_int(Path(usage_file)) or 0
        return max(limit - usage, 0)
    return None


def available_bytes() -> tuple[int | None, str]:
    """Memory a new allocation can use now, and where the number comes from.

    Linux: ``MemAvailable`` of ``/proc/meminfo`` (and the cgroup's remaining limit if lower);
    elsewhere the physical memory (``os.sysconf``); ``(None, ...)`` if neither is known.
    """
    avail, source = None, ""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail, source = int(line.split()[1]) * 1024, "available memory"
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            source = "physical memory"
        except (AttributeError, ValueError, OSError):
            return None, "unknown"
    headroom = _cgroup_headroom()
    if headroom is not None and headroom < avail:
        avail, source = headroom, "memory left under the cgroup limit"
    return avail, source


def parse_max_memory(value, name: str = "--max-memory") -> float | None:
    """Validate a limit in GB (``None`` = available memory); returns bytes or None."""
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number of GB, got {value!r}")
    return v * GB


def memory_limit(limit: float | None = None, option: str | None = "--max-memory"):
    """``(bytes, source)`` of the limit: ``limit`` itself (its source is ``option``) or, if None,
    the memory available now (:func:`available_bytes`; ``(None, 'unknown')`` if unknown)."""
    if limit is None:
        return available_bytes()
    return limit, f"{option}"


def format_gb(nbytes: float) -> str:
    """Bytes as GB in refusals: three significant digits, whole GB from 100 GB up."""
    v = nbytes / GB
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def check_memory(
    estimate: float,
    what: str,
    limit: float | None = None,
    option: str | None = "--max-memory",
    *,
    message: Callable[[float, float], str] | None = None,
):
    """Raise :class:`MemoryLimitError` if ``estimate`` bytes exceed ``limit`` (default: available).

    The message is one line naming the estimate, the limit and how to override it (``option``;
    None for a command without an override), or ``message(estimate, limit)`` for a command that
    words its refusal itself. Returns the limit used (bytes; None if unknown, then nothing is
    checked).
    """
    limit, source = memory_limit(limit, option)
    if limit is None:
        return None
    if estimate > limit:
        if message is not None:
            raise MemoryLimitError(message(estimate, limit))
        advice = "reduce the problem size" + (f" or pass {option} GB to override" if option else "")
        raise MemoryLimitError(
            f"{what} needs about {format_gb(estimate)} GB of memory but the limit is "
            f"{format_gb(limit)} GB ({source}); {advice}"
        )
    return limit
