"""Compare the per-image records of two builds, number by number (and their arrays, bit by bit).

    python bench/diff_manifests.py OLD/build NEW/build

Every number and string of every image record (clean and adversarial probabilities, epsilon,
threshold, sweep frames, noise control, every layer's divergences, the butterfly facts, ...)
of each experiment of OLD/build/manifest.json is compared with NEW's, exactly; so are the
arrays each record's figures are drawn from (arrays.npz in each build's cache). What depends
on the code version or the machine rather than on the analysis is left out: the figures'
records (their bytes follow the figure code), cache paths, and the library versions.
Prints every difference and a summary; exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

# Keys of an image record that point into a build's cache or describe its figures.
NOT_ANALYSIS = {"figures", "figure_dirs", "arrays"}


def walk(old, new, path: str, out: list[str], counts: dict) -> None:
    """Append to ``out`` every difference between two JSON values; count what was compared."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                out.append(f"{path}.{key}: only in {'new' if key not in old else 'old'}")
            else:
                walk(old[key], new[key], f"{path}.{key}", out, counts)
    elif isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            out.append(f"{path}: {len(old)} items, now {len(new)}")
        for i, (a, b) in enumerate(zip(old, new)):
            walk(a, b, f"{path}[{i}]", out, counts)
    elif isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool):
        counts["numbers"] += 1
        same = old == new or (isinstance(old, float) and math.isnan(old) and math.isnan(new))
        if not same or type(old) is not type(new):
            out.append(f"{path}: {old!r} -> {new!r}")
    else:
        counts["other"] += 1
        if old != new:
            out.append(f"{path}: {old!r} -> {new!r}")


def compare_arrays(old_file: Path, new_file: Path, path: str, out: list[str], counts: dict) -> None:
    with np.load(old_file) as old, np.load(new_file) as new:
        if set(old.files) != set(new.files):
            out.append(f"{path}: arrays {sorted(set(old.files) ^ set(new.files))} only on one side")
        for name in sorted(set(old.files) & set(new.files)):
            counts["array values"] += old[name].size
            if old[name].dtype != new[name].dtype or not np.array_equal(old[name], new[name]):
                out.append(f"{path}: array {name} differs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the build/ folder of the first build")
    parser.add_argument("new", type=Path, help="the build/ folder of the second build")
    args = parser.parse_args()
    manifests = [json.loads((folder / "manifest.json").read_text(encoding="utf-8")) for folder in (args.old, args.new)]
    out: list[str] = []
    counts = {"numbers": 0, "other": 0, "array values": 0}
    images = 0
    old_experiments = {e["id"]: e for e in manifests[0]["experiments"]}
    for experiment in manifests[1]["experiments"]:
        if experiment["id"] not in old_experiments:
            out.append(f"experiment {experiment['id']}: only in new")
            continue
        old = old_experiments[experiment["id"]]
        for key in ("attack_settings", "dataset", "training", "robustness", "butterfly", "failures"):
            walk(old.get(key), experiment.get(key), f"{experiment['id']}.{key}", out, counts)
        old_images = {image["id"]: image for image in old["images"]}
        for image in experiment["images"]:
            where = f"{experiment['id']}/{image['id']}"
            if image["id"] not in old_images:
                out.append(f"{where}: only in new")
                continue
            images += 1
            before = old_images[image["id"]]
            walk({k: v for k, v in before.items() if k not in NOT_ANALYSIS},
                 {k: v for k, v in image.items() if k not in NOT_ANALYSIS}, where, out, counts)
            compare_arrays(args.old / "cache" / before["arrays"], args.new / "cache" / image["arrays"], where,
                           out, counts)
    for line in out:
        print(line)
    print(f"{images} images compared: {counts['numbers']:,} numbers, {counts['other']:,} other values, "
          f"{counts['array values']:,} array values; {len(out)} differences")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main())
