"""Errors the command line reports as one line, without a traceback."""

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input from the user: a config key, a missing file, an unreadable image.

    The CLI prints ``str(error)`` on one line and exits with status 2.
    """


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, ignoring case, or ''."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""
