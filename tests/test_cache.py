"""The stage cache and folder swaps: atomic exchange, recovery after a crash, scratch clean-up."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from generator import cache
from generator.cache import (
    StageCache, exchange_folders, fresh_sibling, recover_swap, recover_swaps, swap_in, sweep_scratch,
)

REPO = Path(__file__).resolve().parents[1]


def folder_with(path: Path, **files: str) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def contents(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(path.iterdir())}


def python_child(script: str, *args: str) -> subprocess.Popen:
    """A Python process running ``script`` with the repository importable; stdout is a pipe."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(process: subprocess.Popen, expected: str) -> None:
    line = process.stdout.readline().strip()
    assert line == expected, f"child said {line!r}; stderr: {process.stderr.read()}"


# --- swapping ---------------------------------------------------------------------------------

needs_exchange = pytest.mark.skipif(cache._renameat2 is None, reason="renameat2 is not available here")


@needs_exchange
def test_exchange_swaps_two_folders_in_place(tmp_path):
    first = folder_with(tmp_path / "first", a="1")
    second = folder_with(tmp_path / "second", b="2")
    inode_first = first.stat().st_ino
    assert exchange_folders(first, second)
    assert contents(first) == {"b": "2"} and contents(second) == {"a": "1"}
    assert second.stat().st_ino == inode_first


@needs_exchange
def test_exchange_reports_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        exchange_folders(tmp_path / "absent", folder_with(tmp_path / "there"))


@needs_exchange
def test_swap_in_replaces_the_target_with_one_exchange(tmp_path, monkeypatch):
    target = folder_with(tmp_path / "site", index="old")
    new = folder_with(tmp_path / ".site.building", index="new")
    calls = []
    real = cache._renameat2

    def spy(*arguments):
        calls.append(arguments)
        return real(*arguments)
    monkeypatch.setattr(cache, "_renameat2", spy)
    replaced = []
    monkeypatch.setattr(cache.os, "replace", lambda *a: replaced.append(a))   # must not be needed
    swap_in(new, target)
    assert len(calls) == 1 and calls[0][4] == 2   # RENAME_EXCHANGE
    assert replaced == []
    assert contents(target) == {"index": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def fake_renameat2(code: int):
    def refuse(*arguments):
        ctypes.set_errno(code)
        return -1
    return refuse


@pytest.mark.parametrize("refusal", ["no renameat2", "file system refuses"])
def test_swap_in_falls_back_to_two_renames(tmp_path, monkeypatch, refusal):
    monkeypatch.setattr(cache, "_renameat2", None if refusal == "no renameat2" else fake_renameat2(errno.EINVAL))
    target = folder_with(tmp_path / "docs", page="old")
    swap_in(folder_with(tmp_path / ".docs.new", page="new"), target)
    assert contents(target) == {"page": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]


def test_exchange_raises_other_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_renameat2", fake_renameat2(errno.EXDEV))
    with pytest.raises(OSError) as caught:
        exchange_folders(tmp_path / "a", tmp_path / "b")
    assert caught.value.errno == errno.EXDEV


def test_swap_in_of_a_first_build(tmp_path):
    target = tmp_path / "site"
    swap_in(folder_with(tmp_path / "fresh", index="first"), target)
    assert contents(target) == {"index": "first"} and not (tmp_path / "fresh").exists()


def test_fresh_sibling_is_hidden_beside_the_target_and_empty(tmp_path):
    target = folder_with(tmp_path / "site", index="old")
    stale = folder_with(tmp_path / ".site.butterfly-new", half="written")
    fresh = fresh_sibling(target)
    assert fresh == stale and not fresh.exists()
    fresh.mkdir()
    (fresh / "index").write_text("new")
    swap_in(fresh, target)
    assert contents(target) == {"index": "new"} and sorted(p.name for p in tmp_path.iterdir()) == ["site"]


# --- recovery after a crash -------------------------------------------------------------------

def test_recover_restores_the_old_copy_when_the_swap_died_between_renames(tmp_path):
    folder_with(tmp_path / ".site.butterfly-old", index="old")        # target renamed away ...
    folder_with(tmp_path / ".site.butterfly-new", index="new")        # ... the new one not yet in
    folder_with(tmp_path / ".cache.old", keep="mine")                 # not ours: left alone
    folder_with(tmp_path / ".git", keep="mine")
    repairs = recover_swaps(tmp_path)
    assert contents(tmp_path / "site") == {"index": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.old", ".git", "site"]
    assert repairs[0] == f"restored {tmp_path / 'site'} from an interrupted build" and len(repairs) == 2


def test_recover_removes_the_leftover_of_a_finished_swap(tmp_path):
    folder_with(tmp_path / "docs", page="new")
    folder_with(tmp_path / ".docs.butterfly-old", page="old")
    assert recover_swap(tmp_path / "docs") == [f"removed {tmp_path / '.docs.butterfly-old'}, "
                                              "left by an interrupted build"]
    assert contents(tmp_path / "docs") == {"page": "new"} and sorted(p.name for p in tmp_path.iterdir()) == ["docs"]
    assert recover_swaps(tmp_path) == [] and recover_swaps(tmp_path / "absent") == []


def test_swap_in_after_a_crash_keeps_the_restored_copy_out_of_the_way(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_renameat2", None)
    folder_with(tmp_path / ".site.butterfly-old", index="old")
    swap_in(folder_with(tmp_path / "fresh", index="new"), tmp_path / "site")
    assert contents(tmp_path / "site") == {"index": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_a_process_killed_between_the_two_renames_is_recovered(tmp_path):
    """The fallback's crash window, for real: kill -9 after the first rename."""
    folder_with(tmp_path / "site", index="old")
    folder_with(tmp_path / "fresh", index="new")
    child = python_child("""
        import os, sys, time
        from pathlib import Path
        from generator import cache
        cache._renameat2 = None                  # a system without the exchange
        real_replace = os.replace
        def replace_then_hang(source, target):
            real_replace(source, target)
            if Path(target).name == ".site.butterfly-old":
                print("between", flush=True)
                time.sleep(60)
        cache.os.replace = replace_then_hang
        root = Path(sys.argv[1])
        cache.swap_in(root / "fresh", root / "site")
    """, str(tmp_path))
    try:
        wait_for_line(child, "between")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert not (tmp_path / "site").exists()               # the state the crash left
        recover_swaps(tmp_path)
        assert contents(tmp_path / "site") == {"index": "old"}
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()


# --- stage cache writes -----------------------------------------------------------------------

def test_write_keeps_the_entry_only_on_success(tmp_path):
    stage_cache = StageCache(tmp_path / "cache")
    with stage_cache.write("model", "k1") as out:
        (out / "weights").write_text("w")
    assert stage_cache.has("model", "k1") and contents(stage_cache.path("model", "k1")) == {"weights": "w"}
    with pytest.raises(RuntimeError):
        with stage_cache.write("model", "k2") as out:
            (out / "weights").write_text("half")
            raise RuntimeError("stage failed")
    assert not stage_cache.has("model", "k2")
    assert sorted(p.name for p in (tmp_path / "cache" / "model").iterdir()) == ["k1"]


def test_write_over_an_existing_entry_replaces_it(tmp_path):
    stage_cache = StageCache(tmp_path / "cache")
    for version in ("first", "second"):
        with stage_cache.write("figures", "k") as out:
            (out / version).write_text(version)
    assert contents(stage_cache.path("figures", "k")) == {"second": "second"}
    assert sorted(p.name for p in (tmp_path / "cache" / "figures").iterdir()) == ["k"]


WRITER = """
    import sys, time
    from pathlib import Path
    from generator.cache import StageCache
    from generator.childproc import raise_on_sigterm
    if sys.argv[2] == "orderly":
        raise_on_sigterm()
    try:
        with StageCache(Path(sys.argv[1])).write("image", "abc") as scratch:
            (scratch / "part").write_text("half written")
            print("writing", flush=True)
            time.sleep(60)
    except KeyboardInterrupt:
        print("cleaned up", flush=True)
        sys.exit(143)
"""


def scratch_folders(cache_root: Path) -> list[str]:
    return sorted(p.name for p in (cache_root / "image").iterdir())


@pytest.mark.parametrize("mode", ["orderly", "default"])
def test_sigterm_during_write(tmp_path, mode):
    child = python_child(WRITER, str(tmp_path / "cache"), mode)
    try:
        wait_for_line(child, "writing")
        assert [name.startswith(".abc-") for name in scratch_folders(tmp_path / "cache")] == [True]
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == (143 if mode == "orderly" else -signal.SIGTERM)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()
    # With the handler SIGTERM unwinds and the scratch folder goes; without it, it stays behind.
    assert len(scratch_folders(tmp_path / "cache")) == (0 if mode == "orderly" else 1)


def test_sweep_removes_what_a_killed_writer_left(tmp_path):
    cache_root = tmp_path / "cache"
    stage_cache = StageCache(cache_root)
    with stage_cache.write("image", "kept") as out:
        (out / "done").write_text("yes")
    child = python_child(WRITER, str(cache_root), "orderly")
    try:
        wait_for_line(child, "writing")
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stderr.close()
    leftovers = [cache_root / "image" / name for name in scratch_folders(cache_root) if name != "kept"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".abc-")
    (cache_root / "notes.txt").write_text("a file, not a stage")
    assert sweep_scratch(cache_root) == leftovers
    assert scratch_folders(cache_root) == ["kept"] and contents(cache_root / "image" / "kept") == {"done": "yes"}
    assert sweep_scratch(cache_root) == [] and sweep_scratch(tmp_path / "absent") == []


def test_sweep_is_fast_on_a_large_cache(tmp_path):
    cache_root = tmp_path / "cache"
    for stage in ("image", "figures"):
        for index in range(300):
            (cache_root / stage / f"{index:020x}").mkdir(parents=True)
    start = time.perf_counter()
    assert sweep_scratch(cache_root) == []
    assert time.perf_counter() - start < 1.0
    assert len(os.listdir(cache_root / "image")) == 300
