"""One build at a time per project: an exclusive lock on ``build/.lock``.

Two builds of one project at once (``butterfly serve`` in one terminal, ``butterfly build`` in
another) would write the same cache entries and swap the same folders. Every command that
writes under ``build/`` or ``site/`` holds this lock while it does.

The lock is ``fcntl.flock`` on ``build/.lock``. The kernel releases it when the holder exits in
any way, ``kill -9`` included, so a lock is never stale: the file's content (the holder's PID
and command line, as JSON) only serves the message shown to the process that has to wait. The
holder may delete the whole ``build/`` folder, lock file included (``butterfly clean``): a
process that then gets the lock on the deleted file notices and locks the new one instead.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from generator.errors import UserError

LOCK_NAME = ".lock"
POLL_SECONDS = 0.1
MAX_HOLDER_BYTES = 4096

# Locks this process holds: {resolved lock file: [open file, depth]}. flock conflicts between two
# open files even in one process, so a nested build_lock on the same folder reuses the first.
_held: dict[Path, list] = {}


def current_command() -> str:
    """This process's command line as a user typed it: ``butterfly build --keep-going``."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "cli.py", "-c", "-m"):
        program = "butterfly"
    return " ".join([program, *sys.argv[1:]])[:200]


def read_holder(build_dir: Path) -> dict:
    """The PID and command the lock file names (possibly a finished process); {} if unreadable."""
    try:
        with open(Path(build_dir) / LOCK_NAME, "rb") as handle:
            holder = json.loads(handle.read(MAX_HOLDER_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe_holder(build_dir: Path) -> str:
    holder = read_holder(build_dir)
    pid, command = holder.get("pid"), holder.get("command")
    if isinstance(pid, int) and isinstance(command, str):
        return f"pid {pid}: {command[:120]}"
    return "pid unknown"


def busy_message(build_dir: Path) -> str:
    """The one line shown when another build holds the lock of ``build_dir``."""
    project = Path(build_dir).resolve().parent
    return (f"another butterfly build ({_describe_holder(build_dir)}) is running in {project}; "
            "wait for it or stop it")


@contextmanager
def build_lock(build_dir: Path, *, wait: float = 0.0, command: str | None = None,
               on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the exclusive build lock of ``build_dir`` (created if missing) for the ``with`` block.

    When another process holds it: with ``wait=0`` raise :class:`UserError` at once naming
    that process; otherwise call ``on_wait`` once with that line, poll for up to ``wait``
    seconds (``math.inf``: until free) and raise the same error if it is still held. Nested
    use in one process on the same folder is allowed. Yields the lock file's path.
    """
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    lock_path = (build_dir / LOCK_NAME).resolve()
    if lock_path in _held:
        _held[lock_path][1] += 1
        try:
            yield lock_path
        finally:
            _held[lock_path][1] -= 1
        return

    handle = _acquire(lock_path, build_dir, wait, on_wait)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command or current_command(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode("utf-8"))
        handle.flush()
        _held[lock_path] = [handle, 1]
        try:
            yield lock_path
        finally:
            del _held[lock_path]
            handle.seek(0)
            handle.truncate()   # the next reader sees no holder rather than a finished one
            handle.flush()
    finally:
        handle.close()   # closing the last descriptor releases the flock


def _acquire(lock_path: Path, build_dir: Path, wait: float, on_wait: Callable[[str], None] | None):
    """The open, flock'ed lock file; polls while another process holds it, up to ``wait`` seconds."""
    deadline = time.monotonic() + wait if math.isfinite(wait) else math.inf
    announced = False
    while True:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+b")   # never truncates: the holder's details stay readable
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _still_at(handle, lock_path):
                return handle
            # `butterfly clean` removed the file (and build/) while we waited on it: lock anew.
            handle.close()
            continue
        except BlockingIOError:
            handle.close()
        except BaseException:
            handle.close()
            raise
        if time.monotonic() >= deadline:
            raise UserError(busy_message(build_dir))
        if on_wait is not None and not announced:
            on_wait(f"waiting: {busy_message(build_dir).replace('; wait for it or stop it', '')}")
            announced = True
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _still_at(handle, lock_path: Path) -> bool:
    """True if the open file is still the one at ``lock_path`` (not deleted or replaced)."""
    try:
        on_disk = os.stat(lock_path)
    except FileNotFoundError:
        return False
    opened = os.fstat(handle.fileno())
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)
