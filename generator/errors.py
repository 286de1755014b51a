"""Errors the command line reports as one line, without a traceback."""

import difflib
import reprlib
from typing import Any, Iterable


class UserError(Exception):
    """Bad input from the user: a config key, a missing file, an unreadable image.

    The CLI prints ``str(error)`` on one line and exits with status 2.
    """


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, ignoring case, or ''."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters with an ellipsis: a value quoted in a one-line
    message must never flood the terminal (a config value can be megabytes long)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_value_repr = reprlib.Repr()
_value_repr.maxstring = _value_repr.maxother = 60
_value_repr.maxlist = _value_repr.maxtuple = _value_repr.maxdict = _value_repr.maxset = 6
_value_repr.maxlevel = 3


def quote_value(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a one-line message, at most ``limit`` characters however large the value.

    Long strings, lists and mappings are elided inside (``[1, 2, 3, ...]``) so the cost stays
    small too; the result is then cut with :func:`shorten`.
    """
    return shorten(_value_repr.repr(value), limit)
