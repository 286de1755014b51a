"""Children never outlive Butterfly: kill -9 of the parent, Ctrl-C, SIGTERM, timeouts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import default_sigint
from generator.childproc import Terminated, run_child

REPO = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")

# A child that reports its pid through a file and then sleeps.
SLEEPER = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"

PARENT = """
    import subprocess, sys
    from generator.childproc import raise_on_sigterm, run_child
    sleeper, pid_file, how = sys.argv[1], sys.argv[2], sys.argv[3]
    command = [sys.executable, "-c", sleeper, pid_file]
    if how == "plain":
        subprocess.run(command)
    else:
        raise_on_sigterm()
        try:
            run_child(command, grace=2)
        except KeyboardInterrupt as interruption:
            print(type(interruption).__name__, flush=True)
            sys.exit(130)
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start_parent(tmp_path: Path, how: str) -> tuple[subprocess.Popen, int]:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT), SLEEPER, str(pid_file), how],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=default_sigint)
    assert wait_until(lambda: pid_file.is_file() and pid_file.read_text().strip()), parent.stderr
    return parent, int(pid_file.read_text())


def finish(parent: subprocess.Popen, child_pid: int) -> None:
    parent.kill()
    parent.wait()
    parent.stdout.close()
    parent.stderr.close()
    if alive(child_pid):
        os.kill(child_pid, signal.SIGKILL)


@linux_only
def test_child_dies_when_the_parent_is_killed(tmp_path):
    parent, child_pid = start_parent(tmp_path, "run_child")
    try:
        assert alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_until(lambda: not alive(child_pid), 5), "the child outlived its killed parent"
    finally:
        finish(parent, child_pid)


@linux_only
def test_without_it_the_child_would_survive(tmp_path):
    """The control case: plain subprocess.run leaves an orphan behind, which this test then stops."""
    parent, child_pid = start_parent(tmp_path, "plain")
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        time.sleep(0.5)
        assert alive(child_pid)
    finally:
        finish(parent, child_pid)


@pytest.mark.parametrize("signal_number,exception", [(signal.SIGINT, "KeyboardInterrupt"),
                                                     (signal.SIGTERM, "Terminated")])
def test_interrupted_parent_stops_its_child_and_unwinds(tmp_path, signal_number, exception):
    parent, child_pid = start_parent(tmp_path, "run_child")
    try:
        parent.send_signal(signal_number)      # the parent only, not its process group
        assert parent.wait(10) == 130
        assert parent.stdout.read().strip() == exception
        assert not alive(child_pid)            # stopped and reaped before the parent went on
    finally:
        finish(parent, child_pid)


def test_run_child_returns_like_subprocess_run(tmp_path):
    result = run_child([sys.executable, "-c", "import sys; print(sys.stdin.read().upper()); sys.exit(3)"],
                       input="hello", capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 3 and result.stdout.strip() == "HELLO" and result.stderr == ""


def test_timeout_stops_the_child(tmp_path):
    pid_file = tmp_path / "child.pid"
    with pytest.raises(subprocess.TimeoutExpired):
        run_child([sys.executable, "-c", SLEEPER, str(pid_file)], timeout=3.0, grace=2)
    assert not alive(int(pid_file.read_text()))


def test_terminated_is_an_interrupt_not_an_error():
    assert issubclass(Terminated, KeyboardInterrupt) and not issubclass(Terminated, Exception)
    assert Terminated.exit_status == 143
