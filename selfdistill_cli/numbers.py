"""Negative numbers as option values, through argparse's public interface only.

argparse decides whether a token is an option or a value by its first character, and treats a
token that starts with ``-`` as a value only if it matches a private pattern
(``ArgumentParser._negative_number_matcher``: ``-1`` and ``-0.5`` up to Python 3.13; Python 3.14
widened it). ``--lam -1e-3`` therefore failed with "expected one argument" instead of reaching
the check that rejects a negative ``lam``. Rather than replace that private pattern, the command
lines of this project rewrite the argument list before argparse sees it
(:meth:`OptionKinds.rewrite`):

* an option that takes one value, followed by a negative number, becomes one token
  ``--lam=-1e-3`` (``-K=-5`` for a short option): argparse's documented ``--option=value``
  form, which carries any value;
* a negative number among the values of an option that takes several (``nargs='+'``, ``'*'`` or
  ``N > 1``) gets a leading space, ``" -1e-3"``: a token that does not start with ``-`` is a value
  for argparse, and the option's ``type`` (wrapped by :func:`strip_mark` when the option is
  declared) removes the space before converting, so the value and any error message are those of
  the token as typed.

Which options take values is recorded as they are declared (:meth:`OptionKinds.declare`, called by
:class:`selfdistill_cli.ArgumentParser` and its argument groups), because argparse has no public
way to list a parser's options afterwards. A negative number in the place of a positional
argument is left alone (no command of this project has a numeric positional argument).
"""

from __future__ import annotations

import re

__all__ = ["NEGATIVE_NUMBER", "OptionKinds", "strip_mark"]

#: A number with a leading minus sign, as ``float()`` would accept it: ``-1``, ``-0.5``, ``-.5``,
#: ``-1.``, ``-1e-3``, ``-2.5E+04``, ``-inf``, ``-infinity``, ``-nan`` (case-insensitive).
NEGATIVE_NUMBER = re.compile(
    r"^-(?:(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|inf(?:inity)?|nan)$", re.IGNORECASE
)

#: Prefix that makes a negative number a value of a several-valued option (see the module
#: docstring): not an option prefix for argparse, and ignored by ``float`` and ``int`` anyway.
MARK = " "

FLAG, ONE, SEVERAL = "flag", "one", "several"


def _kind(nargs) -> str | None:
    """How many values an option with this ``nargs`` takes; None for a sub-command's rest."""
    if nargs == 0:
        return FLAG
    if nargs is None or nargs == "?" or nargs == 1:
        return ONE
    if nargs in ("+", "*") or isinstance(nargs, int):
        return SEVERAL
    return None  # argparse.REMAINDER or a sub-parser: the tokens belong to someone else


def strip_mark(convert):
    """An argparse ``type`` that first removes :data:`MARK` from a marked negative number.

    Parameters
    ----------
    convert : callable or None
        The option's own ``type`` (``None``: the string itself).

    Returns
    -------
    callable
        ``parse(text)``: ``convert(text)`` on the token as typed. Where a marked token fails to
        convert (``int('-1.5')``), the error is argparse's own wording for the unmarked token,
        ``invalid int value: '-1.5'``.
    """
    name = getattr(convert, "__name__", repr(convert))

    def parse(text: str):
        marked = text.startswith(MARK) and NEGATIVE_NUMBER.match(text[len(MARK) :]) is not None
        if marked:
            text = text[len(MARK) :]
        if convert is None:
            return text
        if not marked:  # argparse words any failure itself, naming ``name``
            return convert(text)
        try:
            return convert(text)
        except (TypeError, ValueError) as exc:
            from argparse import ArgumentTypeError

            raise ArgumentTypeError(f"invalid {name} value: {text!r}") from exc

    parse.__name__ = name
    return parse


class OptionKinds:
    """The option strings of one parser and how many values each takes.

    Attributes
    ----------
    kinds : dict
        Option string (``"--lam"``, ``"-K"``) -> ``"flag"``, ``"one"`` or ``"several"``.
    allow_abbrev : bool
        Whether the parser accepts unique prefixes of long options (``--la`` for ``--lam``).
    """

    def __init__(self, allow_abbrev: bool = True):
        self.kinds: dict[str, str] = {}
        self.allow_abbrev = allow_abbrev

    def declare(self, action) -> None:
        """Record an option that was just added (an ``argparse.Action``).

        A several-valued option's ``type`` is wrapped in :func:`strip_mark` (``Action.type`` is
        a documented attribute), so that a marked negative number converts as typed.
        """
        kind = _kind(action.nargs)
        if kind is None or not action.option_strings:
            return
        if kind == SEVERAL and not isinstance(action.type, str):
            action.type = strip_mark(action.type)
        for option in action.option_strings:
            self.kinds[option] = kind

    def update(self, other: OptionKinds) -> None:
        """Add the options of ``other`` (a parent parser's, ``parents=[...]``)."""
        self.kinds.update(other.kinds)

    def _lookup(self, token: str) -> str | None:
        """The kind of option ``token`` names, exactly or as argparse's unique prefix."""
        if token in self.kinds:
            return self.kinds[token]
        if not (self.allow_abbrev and token.startswith("--") and len(token) > 2):
            return None
        matches = [option for option in self.kinds if option.startswith(token)]
        return self.kinds[matches[0]] if len(matches) == 1 else None

    def rewrite(self, args: list[str]) -> list[str]:
        """``args`` with every negative number that follows a value-taking option made a value.

        Parameters
        ----------
        args : list of str
            The argument list as typed (without the program name).

        Returns
        -------
        list of str
            The same tokens, except ``OPTION NUMBER`` -> ``OPTION=NUMBER`` for a one-valued
            option and ``NUMBER`` -> ``MARK + NUMBER`` among a several-valued option's values.
            Everything from ``--`` on is left as it is.

        Examples
        --------
        >>> kinds = OptionKinds()
        >>> kinds.kinds.update({"--lam": "one", "--lams": "several", "-h": "flag"})
        >>> kinds.rewrite(["--lam", "-1e-3", "--lams", "1", "-2", "-h"])
        ['--lam=-1e-3', '--lams', '1', ' -2', '-h']
        >>> kinds.rewrite(["--lam", "-1,2"])
        ['--lam=-1,2']
        """
        out: list[str] = []
        pending = None  # the kind of the option whose values come next
        for i, token in enumerate(args):
            if token == "--":
                out += args[i:]
                break
            number = NEGATIVE_NUMBER.match(token) is not None
            # No option starts with "-" and a digit: such a token after a one-valued option is
            # its value even when it is not one number (--counts -1,2;3,4 reaches the option's
            # own check instead of argparse's "expected one argument").
            if pending == ONE and (number or token[1:2].isdigit()):
                out[-1] = f"{out[-1]}={token}"
                pending = None
                continue
            if pending == SEVERAL and (number or not token.startswith("-")):
                out.append(MARK + token if number else token)
                continue
            if pending == ONE and not token.startswith("-"):
                out.append(token)  # the option's (non-negative) value
                pending = None
                continue
            # A new option, or a positional argument.
            pending = None if "=" in token else self._lookup(token)
            if pending == FLAG:
                pending = None
            out.append(token)
        return out
