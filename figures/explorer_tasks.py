"""The explorer window's background computations: the exact finite-ratio theory and the Monte Carlo.

:class:`BackgroundTasks` is the part of :class:`figures.explorer.ExplorerApp` that runs work off
the GUI thread (module docstring there): the exact finite-ratio theory at a point the user has
stopped at (debounced, one :class:`figures.explorer_model.ExactFiniteJob` at a time, cancelled
when the point moves on) and the quick Monte Carlo (:class:`figures.explorer_model.MonteCarloRun`,
one trial at a time in a daemon thread). Canvas timers on the GUI thread poll both and redraw;
the workers never touch matplotlib.

The host class provides ``fig``, ``interactive``, ``panels``, ``state``, ``_params``,
``info_text``, ``mc_text``, ``progress_bar``, the job and timer slots it initialises
(``_exact_job``, ``_exact_timer``, ``_mc``, ``_mc_drawn``, ``_mc_cancel``, ``_mc_thread``,
``_timer``) and ``_request_draw()``.
"""

from __future__ import annotations

import threading

from figures.explorer_model import (
    ExactFiniteJob,
    ExplorerState,
    MonteCarloRun,
    MonteCarloSummary,
    attach_finite_exact,
    describe,
    job_key,
)

__all__ = ["PROGRESS_COLORS", "BackgroundTasks"]

#: Progress bar colours (Okabe-Ito): running, finished, finished with failed trials.
PROGRESS_COLORS = {"running": "#0072B2", "done": "#009E73", "failed": "#D55E00"}


class BackgroundTasks:
    """Background computations of the explorer window (module docstring: what the host
    provides)."""

    def _stop_worker(self) -> None:
        """Window closed: let the worker threads finish their current step and exit."""
        if self._mc_cancel is not None:
            self._mc_cancel.set()
        if self._timer is not None:
            self._timer.stop()
        self._cancel_exact()

    # ------------------------------------------------------------------------------------------
    # exact finite-ratio theory: seconds per point, so computed lazily in a background thread
    #: Milliseconds a point must stay put before its exact theory is started (a slider drag
    #: passes through many points; only the one the user stops at is computed).
    EXACT_DEBOUNCE_MS = 400
    #: Milliseconds between two checks of a running computation.
    EXACT_POLL_MS = 250

    def _cancel_exact(self) -> None:
        if self._exact_timer is not None:
            self._exact_timer.stop()
            self._exact_timer = None
        if self._exact_job is not None:
            self._exact_job.cancel()
            self._exact_job = None

    def _schedule_exact(self, state: ExplorerState) -> None:
        """Keep, cancel or (after the debounce) start the exact theory for the new point.

        Only an interactive window computes it on its own; a snapshot, the notebook and the tests
        call :meth:`compute_exact_now`.
        """
        job = self._exact_job
        key = job_key(state.params) if state.ok and state.finite_dim is not None else None
        if job is not None and (job.key != key or state.exact_status != "pending"):
            self._cancel_exact()
            job = None
        if not state.ok or state.exact_status != "pending" or not self.interactive:
            return
        where = state.exact_message.split(":")[0]
        est = f"~{max(state.exact_seconds, 1.0):.0f} s"
        state.exact_message = f"{where}: computing in the background ({est})…"
        state.exact_note = f"exact finite-p theory: computing ({est})…"
        self._exact_note(state.exact_note)
        self.info_text.set_text(describe(state))
        if job is not None:  # already computing this point
            return
        if self._exact_timer is not None:
            self._exact_timer.stop()
        timer = self.fig.canvas.new_timer(interval=self.EXACT_DEBOUNCE_MS)
        timer.single_shot = True
        timer.add_callback(self._start_exact)
        timer.start()
        self._exact_timer = timer

    def _exact_note(self, text: str) -> None:
        self.panels.exact_note.set_text(text)
        self.panels.exact_note.set_visible(bool(text))

    def _start_exact(self):
        state = self.state
        self._exact_timer = None
        if state is None or not state.ok or state.exact_status != "pending":
            return False
        job = ExactFiniteJob(state.params, state.counts)
        job.start()
        self._exact_job = job
        timer = self.fig.canvas.new_timer(interval=self.EXACT_POLL_MS)
        timer.add_callback(self._poll_exact)
        timer.start()
        self._exact_timer = timer
        return False

    def _poll_exact(self):
        job = self._exact_job
        if job is None:
            return False
        if not job.done:
            return True
        if self._exact_timer is not None:
            self._exact_timer.stop()
            self._exact_timer = None
        self._exact_job = None
        self._apply_exact(job)
        return False

    def _apply_exact(self, job: ExactFiniteJob) -> None:
        """Show a finished computation if it belongs to the point on screen."""
        state = self.state
        if job.cancelled or state is None or not state.ok or job_key(state.params) != job.key:
            return
        if job.result is not None:
            attach_finite_exact(state, job.result)
        else:
            state.exact_status = "unavailable"
            state.exact_message = (
                f"exact finite-p theory at p = {state.finite_dim}: unavailable ({job.error})"
            )
            state.exact_note = "exact finite-p theory: unavailable (see below)"
        self.panels.render(state)
        if self._mc is not None:  # render() cleared the overlay: it belongs to this point
            self._mc_drawn = -1
            self._poll()
        self.info_text.set_text(describe(state))
        self._request_draw()

    def compute_exact_now(self) -> ExplorerState:
        """Compute the exact finite-ratio theory at the current point in this thread (blocking;
        snapshots and tests) and show it; a no-op unless its status is ``'pending'``."""
        state = self.state
        if state is not None and state.ok and state.exact_status == "pending":
            self._cancel_exact()
            job = ExactFiniteJob(state.params, state.counts)
            job.run()
            self._apply_exact(job)
        return self.state

    # ------------------------------------------------------------------------------------------
    # Monte Carlo
    def start_simulation(self, blocking: bool = False) -> MonteCarloRun | None:
        """Start a Monte Carlo at the current point.

        ``blocking=True`` runs all trials in the calling thread (snapshot, tests); otherwise a
        daemon worker thread runs them and a canvas timer polls the progress.
        """
        self.cancel_simulation("")
        if self.state is None or not self.state.ok:
            self.mc_text.set_text("cannot simulate: invalid parameters")
            self._request_draw()
            return None
        try:
            run = MonteCarloRun(self._params)
        except ValueError as exc:
            self.mc_text.set_text(f"cannot simulate: {exc}")
            self._request_draw()
            return None
        self._mc = run
        self._mc_drawn = -1
        self._set_progress(run)
        if blocking:
            run.run()
            self._poll()
            return run
        cancel = threading.Event()
        self._mc_cancel = cancel

        def work():
            while not cancel.is_set() and run.step():
                pass

        self._mc_thread = threading.Thread(target=work, name="explorer-mc", daemon=True)
        self._mc_thread.start()
        self._timer = self.fig.canvas.new_timer(interval=250)
        self._timer.add_callback(self._poll)
        self._timer.start()
        return run

    def cancel_simulation(self, message: str = "cancelled") -> None:
        """Stop a running Monte Carlo (after its current trial) and remove its overlay."""
        self._stop_worker()
        self._mc, self._mc_cancel, self._mc_thread, self._timer = None, None, None, None
        self.panels.clear_mc()
        self.progress_bar.set_width(0.0)
        self.mc_text.set_text(message)
        self._request_draw()

    def _set_progress(self, run: MonteCarloRun, summary: MonteCarloSummary | None = None):
        self.progress_bar.set_width(run.progress)
        failed = summary is not None and bool(summary.errors)
        state = "running" if not run.done else ("failed" if failed else "done")
        self.progress_bar.set_color(PROGRESS_COLORS[state])
        p = run.params
        done = round(run.progress * run.total)
        msg = f"Monte Carlo: {done}/{run.total} trials (mixture, p={run.dim}, seed {p['seed']})"
        if run.done:
            msg += " - done"
        if summary is not None and summary.errors:
            msg += f"\n{len(summary.errors)} failed: {summary.errors[0][:60]}"
        self.mc_text.set_text(msg)

    def _poll(self):
        run = self._mc
        if run is None:
            return False
        attempted = round(run.progress * run.total)
        if attempted == self._mc_drawn and not run.done:
            return True  # no new trial since the last poll: skip the (full-window) redraw
        self._mc_drawn = attempted
        summary = run.summary()
        self.panels.render_mc(summary)
        self._set_progress(run, summary)
        if run.done and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._request_draw()
        return not run.done

    def wait_simulation(self, timeout: float | None = None) -> None:
        """Join the worker thread (tests) and draw the final overlay."""
        if self._mc_thread is not None:
            self._mc_thread.join(timeout)
        self._poll()
