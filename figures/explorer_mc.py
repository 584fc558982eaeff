"""Quick Monte Carlo at one point of the interactive regime explorer (run in a background thread).

Monte Carlo (:class:`MonteCarloRun`): :func:`simulations.monte_carlo.simulate` (exact backend,
:func:`simulations.pipelines.run_trial`) of a :class:`theory.spec.Spec` with Gaussian-mixture
features of dimension ``p = round(N / n_over_p)`` when the ``N/p`` slider is above 0 (the
theory's dimension), else ``dim``, and exact-count label noise (so the count matrix equals the
theory's and only the finite-``p`` feature randomness differs), methods ``'sd'`` and
``'pll-ce'``, trial ``i`` seeded by :func:`simulations.pipelines.trial_seed` ``(seed, i)``
(``first_trial=i``); 95% Student-t intervals from :func:`simulations.sweep.mean_ci`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from figures.explorer_params import normalise_params, superclass_groups, theory_dim
from theory.partial_labels import PLL_MIN_CLASSES
from theory.spec import METRICS, Spec

__all__ = ["MonteCarloRun", "MonteCarloSummary"]


@dataclass(frozen=True)
class MonteCarloSummary:
    """Means and 95% CI half-widths over finished trials (NaN half-width with < 2 trials).

    ``sd_*`` arrays have shape (R + 1,) (rounds 0..R); ``pll_*`` are scalars (the student).
    """

    trials_done: int
    trials_total: int
    rounds: np.ndarray
    sd_train_mean: np.ndarray
    sd_train_ci: np.ndarray
    sd_pop_mean: np.ndarray
    sd_pop_ci: np.ndarray
    pll_train_mean: float
    pll_train_ci: float
    pll_pop_mean: float
    pll_pop_ci: float
    errors: tuple
    #: Feature dimension of the trials (the theory's when N/p > 0, else the ``dim`` setting).
    dim: int | None = None


class MonteCarloRun:
    """A quick Monte Carlo at one explorer point, advanced one trial per :meth:`step`.

    Each trial runs :func:`simulations.monte_carlo.simulate` (one trial, ``first_trial`` its
    index) for methods ``'sd'`` and ``'pll-ce'`` with the same seed (so both share features and
    noisy labels). Thread-safe: a worker thread may call :meth:`step` while another thread reads
    :meth:`summary` / :attr:`progress`. ``specs`` are the methods' :class:`~theory.spec.Spec`,
    ``configs`` the equivalent :class:`~simulations.pipelines.TrialConfig` (the cost estimates of
    :mod:`figures.explorer_cli` take them).

    Raises
    ------
    ValueError
        If the point is invalid or the mixture features cannot realise ``(c, d)`` (needs
        ``0 <= c``, ``c + (K-1) d >= 0``, ``dim >= K``).
    """

    def __init__(self, params=None, *, trials=None, seed=None):
        from simulations.pipelines import TrialConfig

        p = normalise_params(params or {})
        if trials is not None:
            p["trials"] = trials
        if seed is not None:
            p["seed"] = seed
        p = normalise_params(p)
        self.params = p
        #: Feature dimension of the trials: the theory's when the N/p slider is above 0.
        self.dim = theory_dim(p) or p["dim"]
        common = dict(
            n_classes=p["n_classes"],
            per_class=p["per_class"],
            dim=self.dim,
            c=p["c"],
            d=p["d"],
            eta=p["eta"],
            lam=p["lam"],
            noise=p["noise"],
            sampling="exact-count",
            groups=superclass_groups(p["n_classes"]) if p["noise"] == "superclass" else None,
        )
        self.specs = {"sd": Spec(rounds=p["rounds"], method="sd", **common)}
        if p["n_classes"] >= PLL_MIN_CLASSES:  # K = 2: the PLL student is undefined (NaN)
            self.specs["pll-ce"] = Spec(rounds=1, method="pll-ce", **common)
        self.configs = {
            m: TrialConfig(**{**common, "features": "mixture"}, rounds=s.rounds, method=m)
            for m, s in self.specs.items()
        }
        self.total = p["trials"]
        self._rows: list[dict] = []  # one dict per finished trial
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._next = 0

    @property
    def done(self) -> bool:
        with self._lock:
            return self._next >= self.total

    @property
    def progress(self) -> float:
        """Fraction of trials attempted, in [0, 1]."""
        with self._lock:
            return self._next / self.total

    def step(self) -> bool:
        """Run the next trial; return ``False`` if all trials were already done."""
        from simulations.monte_carlo import simulate
        from simulations.solver import ConvergenceError

        with self._lock:
            if self._next >= self.total:
                return False
            index = self._next
        # one trial of each method, same seed; the explorer bounds its own sizes (no time limit)
        kw = dict(seed=self.params["seed"], first_trial=index, keep_trials=True, max_seconds=None)
        try:
            res = {m: simulate(spec, 1, **kw).samples[0] for m, spec in self.specs.items()}
            train, pop = METRICS.index("train_acc"), METRICS.index("pop_acc")
            pll = res.get("pll-ce")
            row = {
                "sd_train": list(res["sd"][:, train]),
                "sd_pop": list(res["sd"][:, pop]),
                "pll_train": np.nan if pll is None else pll[-1, train],
                "pll_pop": np.nan if pll is None else pll[-1, pop],
            }
            err = None
        except ConvergenceError as exc:  # reported in the window; the other trials continue
            row, err = None, f"trial {index}: {exc}"
        with self._lock:
            if row is not None:
                self._rows.append(row)
            if err is not None:
                self._errors.append(err)
            self._next += 1
        return True

    def run(self, callback=None) -> MonteCarloSummary:
        """Run all remaining trials (blocking); ``callback(progress)`` after each one."""
        while self.step():
            if callback is not None:
                callback(self.progress)
        return self.summary()

    def summary(self) -> MonteCarloSummary:
        """Means and Student-t 95% half-widths (:func:`simulations.sweep.mean_ci`)."""
        from simulations.sweep import mean_ci

        with self._lock:
            rows = list(self._rows)
            errors = tuple(self._errors)
            attempted = self._next
        r = self.params["rounds"]
        sd_train = np.full((2, r + 1), np.nan)
        sd_pop = np.full((2, r + 1), np.nan)
        for t in range(r + 1):
            sd_train[:, t] = mean_ci([row["sd_train"][t] for row in rows])[:2]
            sd_pop[:, t] = mean_ci([row["sd_pop"][t] for row in rows])[:2]
        pll_train = mean_ci([row["pll_train"] for row in rows])[:2]
        pll_pop = mean_ci([row["pll_pop"] for row in rows])[:2]
        return MonteCarloSummary(
            trials_done=attempted,
            trials_total=self.total,
            rounds=np.arange(r + 1),
            sd_train_mean=sd_train[0],
            sd_train_ci=sd_train[1],
            sd_pop_mean=sd_pop[0],
            sd_pop_ci=sd_pop[1],
            pll_train_mean=pll_train[0],
            pll_train_ci=pll_train[1],
            pll_pop_mean=pll_pop[0],
            pll_pop_ci=pll_pop[1],
            errors=errors,
            dim=self.dim,
        )
