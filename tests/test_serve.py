"""`butterfly serve` on a built site: it serves it, loads what a rebuild uses meanwhile,
rebuilds only what an edit changed, and keeps serving the previous site when an edit is wrong."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import default_sigint, processes_with

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


class Serve:
    """A `butterfly serve` process and the lines it prints."""

    def __init__(self, config: Path, **env: str):
        self.process = subprocess.Popen([sys.executable, "-m", "generator", "serve", "--config", str(config),
                                         "--addr", "127.0.0.1:0"], cwd=config.parent.parent,
                                        env={**os.environ, "PYTHONPATH": str(REPO), **env},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        preexec_fn=default_sigint)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, pattern: str, seconds: float = 300) -> re.Match:
        """The first line from now on that matches ``pattern``; the lines before it go to ``seen``."""
        end = time.monotonic() + seconds
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {seconds} s:\n{''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"serve stopped before {pattern!r}:\n{''.join(self.seen)}")
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8")


def test_serve_loads_for_rebuilds_rebuilds_what_changed_and_leaves_nothing_behind(project):
    config = project()
    root = config.parent.parent
    built = subprocess.run([sys.executable, "-m", "generator", "build", "--config", str(config)], cwd=root,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    serve = Serve(config)
    try:
        base = serve.until(r"serving (http://127\.0\.0\.1:\d+/)").group(1)
        assert any("site is up to date" in line for line in serve.seen)
        assert "ankle-boot-5420" in fetch(base + "en/gallery/")
        serve.until(r"ready to rebuild \(1 model loaded\)")

        # One more image: only it is analysed and drawn, and its page is served.
        shutil.copy(REPO / "content" / "images" / "bag-1331.png", root / "images")
        project(images=[{"path": "images/ankle-boot-5420.png", "label": "Ankle boot"},
                        {"path": "images/trouser-8183.png", "label": "Trouser"},
                        {"path": "images/bag-1331.png", "label": "Bag"}])
        serve.seen.clear()
        serve.until(r"rebuilt in [0-9.]+ s")
        log = "".join(serve.seen)
        assert "analysing 1 of 3 images" in log and log.count("(computed)") == 1, log
        manifest = json.loads((root / "build" / "manifest.json").read_text())
        experiment = manifest["experiments"][0]
        assert [image["id"] for image in experiment["images"]][-1] == "bag-1331"
        assert "bag" in fetch(f"{base}en/{experiment['id']}/bag-1331/").lower()

        # A config that does not load: serve says why and goes on serving the last site.
        good = config.read_text()
        config.write_text(good + "\nimages: [unclosed\n")
        serve.until(r"error: .*still serving the previous site")
        assert "bag" in fetch(f"{base}en/{experiment['id']}/bag-1331/").lower()
        # Fixed again: the site is rebuilt (nothing new to compute).
        config.write_text(good)
        serve.until(r"rebuilt in [0-9.]+ s|site is up to date")
    finally:
        code = serve.stop()
    assert code == 130, "".join(serve.seen)

    # Killed outright once ready, serve leaves no process behind: not the MkDocs processes, not
    # the drawing workers nor their fork server (each worker held its liveness pipe open).
    if Path("/proc/self/environ").exists():
        marker = f"{os.getpid()}-{id(config)}"
        serve = Serve(config, BUTTERFLY_TEST_MARK=marker)
        serve.until(r"ready to rebuild")
        time.sleep(1)  # a process that stops with the thread that started it would be gone by now
        started = processes_with(marker).values()
        assert any(b"mkdocs_worker" in command for command in started)  # still running, ready to build
        assert any(b"forkserver" in command for command in started)
        serve.process.kill()
        serve.process.wait()
        deadline = time.monotonic() + 10
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_with(marker) == {}
