r"""The exact finite-ratio theory at an explorer point, computed in a background thread.

It takes seconds (:data:`EXACT_POINTS` lattice points per shift), far above a slider update's
budget: the window starts an :class:`ExactFiniteJob` (keyed by :func:`job_key`, every parameter
the theory depends on) and redraws when it is done; :func:`exact_inputs` maps an explorer point to
the theory's inputs. Model and assumptions: :mod:`figures.explorer_model`, which re-exports every
name here.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from figures import finite_theories as ft
from figures.explorer_params import theory_dim
from theory.finite import MixtureModel

__all__ = ["EXACT_POINTS", "ExactFiniteJob", "exact_inputs", "job_key"]

#: Lattice points per shift of the exact finite-ratio theory in the explorer (quadrature error
#: ~1e-2 in accuracy at K = 3-10, figures.finite_theories; 4x fewer than the library default).
EXACT_POINTS = 32


def exact_inputs(params: dict, counts) -> tuple:
    """``(model, counts, lam, rounds)`` of the exact finite-ratio theory at an explorer point.

    ``params`` normalised with ``n_over_p > 0``; ``ValueError`` if the mixture cannot realise it.
    """
    dim = theory_dim(params)
    if dim is None:
        raise ValueError("n_over_p = 0 is the block model (p = inf): no finite-p theory")
    model = MixtureModel(params["n_classes"], params["per_class"], dim, params["c"], params["d"])
    return model, np.asarray(counts), params["lam"], params["rounds"]


class ExactFiniteJob:
    """The exact finite-ratio theory at one explorer point, computed in a background thread.

    :meth:`start` runs :func:`figures.finite_theories.exact_accuracies` (so the result lands in
    the shared cache) in a daemon thread; :meth:`cancel` stops it after the round in progress
    (the theory calls back after each round, and the callback raises). ``key`` identifies the
    point (every parameter the theory depends on). Thread-safe.
    """

    class Cancelled(Exception):
        """Raised from the progress callback to stop the computation."""

    def __init__(self, params: dict, counts):
        self.params = dict(params)
        self.inputs = exact_inputs(self.params, counts)
        self.key = job_key(self.params)
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self.result = None
        self.error: str | None = None
        self.seconds = 0.0
        self._thread: threading.Thread | None = None

    def _progress(self, _round) -> None:
        if self._cancel.is_set():
            raise ExactFiniteJob.Cancelled

    def run(self) -> None:
        """Compute in the calling thread (blocking)."""
        from theory.finite_exact import FixedPointNotConverged

        model, counts, lam, rounds = self.inputs
        start = time.perf_counter()
        try:
            acc = ft.exact_accuracies(
                model, counts, lam, rounds, points=EXACT_POINTS, progress=self._progress
            )
            with self._lock:
                self.result = acc
        except ExactFiniteJob.Cancelled:
            pass
        except (ValueError, FixedPointNotConverged) as exc:
            with self._lock:
                self.error = " ".join(str(exc).split())
        finally:
            self.seconds = time.perf_counter() - start
            self._done.set()

    def start(self) -> None:
        """Compute in a daemon thread (BLAS pinned to one thread for the process first)."""
        from theory.blas import pin_process_blas_threads

        # The window computes with single-threaded BLAS throughout; pinning the process keeps
        # the two threads' nested thread-limit contexts from restoring each other's settings.
        pin_process_blas_threads(1)
        self._thread = threading.Thread(target=self.run, name="explorer-exact", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


def job_key(params: dict) -> tuple:
    """Every parameter the exact finite-ratio theory depends on (K, n, p, c, d, lam, noise, eta,
    rounds)."""
    return (
        params["n_classes"],
        params["per_class"],
        theory_dim(params),
        params["c"],
        params["d"],
        params["lam"],
        params["noise"],
        params["eta"],
        params["rounds"],
    )
