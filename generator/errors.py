"""Errors the command line reports as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user: a config key, a missing file, an unreadable image.

    The CLI prints ``str(error)`` on one line and exits with status 2.
    """
