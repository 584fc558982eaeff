"""One place to limit BLAS threads (``threadpoolctl``, a declared dependency).

The toolkit's linear algebra is mostly small (K^2 x K^2 group solves, N ~ 100 Monte Carlo
problems). There a multi-threaded BLAS only adds synchronisation, and on a busy or oversubscribed
machine its spinning threads were measured to slow small solves down by 100x or more. Worker
processes of a parallel sweep are likewise pinned to one thread each: parallelism across configs
replaces parallelism inside BLAS. This changes speed only, never results.
"""

from __future__ import annotations

import contextlib

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "pin_process_blas_threads", "single_thread_blas"]

_CONTROLLER: list[ThreadpoolController] = []
_PINNED: list = []


def _controller() -> ThreadpoolController:
    # Inspecting the loaded libraries costs milliseconds; do it once per process.
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def blas_threads(limit: int | None):
    """Context manager limiting BLAS to ``limit`` threads (``None``: leave unchanged)."""
    if limit is None:
        return contextlib.nullcontext()
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"BLAS thread limit must be an integer >= 1 or None, got {limit!r}")
    return _controller().limit(limits=limit, user_api="blas")


def single_thread_blas():
    """Context manager limiting BLAS to one thread."""
    return blas_threads(1)


def pin_process_blas_threads(limit: int | None = 1) -> None:
    """Limit BLAS threads for the rest of this process (a process-pool initializer)."""
    if limit is not None:
        _PINNED.append(blas_threads(limit))  # keep a reference: the limit lasts for the process
