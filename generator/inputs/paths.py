"""Paths of a project: where a config's paths start, how a message shows a path, and what is
wrong with a path that should name a file.

Messages name files the way the configuration does: relative to the project root (the folder
that holds ``site_config/``), so that an error line never shows where the project happens to
lie on this machine. A path outside any project is shown with ``~`` for the home folder, and
otherwise as it is.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from generator.errors import shorten

CONFIG_FOLDER = "site_config"
LONGEST_SHOWN_PATH = 200


def project_root(config_file: str | Path) -> Path:
    """The folder paths in a config are relative to: the one holding site_config/, else the file's own."""
    folder = Path(config_file).resolve().parent
    return folder.parent if folder.name == CONFIG_FOLDER else folder


def _containing_project(path: Path) -> Path | None:
    """The nearest folder above ``path`` (absolute, symbolic links kept) that holds site_config/."""
    for folder in path.parents:
        try:
            if (folder / CONFIG_FOLDER).is_dir():
                return folder
        except OSError:
            return None
    return None


def shown_path(path: str | Path) -> str:
    """``path`` as a one-line message shows it: relative to its project, else with ``~`` for the
    home folder; control characters as '?', cut if absurdly long.

    Symbolic links are not followed (a loop of them must still be shown), so the path is made
    absolute by joining it to the current folder only.
    """
    text = str(path)
    if "\x00" not in text and os.path.isabs(text):
        absolute = Path(os.path.normpath(text))
        project = _containing_project(absolute)
        home = Path(os.path.expanduser("~"))
        if project is not None:
            text = absolute.relative_to(project).as_posix()
        elif home != Path("/") and absolute.is_relative_to(home):
            text = "~/" + absolute.relative_to(home).as_posix()
    return "".join(c if c.isprintable() else "?" for c in shorten(text, LONGEST_SHOWN_PATH))


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a file, in a few words ('not found', 'is a folder, not a
    file', ...), or None if it is a regular file (or a link to one)."""
    try:
        os.stat(path)
    except ValueError:   # a NUL byte in the name
        return "is not a valid file name"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a loop of symbolic links"
        if error.errno == errno.ENAMETOOLONG:
            return "has a name too long for the file system"
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return "is a broken symbolic link" if os.path.islink(path) else "not found"
        if error.errno == errno.EACCES:
            return "cannot be read (permission denied)"
        return f"cannot be read ({error.strerror or error})"
    if os.path.isdir(path):
        return "is a folder, not a file"
    if not os.path.isfile(path):
        return "is not a regular file"
    return None
