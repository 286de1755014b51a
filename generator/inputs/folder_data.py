"""A dataset from a folder of images with one sub-folder per class.

Layout::

    root/
      cat/   a.jpg b.png ...
      dog/   c.jpg ...

Class names are the sub-folder names, sorted (or an explicit order); hidden entries (names
starting with '.') and files whose suffix is not an image suffix are ignored; sub-folders are
not searched recursively. Every image goes through the image policy of
:mod:`generator.inputs.images`. The split into training and test images is stratified (each class
contributes ``validation_split`` of its images to the test part) and seeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from generator.errors import UserError, quote_value, suggest
from generator.inputs.datasets import Dataset
from generator.inputs.images import IMAGE_SUFFIXES, infer_input_shape, load_image
from generator.inputs.paths import shown_path


def list_class_folders(root: str | Path, class_names: Sequence[str] | None = None) -> dict[str, list[Path]]:
    """{class name: sorted image files} for the class sub-folders of ``root``.

    With ``class_names`` the folders are taken in that order and must all exist; otherwise
    every non-hidden sub-folder is a class, sorted by name.
    """
    root = Path(root)
    shown = shown_path(root)
    if not root.exists():
        raise UserError(f"data folder not found: {shown}")
    if not root.is_dir():
        raise UserError(f"data folder {shown} is not a folder")
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not present:
        raise UserError(f"data folder {shown} has no class sub-folders (expected one sub-folder of images per class)")
    if class_names is None:
        names = present
    else:
        names = list(class_names)
        for name in names:
            if name not in present:
                raise UserError(f"data folder {shown} has no sub-folder for class {quote_value(name)}"
                                f"{suggest(name, present)}")
    folders: dict[str, list[Path]] = {}
    for name in names:
        folder = root / name
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"class folder {shown_path(folder)} has no images (expected "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))})")
        folders[name] = files
    if len(folders) < 2:
        raise UserError(f"data folder {shown} has only one class ({quote_value(names[0])}); "
                        "a classifier needs at least two")
    return folders


def read_class_folders(root: str | Path, class_names: Sequence[str] | None = None,
                       input_shape: Sequence[int] | None = None
                       ) -> tuple[np.ndarray, np.ndarray, list[str], list[Path]]:
    """Load every image under ``root``: (x (N, H, W, C) float32 in [0, 1], y (N,) int64, class names, files).

    ``input_shape`` defaults to the first image's (H, W) with C from its mode.
    """
    folders = list_class_folders(root, class_names)
    names = list(folders)
    files = [path for name in names for path in folders[name]]
    labels = np.array([index for index, name in enumerate(names) for _ in folders[name]], dtype=np.int64)
    if input_shape is None:
        input_shape = infer_input_shape(files[0])
    shape = tuple(int(d) for d in input_shape)
    x = np.empty((len(files),) + shape, dtype=np.float32)
    for i, path in enumerate(files):
        x[i] = load_image(path, shape)   # names the file on failure
    return x, labels, names, files


def stratified_split(labels: np.ndarray, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), each shuffled; every class gives round(n * split) images to test.

    A class of two or more images keeps at least one image on each side.
    """
    if not 0.0 < validation_split < 1.0:
        raise UserError(f"data.validation_split must be between 0 and 1 (exclusive), got {validation_split}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * validation_split))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        else:
            n_test = 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_folder_dataset(root: str | Path, input_shape: Sequence[int] | None = None, validation_split: float = 0.2,
                        seed: int = 0, *, class_names: Sequence[str] | None = None, name: str | None = None,
                        licence: str = "not stated (user-supplied images)") -> Dataset:
    """A :class:`Dataset` from a folder with one sub-folder of images per class.

    ``input_shape`` (H, W, C) defaults to the first image's size and channels. Images are split
    per class into training and test parts by ``validation_split``, reproducibly for a ``seed``.
    """
    if not 0.0 < validation_split < 1.0:
        raise UserError(f"data.validation_split must be between 0 and 1 (exclusive), got {validation_split}")
    root = Path(root)
    x, y, names, files = read_class_folders(root, class_names, input_shape)
    train, test = stratified_split(y, validation_split, seed)
    counts = ", ".join(f"{n} {int((y == i).sum())}" for i, n in enumerate(names))
    return Dataset(
        name=name or root.resolve().name,
        source="folder",
        class_names=names,
        x_train=x[train], y_train=y[train],
        x_test=x[test], y_test=y[test],
        provenance=(f"{len(files)} images from the folder {shown_path(root)} (per class: {counts}); "
                    f"{len(test)} held out for testing with validation_split {validation_split}, seed {seed}"),
        licence=licence,
    )
