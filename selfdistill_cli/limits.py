"""Limits checked before any work: usable CPU cores and estimated running time.

Cores (:func:`usable_cores`, :func:`cap_workers`)
    The cores this process may run on: its CPU affinity (``os.sched_getaffinity``; ``taskset``,
    ``cpuset`` cgroups) and, in a container, the CPU quota of its cgroup (v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us / cpu.cfs_period_us``), rounded up. ``os.cpu_count()`` counts the machine's
    cores whether or not this process may use them. A request for more worker processes than
    usable cores only adds memory and contention (``--workers 100000`` used to start 100000
    processes), so it is capped with a note on stderr; an explicit override flag runs more.
Time (:func:`check_time`)
    Commands estimate their running time from the problem's sizes before allocating or looping,
    and refuse (:class:`TimeLimitError`, a ``ValueError``: one line with the estimate, the limit
    and the override flag) what would run far longer than the command's default limit. The
    estimates are deliberately on the slow side of what was measured (so a refusal is not a
    false alarm on a fast machine); they exist to stop a typo such as ``--seeds 10000000`` from
    running for days, not to predict a run to the second.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

__all__ = [
    "TimeLimitError",
    "cap_workers",
    "check_time",
    "format_seconds",
    "parse_max_time",
    "usable_cores",
]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cgroup_paths() -> dict[str, str]:
    """``controller -> path`` from ``/proc/self/cgroup`` (``''`` is the v2 unified hierarchy)."""
    out: dict[str, str] = {}
    text = _read("/proc/self/cgroup") or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                out[controller] = parts[2]
    return out


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup quota (e.g. 1.5), or None without a quota."""
    paths = _cgroup_paths()
    v2 = paths.get("", "/").lstrip("/")
    for folder in (f"/sys/fs/cgroup/{v2}", "/sys/fs/cgroup"):
        text = _read(os.path.join(folder, "cpu.max"))
        if text:
            quota, _, period = text.partition(" ")
            if quota != "max":
                try:
                    return max(float(quota) / float(period or 100000), 0.01)
                except ValueError:
                    return None
            return None
    v1 = paths.get("cpu", "/").lstrip("/")
    for folder in (
        f"/sys/fs/cgroup/cpu,cpuacct/{v1}",
        f"/sys/fs/cgroup/cpu/{v1}",
        "/sys/fs/cgroup/cpu,cpuacct",
        "/sys/fs/cgroup/cpu",
    ):
        quota, period = _read(f"{folder}/cpu.cfs_quota_us"), _read(f"{folder}/cpu.cfs_period_us")
        if quota is None or period is None:
            continue
        try:
            q, p = int(quota), int(period)
        except ValueError:
            return None
        return q / p if q > 0 and p > 0 else None
    return None


def usable_cores() -> int:
    """CPU cores this process may use: affinity mask and cgroup quota (module docstring); >= 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(int(cores), 1)


def cap_workers(
    requested: int,
    *,
    allow_oversubscribe: bool = False,
    option: str = "--workers",
    override: str | None = "--allow-oversubscribe",
    note=None,
) -> int:
    """``requested`` worker processes, capped at :func:`usable_cores` unless overridden.

    A capped request prints one ``note: ...`` line (through ``note``, default stderr) naming the
    cores and ``override``, the flag that runs more.
    """
    cores = usable_cores()
    if requested <= cores or allow_oversubscribe:
        return int(requested)
    how = f"; pass {override} to start more" if override else ""
    say = note or (lambda msg: print(msg, file=sys.stderr, flush=True))
    say(
        f"note: {option} {requested} capped at {cores}, the CPU cores this process may use "
        f"(affinity / cgroup quota){how}"
    )
    return cores


class TimeLimitError(ValueError):
    """The estimated running time exceeds the limit (raised before any work)."""


def format_seconds(seconds: float) -> str:
    """``'45 s'``, ``'12 min'``, ``'3.2 h'``, ``'41 days'``, ``'3.2e+05 years'``."""
    s = float(seconds)
    if not math.isfinite(s):
        return "forever"
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * size:
            v = s / size
            return f"{v:.3g} {unit}" if v < 1e6 else f"{v:.2g} {unit}"
    return f"{s:.2g} s"


def parse_max_time(value, name: str = "--max-time") -> float | None:
    """Validate a time limit in seconds (``None``: the command's default)."""
    if value is None:
        return None
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return v


def check_time(seconds: float, what: str, limit: float, option: str | None = "--max-time"):
    """Raise :class:`TimeLimitError` if ``seconds`` (an estimate) exceeds ``limit``.

    The message is one line: the estimate, the limit and the flag that raises it.
    """
    if seconds > limit:
        how = f"; reduce the problem or pass {option} SECONDS to allow it" if option else ""
        raise TimeLimitError(
            f"{what} would take about {format_seconds(seconds)} (estimate), above the limit of "
            f"{format_seconds(limit)}{how}"
        )
