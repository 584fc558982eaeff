"""Shared command-line parsing for every CLI of the project: negative numbers and one-line errors.

Every command line (``python -m theory``, ``python -m simulations ...``, ``python -m figures ...``)
builds its parser from :class:`ArgumentParser`, so that

* a negative number is always a *value*: ``--lam -1e-3`` reaches the parameter's validation (and is
  rejected there for being negative) instead of failing with "expected one argument". The standard
  library only recognises ``-1`` and ``-0.5`` as numbers (its pattern ``^-\\d+$|^-\\d*\\.\\d+$``,
  unchanged from Python 3.10 to 3.13); scientific notation (``-1e-3``), ``-1.`` and ``-inf`` /
  ``-nan`` were taken for option names;
* a usage error is one line ``error: ...`` on stderr with exit status 2 (the project's rule for bad
  input), not the usage text followed by the message.

It lives in ``theory/`` because every layer (figures -> simulations -> theory) may import it; it
only uses :mod:`argparse`.
"""

from __future__ import annotations

import argparse
import re

__all__ = ["NEGATIVE_NUMBER", "ArgumentParser"]

#: A number with a leading minus sign, as ``float()`` would accept it: ``-1``, ``-0.5``, ``-.5``,
#: ``-1.``, ``-1e-3``, ``-2.5E+04``, ``-inf``, ``-infinity``, ``-nan`` (case-insensitive).
NEGATIVE_NUMBER = re.compile(
    r"^-(?:(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|inf(?:inity)?|nan)$", re.IGNORECASE
)


class ArgumentParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` that takes negative numbers as values, one-line errors.

    Sub-parsers created with ``add_subparsers()`` inherit the class (argparse's default
    ``parser_class`` is the parent's type).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # argparse decides "option or value?" with this pattern (ArgumentParser._parse_optional);
        # no option of this project looks like a number, so every number-like token is a value.
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str):
        """Print ``error: MESSAGE`` (one line) to stderr and exit with status 2."""
        self.exit(2, f"error: {' '.join(str(message).split())}\n")
