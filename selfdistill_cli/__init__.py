"""Shared command-line parsing for every CLI of the project: negative numbers and one-line errors.

Every command line (``python -m theory``, ``python -m simulations ...``, ``python -m figures ...``)
builds its parser from :class:`ArgumentParser`, so that

* a negative number after an option is always its *value*: ``--lam -1e-3`` reaches the
  parameter's validation (and is rejected there for being negative) instead of failing with
  "expected one argument". The standard library only recognises ``-1`` and ``-0.5`` as numbers
  (its pattern ``^-\\d+$|^-\\d*\\.\\d+$``, unchanged from Python 3.10 to 3.13); scientific
  notation (``-1e-3``), ``-1.`` and ``-inf`` / ``-nan`` were taken for option names. The argument
  list is rewritten before parsing, with argparse's public interface only
  (:mod:`selfdistill_cli.numbers`);
* a usage error is one line ``error: ...`` on stderr with exit status 2 (the project's rule for bad
  input), not the usage text followed by the message;
* every ``--help`` shows each option's default (:class:`HelpFormatter`) and its choices;
* an old option spelling keeps working for one release with a note on stderr
  (:func:`add_deprecated_alias`, :func:`deprecation_note`).

It also answers the one question about the machine every command asks before allocating:
how much memory is available now (:func:`available_bytes`, from :mod:`selfdistill_cli.memory`,
which also holds the one memory check of every command), and runs every entry point through
:func:`run_cli`, so that a reader that stops early (``python -m theory predict ... | head``) ends
the command quietly instead of with Python's ``BrokenPipeError`` traceback.

This package is the command-line home of the toolkit, in two parts:

* the shell (this module, :mod:`~selfdistill_cli.files`, :mod:`~selfdistill_cli.limits`,
  :mod:`~selfdistill_cli.memory`,
  :mod:`~selfdistill_cli.progress`) reads ``/proc/meminfo`` and cgroup files and redirects file
  descriptors, so it stands outside ``theory/`` (which stays free of I/O) and depends on none of
  the three layers; every layer (figures -> simulations -> theory) may import it;
* the commands sit above the layers and import them: :mod:`selfdistill_cli.predict` (``python -m
  theory predict``: argument checks, resource refusals, the table and JSON of
  :func:`theory.report.predict_report`) and :mod:`selfdistill_cli.main` (the ``selfdistill``
  console script, whose sub-commands run each layer's command line). No layer imports a command
  module; ``theory/__main__.py`` runs one as the program's entry point.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from selfdistill_cli.files import WriteError
from selfdistill_cli.memory import available_bytes
from selfdistill_cli.numbers import NEGATIVE_NUMBER, OptionKinds

__all__ = [
    "EXIT_BROKEN_PIPE",
    "NEGATIVE_NUMBER",
    "ArgumentParser",
    "HelpFormatter",
    "add_deprecated_alias",
    "available_bytes",
    "deprecation_note",
    "float_in",
    "int_in",
    "nonempty_path",
    "prog_alias",
    "run_cli",
]

#: Exit status when the reader of standard output went away: 128 + SIGPIPE, what a shell reports
#: for a command that a closed pipe stopped (so ``set -o pipefail`` sees the same status).
EXIT_BROKEN_PIPE = 141


#: Active parser names (:func:`prog_alias`): ``prog`` given to the constructor -> name shown.
_PROG_ALIASES: dict[str, str] = {}


@contextlib.contextmanager
def prog_alias(prog: str, alias: str):
    """Name every :class:`ArgumentParser` built with ``prog`` as ``alias`` while in the block.

    The ``selfdistill`` console script runs each command's own ``main(argv)``, whose parser is
    built inside it with ``prog="python -m ..."``; within this block its usage and ``--help``
    read ``selfdistill <command>`` instead (its sub-parsers' names follow, as argparse derives
    them from the parent's).

    Parameters
    ----------
    prog : str
        The name a command gives its parser (``"python -m simulations run"``).
    alias : str
        The name to show (``"selfdistill run"``).
    """
    previous = _PROG_ALIASES.get(prog)
    _PROG_ALIASES[prog] = alias
    try:
        yield
    finally:
        if previous is None:
            _PROG_ALIASES.pop(prog, None)
        else:
            _PROG_ALIASES[prog] = previous


class HelpFormatter(argparse.HelpFormatter):
    """Help that states every option's default: ``(default: X)`` after its help text.

    Like :class:`argparse.ArgumentDefaultsHelpFormatter`, except that nothing is added where there
    is no default to state (``None``, a ``store_true`` flag's ``False``, a suppressed default) or
    where the help text already gives it (contains ``%(default)``).
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "%(default)" in text
            or not action.option_strings
            or action.default is None
            or action.default is False
            or action.default is argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def deprecation_note(old: str, new: str) -> None:
    """Tell the user on stderr that spelling ``old`` is deprecated in favour of ``new``."""
    print(
        f"note: {old} is deprecated and will be removed in the next release; use {new}",
        file=sys.stderr,
        flush=True,
    )


def add_deprecated_alias(parser, old: str, new: str, *, dest: str, const=None, **kwargs):
    """Accept option ``old`` for one release: store into ``dest`` and print a note on stderr.

    The alias is hidden from ``--help``. ``const``: for an old flag without a value (e.g.
    ``--no-preprocess``), the value it stands for (``'raw'``); otherwise ``kwargs`` (``type``,
    ...) describe its value as for the new option.
    """

    class _Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            deprecation_note(old, new)
            setattr(namespace, self.dest, const if const is not None else values)

    if const is not None:
        kwargs["nargs"] = 0
    return parser.add_argument(
        old,
        dest=dest,
        action=_Deprecated,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        **kwargs,
    )


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` that takes negative numbers as values, one-line errors.

    Sub-parsers created with ``add_subparsers()`` inherit the class (argparse's default
    ``parser_class`` is the parent's type). ``--help`` states defaults (:class:`HelpFormatter`).
    Every option is recorded as it is declared (:class:`selfdistill_cli.numbers.OptionKinds`),
    here or in an argument group, and :meth:`parse_known_args` (which ``parse_args`` and a
    sub-command's parsing go through) rewrites negative numbers after an option into values.
    Within :func:`prog_alias`, a parser is named by its alias (``selfdistill predict``).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        if kwargs.get("prog") in _PROG_ALIASES:
            kwargs["prog"] = _PROG_ALIASES[kwargs["prog"]]
        # Before argparse's __init__, which declares -h/--help through add_argument.
        self._option_kinds = OptionKinds(kwargs.get("allow_abbrev", True))
        for parent in kwargs.get("parents", ()):
            if isinstance(parent, ArgumentParser):  # its options are copied, not re-declared
                self._option_kinds.update(parent._option_kinds)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        """:meth:`argparse.ArgumentParser.add_argument`, recording the option's kind."""
        action = super().add_argument(*args, **kwargs)
        self._option_kinds.declare(action)
        return action

    def add_argument_group(self, *args, **kwargs):
        """:meth:`argparse.ArgumentParser.add_argument_group` whose options are recorded too."""
        return self._recording(super().add_argument_group(*args, **kwargs))

    def add_mutually_exclusive_group(self, *args, **kwargs):
        """:meth:`argparse.ArgumentParser.add_mutually_exclusive_group`, options recorded."""
        return self._recording(super().add_mutually_exclusive_group(*args, **kwargs))

    def _recording(self, group):
        """``group`` with ``add_argument`` (and nested groups) recording into this parser."""
        add_argument = group.add_argument

        def recorded(*args, **kwargs):
            action = add_argument(*args, **kwargs)
            self._option_kinds.declare(action)
            return action

        group.add_argument = recorded
        if hasattr(group, "add_mutually_exclusive_group"):
            nested = group.add_mutually_exclusive_group
            group.add_mutually_exclusive_group = lambda *a, **k: self._recording(nested(*a, **k))
        return group

    def parse_known_args(self, args=None, namespace=None):
        """:meth:`argparse.ArgumentParser.parse_known_args` after making every negative number
        that follows an option its value (:meth:`selfdistill_cli.numbers.OptionKinds.rewrite`)."""
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._option_kinds.rewrite(args), namespace)

    def error(self, message: str):
        """Print ``error: MESSAGE`` (one line) to stderr and exit with status 2."""
        self.exit(2, f"error: {' '.join(str(message).split())}\n")


def int_in(low: int, high: int | None = None):
    """An argparse ``type``: an integer in ``[low, high]`` (``high=None``: no upper bound).

    A value outside is a usage error (one line, exit status 2) naming the range, before the
    command allocates or loops over anything sized by it.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            where = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be an integer {where}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(low: float, high: float, *, low_open: bool = False):
    """An argparse ``type``: a finite number in ``[low, high]`` (``(low, high]``: ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        ok = (low < value if low_open else low <= value) and value <= high
        if not ok:  # also NaN
            left = "(" if low_open else "["
            raise argparse.ArgumentTypeError(
                f"must be a number in {left}{low:g}, {high:g}], got {text}"
            )
        return value

    parse.__name__ = "number"
    return parse


def nonempty_path(text: str) -> Path:
    """An argparse ``type`` for output paths: ``Path(text)``, refusing an empty string.

    ``Path('')`` is ``Path('.')``: ``--out ''`` would silently mean the working directory.
    """
    if text.strip() == "":
        raise argparse.ArgumentTypeError("must name a file or folder, got an empty string")
    return Path(text)


def run_cli(main, argv=None) -> int:
    """Run a command's ``main(argv)`` and return its exit status; standard output faults are
    one line, never a traceback.

    * A reader that went away (``| head``): Python ignores SIGPIPE, so writing to a pipe whose
      reader has exited raises ``BrokenPipeError`` wherever the command happened to print, and
      the interpreter's final flush of stdout raises it once more. Both are caught here: stdout is
      pointed at ``os.devnull`` (the recipe of the ``signal`` module's documentation, "Note on
      SIGPIPE") and the status is :data:`EXIT_BROKEN_PIPE`, with nothing on stderr.
    * Standard output closed (``>&-``; Python then has ``sys.stdout = None``): refused before any
      work with one line and exit status 2 -- the report could not be printed, and a file the
      command opens would otherwise get descriptor 1 and receive whatever is printed.
    * Standard output that fails (``> /dev/full``: ``ENOSPC``; an I/O error): one line ``error:
      cannot write to standard output: ...`` and exit status 2.
    * A result file that cannot be written (:class:`selfdistill_cli.files.WriteError`, e.g. a
      full disk): its one-line message and exit status 2; the previous file is intact.

    Work already finished (CSV files, figures) was written by the command itself before it
    printed, so nothing is lost.
    """
    if sys.stdout is None or _fd_closed(1):
        _point_stdout_at_devnull()
        _error_line("standard output is closed; redirect it to a file or /dev/null instead")
        return 2
    guarded = sys.stdout = _GuardedStdout(sys.stdout)
    try:
        try:
            status = main(argv)
            sys.stdout.flush()  # a broken pipe shows here when the output fitted the buffer
        except SystemExit:  # argparse's --help and usage errors exit from inside main
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                return _quiet_broken_pipe()
            except StdoutError as exc:
                return _stdout_failed(exc)
            if guarded.failure is not None:
                return _stdout_failed(guarded.failure)
            raise
        except BrokenPipeError:
            return _quiet_broken_pipe()
        except StdoutError as exc:
            return _stdout_failed(exc)
        except WriteError as exc:  # a result file could not be written: the old one is intact
            _error_line(str(exc))
            return 2
        if guarded.failure is not None:  # a failure that the command caught and ignored
            return _stdout_failed(guarded.failure)
    finally:
        if sys.stdout is guarded:
            sys.stdout = guarded.stream
    return int(status or 0)


class StdoutError(OSError):
    """Writing standard output failed (not a broken pipe): e.g. ``ENOSPC`` on ``/dev/full``."""


class _GuardedStdout:
    """``sys.stdout`` whose write failures are recognisable as such (:class:`StdoutError`).

    A full or failing standard output raises a plain ``OSError`` from whichever ``print``
    happened to fill the buffer; wrapping it lets :func:`run_cli` tell it apart from the
    command's own file errors. Everything else is delegated to the real stream.
    """

    def __init__(self, stream):
        self.stream = stream
        #: The first failure, kept because some callers swallow it (argparse's ``--help``).
        self.failure: StdoutError | None = None

    def _guard(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            err = StdoutError(exc.errno, exc.strerror or str(exc))
            self.failure = self.failure or err
            raise err from None

    def write(self, text):
        return self._guard(self.stream.write, text)

    def writelines(self, lines):
        return self._guard(self.stream.writelines, lines)

    def flush(self):
        return self._guard(self.stream.flush)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def _error_line(message: str) -> None:
    try:
        print(f"error: {message}", file=sys.stderr, flush=True)
    except (OSError, AttributeError, ValueError):  # stderr is gone too: nothing left to tell
        pass


def _stdout_failed(exc: OSError) -> int:
    _point_stdout_at_devnull()  # the interpreter's final flush must not fail a second time
    reason = exc.strerror or os.strerror(exc.errno or 0) or str(exc)
    _error_line(f"cannot write to standard output: {reason}")
    return 2


def _point_stdout_at_devnull() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != 1:
        os.dup2(devnull, 1)
        os.close(devnull)
    # A fresh text stream on descriptor 1 (the old one may hold unwritable buffered text).
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process


def _quiet_broken_pipe() -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    return EXIT_BROKEN_PIPE
