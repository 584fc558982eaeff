"""Sweep specs: the TOML ``[sweep]`` and ``[grid]`` sections, validated into a :class:`SweepSpec`.

The format is described in :mod:`simulations.sweep` (and ``examples/sweep_quick.toml``): every
config of the grid is built, and so validated, before any work starts; duplicates after
normalisation are run once and reported. :data:`COLUMNS` is the column order of the tidy result
files (:mod:`simulations.sweep_files`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from pathlib import Path

from selfdistill_cli import deprecation_note
from selfdistill_cli.files import read_bytes_capped
from simulations.pipelines import TrialConfig
from theory.names import METRICS as NAMED_METRICS
from theory.validation import check_int

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ALIASES",
    "COLUMNS",
    "CONFIG_FIELDS",
    "MAX_GRID_POINTS",
    "MAX_SPEC_BYTES",
    "METRICS",
    "ROW_FIELDS",
    "SweepSpec",
    "load_spec",
    "parse_spec",
]

ALIASES = {"K": "n_classes", "n": "per_class", "p": "dim"}
#: Metrics summarised with mean and 95% CI (:data:`theory.names.METRICS`).
METRICS = NAMED_METRICS
CONFIG_FIELDS = [f.name for f in fields(TrialConfig)]
ROW_FIELDS = [
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
COLUMNS = ["key", "seed", "round"] + CONFIG_FIELDS + ROW_FIELDS


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
        if key not in CONFIG_FIELDS:
            raise ValueError(
                f"unknown [grid] parameter {raw!r}; valid: {sorted(CONFIG_FIELDS + list(ALIASES))}"
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
