"""Usable cores and time limits (selfdistill_cli.limits), and the bounded argparse types."""

from __future__ import annotations

import argparse
import os

import pytest

from selfdistill_cli import float_in, int_in, nonempty_path
from selfdistill_cli.limits import (
    TimeLimitError,
    cap_workers,
    check_time,
    format_seconds,
    parse_max_time,
    usable_cores,
)


def test_usable_cores_within_the_affinity_mask():
    cores = usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cores <= len(os.sched_getaffinity(0))


def test_usable_cores_follow_a_cgroup_quota(monkeypatch):
    from selfdistill_cli import limits

    monkeypatch.setattr(limits, "_cgroup_cpu_limit", lambda: 0.5)
    assert usable_cores() == 1  # half a CPU: one worker
    monkeypatch.setattr(limits, "_cgroup_cpu_limit", lambda: 1e6)
    assert usable_cores() <= (os.cpu_count() or 1)  # a large quota never adds cores


def test_cap_workers_caps_with_one_note_and_honours_the_override():
    notes = []
    cores = usable_cores()
    assert cap_workers(100000, note=notes.append) == cores
    assert len(notes) == 1 and "100000" in notes[0] and "--allow-oversubscribe" in notes[0]
    assert cap_workers(cores, note=notes.append) == cores and len(notes) == 1
    assert cap_workers(cores + 3, allow_oversubscribe=True, note=notes.append) == cores + 3
    assert len(notes) == 1


def test_check_time_message_has_estimate_limit_and_override():
    check_time(10.0, "this run", 60.0)
    with pytest.raises(TimeLimitError) as exc:
        check_time(2e6, "10000000 trial(s)", 3600.0)
    msg = str(exc.value)
    assert isinstance(exc.value, ValueError) and "\n" not in msg
    assert "23.1 days" in msg and "60 min" in msg and "--max-time SECONDS" in msg


@pytest.mark.parametrize(
    "seconds, text",
    [
        (45, "45 s"),
        (600, "10 min"),
        (7200, "2 h"),
        (3 * 86400, "3 days"),
        (float("inf"), "forever"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf")])
def test_parse_max_time_refuses(value):
    with pytest.raises(ValueError, match="--max-time"):
        parse_max_time(value)


def test_bounded_argparse_types():
    assert int_in(1, 10)("3") == 3 and float_in(0.0, 1.0)("0.5") == 0.5
    for typ, text in [(int_in(1, 10), "0"), (int_in(1), "x"), (float_in(0, 1), "nan")]:
        with pytest.raises(argparse.ArgumentTypeError):
            typ(text)
    with pytest.raises(argparse.ArgumentTypeError, match="empty string"):
        nonempty_path("")
