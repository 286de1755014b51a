"""Benchmark: whole builds against the time of `import tensorflow`, measured in the same run.

Run by hand:  .venv/bin/python bench/bench_build.py [--repeats 3] [--code PATH ...] [--default]
                  [--config-for PATH=FILE ...]

Machines here differ two- to threefold from one session to the next, so every time is printed
as a ratio to the median time of `python -c "import tensorflow"` (a separate process, like a
build), measured in the same run. Each build runs as its own process in a scratch project (a
copy of content/ and one config), on the code of each --code folder (default: this checkout),
so an old and a new version compare in one run (an old version that reads another config format
is given its own copy of the 21-photo config with --config-for PATH=FILE):

1. cold build of site_config/cnn_explainer.yml (the 21 photos, English; empty build/ cache):
   target <= 3x import tensorflow; its stages (build/timings.json) are printed too, as ratios;
2. the same build again with nothing changed (target <= 0.1x the cold build), and after a
   change of the site title only (pages and MkDocs run again; every figure of build/docs is a
   hard link into the cache, not a copy);
3. one image added to the experiment: target <= 1.5x import tensorflow; and in
   `butterfly serve` (models loaded, workers warm): target < 2 s; and in a `butterfly serve`
   started on that built site (a first build with nothing to do), once it is ready;
5. with --default, a cold build of the default site (training included): target <= 90 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def environment(code: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2"}


def timed_run(command: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")
    return seconds, result.stderr


def import_tensorflow(code: Path) -> float:
    return timed_run([PYTHON, "-c", "import tensorflow"], REPO, environment(code))[0]


def scratch_project(root: Path, config_source: Path) -> Path:
    shutil.copytree(REPO / "content", root / "content")
    (root / "site_config").mkdir()
    config = root / "site_config" / "site.yml"
    shutil.copy(config_source, config)
    return config


def build(code: Path, config: Path, *extra: str) -> tuple[float, str]:
    return timed_run([PYTHON, "-m", "generator", "build", "--config", str(config), *extra], config.parent.parent,
                     environment(code))


def add_image(config: Path, name: str = "panda_mirrored", flip=None) -> None:
    """A new photo (panda_1 mirrored, or flipped another way) appended to the config's images."""
    from PIL import Image

    root = config.parent.parent
    with Image.open(root / "content" / "cnn-explainer" / "panda_1.jpeg") as image:
        image.transpose(flip or Image.Transpose.FLIP_LEFT_RIGHT).save(root / "content" / f"{name}.png")
    data = yaml.safe_load(config.read_text())
    data["images"].append({"path": f"content/{name}.png", "label": "red panda"})
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def linked_figures(root: Path) -> tuple[int, int]:
    """(figure files in build/docs, how many of them are hard links into the cache)."""
    files = [p for p in (root / "build" / "docs").rglob("figures/**/*") if p.is_file()]
    return len(files), sum(1 for p in files if p.stat().st_nlink > 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_add_image(code: Path, config: Path, ready_wait: float = 0.0, **image) -> float:
    """Seconds `butterfly serve` reports for the rebuild after one image is added, once serve
    says it is ready to rebuild (waiting ``ready_wait`` seconds at most for that)."""
    import queue
    import threading

    env = environment(code)
    process = subprocess.Popen([PYTHON, "-m", "generator", "serve", "--config", str(config),
                                "--addr", f"127.0.0.1:{free_port()}"], cwd=config.parent.parent, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               # Ctrl-C stops it even when this script runs with SIGINT ignored (nohup &)
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)],
                     daemon=True).start()

    def until(pattern: str, seconds: float) -> re.Match | None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                raise SystemExit("serve stopped")
            if "error" in line:
                raise SystemExit(f"serve: {line.strip()}")
            if found := re.search(pattern, line):
                return found
        return None

    try:
        if not until("serving http", 600):
            raise SystemExit("serve did not start serving")
        until("ready to rebuild", ready_wait)
        add_image(config, **image)
        found = until(r"rebuilt in ([0-9.]+) s", 600)
        if not found:
            raise SystemExit("serve did not rebuild")
        return float(found.group(1))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def measure_once(code: Path, results: dict[str, list[float]], stages: dict[str, list[float]], default: bool,
                 photos_config: Path) -> None:
    """One round of every measurement on the code of ``code``, appended to ``results`` (and the
    cold build's stage times to ``stages``)."""

    def note(key: str, seconds: float) -> None:
        results.setdefault(key, []).append(seconds)

    serve_says_rebuilt = "rebuilt in" in (code / "generator" / "serve.py").read_text()  # older ones do not say
    note("import tensorflow", import_tensorflow(code))
    with tempfile.TemporaryDirectory(prefix="bench-build-") as scratch:
        config = scratch_project(Path(scratch), photos_config)
        note("cold build (21 photos)", build(code, config)[0])
        timings = json.loads((Path(scratch) / "build" / "timings.json").read_text())
        for stage, seconds in timings["stages"].items():
            stages.setdefault(stage, []).append(seconds)
        note("rebuild, nothing changed", build(code, config)[0])
        data = yaml.safe_load(config.read_text())
        data["site"]["title"] = data["site"]["title"] + " (retitled)"
        config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        note("rebuild, title changed", build(code, config)[0])
        files, links = linked_figures(Path(scratch))
        print(f"  {code}: after the title change, {links} of {files} figure files in build/docs are hard links")
        add_image(config)
        note("one image added", build(code, config)[0])
        if serve_says_rebuilt:
            from PIL import Image

            note("serve from a built site: +1", serve_add_image(code, config, 20, name="panda_flipped",
                                                                flip=Image.Transpose.FLIP_TOP_BOTTOM))
    if serve_says_rebuilt:
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
            config = scratch_project(Path(scratch), photos_config)
            note("serve: one image added", serve_add_image(code, config))
    note("import tensorflow", import_tensorflow(code))
    if default:
        with tempfile.TemporaryDirectory(prefix="bench-default-") as scratch:
            config = scratch_project(Path(scratch), REPO / "site_config" / "site.yml")
            note("cold build (default site)", build(code, config)[0])


def report(code: Path, medians: dict, stages: dict) -> None:
    tf, cold = medians["import tensorflow"], medians["cold build (21 photos)"]
    print(f"\n== {code}  (medians; import tensorflow {tf:.2f} s)")
    print("cold build's stages: " + ", ".join(f"{stage} {statistics.median(values) / tf:.2f}x"
                                               for stage, values in stages.items()
                                               if statistics.median(values) >= 0.05))
    targets = {"cold build (21 photos)": ("x import tensorflow", tf, 3.0),
               "rebuild, nothing changed": ("x cold build", cold, 0.1),
               "rebuild, title changed": ("x cold build", cold, None),
               "one image added": ("x import tensorflow", tf, 1.5),
               "serve: one image added": ("s", None, 2.0),
               "serve from a built site: +1": ("s", None, None),
               "cold build (default site)": ("s", None, 90.0)}
    for key, seconds in medians.items():
        if key == "import tensorflow":
            continue
        unit, base, target = targets[key]
        ratio = f"{seconds / base:6.2f}{unit}" if base else f"{seconds:6.1f} {unit}"
        aim = f"(target <= {target}{unit if base else ' s'})" if target is not None else ""
        print(f"{key:<28}{seconds:8.1f} s  {ratio}  {aim}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code", type=Path, action="append",
                        help="a checkout whose generator package to run (repeatable; default this one)")
    parser.add_argument("--default", action="store_true", help="also a cold build of the default site")
    parser.add_argument("--config-for", action="append", default=[], metavar="PATH=FILE",
                        help="the 21-photo config the checkout PATH reads (default site_config/cnn_explainer.yml)")
    args = parser.parse_args()
    codes = [path.resolve() for path in args.code] if args.code else [REPO]
    photos_configs = {code: REPO / "site_config" / "cnn_explainer.yml" for code in codes}
    for pair in args.config_for:
        path, _, file = pair.partition("=")
        photos_configs[Path(path).resolve()] = Path(file).resolve()
    results: dict[Path, dict[str, list[float]]] = {code: {} for code in codes}
    stages: dict[Path, dict[str, list[float]]] = {code: {} for code in codes}
    for _ in range(args.repeats):  # versions interleaved, so a change of load hits them alike
        for code in codes:
            measure_once(code, results[code], stages[code], args.default, photos_configs[code])
    medians = {code: {key: statistics.median(values) for key, values in results[code].items()} for code in codes}
    for code in codes:
        report(code, medians[code], stages[code])
    print(json.dumps({str(code): values for code, values in medians.items()}, indent=1))


if __name__ == "__main__":
    main()
