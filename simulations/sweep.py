"""Resumable Monte Carlo sweeps over grids of :class:`simulations.pipelines.TrialConfig`.

Spec (TOML, see ``examples/sweep_quick.toml``)
----------------------------------------------
``[sweep]``: ``trials`` (Monte Carlo trials per config, >= 1; ``seeds`` is its old name, accepted
for one release), ``base_seed`` (>= 0, default 0), ``name``.
``[grid]``: any :class:`TrialConfig` field (or the aliases ``K`` -> ``n_classes``,
``n`` -> ``per_class``, ``p`` -> ``dim``) as a scalar or a non-empty list; the sweep is the
Cartesian product in the order the keys are written. Every config is built (and so validated)
before any work starts; duplicates after normalisation (e.g. ``rounds`` for PLL methods, ``dim``
for exact-block features) are run once and reported (:attr:`SweepSpec.duplicates`).

Seeds
-----
Trial ``i`` of every config uses ``SeedSequence(base_seed, spawn_key=(i,))`` — the ``i``-th child
of ``SeedSequence(base_seed).spawn`` — so configs share common random numbers (lower-variance
comparisons) and a config's results do not depend on the order or place it runs.

Output directory
----------------
``sweep.json``
    The spec's seeds / base_seed / name and the ordered list of config keys. A restart with a
    different ``seeds`` or ``base_seed`` in the same directory is refused (results would mix), and
    so is a spec with configs the directory does not hold unless ``extend=True`` (``--extend``),
    which adds them to it (a spec within the directory's grid resumes as usual). A damaged
    manifest (truncated, not JSON) is kept as ``sweep.json.invalid`` and rebuilt from the intact
    result files, with a note (the base seed, which result files do not record, is the spec's).
``results/<key>.csv``
    All rows of one config (one per seed x round x method), written atomically
    (:func:`selfdistill_cli.files.atomic_write`: temporary file, fsync, ``os.replace``; a link
    planted at the name is replaced, not followed) as soon as the config finishes: a finished
    config is never lost or redone, an unfinished one leaves no file. ``key`` is a hash of the
    config's normalised parameters. ``results`` itself must not be a symbolic link.
    ``pop_acc`` is the exact conditional population accuracy for mixture features (with
    quadrature error estimate ``pop_acc_err``), ``pop_acc_sampled`` the accuracy on sampled
    fresh points (:mod:`simulations.pipelines`).
    On resume every existing file is validated before it is read (a regular file of plausible
    size) and then row by row (header, one row per seed x round, the config's key, numeric fields,
    accuracies in ``[0, 1]``, finite residuals, boolean ``converged``); a damaged one (disk full,
    manual edit, a link to ``/dev/zero``) is renamed ``<key>.csv.invalid``, named in a progress
    line, and its config is run again.
``results.csv``
    Tidy table of all finished configs of the spec (spec order, then seed, then round).
``summary.csv``
    Per config x method x round: mean and 95% confidence half-width (Student t,
    ``t_{0.975, m-1} s / sqrt(m)`` over the ``m`` seeds with a defined value) of each metric.
``errors.json``
    Configs whose trial raised (e.g. a solver ``ConvergenceError``); they are retried next run.

Modules: :mod:`simulations.sweep_spec` reads and validates the spec, :mod:`simulations.sweep_files`
owns the output directory (tables, manifest, validation of result files); this module runs the
configs and re-exports the names of both.

Execution: serial (``workers=1``), local processes (:func:`simulations.workers.worker_pool`, the
default with one worker per usable core, :func:`selfdistill_cli.limits.usable_cores`; a larger
request is capped there unless ``allow_oversubscribe``, and there are never more workers than
configs; they end with the coordinating process even when it is killed) or a Dask distributed
scheduler (``scheduler=ADDRESS`` or a ``dask.distributed.Client``; an unreachable address fails
after ``scheduler_timeout`` seconds). Workers only compute and return rows; the coordinating
process writes every file, so remote workers need no shared filesystem. Before any work the grid
size (:data:`MAX_GRID_POINTS`), the peak memory of the local workers (:mod:`simulations.memory`,
with :data:`simulations.memory.WORKER_BYTES` per process) and the wall time
(:mod:`simulations.runtime`) are estimated and a sweep that cannot fit is refused. Progress goes to
stderr: a summary line before and after, a line per failed config, and a progress bar with an ETA
on a terminal.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfdistill_cli.files import atomic_write_text
from selfdistill_cli.limits import cap_workers, check_time, usable_cores
from selfdistill_cli.progress import progress_bar
from simulations.memory import WORKER_BYTES, check_memory, trial_bytes
from simulations.monte_carlo import run_spec, simulate, trial_config
from simulations.pipelines import TrialConfig
from simulations.runtime import DEFAULT_SWEEP_MAX_SECONDS, trial_seconds
from simulations.sweep_files import (
    check_result_file,
    log,
    mean_ci,
    prepare_out,
    read_csv,
    summarize,
    to_csv,
    write_tables,
)
from simulations.sweep_spec import (
    ALIASES,
    COLUMNS,
    MAX_GRID_POINTS,
    METRICS,
    ROW_FIELDS,
    SweepSpec,
    load_spec,
    parse_spec,
)
from simulations.workers import worker_pool
from theory.blas import blas_threads as blas_threads_limit
from theory.validation import check_int

__all__ = [
    "ALIASES",
    "COLUMNS",
    "METRICS",
    "SCHEDULER_TIMEOUT",
    "SweepResult",
    "SweepSpec",
    "atomic_write_text",
    "MAX_GRID_POINTS",
    "check_result_file",
    "load_spec",
    "mean_ci",
    "parse_spec",
    "read_csv",
    "run_config",
    "run_sweep",
    "summarize",
]

# ---------------------------------------------------------------------------------------------
# one config


def run_config(config: TrialConfig, seeds: int, base_seed: int = 0) -> list[dict]:
    """All tidy rows of one config: ``seeds`` trials, each with its rounds (method rows).

    The trials are :func:`simulations.monte_carlo.simulate` of
    :func:`simulations.monte_carlo.run_spec` ``(config)`` (exact backend, one process: the sweep
    parallelises over configs; no time limit: the sweep's own estimate was checked), with the
    config's simulation-only knobs. Trial ``i`` is :func:`simulations.pipelines.run_trial`
    ``(config, trial_seed(base_seed, i))``, and row ``(i, t)`` holds its round ``t``'s
    :data:`ROW_FIELDS` as that trial's rows do (``Result.trial_data``, dtypes kept).

    Raises
    ------
    ValueError
        ``seeds < 1`` or ``base_seed < 0``; a config whose spec does not map back to it.
    """
    seeds = check_int(seeds, "seeds", 1)
    spec = run_spec(config)
    knobs = dict(n_test=config.n_test, tol=config.tol, temperature=config.temperature)
    if trial_config(spec, **knobs) != config:  # the rows below would be another config's
        raise ValueError(f"config {config.key()} does not round-trip through its theory.spec.Spec")
    res = simulate(
        spec,
        seeds,
        seed=base_seed,
        backend="exact",
        keep_trials=True,
        workers=1,
        max_seconds=None,
        blas_threads=None,  # as run_sweep set it around this config (serial run or worker)
        **knobs,
    )
    # Native Python values (tolist): the CSV text is that of run_trial's rows.
    columns = {f: np.asarray(res.trial_data[f]).tolist() for f in ROW_FIELDS}
    base = config.to_dict()
    base["groups"] = json.dumps(base["groups"]) if base["groups"] is not None else ""
    key = config.key()
    out = []
    for i in range(seeds):
        for t in range(res.samples.shape[1]):  # rows = rounds 0..R (PLL: teacher, student)
            full = {"key": key, "seed": i, "round": t, **base}
            full.update({f: columns[f][i][t] for f in ROW_FIELDS})
            out.append(full)
    return out


def _task(params: dict, seeds: int, base_seed: int) -> dict:
    """Worker entry point (top level so that it pickles): never raises, reports errors."""
    start = time.perf_counter()
    cfg = TrialConfig.from_dict(params)
    try:
        rows = run_config(cfg, seeds, base_seed)
        return {"key": cfg.key(), "rows": rows, "seconds": time.perf_counter() - start}
    except Exception as exc:  # recorded in errors.json; the sweep continues with other configs
        return {
            "key": cfg.key(),
            "error": f"{type(exc).__name__}: {exc}",
            "seconds": time.perf_counter() - start,
        }


# ---------------------------------------------------------------------------------------------
# driver


@dataclass(frozen=True)
class SweepResult:
    """Outcome of :func:`run_sweep`.

    Attributes
    ----------
    total : int
        Configs in the spec.
    skipped : int
        Configs already finished in the output directory (not redone).
    completed : int
        Configs finished in this run.
    failed : dict
        ``key -> error message`` for configs whose trial raised.
    seconds : float
        Wall time of this run.
    """

    total: int
    skipped: int
    completed: int
    failed: dict
    seconds: float


#: Seconds to wait for a Dask scheduler before giving up (``--scheduler-timeout``).
SCHEDULER_TIMEOUT = 10.0


def _dask_client(scheduler, timeout: float):
    """A ``dask.distributed.Client`` for ``scheduler`` (address or client) and whether we own it."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError(
            "--scheduler needs dask.distributed: pip install 'selfdistill-lab[dask]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler must be an address like tcp://HOST:PORT, got {scheduler!r}")
    try:
        return Client(scheduler, timeout=timeout), True
    except (ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"invalid Dask scheduler address {scheduler!r}: {detail}") from None
    except (OSError, TimeoutError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:g} s: {detail}"
        ) from None


def _executor(workers: int, client, blas_threads):
    """``(submit(fn, *args) -> future, as_completed(futures), close(), abort())`` per backend.

    ``abort`` ends the workers at once (an exception in the coordinator: a finished config is
    already on disk, a running one would only be thrown away after it completes).
    """
    if client is not None:
        from dask.distributed import as_completed as dask_completed

        def submit(fn, *args):
            return client.submit(fn, *args, pure=False)

        return submit, dask_completed, lambda: None, lambda: None
    from concurrent.futures import as_completed

    pool = worker_pool(workers, blas_threads)

    def abort():
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()  # private attribute, but the only handle on the workers; guarded above
        pool.shutdown(wait=False, cancel_futures=True)

    return pool.submit, as_completed, lambda: pool.shutdown(cancel_futures=True), abort


def run_sweep(
    spec: SweepSpec,
    out,
    *,
    workers: int | None = None,
    scheduler=None,
    limit: int | None = None,
    quiet: bool = False,
    blas_threads: int | None = 1,
    extend: bool = False,
    max_memory: float | None = None,
    scheduler_timeout: float = SCHEDULER_TIMEOUT,
    max_time: float | None = None,
    allow_oversubscribe: bool = False,
) -> SweepResult:
    """Run (or resume) ``spec`` into directory ``out``; see the module docstring for the files.

    Parameters
    ----------
    spec : SweepSpec
    out : path
    workers : int, optional
        Local worker processes (default: the usable cores,
        :func:`selfdistill_cli.limits.usable_cores`); 1 runs serially in this process. A larger
        request is capped at the usable cores with a note on stderr unless
        ``allow_oversubscribe``; never more workers than configs to run.
    scheduler : str or dask.distributed.Client, optional
        Dask scheduler address (e.g. ``'tcp://127.0.0.1:8786'``) or client; overrides ``workers``.
    limit : int, optional
        Run at most this many pending configs now (e.g. to split a sweep into batch jobs);
        the rest are picked up by the next call.
    quiet : bool
        Suppress progress lines on stderr.
    blas_threads : int or None
        BLAS threads per serial run / local worker process (``threadpoolctl``; default 1, since
        the solves are small and multi-threaded BLAS under contention is much slower: 0.25 s vs
        1.2 s per N = 400 trial measured on a loaded 2-core machine). ``None`` leaves BLAS
        alone. Dask workers are not touched (configure the cluster instead); the trials run
        under this limit (:func:`simulations.monte_carlo.simulate` with ``blas_threads=None``).
    extend : bool
        Allow ``out`` to hold another grid's results and add this spec's configs to it (refused
        otherwise). ``results.csv`` and ``summary.csv`` cover this spec's configs.
    max_memory : float, optional
        Refuse (``MemoryLimitError``) a local sweep whose estimated peak, the largest config
        times the number of workers running at once, exceeds this many bytes (default: the
        memory available now, :func:`simulations.memory.available_bytes`). Not checked on Dask.
    scheduler_timeout : float
        Seconds to wait for the Dask scheduler.
    max_time : float, optional
        Refuse (:class:`selfdistill_cli.limits.TimeLimitError`) a sweep whose estimated wall
        time (:func:`simulations.runtime.trial_seconds` of every pending trial, divided among
        the workers) exceeds this many seconds (default
        :data:`simulations.runtime.DEFAULT_SWEEP_MAX_SECONDS`, a day).
    allow_oversubscribe : bool
        Start ``workers`` processes even beyond the usable cores.

    Raises
    ------
    ValueError
        Before any work: bad arguments, an unusable output directory, an unreachable scheduler,
        or a sweep that does not fit in memory (one-line messages).
    """
    if not isinstance(spec, SweepSpec):
        raise ValueError("spec must be a SweepSpec (use load_spec / parse_spec)")
    cores = usable_cores()
    n_workers = cores if workers is None else check_int(workers, "workers", 1)
    if blas_threads is not None:
        blas_threads = check_int(blas_threads, "blas_threads", 1)
    if limit is not None:
        limit = check_int(limit, "limit", 0)
    if not (isinstance(scheduler_timeout, (int, float)) and scheduler_timeout > 0):
        raise ValueError(f"scheduler_timeout must be a number > 0, got {scheduler_timeout!r}")
    start = time.perf_counter()
    out = Path(out)
    backend = "dask" if scheduler is not None else ("serial" if n_workers == 1 else "processes")
    if backend == "processes":  # never more processes than cores (unless asked) or configs
        n_workers = cap_workers(
            n_workers,
            allow_oversubscribe=allow_oversubscribe,
            note=None if not quiet else (lambda _msg: None),
        )
        n_workers = max(1, min(n_workers, len(spec.configs)))
    if backend != "dask" and spec.configs:
        running = 1 if backend == "serial" else n_workers
        need = running * max(trial_bytes(c) for c in spec.configs)
        need += (running if backend == "processes" else 0) * WORKER_BYTES
        check_memory(need, f"this sweep ({running} config(s) at once)", max_memory)
    # The configs still to run (a result file, even a damaged one, counts as done here: an
    # estimate need not read them) and at most `limit` of them.
    todo = [c for c in spec.configs if not (out / "results" / f"{c.key()}.csv").exists()]
    todo = todo if limit is None else todo[:limit]
    if todo:
        seconds = spec.seeds * sum(trial_seconds(c) for c in todo)
        parallel = 1 if backend == "serial" else min(n_workers, len(todo))
        check_time(
            seconds / parallel,
            f"this sweep ({len(todo)} config(s) x {spec.seeds} trial(s))",
            DEFAULT_SWEEP_MAX_SECONDS if max_time is None else float(max_time),
        )
    if out.exists() and not out.is_dir():  # before connecting to anything
        raise ValueError(f"output directory {str(out)!r} is a file; give a directory for --out")
    client, own_client = (None, False)
    if backend == "dask":
        client, own_client = _dask_client(scheduler, float(scheduler_timeout))
    try:
        res_dir = prepare_out(spec, out, extend, quiet)
        return _run(
            spec, out, res_dir, backend, n_workers, client, limit, quiet, blas_threads, start
        )
    finally:
        if own_client:
            client.close()


def _run(spec, out, res_dir, backend, n_workers, client, limit, quiet, blas_threads, start):
    """Validate finished files, run the pending configs, write the tables (:func:`run_sweep`)."""
    pending = []
    for c in spec.configs:
        path = res_dir / f"{c.key()}.csv"
        if not path.exists():
            pending.append(c)
            continue
        problem = check_result_file(path, c, spec.seeds)
        if problem is not None:  # keep the damaged file for inspection, out of the results
            os.replace(path, path.with_name(path.name + ".invalid"))
            log(
                f"  {str(path)!r}: results file refused ({problem}); kept as "
                f"{path.name}.invalid, running its config again",
                quiet,
            )
            pending.append(c)
    skipped = len(spec.configs) - len(pending)
    if limit is not None:
        pending = pending[:limit]
    total = len(spec.configs)
    if spec.duplicates:
        log(f"note: {spec.duplicate_note()}", quiet)
    log(
        f"sweep {spec.name!r}: {total} configs x {spec.seeds} trials; {skipped} already done, "
        f"{len(pending)} to run ({backend}{'' if backend != 'processes' else f', {n_workers}'})",
        quiet,
    )
    failed: dict[str, str] = {}
    done = 0
    # Progress with an ETA on a terminal (selfdistill_cli.progress; SELFDISTILL_PROGRESS=1 for a
    # log file); failures are always reported, as lines.
    bar = progress_bar(total=len(pending), desc=f"sweep {spec.name}", unit="config", quiet=quiet)

    def record(result):
        nonlocal done
        done += 1
        key = result["key"]
        if "error" in result:
            failed[key] = result["error"]
            log(f"  [{skipped + done}/{total}] {key} FAILED: {result['error']}", quiet)
        else:
            atomic_write_text(res_dir / f"{key}.csv", to_csv(result["rows"]))
        bar.update()

    args = [(c.to_dict(), spec.seeds, spec.base_seed) for c in pending]
    if pending and backend == "serial":
        with blas_threads_limit(blas_threads):
            for a in args:
                record(_task(*a))
    elif pending:
        submit, completed, close, abort = _executor(n_workers, client, blas_threads)
        try:
            futures = [submit(_task, *a) for a in args]
            for fut in completed(futures):
                record(fut.result())
        except BaseException:
            abort()  # e.g. Ctrl-C: do not wait for running configs; finished ones are on disk
            raise
        close()
    bar.close()
    write_tables(spec, out, res_dir, failed)
    seconds = time.perf_counter() - start
    log(f"sweep done in {seconds:.1f}s: {done - len(failed)} run, {len(failed)} failed", quiet)
    return SweepResult(total, skipped, done - len(failed), failed, seconds)
