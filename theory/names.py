"""One registry of names: methods, losses, metrics, noise models, their labels and CLI spellings.

Every command line, every JSON or CSV writer and every figure label takes its names from here, so
that one concept has one spelling (issue 22, "one vocabulary"; issue 23, item 1). Pure data and
small lookups: no I/O, no imports beyond the standard library.

Spellings
---------
* **Methods** (``--method`` of ``simulations run``, the ``method`` of
  :class:`simulations.estimator.SelfDistillationClassifier`, the ``method`` column of every result
  row): ``sd`` and one PLL student per loss, ``pll-<loss>`` with ``gce-reference`` shortened to
  ``gce-ref``.
* **Losses** of the PLL student (``--pll-losses``, ``loss=`` of
  :func:`simulations.pll_losses.train_pll_student`, ``pll_losses.<loss>`` in ``theory predict``'s
  JSON): ``ce`` (two-hot cross-entropy, the theory's), ``candidate`` (``-log s``), ``gce``
  (``(1 - s^q)/q`` of the candidate set) and ``gce-reference`` (the reference code's mean over the
  two candidates of ``(1 - p_a^q)/q``; simulated only: the group-level theory covers the first
  three, :data:`THEORY_LOSSES`).
* **Metrics**: simulations write ``pop_acc`` where the theory's prediction objects have
  ``population_acc``; :data:`THEORY_FIELDS` is the one map between them.
* **Noise models**: ``sym``, ``pair``, ``asym`` (the reference code's), ``superclass``.

Labels (``*_LABELS``) are the human-readable names used in tables, legends and axis labels.
"""

from __future__ import annotations

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_Q",
    "DEPRECATED_METHODS",
    "DEPRECATED_OPTIONS",
    "LOSSES",
    "LOSS_LABELS",
    "LOSS_METHOD",
    "METHODS",
    "METHOD_LABELS",
    "METHOD_LOSS",
    "METRICS",
    "METRIC_LABELS",
    "MODEL_DEFAULTS",
    "NOISE_KINDS",
    "NOISE_LABELS",
    "PLL_METHODS",
    "PREPROCESSING",
    "PREPROCESSING_LABELS",
    "ROUNDS_HELP",
    "SPLIT_LABELS",
    "SUPERCLASS_RULES",
    "SUPERCLASS_RULE_LABELS",
    "THEORY_FIELDS",
    "THEORY_LOSSES",
    "canonical_method",
    "check_loss_name",
    "check_method",
    "loss_of",
    "method_of",
]

# ---------------------------------------------------------------------------------------------
# PLL student losses

#: Every loss of the PLL student (the order is the order of tables and legends).
LOSSES = ("ce", "candidate", "gce", "gce-reference")
#: Losses with a group-level theory (:mod:`theory.losses`, :func:`theory.pll.predict_pll`).
THEORY_LOSSES = ("ce", "candidate", "gce")
#: Default GCE exponent ``q`` (the reference code's ``partial_loss(q=0.7)``).
DEFAULT_Q = 0.7
LOSS_LABELS = {
    "ce": "two-hot CE (theory)",
    "candidate": "\u2212log s",
    "gce": "GCE of the set",
    "gce-reference": "GCE per candidate (paper)",
}

# ---------------------------------------------------------------------------------------------
# methods

#: PLL method -> its loss.
METHOD_LOSS = {
    "pll-ce": "ce",
    "pll-candidate": "candidate",
    "pll-gce": "gce",
    "pll-gce-ref": "gce-reference",
}
#: Loss -> its PLL method.
LOSS_METHOD = {loss: method for method, loss in METHOD_LOSS.items()}
PLL_METHODS = tuple(METHOD_LOSS)
#: Every method: self-distillation (teacher = round 0, then rounds 1..R) and the PLL students.
METHODS = ("sd", *PLL_METHODS)
METHOD_LABELS = {"sd": "SD"} | {m: f"PLL, {LOSS_LABELS[loss]}" for m, loss in METHOD_LOSS.items()}
#: Spellings of the probe's rows before the registry (``pll_gce_ref``...): accepted on input.
DEPRECATED_METHODS = {m.replace("-", "_"): m for m in PLL_METHODS}

# ---------------------------------------------------------------------------------------------
# metrics

#: Per-round metrics of a simulated trial (CSV columns of sweeps, ``simulation`` of ``run``).
METRICS = (
    "train_acc",
    "train_acc_clean",
    "train_acc_mislabeled",
    "pop_acc",
    "pop_acc_sampled",
    "top2_coverage",
)
#: Simulation metric -> field of the theory's predictions (:class:`theory.groups.GroupPrediction`,
#: :class:`theory.finite.FinitePrediction`).
THEORY_FIELDS = {
    "train_acc": "train_acc",
    "train_acc_clean": "train_acc_clean",
    "train_acc_mislabeled": "train_acc_mislabeled",
    "pop_acc": "population_acc",
}
METRIC_LABELS = {
    "train_acc": "training accuracy (true labels)",
    "train_acc_clean": "training accuracy, clean points",
    "train_acc_mislabeled": "training accuracy, mislabeled points",
    "pop_acc": "population accuracy",
    "pop_acc_sampled": "population accuracy (sampled points)",
    "top2_coverage": "teacher top-2 coverage",
    "population_acc": "population accuracy",
    "val_acc": "validation accuracy",
    "test_acc": "test accuracy",
    "gain": "test gain over the teacher",
}
#: Data splits of real-feature experiments (the split a gain or an accuracy is measured on).
SPLIT_LABELS = {"train": "training", "val": "validation", "test": "test"}

# ---------------------------------------------------------------------------------------------
# noise models, superclass rules, preprocessing

NOISE_KINDS = ("sym", "pair", "asym", "superclass")
NOISE_LABELS = {
    "sym": "symmetric",
    "pair": "pair flip",
    "asym": "asymmetric",
    "superclass": "superclass",
}
#: How superclass groups are found on real features (:mod:`simulations.noise`):
#: ``reference`` = the reference code's rule (complete linkage, cut at 0.8 x the largest merge
#: height, a data-dependent number of groups); ``correlation`` = average linkage on the Pearson
#: correlation of class means into a given number of groups.
SUPERCLASS_RULES = ("reference", "correlation")
SUPERCLASS_RULE_LABELS = {
    "reference": "reference code (complete linkage, cut at 0.8 x max height)",
    "correlation": "class-mean correlation, average linkage, fixed group count",
}
#: Feature preprocessing of real-feature experiments: centre with the training mean and
#: L2-normalise rows, or the features as given (what the reference code trains on).
PREPROCESSING = ("center-l2", "raw")
PREPROCESSING_LABELS = {"center-l2": "centred + L2-normalised", "raw": "raw (as given)"}

# ---------------------------------------------------------------------------------------------
# command lines and JSON

#: Top-level key of the parameters in every command's JSON (``theory predict``, ``simulations
#: run``, ``simulations probe``).
CONFIG_KEY = "config"
#: What ``--rounds`` counts in every command: the last round ``R``, i.e. the SD rounds
#: ``1..R`` after the teacher (round 0).
ROUNDS_HELP = "SD rounds after the teacher: the last round R >= 0 (round 0 is the teacher)"
#: Defaults of the block model and its noise shared by ``theory predict``, ``simulations run`` and
#: :class:`simulations.pipelines.TrialConfig` (one starting point for theory and simulation).
MODEL_DEFAULTS = {
    "n_classes": 3,
    "per_class": 20,
    "c": 0.5,
    "d": 0.1,
    "eta": 0.2,
    "lam": 1e-3,
    "rounds": 3,
    "noise": "sym",
}
#: Old option spelling -> new (accepted for one release with a note on stderr).
DEPRECATED_OPTIONS = {
    "--seeds": "--trials",
    "--n-superclasses": "--n-groups",
    "--no-preprocess": "--preprocess raw",
}


# ---------------------------------------------------------------------------------------------
# lookups


def canonical_method(method: str) -> str:
    """``method`` in its registry spelling (old probe spellings ``pll_ce``... are mapped)."""
    return DEPRECATED_METHODS.get(method, method)


def check_method(method) -> str:
    """Return ``method`` (canonical spelling) if it is one of :data:`METHODS`, else ValueError."""
    name = canonical_method(method) if isinstance(method, str) else method
    if name not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return name


def check_loss_name(loss, allowed=LOSSES) -> str:
    """Return ``loss`` if it is one of ``allowed`` (default :data:`LOSSES`), else ValueError."""
    if loss not in allowed:
        raise ValueError(f"loss must be one of {tuple(allowed)}, got {loss!r}")
    return loss


def loss_of(method: str) -> str:
    """The loss of PLL method ``method`` (``'pll-gce-ref'`` -> ``'gce-reference'``)."""
    return METHOD_LOSS[canonical_method(method)]


def method_of(loss: str) -> str:
    """The PLL method training ``loss`` (``'gce-reference'`` -> ``'pll-gce-ref'``)."""
    return LOSS_METHOD[loss]
