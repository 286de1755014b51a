"""Child processes that never outlive Butterfly, and SIGTERM as an orderly exit.

``mkdocs build`` or ``mkdocs serve`` started by a build must stop when the build stops:

- killed outright (``kill -9``, the terminal closed): on Linux the child asks the kernel, before
  it runs the command, to send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
- interrupted (Ctrl-C, or SIGTERM turned into an exception by :func:`raise_on_sigterm`):
  :func:`run_child` terminates the child, waits a moment, then kills it.

Without :func:`raise_on_sigterm`, SIGTERM ends Python at once and no ``finally`` block runs,
so scratch folders and children stay behind; with it, SIGTERM unwinds like Ctrl-C.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Any, Sequence

_PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 5.0


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (see :func:`raise_on_sigterm`).

    A KeyboardInterrupt, so code that already cleans up after Ctrl-C cleans up after SIGTERM
    too, and ``except Exception`` never swallows it.
    """

    exit_status = 128 + signal.SIGTERM


def _on_sigterm(signum, frame):
    raise Terminated(f"terminated by signal {signum}")


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread (call from the main thread)."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def die_with_parent() -> None:
    """From now on this process gets SIGTERM when its parent dies (Linux; elsewhere nothing).
    To Linux the parent is the thread that started the process: start children that must live
    on from the main thread, not from a helper thread that ends."""
    if sys.platform.startswith("linux") and ctypes.CDLL(None, use_errno=True).prctl(
            _PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _die_with_parent_setup(parent_pid: int):
    """A ``preexec_fn``: runs in the child between fork and exec."""

    def setup() -> None:
        die_with_parent()
        # The parent may have died between fork and prctl; then no signal will ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


def stop_child(process: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """Terminate ``process``, give it ``grace`` seconds to exit, then kill it; always reaps it."""
    if process.poll() is not None:
        return
    try:
        process.terminate()
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def start_child(command: Sequence[str], **popen_arguments: Any) -> subprocess.Popen:
    """``subprocess.Popen`` whose child receives SIGTERM when this process dies (Linux).

    The kernel ties the signal to the *thread* that started the child: start children from a
    thread that lives as long as they should (the main thread).
    """
    if "preexec_fn" in popen_arguments:
        raise ValueError("start_child sets preexec_fn itself")
    if sys.platform.startswith("linux"):
        popen_arguments["preexec_fn"] = _die_with_parent_setup(os.getpid())
    return subprocess.Popen(list(command), **popen_arguments)


def run_child(command: Sequence[str], *, input: str | bytes | None = None, capture_output: bool = False,
              timeout: float | None = None, grace: float = STOP_GRACE_SECONDS,
              **popen_arguments: Any) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(command, ...)``, but the child never outlives this process.

    On any exception while waiting (Ctrl-C, :class:`Terminated`, ``timeout``) the child is
    terminated (killed after ``grace`` seconds) and the exception propagates. Other keyword
    arguments (``cwd``, ``env``, ``text``, ``stdout``, ...) go to ``subprocess.Popen``.
    """
    if capture_output:
        popen_arguments["stdout"] = popen_arguments["stderr"] = subprocess.PIPE
    if input is not None:
        popen_arguments["stdin"] = subprocess.PIPE
    process = start_child(command, **popen_arguments)
    try:
        stdout, stderr = process.communicate(input, timeout=timeout)
    except BaseException:
        stop_child(process, grace)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
