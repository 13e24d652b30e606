"""Validated numeric command-line arguments, declared once for every ``nasassist`` command.

``type=`` functions for :mod:`argparse` built on :mod:`nasassist_plugins.validation`: a
value out of range, NaN, infinite or not a number is refused while the arguments are
parsed, before any work, with one line naming the option
(``nasassist evaluate: error: argument --limit: must be >= 2, got 0``) and exit status 2.

Example::

    parser.add_argument("--limit", type=integer(minimum=1), default=500)
    parser.add_argument("--sandbox-timeout", type=number(low=0.0, low_open=True), default=60.0)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, NoReturn

from nasassist_plugins.errors import ConfigurationError
from nasassist_plugins.validation import check_integer, check_number

__all__ = ["OneLineParser", "SEED", "integer", "number"]

#: The most processes a ``--jobs`` option may ask for.
MAX_JOBS = 256


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit status 2), like the
    command's other errors; ``--help`` still prints the full usage."""

    def error(self, message: str) -> NoReturn:
        first = message.strip().splitlines()[0] if message.strip() else "invalid arguments"
        print(f"{self.prog}: error: {first} (see {self.prog} --help)", file=sys.stderr)
        self.exit(2)


def _checked(kind: str, parse: Callable[[str], Any], check: Callable[[Any], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r:.60}") from None
        try:
            return check(value)
        except ConfigurationError as exc:  # "value must be >= 1, got 0" -> "must be >= 1, got 0"
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None

    convert.__name__ = kind  # argparse names the type in some messages
    return convert


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An integer option within ``[minimum, maximum]``."""
    return _checked("an integer", int, lambda v: check_integer("value", v, minimum=minimum, maximum=maximum))


def number(*, low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """A finite number option within ``[low, high]`` (bounds open when ``*_open``)."""
    return _checked("a number", float, lambda v: check_number("value", v, low=low, high=high, low_open=low_open,
                                                             high_open=high_open))


#: ``--seed``: a non-negative integer numpy and torch both accept.
SEED = integer(minimum=0, maximum=2**32 - 1)
#: ``--jobs``: worker processes.
JOBS = integer(minimum=1, maximum=MAX_JOBS)
#: Seconds, minutes or megabytes: a positive finite number.
POSITIVE = number(low=0.0, low_open=True)
