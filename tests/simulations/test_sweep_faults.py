"""Sweeps under faults: the coordinator killed (SIGTERM / SIGKILL) at random points of a parallel
sweep leaves no worker behind, and the resumed sweep is byte-identical to an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from simulations.sweep import load_spec, read_csv, run_sweep
from tests.cli import ROOT, cli_env
from tests.simulations._helpers import start_held_sweep

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds the worker processes through /proc"
)

#: 12 configs of ~0.05-0.2 s each: a 2-worker sweep runs for about a second after start-up.
SPEC = """
[sweep]
trials = 2
base_seed = 3
[grid]
K = 3
n = 10
p = 120
eta = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
method = ["sd", "pll-ce"]
rounds = 2
n_test = 10
"""
N_CONFIGS = 12


def _stat(pid: int):
    """``(state, ppid)`` of a process from /proc, or None if it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces
    return fields[0], int(fields[1])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pid:
                out.append(int(entry.name))
    return out


def _running(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"  # a zombie has ended (only its exit status is left)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted serial run of SPEC: its spec file and output directory."""
    root = tmp_path_factory.mktemp("faults")
    spec_file = root / "spec.toml"
    spec_file.write_text(SPEC)
    run_sweep(load_spec(spec_file), root / "ref", workers=1, quiet=True)
    return spec_file, root / "ref"


def _wait_for_workers(proc, n=2, timeout=60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    workers: list[int] = []
    while len(workers) < n and proc.poll() is None and time.monotonic() < deadline:
        workers = _children(proc.pid)
        time.sleep(0.01)
    assert len(workers) == n, f"the sweep should have started its {n} workers"
    return workers


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_until_ended(pids, timeout=60.0) -> list[int]:
    """Pids still running after ``timeout`` s.

    The workers end on the parent-death signal (or poll their parent every 0.25 s), so they
    normally go at once; the generous deadline only bounds a hang on a busy machine.
    """
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if _running(p)]


@pytest.mark.slow
def test_killed_parallel_sweep_leaves_no_process_and_resumes_identically(tmp_path, reference):
    # SIGTERM and SIGKILL, each at a seeded random point of its own 2-worker sweep: after a random
    # number of finished configs (0 = while the first configs run) plus a random delay. Both
    # sweeps run at the same time to keep the test short. The last two configs are held back, so
    # a sweep cannot finish before its kill however the machine's load delays this loop (the
    # kill comes after at most N_CONFIGS - 4 finished configs, two fewer than can finish).
    spec_file, ref = reference
    rng = np.random.default_rng(20250101)
    cases = {signal.SIGTERM: tmp_path / "term", signal.SIGKILL: tmp_path / "kill"}
    plan = {sig: (int(rng.integers(0, N_CONFIGS - 3)), rng.uniform(0.0, 0.05)) for sig in cases}
    held = [c.key() for c in load_spec(spec_file).configs[-2:]]  # submitted last
    procs = {sig: start_held_sweep(spec_file, out, held, workers=2) for sig, out in cases.items()}
    workers: dict = {}
    try:
        deadline = time.monotonic() + 90
        while len(workers) < len(procs) and time.monotonic() < deadline:
            for sig, proc in procs.items():
                if sig in workers:
                    continue
                assert proc.poll() is None, "the sweep ended before it was killed"
                found = _children(proc.pid)
                finished = len(list((cases[sig] / "results").glob("*.csv")))
                if len(found) == 2 and finished >= plan[sig][0]:
                    time.sleep(plan[sig][1])
                    proc.send_signal(sig)
                    workers[sig] = found
            time.sleep(0.005)
        assert len(workers) == len(procs), "the sweeps should have started their 2 workers"
    finally:
        for proc in procs.values():
            if proc.returncode is None and proc.poll() is None and len(workers) < len(procs):
                proc.kill()
            proc.wait(timeout=60)
    assert all(p.returncode == -sig for sig, p in procs.items())  # ended by the signal
    left = _wait_until_ended(sum(workers.values(), []))
    _kill(left)  # a failing run must not leave processes behind either
    assert not left, "workers outlived the killed sweep"

    spec = load_spec(spec_file)
    for out in cases.values():
        done = {p.name for p in (out / "results").glob("*.csv")}
        resumed = run_sweep(spec, out, workers=1, quiet=True)
        assert resumed.skipped == len(done) and resumed.skipped + resumed.completed == N_CONFIGS
        assert not list((out / "results").glob(".*"))  # no stray temporaries
        for name in ("results.csv", "summary.csv"):
            assert (out / name).read_bytes() == (ref / name).read_bytes()
        for path in (ref / "results").glob("*.csv"):
            assert (out / "results" / path.name).read_bytes() == path.read_bytes()
        ids = [(r["key"], r["seed"], r["round"]) for r in read_csv(out / "results.csv")]
        # nothing duplicated or missing: 6 SD configs x 2 seeds x 3 rounds, 6 PLL x 2 x 2
        assert len(ids) == len(set(ids)) == 6 * 2 * 3 + 6 * 2 * 2


def test_workers_end_with_their_parent_process(tmp_path):
    # The pool itself, without a sweep: a parent that is SIGKILLed while its workers are idle.
    code = (
        "import sys, time\n"
        "from simulations.workers import worker_pool\n"
        "pool = worker_pool(2)\n"
        "print(*sorted(pool.submit(__import__('os').getpid).result() for _ in range(4)))\n"
        "print(*pool._processes, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        proc.stdout.readline()
        workers = [int(x) for x in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(_running(w) for w in workers)
        proc.kill()
    finally:
        proc.wait(timeout=60)
    left = _wait_until_ended(workers)
    _kill(left)
    assert not left


@pytest.mark.slow
def test_disk_full_while_writing_results_is_one_line_and_resumable(tmp_path, reference):
    # Every file write beyond 1 kB fails (RLIMIT_FSIZE, as on a full disk): sweep.json fits, the
    # first per-config file does not. One line, exit 1, nothing half-written; a rerun resumes.
    import resource

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail with EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    spec_file, ref = reference
    out = tmp_path / "full"
    proc = subprocess.run(
        [sys.executable, "-m", "simulations", "sweep", str(spec_file), "--out", str(out)]
        + ["--workers", "1", "--quiet"],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
    )
    assert proc.returncode == 2, proc.stderr  # one line, exit 2 (issue 21)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: cannot write")
    assert "resume" in err and "Traceback" not in proc.stderr
    assert not list((out / "results").iterdir())  # no partial file, no stray temporary
    run_sweep(load_spec(spec_file), out, workers=1, quiet=True)
    assert (out / "results.csv").read_bytes() == (ref / "results.csv").read_bytes()
