"""Parameters of the interactive regime explorer: widgets, defaults, presets and validation.

Shared by the matplotlib window (:mod:`figures.explorer`, :mod:`figures.explorer_cli`), the
notebook and :mod:`figures.explorer_model` (which re-exports them).

Parameters (:data:`PARAM_SPECS`)
--------------------------------
``n_classes`` (K), ``per_class`` (n), ``c``, ``d`` (block Gram model), ``lam`` (regularisation,
shown on a log scale), ``noise`` (``'sym' | 'pair' | 'asym' | 'superclass'``), ``eta`` (noise
rate), ``rounds`` (R, last self-distillation round) and ``n_over_p`` (``N/p`` of the theory's
Gaussian mixture, 0 = ``p = inf``). Monte Carlo settings (not sliders): ``dim`` (feature dimension
p of the Gaussian mixture when ``n_over_p = 0``), ``trials`` and ``seed``.

``'superclass'`` noise uses the fixed partition of :func:`superclass_groups`: consecutive pairs
``{0, 1}, {2, 3}, ...`` (a trailing singleton keeps its labels when K is odd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from theory.noise import NOISE_KINDS
from theory.validation import LAM_MAX, LAM_MIN

__all__ = [
    "DEFAULT_PARAMS",
    "MC_DEFAULTS",
    "PARAM_SPECS",
    "PRESETS",
    "SET_NAMES",
    "SIZE_LIMITS",
    "ParamSpec",
    "normalise_params",
    "superclass_groups",
    "theory_dim",
]


@dataclass(frozen=True)
class ParamSpec:
    """Widget description of one explorer parameter (shared by the app and the notebook).

    ``kind`` is ``'int'``, ``'float'``, ``'log'`` (slider over ``log10`` of the value, bounds
    given as values) or ``'choice'``. ``lo``/``hi``/``step`` are *widget* ranges, not theory limits:
    the theory's own validation decides what is invalid.
    """

    name: str
    label: str
    kind: str
    default: object
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    choices: tuple = ()


#: Sliders / radio buttons, in display order.
PARAM_SPECS: dict[str, ParamSpec] = {
    s.name: s
    for s in (
        ParamSpec("n_classes", "K (classes)", "int", 3, 2, 10, 1),
        ParamSpec("per_class", "n (per class)", "int", 20, 1, 100, 1),
        ParamSpec("c", "c (within)", "float", 0.5, 0.0, 0.99, 0.01),
        ParamSpec("d", "d (across)", "float", 0.1, -0.3, 0.95, 0.01),
        ParamSpec("lam", "λ", "log", 1e-3, 1e-5, 10.0, 0.05),
        ParamSpec("noise", "noise", "choice", "sym", choices=NOISE_KINDS),
        ParamSpec("eta", "η (noise rate)", "float", 0.3, 0.0, 0.95, 0.01),
        ParamSpec("rounds", "rounds R", "int", 8, 0, 15, 1),
        ParamSpec("n_over_p", "N/p (0: p=∞)", "float", 0.0, 0.0, 4.0, 0.05),
    )
}
#: Monte Carlo settings (not sliders): feature dimension, number of trials, base seed.
MC_DEFAULTS = {"dim": 400, "trials": 12, "seed": 0}
DEFAULT_PARAMS = {name: spec.default for name, spec in PARAM_SPECS.items()} | MC_DEFAULTS
#: Bounds of the values ``--set`` (or a notebook) may give, checked before anything is allocated
#: or looped over (issue 21: ``N/p=1e308`` overflowed the slider, ``rounds`` sizes
#: ``(R + 1) K^3`` arrays recomputed on every move, ``trials`` the Monte Carlo).
#: Parameter -> its name as the README and ``--set`` write it (for error messages).
SET_NAMES = {"n_classes": "K", "per_class": "n", "n_over_p": "N/p", "dim": "p"}
SIZE_LIMITS = {
    "per_class": (1, 10**9),
    "rounds": (0, 200),
    "n_over_p": (0.0, 1e6),
    "dim": (2, 10**9),
    "trials": (2, 10**5),
    "lam": (LAM_MIN, LAM_MAX),
}

#: Named starting points (``--preset``): each is applied on top of :data:`DEFAULT_PARAMS`.
PRESETS = {
    "default": {},
    # Plurality holds but the teacher fits the flipped labels; SD needs 7 (linearised) or 8
    # (exact) rounds: the linearisation is off by one round here.
    "sd-fixes-noise": {"n_classes": 4, "eta": 0.4, "lam": 3e-4, "rounds": 10},
    # Pair noise: SD needs 4 exact rounds (2 linearised); the PLL student fails because every
    # point of a class gets the same candidate pair (whole-class ties).
    "pair-noise": {"n_classes": 5, "noise": "pair", "eta": 0.4, "lam": 1e-3, "rounds": 12},
    # Beyond the plurality boundary (eta > (K-1)/K for sym noise): no round reaches 100%.
    "plurality-fails": {"n_classes": 3, "eta": 0.7, "lam": 1e-3, "rounds": 12},
}


def _as_int(value, name):
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not math.isfinite(f) or f != round(f):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(round(f))


def _as_float(value, name):
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return f


def normalise_params(params=None, **overrides) -> dict:
    """Complete ``params`` with :data:`DEFAULT_PARAMS`, cast types and check the explorer's rules.

    Theory-level validity (PSD Gram matrix, ``lam > 0``, ``0 <= eta <= 1``, ...) is checked by the
    theory modules themselves in :func:`compute_state`; here: known keys, types, ``c > d`` and the
    Monte Carlo settings (``dim >= K``, ``trials >= 2``, ``seed >= 0``).

    Raises
    ------
    ValueError
        Naming the parameter and its valid range.
    """
    merged = dict(DEFAULT_PARAMS)
    merged.update(params or {})
    merged.update(overrides)
    unknown = sorted(set(merged) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(
            f"unknown explorer parameter(s) {unknown}; valid: {sorted(DEFAULT_PARAMS)}"
        )
    out = {}
    for name in ("n_classes", "per_class", "rounds", "dim", "trials", "seed"):
        out[name] = _as_int(merged[name], name)
    for name in ("c", "d", "lam", "eta", "n_over_p"):
        out[name] = _as_float(merged[name], name)
    if merged["noise"] not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {merged['noise']!r}")
    out["noise"] = merged["noise"]
    if out["lam"] <= 0:
        raise ValueError(f"lam must be > 0, got {out['lam']!r}")
    if out["rounds"] < 0:
        raise ValueError(f"rounds must be an integer >= 0, got {out['rounds']}")
    if out["n_over_p"] < 0:
        raise ValueError(f"n_over_p (N/p) must be >= 0 (0: p = inf), got {out['n_over_p']!r}")
    if not out["c"] > out["d"]:
        raise ValueError(
            f"invalid combination: c must exceed d (within-class similarity above across-class), "
            f"got c={out['c']:g}, d={out['d']:g}"
        )
    if out["trials"] < 2:
        raise ValueError(
            f"trials must be >= 2 (a confidence interval needs 2), got {out['trials']}"
        )
    if out["seed"] < 0:
        raise ValueError(f"seed must be >= 0, got {out['seed']}")
    for name, (low, high) in SIZE_LIMITS.items():  # before anything is sized by them
        if not low <= out[name] <= high:
            shown = f"{SET_NAMES[name]} ({name})" if name in SET_NAMES else name
            raise ValueError(f"{shown} must lie in [{low:g}, {high:g}] here, got {out[name]:g}")
    return out


def theory_dim(params: dict) -> int | None:
    """Feature dimension ``p = round(N / n_over_p)`` of the theory, ``None`` for ``p = inf``."""
    ratio = float(params["n_over_p"])
    if ratio == 0:
        return None
    return max(1, round(params["n_classes"] * params["per_class"] / ratio))


def superclass_groups(n_classes: int) -> list[list[int]]:
    """The explorer's fixed superclass partition: ``[[0, 1], [2, 3], ...]`` (+ singleton if odd)."""
    return [list(range(s, min(s + 2, n_classes))) for s in range(0, n_classes, 2)]
