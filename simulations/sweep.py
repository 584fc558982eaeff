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
    which adds them to it (a spec within the directory's grid resumes as usual).
``results/<key>.csv``
    All rows of one config (one per seed x round x method), written atomically (temporary file +
    ``os.replace``) as soon as the config finishes: a finished config is never lost or redone,
    an unfinished one leaves no file. ``key`` is a hash of the config's normalised parameters.
    ``pop_acc`` is the exact conditional population accuracy for mixture features (with
    quadrature error estimate ``pop_acc_err``), ``pop_acc_sampled`` the accuracy on sampled
    fresh points (:mod:`simulations.pipelines`).
    On resume every existing file is validated (header, one row per seed x round, the config's
    key, numeric fields); a damaged one (disk full, manual edit) is renamed ``<key>.csv.invalid``
    and its config is run again.
``results.csv``
    Tidy table of all finished configs of the spec (spec order, then seed, then round).
``summary.csv``
    Per config x method x round: mean and 95% confidence half-width (Student t,
    ``t_{0.975, m-1} s / sqrt(m)`` over the ``m`` seeds with a defined value) of each metric.
``errors.json``
    Configs whose trial raised (e.g. a solver ``ConvergenceError``); they are retried next run.

Execution: serial (``workers=1``), local processes (:func:`simulations.workers.worker_pool`, the
default with ``os.cpu_count()`` workers; they end with the coordinating process even when it is
killed) or a Dask distributed scheduler (``scheduler=ADDRESS`` or a ``dask.distributed.Client``;
an unreachable address fails after ``scheduler_timeout`` seconds). Workers only compute and return
rows; the coordinating process writes every file, so remote workers need no shared filesystem.
Before any work the peak memory of the local workers is estimated (:mod:`simulations.memory`) and
a sweep that cannot fit is refused. Progress goes to stderr: a summary line before and after, a
line per failed config, and a progress bar with an ETA on a terminal.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from selfdistill_cli import deprecation_note
from selfdistill_cli.progress import progress_bar, write
from simulations.memory import check_memory, trial_bytes
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from simulations.stats import mean_ci as _mean_ci
from simulations.workers import worker_pool
from theory.blas import blas_threads as blas_threads_limit
from theory.names import METRICS as NAMED_METRICS
from theory.validation import check_int

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ALIASES",
    "METRICS",
    "SCHEDULER_TIMEOUT",
    "SweepResult",
    "SweepSpec",
    "atomic_write_text",
    "check_result_file",
    "load_spec",
    "mean_ci",
    "parse_spec",
    "read_csv",
    "run_config",
    "run_sweep",
    "summarize",
]

ALIASES = {"K": "n_classes", "n": "per_class", "p": "dim"}
#: Metrics summarised with mean and 95% CI (:data:`theory.names.METRICS`).
METRICS = NAMED_METRICS
_CONFIG_FIELDS = [f.name for f in fields(TrialConfig)]
_ROW_FIELDS = [
    "n_mislabeled",
    "train_acc",
    "train_acc_clean",
    "train_acc_mislabeled",
    "train_ties",
    "pop_acc",
    "pop_ties",
    "pop_acc_sampled",
    "pop_acc_err",
    "top2_coverage",
    "residual",
    "target",
    "gradient_norm",
    "iterations",
    "converged",
    "solver",
]
#: Column order of the tidy CSV files.
COLUMNS = ["key", "seed", "round"] + _CONFIG_FIELDS + _ROW_FIELDS


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: ordered unique configs, ``seeds`` trials each from ``base_seed``.

    ``grid_points`` counts the grid's Cartesian product before deduplication and
    ``ignored_params`` names the parameters whose values made duplicates (normalised away, e.g.
    ``rounds`` for PLL methods); both are for reporting.
    """

    configs: tuple
    seeds: int
    base_seed: int = 0
    name: str = "sweep"
    grid_points: int = 0
    ignored_params: tuple = ()

    @property
    def keys(self) -> list[str]:
        return [c.key() for c in self.configs]

    @property
    def duplicates(self) -> int:
        """Grid points that repeat an earlier config after normalisation (each runs once)."""
        return max(self.grid_points - len(self.configs), 0)

    def duplicate_note(self) -> str:
        """One sentence about deduplicated grid points ('' if none)."""
        if not self.duplicates:
            return ""
        why = ", ".join(self.ignored_params) or "normalised parameters"
        return (
            f"{self.duplicates} of {self.grid_points} grid points repeat an earlier config after "
            f"normalisation (values of {why} do not apply there) and run once"
        )


def parse_spec(spec: dict) -> SweepSpec:
    """Validate a spec dict (parsed TOML) into a :class:`SweepSpec`; ``ValueError`` if bad."""
    if not isinstance(spec, dict):
        raise ValueError("spec must be a table with [sweep] and [grid] sections")
    unknown = sorted(set(spec) - {"sweep", "grid"})
    if unknown:
        raise ValueError(f"unknown spec section(s) {unknown}; expected [sweep] and [grid]")
    head = spec.get("sweep", {})
    if not isinstance(head, dict):
        raise ValueError("[sweep] must be a table")
    bad = sorted(set(head) - {"trials", "seeds", "base_seed", "name"})
    if bad:
        raise ValueError(f"unknown [sweep] key(s) {bad}; valid: base_seed, name, trials")
    if "trials" in head and "seeds" in head:
        raise ValueError("[sweep] give trials only (seeds is its old name)")
    if "seeds" in head:  # the old spelling, for one release (theory.names.DEPRECATED_OPTIONS)
        deprecation_note("[sweep] seeds", "[sweep] trials")
        head = {**head, "trials": head["seeds"]}
    if "trials" not in head:
        raise ValueError("[sweep] trials (number of Monte Carlo trials per config) is required")
    seeds = check_int(head["trials"], "[sweep] trials", 1)
    base_seed = check_int(head.get("base_seed", 0), "[sweep] base_seed", 0)
    name = head.get("name", "sweep")
    if not isinstance(name, str):
        raise ValueError(f"[sweep] name must be a string, got {name!r}")
    grid = spec.get("grid", {})
    if not isinstance(grid, dict):
        raise ValueError("[grid] must be a table")
    axes: dict[str, list] = {}
    for raw, value in grid.items():
        key = ALIASES.get(raw, raw)
        if key not in _CONFIG_FIELDS:
            raise ValueError(
                f"unknown [grid] parameter {raw!r}; valid: {sorted(_CONFIG_FIELDS + list(ALIASES))}"
            )
        if key in axes:
            raise ValueError(f"[grid] parameter {key!r} given twice (alias {raw!r})")
        # groups is itself a list of lists: a scalar value is one partition (list of lists), a
        # grid over partitions is a list of those.
        if key == "groups":
            is_grid = (
                isinstance(value, list)
                and value
                and isinstance(value[0], list)
                and value[0]
                and isinstance(value[0][0], list)
            )
            values = value if is_grid else [value]
        else:
            values = value if isinstance(value, list) else [value]
        if not values:
            raise ValueError(f"[grid] {raw} must be a value or a non-empty list")
        axes[key] = values
    configs, first = [], {}
    ignored: list[str] = []
    names = list(axes)
    points = 0
    for combo in itertools.product(*(axes[k] for k in names)):
        points += 1
        params = dict(zip(names, combo, strict=True))
        try:
            cfg = TrialConfig.from_dict(params)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid config {params}: {exc}") from None
        key = cfg.key()
        if key not in first:
            first[key] = params
            configs.append(cfg)
        else:  # which given values did normalisation drop? (for the report)
            ignored += [k for k in names if params[k] != first[key][k] and k not in ignored]
    return SweepSpec(tuple(configs), seeds, base_seed, name, points, tuple(ignored))


def load_spec(path) -> SweepSpec:
    """Read and validate a TOML spec file (``tomllib``); ``ValueError`` naming the problem."""
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        raise ValueError(f"spec file {str(p)!r} {what}")
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ValueError(f"spec file {str(p)!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        raise ValueError(
            f"spec file {str(p)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"spec file {str(p)!r} is not valid TOML: {exc}") from None
    return parse_spec(data)


# ---------------------------------------------------------------------------------------------
# one config


def run_config(config: TrialConfig, seeds: int, base_seed: int = 0) -> list[dict]:
    """All tidy rows of one config: ``seeds`` trials, each with its rounds and method rows."""
    out = []
    base = config.to_dict()
    base["groups"] = json.dumps(base["groups"]) if base["groups"] is not None else ""
    key = config.key()
    for i in range(check_int(seeds, "seeds", 1)):
        trial = run_trial(config, trial_seed(base_seed, i))
        for row in trial.rows:
            full = {"key": key, "seed": i, "round": row["round"], **base}
            full.update({f: row[f] for f in _ROW_FIELDS})
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
# files


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same directory, fsync, rename).

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):  # not repr(np.float64): 'np.float64(x)'
        return repr(float(value))  # round-trips exactly; nan -> 'nan'
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _to_csv(rows: list[dict], columns=COLUMNS) -> str:
    """CSV text of ``rows`` restricted to ``columns``, with exact round-tripping values."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_fmt(row[c]) for c in columns])
    return buf.getvalue()


def read_csv(path) -> list[dict]:
    """Read a tidy results CSV written by this module (values as strings)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(s: str) -> float:
    return math.nan if s in ("", "nan") else float(s)


def mean_ci(values, level: float = 0.95) -> tuple[float, float, int]:
    """Mean, confidence half-width and count of the non-NaN ``values``
    (:func:`simulations.stats.mean_ci` on a list; half-width NaN when fewer than two values)."""
    return _mean_ci(np.asarray(list(values), dtype=float), level=level)


def summarize(rows: list[dict]) -> list[dict]:
    """Per (key, method, round): config columns, ``n_seeds`` and ``<metric>_mean/_ci95``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["key"], row["method"], int(row["round"])), []).append(row)
    out = []
    for (key, _method, rnd), members in groups.items():
        first = members[0]
        summary = {"key": key, "round": rnd, **{f: first[f] for f in _CONFIG_FIELDS}}
        summary["n_seeds"] = len(members)
        for metric in METRICS:
            mean, half, _ = mean_ci([_num(str(m[metric])) for m in members])
            summary[f"{metric}_mean"] = mean
            summary[f"{metric}_ci95"] = half
        summary["all_converged"] = all(str(m["converged"]).lower() == "true" for m in members)
        out.append(summary)
    return out


def _summary_csv(summary: list[dict]) -> str:
    cols = ["key", "round"] + _CONFIG_FIELDS + ["n_seeds"]
    cols += [f"{m}_{s}" for m in METRICS for s in ("mean", "ci95")] + ["all_converged"]
    return _to_csv(summary, cols)


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


def _prepare_out(spec: SweepSpec, out: Path, extend: bool = False) -> Path:
    """Create ``out`` and ``out/results``, check or write ``sweep.json``; return ``out/results``.

    Raises ``ValueError`` (one line) when ``out`` is a file, cannot be created or written, or holds
    a sweep with other seeds, or another grid without ``extend``.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"output directory {str(out)!r} is a file; give a directory for --out")
    manifest = out / "sweep.json"
    old = None
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
            old_keys = list(old["keys"])
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(
                f"{str(manifest)!r} is not a sweep manifest this version wrote; use a new --out "
                "directory"
            ) from None
        if (old.get("seeds"), old.get("base_seed")) != (spec.seeds, spec.base_seed):
            raise ValueError(
                f"output directory {str(out)!r} holds a sweep with seeds={old.get('seeds')}, "
                f"base_seed={old.get('base_seed')}; this spec has seeds={spec.seeds}, "
                f"base_seed={spec.base_seed}. Use a new --out directory."
            )
        new = len(set(spec.keys) - set(old_keys))
        if new and not extend:  # a spec within the directory's grid only resumes
            raise ValueError(
                f"output directory {str(out)!r} holds another grid ({len(old_keys)} configs; "
                f"{new} of this spec's {len(spec.keys)} are not among them); use a new --out "
                "directory, or pass --extend to add this spec's configs to it"
            )
        keys = list(dict.fromkeys(old_keys + spec.keys))
    else:
        keys = spec.keys
    try:
        out.mkdir(parents=True, exist_ok=True)
        res = out / "results"
        res.mkdir(exist_ok=True)
        for stale in res.glob(".*.tmp"):  # temporaries of a killed run are never valid results
            stale.unlink()
        info = {"name": spec.name, "seeds": spec.seeds, "base_seed": spec.base_seed, "keys": keys}
        atomic_write_text(manifest, json.dumps(info, indent=1) + "\n")
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ValueError(
            f"cannot write to output directory {str(out)!r}: {exc.strerror or exc}{where}"
        ) from None
    return res


def check_result_file(path, config: TrialConfig, seeds: int) -> str | None:
    """Why the per-config file ``path`` is not a complete result of ``config`` (None if it is).

    Complete: the header :data:`COLUMNS`, exactly one row per seed ``0..seeds-1`` and round
    ``0..config.rounds`` (PLL methods: teacher and student), every row of ``config``'s key and
    method with all fields present and numeric fields parsing as numbers.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"unreadable ({type(exc).__name__})"
    if not rows or rows[0] != COLUMNS:
        return "header missing or wrong"
    body = rows[1:]
    want = {(i, t) for i in range(seeds) for t in range(config.rounds + 1)}
    if len(body) != len(want):
        return f"{len(body)} rows, expected {len(want)}"
    col = {c: j for j, c in enumerate(COLUMNS)}
    seen = set()
    key = config.key()
    for row in body:
        if len(row) != len(COLUMNS):
            return "a row has missing or extra fields"
        if row[col["key"]] != key or row[col["method"]] != config.method:
            return "rows of another config"
        try:
            seen.add((int(row[col["seed"]]), int(row[col["round"]])))
            for metric in METRICS + ("residual",):
                _num(row[col[metric]])
        except ValueError:
            return "a field does not parse as a number"
    if seen != want:
        return "seeds or rounds missing or repeated"
    return None


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        write(msg)  # around a progress bar being drawn


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
) -> SweepResult:
    """Run (or resume) ``spec`` into directory ``out``; see the module docstring for the files.

    Parameters
    ----------
    spec : SweepSpec
    out : path
    workers : int, optional
        Local worker processes (default ``os.cpu_count()``); 1 runs serially in this process.
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
        alone. Dask workers are not touched (configure the cluster instead).
    extend : bool
        Allow ``out`` to hold another grid's results and add this spec's configs to it (refused
        otherwise). ``results.csv`` and ``summary.csv`` cover this spec's configs.
    max_memory : float, optional
        Refuse (``MemoryLimitError``) a local sweep whose estimated peak, the largest config
        times the number of workers running at once, exceeds this many bytes (default: the
        memory available now, :func:`simulations.memory.available_bytes`). Not checked on Dask.
    scheduler_timeout : float
        Seconds to wait for the Dask scheduler.

    Raises
    ------
    ValueError
        Before any work: bad arguments, an unusable output directory, an unreachable scheduler,
        or a sweep that does not fit in memory (one-line messages).
    """
    if not isinstance(spec, SweepSpec):
        raise ValueError("spec must be a SweepSpec (use load_spec / parse_spec)")
    n_workers = (os.cpu_count() or 1) if workers is None else check_int(workers, "workers", 1)
    if blas_threads is not None:
        blas_threads = check_int(blas_threads, "blas_threads", 1)
    if limit is not None:
        limit = check_int(limit, "limit", 0)
    if not (isinstance(scheduler_timeout, (int, float)) and scheduler_timeout > 0):
        raise ValueError(f"scheduler_timeout must be a number > 0, got {scheduler_timeout!r}")
    start = time.perf_counter()
    out = Path(out)
    backend = "dask" if scheduler is not None else ("serial" if n_workers == 1 else "processes")
    if backend != "dask" and spec.configs:
        running = 1 if backend == "serial" else min(n_workers, len(spec.configs))
        need = running * max(trial_bytes(c) for c in spec.configs)
        check_memory(need, f"this sweep ({running} config(s) at once)", max_memory)
    if out.exists() and not out.is_dir():  # before connecting to anything
        raise ValueError(f"output directory {str(out)!r} is a file; give a directory for --out")
    client, own_client = (None, False)
    if backend == "dask":
        client, own_client = _dask_client(scheduler, float(scheduler_timeout))
    try:
        res_dir = _prepare_out(spec, out, extend)
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
            _log(f"  {c.key()}: results file damaged ({problem}); running it again", quiet)
            pending.append(c)
    skipped = len(spec.configs) - len(pending)
    if limit is not None:
        pending = pending[:limit]
    total = len(spec.configs)
    if spec.duplicates:
        _log(f"note: {spec.duplicate_note()}", quiet)
    _log(
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
            _log(f"  [{skipped + done}/{total}] {key} FAILED: {result['error']}", quiet)
        else:
            atomic_write_text(res_dir / f"{key}.csv", _to_csv(result["rows"]))
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
    _finalise(spec, out, res_dir, failed)
    seconds = time.perf_counter() - start
    _log(f"sweep done in {seconds:.1f}s: {done - len(failed)} run, {len(failed)} failed", quiet)
    return SweepResult(total, skipped, done - len(failed), failed, seconds)


def _finalise(spec: SweepSpec, out: Path, res_dir: Path, failed: dict) -> None:
    rows: list[dict] = []
    for key in spec.keys:
        path = res_dir / f"{key}.csv"
        if path.exists():
            rows.extend(read_csv(path))
    atomic_write_text(out / "results.csv", _to_csv(rows))
    atomic_write_text(out / "summary.csv", _summary_csv(summarize(rows)))
    errors = out / "errors.json"
    if failed:
        atomic_write_text(errors, json.dumps(failed, indent=1) + "\n")
    elif errors.exists():
        errors.unlink()
