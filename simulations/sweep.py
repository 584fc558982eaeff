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

import csv
import io
import itertools
import json
import math
import os
import stat
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from selfdistill_cli import deprecation_note
from selfdistill_cli.files import (
    atomic_write_text,
    check_input_file,
    file_kind,
    read_bytes_capped,
)
from selfdistill_cli.limits import cap_workers, check_time, usable_cores
from selfdistill_cli.progress import progress_bar, write
from simulations.memory import WORKER_BYTES, check_memory, trial_bytes
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from simulations.runtime import DEFAULT_SWEEP_MAX_SECONDS, trial_seconds
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


#: Largest grid (Cartesian product of the ``[grid]`` lists, before deduplication) that
#: :func:`parse_spec` enumerates; each point is validated and hashed (~50 microseconds) and kept
#: (~2 kB with its key, manifest entry and summary rows), so 10^5 points take seconds and
#: ~200 MB. A larger grid is refused before it is enumerated (``max_grid_points`` /
#: ``--max-grid-points`` raises the limit; splitting the spec is usually better).
MAX_GRID_POINTS = 100_000
#: Largest spec file read (a spec is a few hundred bytes; 1 MB holds ~10^5 grid values).
MAX_SPEC_BYTES = 2**20


def parse_spec(spec: dict, *, max_grid_points: int = MAX_GRID_POINTS) -> SweepSpec:
    """Validate a spec dict (parsed TOML) into a :class:`SweepSpec`; ``ValueError`` if bad.

    The grid's size (the product of its list lengths) is checked against ``max_grid_points``
    before any point is built.
    """
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
    points_total = math.prod(len(v) for v in axes.values())
    if points_total > max_grid_points:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in axes.items() if len(v) > 1)
        raise ValueError(
            f"[grid] has {points_total:,} points ({sizes}), above the limit of "
            f"{max_grid_points:,} grid points; split the spec or pass --max-grid-points N"
        )
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


def load_spec(path, *, max_grid_points: int = MAX_GRID_POINTS) -> SweepSpec:
    """Read and validate a TOML spec file (``tomllib``); ``ValueError`` naming the problem.

    The file must be a regular file of at most :data:`MAX_SPEC_BYTES` (a symbolic link to
    ``/dev/zero`` is named as a device, not read).
    """
    p = Path(path)
    data = read_bytes_capped(p, "spec file", MAX_SPEC_BYTES, "a sweep spec is a small TOML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        raise ValueError(
            f"spec file {str(p)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"spec file {str(p)!r} is not valid TOML: {exc}") from None
    return parse_spec(data, max_grid_points=max_grid_points)


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


def read_csv(path, max_bytes: int | None = None) -> list[dict]:
    """Read a tidy results CSV written by this module (values as strings).

    ``max_bytes``: refuse (``ValueError``) a file larger than this, or one that is not a regular
    file, before reading it.
    """
    check_input_file(path, "results file", max_bytes, "it is not a result this sweep wrote")
    with open(path, newline="", encoding="utf-8") as fh:
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


#: Largest ``sweep.json`` read (a manifest lists 17 bytes per config: 10^5 configs fit in 2 MB).
MAX_MANIFEST_BYTES = 64 * 2**20


def _read_manifest(manifest: Path):
    """The manifest's dict, or ``None`` if it is damaged (unreadable, not JSON, wrong fields)."""
    try:
        old = json.loads(read_bytes_capped(manifest, "sweep manifest", MAX_MANIFEST_BYTES))
        keys = [str(k) for k in old["keys"]]
        seeds, base_seed = old["seeds"], old["base_seed"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(seeds, int) and isinstance(base_seed, int)):
        return None
    return {"name": old.get("name"), "seeds": seeds, "base_seed": base_seed, "keys": keys}


def _rebuild_manifest(spec: SweepSpec, out: Path, quiet: bool) -> dict:
    """A manifest for a directory whose ``sweep.json`` is damaged, from its intact results.

    The damaged file is kept as ``sweep.json.invalid``. The keys are this spec's configs plus
    every ``results/<key>.csv`` of another config (so that ``--extend`` still sees them). A
    result file of this spec's configs with the wrong number of seeds is damaged and will be
    redone. The base seed is not stored in the result files: the spec's is assumed, and the note
    says so.
    """
    manifest = out / "sweep.json"
    os.replace(manifest, manifest.with_name("sweep.json.invalid"))
    res = out / "results"
    found = sorted(p.stem for p in res.glob("*.csv")) if res.is_dir() else []
    intact = sum(
        1
        for c in spec.configs
        if c.key() in found and check_result_file(res / f"{c.key()}.csv", c, spec.seeds) is None
    )
    others = [k for k in found if k not in set(spec.keys)]
    _log(
        f"note: {str(manifest)!r} was damaged (kept as sweep.json.invalid); rebuilt from "
        f"{intact} intact result file(s) of this spec and {len(others)} of other configs, "
        f"assuming seeds={spec.seeds}, base_seed={spec.base_seed} (result files do not record "
        "the base seed)",
        quiet,
    )
    return {
        "name": spec.name,
        "seeds": spec.seeds,
        "base_seed": spec.base_seed,
        "keys": list(dict.fromkeys(spec.keys + others)),
    }


def _prepare_out(spec: SweepSpec, out: Path, extend: bool = False, quiet: bool = True) -> Path:
    """Create ``out`` and ``out/results``, check or write ``sweep.json``; return ``out/results``.

    Raises ``ValueError`` (one line) when ``out`` is a file, cannot be created or written, holds
    a sweep with other seeds, or another grid without ``extend``, or when ``out/results`` is a
    symbolic link (the sweep creates that folder itself; a planted link would send the results
    elsewhere). A damaged ``sweep.json`` is rebuilt from the intact result files
    (:func:`_rebuild_manifest`).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"output directory {str(out)!r} is a file; give a directory for --out")
    res = out / "results"
    if res.is_symlink():
        raise ValueError(
            f"{str(res)!r} is a symbolic link; the sweep creates this folder itself and writes "
            "only inside --out: remove the link"
        )
    manifest = out / "sweep.json"
    if manifest.exists() or manifest.is_symlink():  # a link to a device is a damaged manifest
        old = _read_manifest(manifest) or _rebuild_manifest(spec, out, quiet)
        old_keys = old["keys"]
        if (old["seeds"], old["base_seed"]) != (spec.seeds, spec.base_seed):
            raise ValueError(
                f"output directory {str(out)!r} holds a sweep with seeds={old['seeds']}, "
                f"base_seed={old['base_seed']}; this spec has seeds={spec.seeds}, "
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


#: Metrics that are fractions of points (accuracies, coverage): values in [0, 1].
_FRACTIONS = (
    "train_acc",
    "train_acc_clean",
    "train_acc_mislabeled",
    "pop_acc",
    "pop_acc_sampled",
    "top2_coverage",
)
#: Metrics that may be undefined (NaN or empty): the mislabeled accuracy without mislabeled points.
_MAY_BE_NAN = ("train_acc_mislabeled",)
#: Upper bound on the bytes of one result row (a row is ~400 bytes: 35 short fields); a result
#: file larger than ``(rows + 1) * _MAX_ROW_BYTES`` is damaged and is not read.
_MAX_ROW_BYTES = 4096


def result_file_bytes(config: TrialConfig, seeds: int) -> int:
    """Largest size of an intact result file of ``config`` (:data:`_MAX_ROW_BYTES` per row)."""
    return (int(seeds) * (int(config.rounds) + 1) + 1) * _MAX_ROW_BYTES


def _check_row(row: list, col: dict) -> str | None:
    """Why one parsed result row is not valid (None if it is): numbers, ranges, flags."""
    try:
        if int(row[col["seed"]]) < 0 or int(row[col["round"]]) < 0:
            return "a negative seed or round"
        if int(row[col["n_mislabeled"]]) < 0 or int(row[col["iterations"]]) < 0:
            return "a negative count"
        for metric in _FRACTIONS:
            value = _num(row[col[metric]])
            if math.isnan(value) and metric in _MAY_BE_NAN:
                continue
            if not 0.0 <= value <= 1.0:  # also refuses NaN and inf
                return f"{metric} = {row[col[metric]]!r} outside [0, 1]"
        for name in ("residual", "target", "gradient_norm"):
            value = _num(row[col[name]])
            if not (value >= 0.0 and math.isfinite(value)):
                return f"{name} = {row[col[name]]!r} is not a finite number >= 0"
    except ValueError:
        return "a field does not parse as a number"
    if row[col["converged"]] not in ("true", "false"):
        return f"converged = {row[col['converged']]!r} is not true or false"
    return None


def check_result_file(path, config: TrialConfig, seeds: int) -> str | None:
    """Why the per-config file ``path`` is not a complete result of ``config`` (None if it is).

    Complete: a regular file (not a device, a FIFO or a link to one) of plausible size
    (:func:`result_file_bytes`, checked before it is read), the header :data:`COLUMNS`, exactly
    one row per seed ``0..seeds-1`` and round ``0..config.rounds`` (PLL methods: teacher and
    student), every row of ``config``'s key and method with all fields present, numeric fields
    parsing as numbers, accuracies and coverage in ``[0, 1]`` (the mislabeled accuracy may be
    undefined), residuals finite and ``>= 0`` and ``converged`` a boolean.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"
    if not stat.S_ISREG(st.st_mode):
        return f"{file_kind(st.st_mode)}, not a regular file"
    limit = result_file_bytes(config, seeds)
    if st.st_size > limit:
        return f"{st.st_size:,} bytes, more than the {limit:,} of {seeds} trial(s)"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(io.StringIO(fh.read(limit + 1))))
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
    for number, row in enumerate(body, start=1):
        if len(row) != len(COLUMNS):
            return f"row {number} has missing or extra fields"
        if row[col["key"]] != key or row[col["method"]] != config.method:
            return f"row {number} belongs to another config"
        problem = _check_row(row, col)
        if problem is not None:
            return f"row {number}: {problem}"
        seen.add((int(row[col["seed"]]), int(row[col["round"]])))
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
        res_dir = _prepare_out(spec, out, extend, quiet)
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
            _log(
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
    for config in spec.configs:
        path = res_dir / f"{config.key()}.csv"
        if path.exists():  # validated this run (or just written); read with the same size cap
            rows.extend(read_csv(path, result_file_bytes(config, spec.seeds)))
    atomic_write_text(out / "results.csv", _to_csv(rows))
    atomic_write_text(out / "summary.csv", _summary_csv(summarize(rows)))
    errors = out / "errors.json"
    if failed:
        atomic_write_text(errors, json.dumps(failed, indent=1) + "\n")
    elif errors.exists():
        errors.unlink()
