r"""The explorer's phase diagram: linearised accuracies on an ``(eta, round)`` grid, cached.

:func:`compute_phase` evaluates the linearised training and population accuracies
(:func:`theory.groups.linear_accuracy_grid`: the numbers of :func:`theory.groups.predict_linear`,
vectorised) for every distinct count matrix of :data:`PHASE_POINTS` values of ``eta``;
:class:`PhaseCache` keeps the longest diagram per parameter point, so that dragging the ``eta``
or rounds slider recomputes nothing. :func:`noise_counts` is the explorer's noise model (exact
counts of the transition matrix). Model and assumptions: :mod:`figures.explorer_model`, which
re-exports every name here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from figures.explorer_params import PARAM_SPECS, superclass_groups
from theory.conditions import plurality_condition
from theory.groups import BlockModel, linear_accuracy_grid
from theory.noise import exact_counts, transition_matrix

__all__ = [
    "PHASE_POINTS",
    "PhaseCache",
    "PhaseDiagram",
    "compute_phase",
    "noise_counts",
    "phase_counts",
    "truncate_phase",
]

#: Number of ``eta`` grid values in the phase diagram (from 0 to the slider maximum).
PHASE_POINTS = 24


def noise_counts(n_classes, per_class, noise, eta) -> tuple[np.ndarray, np.ndarray]:
    """Transition matrix (K, K) and its exact-count matrix (K, K) at the explorer's noise model."""
    groups = superclass_groups(n_classes) if noise == "superclass" else None
    t = transition_matrix(noise, n_classes, eta, groups=groups)
    return t, exact_counts(t, per_class)


@dataclass(frozen=True)
class PhaseDiagram:
    """Linearised accuracies on an ``(eta, round)`` grid.

    Attributes
    ----------
    etas : ndarray, shape (E,)
    rounds : ndarray of int, shape (R + 1,)
    train_acc, population_acc : ndarray, shape (E, R + 1)
        Linearised training (w.r.t. true labels) and population accuracy.
    first_full_round : ndarray, shape (E,)
        First round ``<= R`` with 100% linearised training accuracy; NaN if none (read off
        ``train_acc``, i.e. within the plotted horizon).
    plurality : ndarray of bool, shape (E,)
        :func:`theory.conditions.plurality_condition` of the grid point's count matrix.
    """

    etas: np.ndarray
    rounds: np.ndarray
    train_acc: np.ndarray
    population_acc: np.ndarray
    first_full_round: np.ndarray
    plurality: np.ndarray


def compute_phase(model: BlockModel, noise, lam, rounds, etas) -> PhaseDiagram:
    """Phase diagram over ``etas``: the linearised accuracies of every distinct count matrix.

    One :func:`theory.groups.linear_accuracy_grid` pass over the distinct count matrices of the
    grid (the numbers of :func:`theory.groups.predict_linear`, vectorised; small ``n`` maps many
    grid values of ``eta`` to the same counts). The count matrices and their plurality flags do
    not depend on ``lam`` or the rounds and are cached (:func:`phase_counts`).
    """
    etas = np.asarray(etas, dtype=float)
    stack, where, plur = phase_counts(model.n_classes, model.per_class, noise, tuple(etas))
    train, pop = linear_accuracy_grid(model, stack, lam, int(rounds))
    return _phase_diagram(etas, train[where], pop[where], plur[where])


@functools.lru_cache(maxsize=32)
def phase_counts(n_classes, per_class, noise, etas) -> tuple:
    """Distinct count matrices of an ``eta`` grid: ``(stack (D, K, K), where (E,), plurality
    (D,))`` with ``counts(etas[i]) = stack[where[i]]`` (cached; the arrays are read-only)."""
    index: dict[bytes, int] = {}
    distinct, where = [], np.empty(len(etas), dtype=np.int64)
    for i, eta in enumerate(etas):
        _, cnt = noise_counts(n_classes, per_class, noise, eta)
        key = cnt.tobytes()
        if key not in index:
            index[key] = len(distinct)
            distinct.append(cnt)
        where[i] = index[key]
    k = n_classes
    stack = np.stack(distinct) if distinct else np.empty((0, k, k), dtype=np.int64)
    plur = np.array([plurality_condition(c)[0] for c in distinct], dtype=bool)
    for arr in (stack, where, plur):
        arr.flags.writeable = False
    return stack, where, plur


def _phase_diagram(etas, train, pop, plur) -> PhaseDiagram:
    full = train >= 1.0
    first = np.where(full.any(axis=1), full.argmax(axis=1), np.nan).astype(float)
    return PhaseDiagram(etas, np.arange(train.shape[1]), train, pop, first, plur)


def truncate_phase(phase: PhaseDiagram, rounds: int) -> PhaseDiagram:
    """The phase diagram of rounds ``0..rounds`` (``<=`` its own) read off a longer one.

    Every round of the linearised theory is evaluated in closed form on its own
    (:func:`theory.groups.predict_linear`), so rounds ``0..R`` do not depend on how many rounds
    were computed: the slice holds the same numbers; ``first_full_round`` is recomputed within
    the shorter horizon.
    """
    r1 = int(rounds) + 1
    if r1 > phase.rounds.size:
        raise ValueError(f"the phase diagram has rounds 0..{phase.rounds.size - 1}, not {rounds}")
    return _phase_diagram(
        phase.etas, phase.train_acc[:, :r1], phase.population_acc[:, :r1], phase.plurality
    )


class PhaseCache:
    """Tiny LRU cache of phase diagrams keyed by every parameter except ``eta`` and the rounds.

    It keeps the diagram with the most rounds computed for a key; fewer rounds are a slice of
    it (:func:`truncate_phase`), so moving the rounds slider down (or back up to a value seen)
    recomputes nothing.
    """

    def __init__(self, maxsize: int = 16):
        self.maxsize = maxsize
        self._store: dict[tuple, PhaseDiagram] = {}

    def get(self, params: dict, model: BlockModel) -> PhaseDiagram:
        key = tuple(params[k] for k in ("n_classes", "per_class", "c", "d", "lam", "noise"))
        rounds = int(params["rounds"])
        phase = self._store.pop(key, None)
        if phase is None or phase.rounds.size <= rounds:
            spec = PARAM_SPECS["eta"]
            etas = np.linspace(spec.lo, spec.hi, PHASE_POINTS)
            phase = compute_phase(model, params["noise"], params["lam"], rounds, etas)
        self._store[key] = phase  # most recently used last
        while len(self._store) > self.maxsize:
            self._store.pop(next(iter(self._store)))
        return phase if phase.rounds.size == rounds + 1 else truncate_phase(phase, rounds)
