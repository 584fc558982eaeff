"""One Monte Carlo trial: features -> noisy labels -> teacher -> SD rounds / PLL student -> metrics.

A trial is fully described by a :class:`TrialConfig` and a seed. The seed's ``SeedSequence`` is
spawned into three independent streams, used in this order: ``features`` (mixture means frame and
training draw), ``noise`` (noisy labels) and ``test`` (fresh test draws), so that e.g. changing the
noise rate leaves the training features of a seed unchanged.

Methods
-------
``'sd'``
    Teacher (round 0) on one-hot noisy labels, then ``rounds`` self-distillation rounds on the
    previous round's outputs (optionally tempered), all solved exactly
    (:func:`simulations.distill.self_distill`). Rows for rounds ``0..R``.
``'pll-ce'``
    Teacher, then one student on the teacher's top-2 two-hot target with cross-entropy
    (the theory's PLL student). Rows for rounds 0 (teacher) and 1 (student).
``'pll-candidate'``, ``'pll-gce'``
    As ``'pll-ce'`` with the candidate-set losses of :mod:`simulations.pll_losses`: the candidate
    log-likelihood ``-log s`` and the generalised cross-entropy of the candidate *set*
    ``(1 - s^q)/q`` (``s`` the probability of the two candidates, ``q`` default 0.7).
``'pll-gce-ref'``
    The public reference code's GCE: the mean over the two candidates of ``(1 - p_a^q)/q``
    (``loss='gce-reference'``). Until issue 13 this was what ``'pll-gce'`` meant.

Every PLL student is :func:`simulations.pll_losses.train_pll_student`, started from the teacher
and certified (kernel-form residual; for the non-convex losses also which stationary point was
found, ``stationary_point`` in the rows).

Metrics (per round, w.r.t. the *true* labels; ties count as errors, :mod:`theory.metrics`)
---------------------------------------------------------------------------------------
All decisions (accuracies, ties, the teacher's top-2) are taken from the logits, never from the
rounded outputs: at large ``lam`` every output is within ~1e-15 of ``1/K`` after a few rounds while
the logits still carry every digit of the gaps.
``train_acc`` on all training points, ``train_acc_clean`` on points whose noisy label is correct,
``train_acc_mislabeled`` on the others (NaN when there are none), ``pop_acc`` the population
accuracy: for mixture features the exact conditional accuracy of the trained probe
(:func:`theory.population.mixture_population_accuracy`: the class means and the noise variance
``(1 - c)/p`` are known, so the expectation over fresh points is a Gaussian orthant probability,
with quadrature error estimate ``pop_acc_err``), for exact-block features the deterministic
kernel-row evaluation (a fresh point's kernel row is deterministic, so one row per class is
evaluated; ``pop_acc_err = 0``); ``pop_acc_sampled`` the accuracy on ``n_test`` fresh draws per
class (for exact-block features the same kernel-row evaluation) and ``pop_ties`` its tied
points; ``top2_coverage`` (fraction of training points whose true label is among
the teacher's top-2 outputs; a property of the teacher, repeated on every row), and the solver
certificate (``residual``, ``target``, ``gradient_norm``, ``iterations``, ``converged``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from simulations.distill import self_distill
from simulations.features import (
    GaussianMixture,
    check_mixture_params,
    exact_block_features,
    exact_block_kernel_rows,
)
from simulations.noise import (
    SAMPLING_MODES,
    class_mean_groups,
    empirical_transition,
    sample_noisy_labels,
)
from simulations.pll_losses import train_pll_student
from theory.gram import check_block_params
from theory.metrics import correct_and_tied
from theory.names import DEFAULT_Q, METHOD_LOSS, MODEL_DEFAULTS
from theory.names import METHODS as NAMED_METHODS
from theory.noise import NOISE_KINDS, check_eta, check_groups, transition_matrix
from theory.partial_labels import check_pll_classes, top2_indices
from theory.population import mixture_population_accuracy
from theory.validation import check_int, check_lam, check_positive

__all__ = [
    "FEATURE_MODELS",
    "METHODS",
    "TEMPERATURE_RANGE",
    "TrialConfig",
    "TrialResult",
    "run_trial",
    "trial_seed",
]

#: Methods (:data:`theory.names.METHODS`).
METHODS = NAMED_METHODS
#: PLL method -> loss of :func:`simulations.pll_losses.train_pll_student`
#: (:data:`theory.names.METHOD_LOSS`).
PLL_LOSSES = METHOD_LOSS
FEATURE_MODELS = ("mixture", "exact-block")
#: Accepted temperatures of the soft targets between SD rounds, ``softmax(z / tau)``. Tempered
#: targets are formed from probabilities: their deviations from ``1/K`` (``~|z| / tau``) must stay
#: far above the float64 round-off of a probability (``~1e-16``), or the next round cannot be
#: certified -- measured: every round certified for ``tau`` up to ``1e6`` with logits ``|z| ~ 1``,
#: none from ``1e8`` (issue 21: ``--temperature 1e308`` ended in a traceback). Small ``tau``
#: (one-hot-like targets) works down to ``1e-300``; the range keeps three decades of margin on
#: both sides of every practical choice (distillation uses ``tau`` of 1 to ~20).
TEMPERATURE_RANGE = (1e-3, 1e3)


@dataclass(frozen=True)
class TrialConfig:
    """Parameters of one trial (validated on construction).

    Attributes
    ----------
    n_classes, per_class : int
        ``K >= 2`` classes of ``n >= 1`` training points (class-major order).
    dim : int
        Feature dimension ``p >= K`` of the Gaussian mixture (ignored, and normalised to 0, for
        ``features='exact-block'``).
    c, d : float
        Block-model parameters (within / across class inner products).
    eta : float
        Noise rate in ``[0, 1]``.
    lam : float
        Regularisation in ``[1e-12, 1e12]`` (:data:`theory.validation.LAM_MIN`, ``LAM_MAX``:
        the range the solvers support).
    rounds : int
        SD rounds ``R >= 0`` (normalised to 1 for the PLL methods, which train one student).
    noise : {'sym', 'pair', 'asym', 'superclass'}
    sampling : {'random', 'exact-count'}
    features : {'mixture', 'exact-block'}
    method : {'sd', 'pll-ce', 'pll-candidate', 'pll-gce', 'pll-gce-ref'}
        The PLL methods need ``K >= 3`` (:func:`theory.partial_labels.check_pll_classes`).
    n_test : int
        Fresh test draws per class for the population accuracy.
    temperature : float
        Temperature on soft targets between SD rounds (1 = the paper's setting), in
        :data:`TEMPERATURE_RANGE`.
    groups : tuple of tuples of int, optional
        Superclass partition; if ``None`` with ``noise='superclass'``, ``n_groups`` groups are
        found by clustering the class means of the training draw (true labels).
    n_groups : int, optional
    q : float
        GCE exponent (``'pll-gce'`` and ``'pll-gce-ref'`` only).
    tol : float
        Fixed-point residual of every solve.
    """

    n_classes: int = MODEL_DEFAULTS["n_classes"]
    per_class: int = MODEL_DEFAULTS["per_class"]
    dim: int = 400
    c: float = MODEL_DEFAULTS["c"]
    d: float = MODEL_DEFAULTS["d"]
    eta: float = MODEL_DEFAULTS["eta"]
    lam: float = MODEL_DEFAULTS["lam"]
    rounds: int = MODEL_DEFAULTS["rounds"]
    noise: str = MODEL_DEFAULTS["noise"]
    sampling: str = "exact-count"
    features: str = "mixture"
    method: str = "sd"
    n_test: int = 100
    temperature: float = 1.0
    groups: tuple | None = None
    n_groups: int | None = None
    q: float = DEFAULT_Q
    tol: float = 1e-9

    def __post_init__(self):
        set_ = object.__setattr__  # frozen dataclass: normalise fields in place once
        k = check_int(self.n_classes, "n_classes", 2)
        n = check_int(self.per_class, "per_class", 1)
        if self.features not in FEATURE_MODELS:
            raise ValueError(f"features must be one of {FEATURE_MODELS}, got {self.features!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {self.noise!r}")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {self.sampling!r}")
        _, _, c, d = check_block_params(k, n, self.c, self.d)
        if self.features == "mixture":
            check_mixture_params(k, self.dim, c, d)
            set_(self, "dim", int(self.dim))
        else:
            set_(self, "dim", 0)
            if not (0 <= c and d <= c and c + (k - 1) * d >= 0):
                raise ValueError(
                    "exact-block population accuracy needs class means: 0 <= c, d <= c and "
                    f"c + (K-1) d >= 0; got c={c}, d={d}"
                )
        set_(self, "n_classes", k)
        set_(self, "per_class", n)
        set_(self, "c", c)
        set_(self, "d", d)
        set_(self, "eta", check_eta(self.eta))  # in [0, 1]; no K x K matrix is built here
        set_(self, "lam", check_lam(self.lam, "lam"))
        if self.method != "sd":
            check_pll_classes(self.method, k)
        rounds = check_int(self.rounds, "rounds", 0)
        set_(self, "rounds", 1 if self.method != "sd" else rounds)
        set_(self, "n_test", check_int(self.n_test, "n_test", 1))
        tau = check_positive(self.temperature, "temperature")
        if not TEMPERATURE_RANGE[0] <= tau <= TEMPERATURE_RANGE[1]:
            lo, hi = TEMPERATURE_RANGE
            raise ValueError(f"temperature must lie in [{lo:g}, {hi:g}], got {self.temperature!r}")
        set_(self, "temperature", tau)
        set_(self, "tol", check_positive(self.tol, "tol"))
        q = check_positive(self.q, "q")
        if q > 1:
            raise ValueError(f"q must lie in (0, 1], got {self.q!r}")
        set_(self, "q", q)
        if self.noise == "superclass":
            if self.groups is not None:
                if self.n_groups is not None:
                    raise ValueError(
                        "pass either groups or n_groups for superclass noise, not both"
                    )
                grp = tuple(tuple(g) for g in check_groups(self.groups, k))
                set_(self, "groups", grp)
            elif self.n_groups is None:
                raise ValueError("superclass noise needs groups (a partition) or n_groups")
            else:
                g = check_int(self.n_groups, "n_groups", 1)
                if g > k:
                    raise ValueError(f"n_groups must lie in [1, n_classes={k}], got {g}")
                if self.features != "mixture":
                    raise ValueError("n_groups clustering needs features='mixture'; pass groups")
                set_(self, "n_groups", g)
        elif self.groups is not None or self.n_groups is not None:
            raise ValueError("groups / n_groups are only used with noise='superclass'")

    @property
    def n_samples(self) -> int:
        return self.n_classes * self.per_class

    def to_dict(self) -> dict:
        """Plain JSON-compatible dict (groups as lists)."""
        out = asdict(self)
        if self.groups is not None:
            out["groups"] = [list(g) for g in self.groups]
        return out

    @classmethod
    def from_dict(cls, params: dict) -> TrialConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"unknown trial parameter(s) {unknown}; valid: {sorted(names)}")
        params = dict(params)
        if params.get("groups") is not None:
            params["groups"] = tuple(tuple(g) for g in params["groups"])
        return cls(**params)

    def key(self) -> str:
        """Stable 16-hex-digit hash of the normalised parameters (sorted-key JSON, SHA-256)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def trial_seed(base_seed, index) -> np.random.SeedSequence:
    """Seed of Monte Carlo trial ``index``: ``SeedSequence(base_seed).spawn(index + 1)[index]``.

    Computed directly as ``SeedSequence(base_seed, spawn_key=(index,))`` (identical to the
    spawned child), so trial ``i`` gets the same stream whatever the number of trials.
    """
    b = check_int(base_seed, "base_seed", 0)
    i = check_int(index, "index", 0)
    return np.random.SeedSequence(b, spawn_key=(i,))


@dataclass(frozen=True, eq=False)
class TrialResult:
    """Rows (one dict per method-round) plus the realised data, for theory comparisons.

    Attributes
    ----------
    rows : list of dict
        Metric rows (module docstring), in round order.
    counts : ndarray of int, shape (K, K)
        Realised count matrix ``C[k, l] = #{true k, noisy l}``.
    true_labels, noisy_labels : ndarray of int, shape (N,)
    outputs : ndarray, shape (rows, K, N)
        Training outputs of each row's model.
    groups : list of lists of int or None
        The superclass partition used (given or found by clustering).
    logits : ndarray, shape (rows, K, N)
        Training logits of each row's model (the decisions are taken from these).
    """

    rows: list
    counts: np.ndarray
    true_labels: np.ndarray
    noisy_labels: np.ndarray
    outputs: np.ndarray
    groups: list | None
    logits: np.ndarray | None = None


def _as_seed_sequence(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise ValueError(f"seed must be an int >= 0 or a numpy.random.SeedSequence, got {seed!r}")


def _accuracies(scores, true_labels, clean, floor: float = 0.0) -> dict:
    correct, tied = correct_and_tied(scores, true_labels, tie_atol=2.0 * floor)

    def frac(mask):
        return float(np.mean(correct[mask])) if np.any(mask) else math.nan

    return {
        "train_acc": float(np.mean(correct)),
        "train_acc_clean": frac(clean),
        "train_acc_mislabeled": frac(~clean),
        "train_ties": int(np.sum(tied)),
    }


def _population(scores, test_labels, exact=None, floor: float = 0.0) -> dict:
    """Population metrics: ``exact`` (a ``PopulationAccuracy``) if given, and the sampled points.

    ``floor``: a bound on the scores' error; gaps up to twice it are ties (:func:`_logit_floor`).
    """
    correct, tied = correct_and_tied(scores, test_labels, tie_atol=2.0 * floor)
    sampled = float(np.mean(correct))
    return {
        "pop_acc": sampled if exact is None else exact.accuracy,
        "pop_ties": int(np.sum(tied)),
        "pop_acc_sampled": sampled,
        "pop_acc_err": 0.0 if exact is None else exact.err,
    }


def _logit_floor(features: str, cert) -> float:
    """Bound on the logits' error for exact-block features (0 for mixture features).

    Exact-block features are the block Gram matrix itself: there a class's label histograms can
    tie points or classes *exactly* (equal histograms, ``c = d``), and the certified solve leaves
    their gaps at the size of its own error, which the relative tie rule cannot tell from a
    decision. ``||W - W*|| <= ||grad|| / lam`` and ``||x|| <= 1`` bound every logit's error by
    ``2 output_bound`` (:class:`simulations.solver.Certificate`), so gaps within it are ties,
    as the theory's exact ties are. (Mixture features tie with probability 0.) PLL students,
    whose certificates carry no such bound, get no floor.
    """
    if features != "exact-block":
        return 0.0
    return 2.0 * float(getattr(cert, "output_bound", 0.0))


def _cert_fields(cert) -> dict:
    return {
        "residual": float(cert.residual),
        "target": float(cert.target),
        "gradient_norm": float(cert.gradient_norm),
        "iterations": int(cert.iterations),
        "converged": bool(cert.converged),
        "solver": cert.method,
        # Probe solves (teacher, SD rounds) are strictly convex; PLL certificates say it.
        "stationary_point": getattr(cert, "stationary_point", "global minimum"),
    }


def run_trial(config: TrialConfig, seed) -> TrialResult:
    """Run one trial of ``config`` with ``seed`` (int or ``SeedSequence``); see module docstring.

    Raises
    ------
    simulations.solver.ConvergenceError
        If an exact solve cannot be certified.
    """
    if not isinstance(config, TrialConfig):
        raise ValueError("config must be a TrialConfig")
    cfg = config
    feat_ss, noise_ss, test_ss = _as_seed_sequence(seed).spawn(3)
    k, n = cfg.n_classes, cfg.per_class
    feat_rng = np.random.default_rng(feat_ss)

    if cfg.features == "mixture":
        mixture = GaussianMixture.create(k, cfg.dim, cfg.c, cfg.d, rng=feat_rng)
        draw = mixture.sample(n, feat_rng)
        x, y = draw.features, draw.labels
        test = mixture.sample(cfg.n_test, np.random.default_rng(test_ss))
        test_kw = {"features": test.features}
        test_labels = test.labels
    else:
        x = exact_block_features(k, n, cfg.c, cfg.d)
        y = np.repeat(np.arange(k), n)
        test_labels = np.arange(k)  # all fresh points of a class share one kernel row
        test_kw = {"kernel_rows": exact_block_kernel_rows(k, n, cfg.c, cfg.d, test_labels)}

    groups = None
    if cfg.noise == "superclass":
        if cfg.groups is not None:
            groups = [list(g) for g in cfg.groups]
        else:
            groups = class_mean_groups(x, y, k, cfg.n_groups)
    t = transition_matrix(cfg.noise, k, cfg.eta, groups=groups)
    noisy = sample_noisy_labels(y, t, np.random.default_rng(noise_ss), mode=cfg.sampling)
    clean = noisy == y

    rounds = cfg.rounds if cfg.method == "sd" else 0
    sd = self_distill(
        noisy, k, cfg.lam, rounds, features=x, temperature=cfg.temperature, tol=cfg.tol
    )
    teacher = sd.solutions[0]
    cand = top2_indices(teacher.logits)
    coverage = float(np.mean((cand[0] == y) | (cand[1] == y)))

    rows, outs, logits = [], [], []

    def add(round_, train_outputs, train_logits, test_logits, cert, weights, floor=0.0):
        row = {"round": round_, "method": cfg.method, "n_mislabeled": int(np.sum(~clean))}
        row.update(_accuracies(train_logits, y, clean, floor))
        exact = None
        if cfg.features == "mixture":  # exact conditional population accuracy of this probe
            noise_var = mixture.noise_std**2
            exact = mixture_population_accuracy(weights, mixture.means, noise_var)
        row.update(_population(test_logits, test_labels, exact, floor))
        row["top2_coverage"] = coverage
        row.update(cert)
        rows.append(row)
        outs.append(train_outputs)
        logits.append(train_logits)

    def weights_of(sol):
        return sol.weights if sol.weights is not None else sol.dual @ x

    for r, sol in enumerate(sd.solutions):
        test_logits = sol.predict_logits(**test_kw)
        cert = _cert_fields(sol.certificate)
        floor = _logit_floor(cfg.features, sol.certificate)
        add(r, sol.outputs, sol.logits, test_logits, cert, weights_of(sol), floor)

    if cfg.method in PLL_LOSSES:
        student = train_pll_student(
            teacher, cfg.lam, loss=PLL_LOSSES[cfg.method], q=cfg.q, candidates=cand, tol=cfg.tol
        )
        add(
            1,
            student.outputs,
            student.logits,
            student.decision_function(**test_kw),
            _cert_fields(student.certificate),
            weights_of(student),
        )

    counts = empirical_transition(y, noisy, k)
    return TrialResult(rows, counts, y, noisy, np.stack(outs), groups, np.stack(logits))
