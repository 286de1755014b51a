"""Re-create the embedded Fashion-MNIST subset and the default images from the original IDX files.

    python content/fashion-mnist/make_subset.py [/usr/share/datasets/fashion-mnist]

Debian's package ``dataset-fashion-mnist`` installs the original files in the default directory.
The selection is stratified and seeded, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from generator.inputs.datasets import FASHION_MNIST_CLASSES, IDX_FILES, _find_idx, read_idx, write_idx  # noqa: E402

SEED = 20240101
TRAIN_PER_CLASS = 2000
TEST_PER_CLASS = 100
# One held-out image (neither in the subset's training nor test part) for each of these classes.
DEFAULT_IMAGE_CLASSES = [9, 0, 1, 2, 3, 5, 7, 8]


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` random indices of each class, returned sorted."""
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default="/usr/share/datasets/fashion-mnist", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    full = {key: read_idx(_find_idx(args.source, stem)) for key, stem in IDX_FILES.items()}

    train = stratified_indices(full["train_labels"], TRAIN_PER_CLASS, rng)
    test = stratified_indices(full["test_labels"], TEST_PER_CLASS, rng)
    for key, stem in IDX_FILES.items():
        picked = train if key.startswith("train") else test
        write_idx(HERE / f"{stem}.gz", full[key][picked])

    held_out = np.setdiff1d(np.arange(len(full["test_labels"])), test)
    images_dir = HERE.parent / "images"
    images_dir.mkdir(exist_ok=True)
    for label in DEFAULT_IMAGE_CLASSES:
        index = int(rng.choice(held_out[full["test_labels"][held_out] == label]))
        name = f"{slug(FASHION_MNIST_CLASSES[label])}-{index}.png"
        Image.fromarray(full["test_images"][index], mode="L").save(images_dir / name, optimize=True)
        print(f"  - path: content/images/{name}\n    label: {FASHION_MNIST_CLASSES[label]}")
    print(f"subset: {len(train)} training and {len(test)} test images written to {HERE}")


if __name__ == "__main__":
    main()
