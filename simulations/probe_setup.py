"""The inputs of the real-features experiment (:mod:`simulations.probe`): configuration and data.

:class:`ProbeConfig` (every field validated by :meth:`ProbeConfig.validated`),
:func:`check_probe_classes` (PLL students need ``K >= 3``), the seeded stratified split
(:func:`stratified_split`, step 1 of the experiment) and the superclass groups of the noise
model (:func:`superclass_groups`, step 3). The steps themselves are described in the docstring of
:mod:`simulations.probe`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulations.datasets import Dataset, preprocess
from simulations.noise import class_mean_groups, reference_superclass_groups
from theory.names import DEFAULT_Q, LOSS_METHOD, LOSSES, PREPROCESSING, SUPERCLASS_RULES
from theory.noise import NOISE_KINDS
from theory.partial_labels import check_pll_classes
from theory.validation import check_int, check_lam, check_positive

__all__ = ["ProbeConfig", "check_probe_classes", "stratified_split", "superclass_groups"]


@dataclass(frozen=True)
class ProbeConfig:
    """Parameters of :func:`run_probe` (validated by :meth:`validated`).

    Attributes
    ----------
    noise : {'sym', 'pair', 'asym', 'superclass'}
    eta : float
        Noise rate in ``[0, 1]``.
    rounds : int
        SD rounds after the teacher: the last round ``R >= 0`` (``0``: the teacher only).
    trials : int
        Number of trials ``>= 1`` (seeded independently from ``seed``).
    lams : tuple of float
        Regularisation strengths (each in ``[1e-12, 1e12]``, :func:`theory.validation.check_lam`);
        selection over them uses validation only.
    seed : int
        Root seed of the ``SeedSequence``.
    val_fraction, test_fraction : float
        Per-class split fractions (each in ``(0, 1)``, sum ``< 1``).
    n_groups : int or None
        Number of superclass groups for ``noise='superclass'`` with
        ``superclass_rule='correlation'`` (default ``max(2, K // 3)``).
    superclass_rule : {'reference', 'correlation'} or None
        How superclass groups are found (module docstring); ``None``: ``'correlation'`` if
        ``n_groups`` is given, else ``'reference'``.
    q : float
        GCE exponent.
    pll_losses : tuple of str
        PLL student losses to train (:data:`simulations.pll_losses.LOSSES`), default
        ``('ce', 'gce-reference')``.
    noisy_val : bool
        Apply the label noise to validation labels too (default True).
    theory : bool
        Also compute the theory on the real features (:mod:`theory.real_features`).
    tol : float
        Fixed-point residual of the exact solver.
    preprocess : {'center-l2', 'raw'}
        Centre with the training mean and L2-normalise rows (default), or use the features as
        given (``'raw'``: the reference code's setting, or already normalised embeddings).
        ``True`` / ``False`` are read as ``'center-l2'`` / ``'raw'``.
    """

    noise: str = "sym"
    eta: float = 0.3
    rounds: int = 5
    trials: int = 3
    lams: tuple = (1e-4,)
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.3
    n_groups: int | None = None
    superclass_rule: str | None = None
    q: float = DEFAULT_Q
    pll_losses: tuple = ("ce", "gce-reference")
    noisy_val: bool = True
    theory: bool = True
    tol: float = 1e-9
    preprocess: str = "center-l2"

    def validated(self) -> ProbeConfig:
        """Return a copy with every field checked (``ValueError`` naming the field) and resolved.

        Resolved: ``superclass_rule`` (``None`` -> ``'correlation'`` with ``n_groups``, else
        ``'reference'``) and ``preprocess`` (booleans -> their names).
        """
        pre = self.preprocess
        if isinstance(pre, (bool, np.bool_)):
            pre = "center-l2" if pre else "raw"
        if pre not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}, got {self.preprocess!r}")
        rule = self.superclass_rule
        if rule is None:
            rule = "correlation" if self.n_groups is not None else "reference"
        if rule not in SUPERCLASS_RULES:
            raise ValueError(
                f"superclass_rule must be one of {SUPERCLASS_RULES}, got {self.superclass_rule!r}"
            )
        if rule == "reference" and self.n_groups is not None:
            raise ValueError(
                "n_groups applies to superclass_rule='correlation' (the reference rule finds "
                "the number of groups itself)"
            )
        if (pre, rule) != (self.preprocess, self.superclass_rule):
            return replace(self, preprocess=pre, superclass_rule=rule).validated()
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {self.noise!r}")
        eta = float(self.eta)
        if not (np.isfinite(eta) and 0.0 <= eta <= 1.0):
            raise ValueError(f"eta must be a number in [0, 1], got {self.eta!r}")
        check_int(self.rounds, "rounds", 0)
        check_int(self.trials, "trials", 1)
        check_int(self.seed, "seed", 0)
        if len(self.lams) == 0:
            raise ValueError("lams must contain at least one value > 0")
        for lam in self.lams:
            check_lam(lam, "lam")
        if len({float(lam) for lam in self.lams}) < len(self.lams):
            # A repeated value would be run twice on the same splits and counted as two
            # trials' worth of evidence (a confidence interval from one trial).
            raise ValueError(f"lam values must be distinct, got {list(self.lams)}")
        for name in ("val_fraction", "test_fraction"):
            v = float(getattr(self, name))
            if not (0.0 < v < 1.0):
                raise ValueError(f"{name} must lie in (0, 1), got {v!r}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be < 1 (training needs samples)")
        if self.n_groups is not None:
            check_int(self.n_groups, "n_groups", 1)
        q = check_positive(self.q, "q")
        if q > 1:
            raise ValueError(f"q must lie in (0, 1], got {self.q!r}")
        check_positive(self.tol, "tol")
        bad = [x for x in self.pll_losses if x not in LOSSES]
        if bad or len(set(self.pll_losses)) != len(self.pll_losses):
            raise ValueError(
                f"pll_losses must be distinct losses among {LOSSES}, got {self.pll_losses!r}"
            )
        return self


def check_probe_classes(config: ProbeConfig, n_classes: int) -> None:
    """Refuse PLL students with ``K < 3`` before any work, in the words of every entry point
    (:func:`theory.partial_labels.check_pll_classes`, naming the estimator's method)."""
    for loss in config.pll_losses:
        check_pll_classes(LOSS_METHOD[loss], n_classes)


def stratified_split(labels, n_classes, val_fraction, test_fraction, rng) -> dict:
    """Seeded stratified split into ``train_idx``, ``val_idx``, ``test_idx`` (sorted int arrays).

    For class ``k`` with ``n_k`` samples: ``round(test_fraction n_k)`` test and
    ``round(val_fraction n_k)`` validation samples, reduced (validation first, then test) so that at
    least one training sample remains. Raises ``ValueError`` if validation or test ends up empty.
    """
    y = np.asarray(labels, dtype=np.int64)
    parts = {"train_idx": [], "val_idx": [], "test_idx": []}
    for k in range(n_classes):
        idx = rng.permutation(np.flatnonzero(y == k))
        n_k = idx.size
        n_test = int(round(test_fraction * n_k))
        n_val = int(round(val_fraction * n_k))
        excess = n_test + n_val - (n_k - 1)
        if excess > 0:
            cut = min(excess, n_val)
            n_val -= cut
            n_test -= excess - cut
        parts["test_idx"].append(idx[:n_test])
        parts["val_idx"].append(idx[n_test : n_test + n_val])
        parts["train_idx"].append(idx[n_test + n_val :])
    out = {key: np.sort(np.concatenate(v)).astype(np.int64) for key, v in parts.items()}
    for key in ("val_idx", "test_idx"):
        if out[key].size == 0:
            raise ValueError(
                f"the split leaves {key} empty; use more samples or larger val/test fractions"
            )
    return out


def superclass_groups(
    dataset: Dataset, n_groups: int | None = None, rule: str = "correlation"
) -> list[list[int]]:
    """Superclass groups of the dataset's classes (hierarchical clustering, module docstring).

    ``rule='reference'``: :func:`simulations.noise.reference_superclass_groups` (``n_groups``
    must be None). ``rule='correlation'``: the features are centred with the global mean and
    L2-normalised, then :func:`simulations.noise.class_mean_groups` into ``n_groups`` groups. The
    groups define the *noise model* (which classes get confused), not the learner, so the rows
    used are the predefined training split if the dataset has one, else all samples.
    """
    rows = (
        np.asarray(dataset.splits["train_idx"])
        if dataset.splits is not None
        else np.arange(dataset.n_samples)
    )
    x, y = dataset.features[rows], dataset.labels[rows]
    if rule == "reference":
        if n_groups is not None:
            raise ValueError("n_groups applies to the 'correlation' rule only")
        return reference_superclass_groups(x, y, dataset.n_classes)
    if rule != "correlation":
        raise ValueError(f"rule must be one of {SUPERCLASS_RULES}, got {rule!r}")
    pre = preprocess(x, np.arange(y.size)).features
    return class_mean_groups(pre, y, dataset.n_classes, n_groups)
