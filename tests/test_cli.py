import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import processes_with
from generator import cli

REPO = Path(__file__).resolve().parents[1]


def butterfly(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "generator", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_user_error_is_one_line_and_exit_2(project):
    config = project(training={"epochs": 0})
    result = butterfly("check", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"butterfly: error: {config}: training.epochs: must be >= 1, got 0"]
    assert "Traceback" not in result.stderr


def test_missing_config_is_a_user_error(tmp_path):
    result = butterfly("train", "--config", str(tmp_path / "none.yml"))
    assert result.returncode == 2 and "config file not found" in result.stderr


def test_internal_error_exits_1(monkeypatch, project, capsys):
    import generator.pipeline

    def broken(config, **options):
        raise RuntimeError("boom")

    monkeypatch.setattr(generator.pipeline, "check_all", broken)
    assert cli.main(["check", "--config", str(project())]) == 1
    assert "internal error: RuntimeError: boom (run with -v for the traceback)" in capsys.readouterr().err


def test_check_builds_nothing(project):
    config = project()
    result = butterfly("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "2 images" in result.stdout
    assert not (config.parent.parent / "build").exists()


@pytest.mark.slow
def test_second_train_reuses_the_model(project):
    config = project()
    first = butterfly("train", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert "training Tiny VGG" in first.stderr and "test accuracy" in first.stdout
    model_files = list((config.parent.parent / "build" / "cache" / "model").glob("*/model.keras"))
    assert len(model_files) == 1
    mtime = model_files[0].stat().st_mtime_ns

    second = butterfly("train", "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert "unchanged: reusing" in second.stderr and "training Tiny VGG" not in second.stderr
    assert second.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]  # the same test accuracy
    assert model_files[0].stat().st_mtime_ns == mtime

    changed = butterfly("train", "--config", str(project(training={"seed": 2})))
    assert changed.returncode == 0 and "training Tiny VGG" in changed.stderr


@pytest.mark.parametrize("value", ["0", "two"])
def test_jobs_must_be_a_positive_whole_number(project, value):
    result = butterfly("build", "--config", str(project()), "--jobs", value)
    assert result.returncode == 2 and "--jobs" in result.stderr
    assert not (project().parent.parent / "build").exists()


def test_clean_removes_build_outputs_only(tmp_path):
    (tmp_path / "site_config").mkdir()
    config = tmp_path / "site_config" / "site.yml"
    config.write_text("images: []\n")
    for name in ("build/cache/x", "site/assets", "content"):
        (tmp_path / name).mkdir(parents=True)
    result = butterfly("clean", "--config", str(config))
    assert result.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content", "site_config"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_a_build_leaves_no_process_behind(project):
    """The command ends without the interpreter's teardown (see cli.run): the drawing workers,
    their fork server and the MkDocs processes must be stopped by then, not orphaned."""
    marker = f"BUTTERFLY_TEST_MARK={os.getpid()}-{id(project)}"
    name, _, value = marker.partition("=")
    env = {**os.environ, "PYTHONPATH": str(REPO), name: value}
    config = project(site={"languages": ["en", "zh"]})
    log = config.parent / "build.log"
    with log.open("w") as output:  # a file, not a pipe: a process left behind would hold a pipe open
        result = subprocess.run([sys.executable, "-m", "generator", "build", "--config", str(config), "--jobs", "2"],
                                env=env, stdout=output, stderr=subprocess.STDOUT, timeout=600)
    assert result.returncode == 0, log.read_text()
    assert "drawing with 2 processes" in log.read_text()
    deadline = time.monotonic() + 5  # a helper that saw its pipe close may still be exiting
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    commands = [command[:120] for command in left.values()]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert commands == []
