"""Cold `butterfly train` on the default config: wall time and test accuracy.

    python bench/bench_train.py [--repeats 3]

Each repeat trains from an empty cache in a scratch folder (the default config with absolute
image paths), as a separate process, so TensorFlow's import is part of the time.
Targets: accuracy >= 85 %, median wall time <= 60 s on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def cold_train(scratch: Path) -> tuple[float, dict]:
    config = yaml.safe_load((REPO / "site_config" / "site.yml").read_text())
    for entry in config["images"]:
        entry["path"] = str(REPO / entry["path"])
    (scratch / "site_config").mkdir()
    (scratch / "site_config" / "site.yml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "generator", "train", "--config", str(scratch / "site_config" / "site.yml")],
                   cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, json.loads((scratch / "build" / "manifest.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times, accuracies = [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as scratch:
            seconds, manifest = cold_train(Path(scratch))
        training = manifest["training"]
        times.append(seconds)
        accuracies.append(training["test_accuracy"])
        print(f"run {repeat + 1}: {seconds:.1f} s wall ({training['seconds']:.1f} s in fit), "
              f"test accuracy {training['test_accuracy']:.2%}", flush=True)
    print(f"cold train: median {statistics.median(times):.1f} s wall (target <= 60 s, ratio "
          f"{statistics.median(times) / 60:.2f}); test accuracy {statistics.median(accuracies):.2%} (target >= 85 %)")


if __name__ == "__main__":
    main()
