"""Local worker processes that end with their parent (sweeps, Monte Carlo figures).

A ``ProcessPoolExecutor`` whose coordinating process is killed (SIGKILL, or SIGTERM, whose default
action ends Python without any clean-up) leaves its workers alive for ever, blocked on the task
queue. :func:`worker_pool` builds a pool whose workers end with their parent:

* on Linux the kernel sends them SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``, one
  ``ctypes`` call into the C library);
* everywhere, a daemon thread in each worker polls the parent pid every :data:`POLL_SECONDS` and
  exits when the worker has been re-parented (the portable fallback, also a second line of
  defence on Linux).

Workers only compute and return results; the coordinator writes every file, so ending a worker
abruptly never leaves a half-written result.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from theory.blas import pin_process_blas_threads

__all__ = ["POLL_SECONDS", "end_with_parent", "worker_pool"]

#: Seconds between two parent checks of the portable fallback.
POLL_SECONDS = 0.25
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc symbol (e.g. a static or unusual runtime)
        return False


def end_with_parent(parent_pid: int | None = None) -> None:
    """Make the calling process end as soon as its parent process ends.

    Parameters
    ----------
    parent_pid : int, optional
        The expected parent. If the process already has another parent (the parent died before
        this call), it exits at once.
    """
    start_parent = os.getppid()
    _set_parent_death_signal(signal.SIGKILL)
    # The parent may have died between fork and prctl: the signal would then never come.
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while True:
            time.sleep(POLL_SECONDS)
            if os.getppid() != start_parent:  # re-parented: the parent has gone
                os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _initialise(blas_threads: int | None, parent_pid: int | None) -> None:
    end_with_parent(parent_pid)
    pin_process_blas_threads(blas_threads)


def worker_pool(max_workers: int, blas_threads: int | None = 1) -> ProcessPoolExecutor:
    """``ProcessPoolExecutor`` of ``max_workers`` processes that end with this process.

    Each worker limits BLAS to ``blas_threads`` threads
    (:func:`theory.blas.pin_process_blas_threads`).
    """
    context = multiprocessing.get_context()
    # With 'forkserver' the workers' parent is the fork server (which itself ends with us).
    parent = os.getpid() if context.get_start_method() in ("fork", "spawn") else None
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=context,
        initializer=_initialise,
        initargs=(blas_threads, parent),
    )
