"""The build lock, between real processes: refuse, wait, time out, take over from a killed holder."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from generator.buildlock import build_lock, busy_message, read_holder
from generator.errors import UserError

REPO = Path(__file__).resolve().parents[1]

HOLDER = """
    import sys
    from pathlib import Path
    from generator.buildlock import build_lock
    with build_lock(Path(sys.argv[1]), command=sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.readline()            # hold until the test says so (or kills us)
    print("released", flush=True)
"""

CONTENDER = """
    import sys
    from pathlib import Path
    from generator.buildlock import build_lock
    from generator.errors import UserError
    try:
        with build_lock(Path(sys.argv[1]), wait=float(sys.argv[2])):
            print("acquired", flush=True)
    except UserError as error:
        print(error, flush=True)
        sys.exit(2)
"""


def python(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of tmp_path/build as `butterfly serve`."""
    build_dir = tmp_path / "build"
    process = python(HOLDER, str(build_dir), "butterfly serve")
    line = process.stdout.readline().strip()
    assert line == "locked", process.stderr.read()
    yield process, build_dir
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        stream.close()


def expected_busy(pid: int, build_dir: Path) -> str:
    return (f"another butterfly build (pid {pid}: butterfly serve) is running in {build_dir.resolve().parent}; "
            "wait for it or stop it")


def test_second_process_stops_at_once_naming_the_holder(holder):
    process, build_dir = holder
    contender = subprocess.run([sys.executable, "-c", textwrap.dedent(CONTENDER), str(build_dir), "0"], cwd=REPO,
                               capture_output=True, text=True, timeout=30)
    assert contender.returncode == 2
    assert contender.stdout.strip() == expected_busy(process.pid, build_dir)


def test_this_process_is_refused_too_and_the_lock_file_names_the_holder(holder):
    process, build_dir = holder
    assert read_holder(build_dir)["pid"] == process.pid
    start = time.perf_counter()
    with pytest.raises(UserError) as caught:
        with build_lock(build_dir):
            pytest.fail("the lock was taken twice")
    assert str(caught.value) == expected_busy(process.pid, build_dir) == busy_message(build_dir)
    assert time.perf_counter() - start < 1.0


def test_waiting_gives_up_after_the_timeout(holder):
    process, build_dir = holder
    announcements = []
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"pid {process.pid}: butterfly serve"):
        with build_lock(build_dir, wait=0.5, on_wait=announcements.append):
            pytest.fail("the lock was taken twice")
    waited = time.perf_counter() - start
    assert 0.5 <= waited < 2.0
    assert announcements == [f"waiting: another butterfly build (pid {process.pid}: butterfly serve) "
                             f"is running in {build_dir.resolve().parent}"]


def test_waiting_gets_the_lock_when_the_holder_finishes(holder):
    process, build_dir = holder
    release = threading.Timer(0.3, lambda: (process.stdin.write("done\n"), process.stdin.flush()))
    release.start()
    try:
        start = time.perf_counter()
        with build_lock(build_dir, wait=math.inf, command="butterfly build"):
            assert time.perf_counter() - start >= 0.25
            assert read_holder(build_dir)["pid"] == os.getpid()
            assert read_holder(build_dir)["command"] == "butterfly build"
    finally:
        release.cancel()
    assert process.stdout.readline().strip() == "released"
    assert read_holder(build_dir) == {}   # released: the file names nobody


def test_a_killed_holder_leaves_a_lock_that_is_taken_over(holder):
    process, build_dir = holder
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert read_holder(build_dir)["pid"] == process.pid      # the file still names the dead process ...
    start = time.perf_counter()
    with build_lock(build_dir):                              # ... but the kernel released the lock
        assert read_holder(build_dir)["pid"] == os.getpid()
    assert time.perf_counter() - start < 1.0


def test_a_holder_killed_while_another_process_waits(holder):
    process, build_dir = holder
    contender = python(CONTENDER, str(build_dir), "30")
    try:
        time.sleep(0.3)
        assert contender.poll() is None                      # still waiting
        process.send_signal(signal.SIGKILL)
        assert contender.stdout.readline().strip() == "acquired"
        assert contender.wait(10) == 0
    finally:
        contender.kill()
        contender.wait()
        for stream in (contender.stdin, contender.stdout, contender.stderr):
            stream.close()


def test_nested_use_in_one_process_and_the_file_is_kept(tmp_path):
    build_dir = tmp_path / "build"
    with build_lock(build_dir, command="butterfly build") as lock_file:
        with build_lock(build_dir):
            assert json.loads(lock_file.read_text())["command"] == "butterfly build"
        assert read_holder(build_dir)["pid"] == os.getpid()   # the inner block did not release it
        refused = subprocess.run([sys.executable, "-c", textwrap.dedent(CONTENDER), str(build_dir), "0"], cwd=REPO,
                                 capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and f"pid {os.getpid()}: butterfly build" in refused.stdout
    assert lock_file.is_file() and lock_file.read_text() == ""
    assert read_holder(tmp_path / "never-built") == {}


CLEANER = """
    import shutil, sys
    from pathlib import Path
    from generator.buildlock import build_lock
    build_dir = Path(sys.argv[1])
    with build_lock(build_dir, command="butterfly clean"):
        print("locked", flush=True)
        sys.stdin.readline()
        shutil.rmtree(build_dir)        # what `butterfly clean` does, lock file included
"""


def refused_elsewhere(build_dir: Path) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(CONTENDER), str(build_dir), "0"], cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    return result.stdout.strip()


def test_the_holder_may_delete_the_build_folder(tmp_path):
    build_dir = tmp_path / "build"
    cleaner = python(CLEANER, str(build_dir))
    try:
        assert cleaner.stdout.readline().strip() == "locked"
        go = threading.Timer(0.3, lambda: (cleaner.stdin.write("go\n"), cleaner.stdin.flush()))
        go.start()
        with build_lock(build_dir, wait=10, command="butterfly build"):
            assert read_holder(build_dir)["pid"] == os.getpid()
            assert f"pid {os.getpid()}: butterfly build" in refused_elsewhere(build_dir)
        go.cancel()
        assert cleaner.wait(10) == 0
    finally:
        cleaner.kill()
        cleaner.wait()
        for stream in (cleaner.stdin, cleaner.stdout, cleaner.stderr):
            stream.close()


def test_a_lock_won_on_a_deleted_file_is_taken_again(tmp_path, monkeypatch):
    """The race behind the test above: the file vanishes between our open and our flock."""
    import fcntl
    from generator import buildlock

    build_dir = tmp_path / "build"
    real_flock = fcntl.flock
    calls = []

    def flock_after_deletion(fd, operation):
        calls.append(operation)
        if len(calls) == 1:
            os.unlink(build_dir / ".lock")   # another process's `clean` got there first
        return real_flock(fd, operation)
    monkeypatch.setattr(buildlock.fcntl, "flock", flock_after_deletion)
    with build_lock(build_dir):
        assert len(calls) == 2 and (build_dir / ".lock").is_file()
        assert f"pid {os.getpid()}" in refused_elsewhere(build_dir)
