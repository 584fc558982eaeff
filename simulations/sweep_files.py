"""The files of a sweep's output directory: tidy tables, the manifest and result validation.

Layout and guarantees are described in :mod:`simulations.sweep` ("Output directory"). Here:
the CSV writer and reader (:func:`to_csv`, :func:`read_csv`), the summary with 95% confidence
half-widths (:func:`summarize`), the manifest ``sweep.json`` (:func:`prepare_out`, rebuilt from the
intact result files when damaged), the validation of a result file before it is trusted
(:func:`check_result_file`) and the final ``results.csv``, ``summary.csv`` and ``errors.json``
(:func:`write_tables`). Only the coordinating process calls these.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from pathlib import Path

import numpy as np

from selfdistill_cli.files import (
    atomic_write_text,
    check_input_file,
    file_kind,
    read_bytes_capped,
)
from selfdistill_cli.progress import write
from simulations.pipelines import TrialConfig
from simulations.stats import mean_ci as _mean_ci
from simulations.sweep_spec import COLUMNS, CONFIG_FIELDS, METRICS, SweepSpec

__all__ = [
    "MAX_MANIFEST_BYTES",
    "check_result_file",
    "log",
    "mean_ci",
    "prepare_out",
    "read_csv",
    "read_manifest",
    "rebuild_manifest",
    "result_file_bytes",
    "summarize",
    "summary_csv",
    "to_csv",
    "write_tables",
]


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


def to_csv(rows: list[dict], columns=COLUMNS) -> str:
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
        summary = {"key": key, "round": rnd, **{f: first[f] for f in CONFIG_FIELDS}}
        summary["n_seeds"] = len(members)
        for metric in METRICS:
            mean, half, _ = mean_ci([_num(str(m[metric])) for m in members])
            summary[f"{metric}_mean"] = mean
            summary[f"{metric}_ci95"] = half
        summary["all_converged"] = all(str(m["converged"]).lower() == "true" for m in members)
        out.append(summary)
    return out


def summary_csv(summary: list[dict]) -> str:
    cols = ["key", "round"] + CONFIG_FIELDS + ["n_seeds"]
    cols += [f"{m}_{s}" for m in METRICS for s in ("mean", "ci95")] + ["all_converged"]
    return to_csv(summary, cols)


#: Largest ``sweep.json`` read (a manifest lists 17 bytes per config: 10^5 configs fit in 2 MB).
MAX_MANIFEST_BYTES = 64 * 2**20


def read_manifest(manifest: Path):
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


def rebuild_manifest(spec: SweepSpec, out: Path, quiet: bool) -> dict:
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
    log(
        f"note: {str(manifest)!r} was damaged (kept as sweep.json.invalid); rebuilt from "
        f"{intact} intact result file(s) of this spec and {len(others)} of other configs, "
        f"assuming trials={spec.seeds}, base_seed={spec.base_seed} (result files do not record "
        "the base seed)",
        quiet,
    )
    return {
        "name": spec.name,
        "seeds": spec.seeds,
        "base_seed": spec.base_seed,
        "keys": list(dict.fromkeys(spec.keys + others)),
    }


def prepare_out(spec: SweepSpec, out: Path, extend: bool = False, quiet: bool = True) -> Path:
    """Create ``out`` and ``out/results``, check or write ``sweep.json``; return ``out/results``.

    Raises ``ValueError`` (one line) when ``out`` is a file, cannot be created or written, holds
    a sweep with other seeds, or another grid without ``extend``, or when ``out/results`` is a
    symbolic link (the sweep creates that folder itself; a planted link would send the results
    elsewhere). A damaged ``sweep.json`` is rebuilt from the intact result files
    (:func:`rebuild_manifest`).
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
        old = read_manifest(manifest) or rebuild_manifest(spec, out, quiet)
        old_keys = old["keys"]
        if (old["seeds"], old["base_seed"]) != (spec.seeds, spec.base_seed):
            raise ValueError(
                f"output directory {str(out)!r} holds a sweep with trials={old['seeds']}, "
                f"base_seed={old['base_seed']}; this spec has trials={spec.seeds}, "
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


def log(msg: str, quiet: bool) -> None:
    """A progress line on stderr (unless ``quiet``), drawn around a progress bar."""
    if not quiet:
        write(msg)  # around a progress bar being drawn


def write_tables(spec: SweepSpec, out: Path, res_dir: Path, failed: dict) -> None:
    rows: list[dict] = []
    for config in spec.configs:
        path = res_dir / f"{config.key()}.csv"
        if path.exists():  # validated this run (or just written); read with the same size cap
            rows.extend(read_csv(path, result_file_bytes(config, spec.seeds)))
    atomic_write_text(out / "results.csv", to_csv(rows))
    atomic_write_text(out / "summary.csv", summary_csv(summarize(rows)))
    errors = out / "errors.json"
    if failed:
        atomic_write_text(errors, json.dumps(failed, indent=1) + "\n")
    elif errors.exists():
        errors.unlink()
