"""One place to limit BLAS threads (``threadpoolctl``, a declared dependency).

The toolkit's linear algebra is mostly small (K^2 x K^2 group solves, N ~ 100 Monte Carlo
problems). There a multi-threaded BLAS only adds synchronisation, and on a busy or oversubscribed
machine its spinning threads were measured to slow small solves down by 100x or more. Worker
processes of a parallel sweep are likewise pinned to one thread each: parallelism across configs
replaces parallelism inside BLAS. This changes speed only, never results.

A limit inside another limit at least as strict (the figure runner wraps every figure in
:func:`single_thread_blas`, pool workers are pinned to one thread, and the solvers limit each small
solve again) does nothing: setting a limit through ``threadpoolctl`` costs ~12 us, and the Monte
Carlo figures enter one per preconditioner call (tens of thousands per figure).
"""

from __future__ import annotations

import contextlib

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "pin_process_blas_threads", "single_thread_blas"]

_CONTROLLER: list[ThreadpoolController] = []
_PINNED: list = []
#: The limits in force that were set here (innermost last): a nested limit that is not stricter
#: than one of them is not set again.
_ACTIVE: list = []


def _controller() -> ThreadpoolController:
    # Inspecting the loaded libraries costs milliseconds; do it once per process.
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


class _Limit:
    """A BLAS thread limit, set on construction (as ``threadpoolctl``'s own limiter) and recorded
    in :data:`_ACTIVE` until it is restored (the end of its ``with`` block)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._limiter = _controller().limit(limits=limit, user_api="blas")
        _ACTIVE.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        # By identity, not the last entry: threads may end their limits in another order.
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        self._limiter.restore_original_limits()


def _check_limit(limit) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"BLAS thread limit must be an integer >= 1 or None, got {limit!r}")


def blas_threads(limit: int | None):
    """Context manager limiting BLAS to ``limit`` threads (``None``: leave unchanged).

    Inside a limit set here (or by :func:`pin_process_blas_threads`) that is at most ``limit``,
    nothing is set (a ``nullcontext``): BLAS already uses no more threads.
    """
    if limit is None:
        return contextlib.nullcontext()
    _check_limit(limit)
    if any(active.limit <= limit for active in _ACTIVE):
        return contextlib.nullcontext()
    return _Limit(limit)


def single_thread_blas():
    """Context manager limiting BLAS to one thread."""
    return blas_threads(1)


def pin_process_blas_threads(limit: int | None = 1) -> None:
    """Limit BLAS threads for the rest of this process (a process-pool initializer).

    Always set, even inside an inherited limit: a forked worker copies :data:`_ACTIVE` from its
    parent, but whether the BLAS library keeps its thread setting across ``fork`` is its own.
    """
    if limit is not None:
        _check_limit(limit)
        _PINNED.append(_Limit(limit))  # keep a reference: the limit lasts for the process
