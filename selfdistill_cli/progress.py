"""Progress bars with an ETA for long commands: stderr only, silent off a terminal or when quiet.

Every command that can take more than a couple of seconds (``simulations run``, ``probe``,
``sweep``, the figure runner and its slow figures) reports through :func:`progress_bar`, a thin
wrapper around `tqdm <https://tqdm.github.io>`_ (rate, elapsed time and ETA, nested bars, safe
interleaving with other messages via :func:`write`). Standard output is never touched, so tables
and ``--json`` stay clean.

When a bar is drawn
-------------------
* never with ``quiet=True`` (the commands' ``--quiet``);
* otherwise as the environment variable :data:`ENV` says: ``1`` always (e.g. to watch a job
  whose stderr is a log file, and in the tests), ``0`` never;
* otherwise only when stderr is a terminal: piped or redirected output gets no bar.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ENV", "progress_bar", "progress_enabled", "write"]

#: Environment variable that forces the bars on (``1``) or off (``0``) whatever stderr is.
ENV = "SELFDISTILL_PROGRESS"
_ON = {"1", "true", "yes", "on", "always"}
_OFF = {"0", "false", "no", "off", "never"}


def progress_enabled(quiet: bool = False, stream=None) -> bool:
    """Whether a progress bar should be drawn (module docstring); ``stream`` defaults to stderr."""
    if quiet:
        return False
    env = os.environ.get(ENV, "").strip().lower()
    if env in _ON:
        return True
    if env in _OFF:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or replaced stream
        return False


def progress_bar(
    iterable=None, *, total=None, desc=None, unit="it", quiet=False, leave=False, **kwargs
):
    """A :class:`tqdm.tqdm` on stderr, disabled unless :func:`progress_enabled`.

    Use it as tqdm: wrap an iterable, or ``with progress_bar(total=n) as bar: ... bar.update()``.
    A disabled bar costs nothing and prints nothing. ``leave=False`` (default) removes the bar
    when it closes, so the command's own summary lines follow undisturbed. Other keywords go to
    tqdm (e.g. ``bar_format``).
    """
    from tqdm import tqdm  # lazy: only commands that report progress need it

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        file=sys.stderr,
        disable=not progress_enabled(quiet),
        dynamic_ncols=True,
        mininterval=0.5,
        smoothing=0.1,
        **kwargs,
    )


def write(message: str) -> None:
    """Print ``message`` on stderr without breaking a progress bar that is being drawn."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()
