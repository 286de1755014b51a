"""Training data: the embedded Fashion-MNIST subset and IDX directories.

Every loader returns a :class:`Dataset` whose images are float32, NHWC, in [0, 1].
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.errors import UserError
from generator.inputs.paths import shown_path

CONTENT_DIR = Path(__file__).resolve().parents[2] / "content"
EMBEDDED_DIR = CONTENT_DIR / "fashion-mnist"

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# File names as Fashion-MNIST (and MNIST) publish them; a ".gz" suffix is optional.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """A labelled image set split into training and test parts.

    ``x_*`` are float32 arrays of shape (N, H, W, C) with values in [0, 1];
    ``y_*`` are int64 class indices of shape (N,).
    """

    name: str | dict  # text, or {language: text}
    source: str
    class_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    provenance: str | dict  # text, or {language: text}
    licence: str | dict

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """SHA-256 over the arrays and class names: the data part of cache keys."""
        digest = hashlib.sha256()
        digest.update("\n".join(self.class_names).encode())
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into an array of its stated shape."""
    path = Path(path)
    shown = shown_path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise UserError(f"IDX file not found: {shown}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"IDX file {shown} cannot be read: {getattr(error, 'strerror', None) or error}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"not an IDX file: {shown}")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"IDX file {shown} is truncated: its header is cut short")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise UserError(f"IDX file {shown} is truncated or damaged: {len(raw):,} bytes, expected {expected:,}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (deterministic bytes: mtime 0)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(header + array.tobytes())


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise UserError(f"IDX directory {shown_path(directory)} has no {stem} (or {stem}.gz)")


def _images_to_float(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, H, W, C) float32 in [0, 1]."""
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images.astype(np.float32) / 255.0


def load_idx_dataset(directory: Path, class_names: list[str] | None = None, *, name: str | None = None,
                     source: str = "idx", provenance: str | dict = "", licence: str = "") -> Dataset:
    """Load the four IDX files of an MNIST-style directory."""
    directory = Path(directory)
    shown = shown_path(directory)
    if not directory.is_dir():
        raise UserError(f"IDX directory not found: {shown}")
    arrays = {key: read_idx(_find_idx(directory, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim not in (3, 4) or labels.ndim != 1:
            raise UserError(f"IDX directory {shown}: {split} images must be (N, H, W) or (N, H, W, C) and labels (N,), "
                            f"got {images.shape} and {labels.shape}")
        if len(images) != len(labels):
            raise UserError(f"IDX directory {shown}: {split} images and labels differ in count "
                            f"({len(images):,} and {len(labels):,})")
        if len(images) == 0:
            raise UserError(f"IDX directory {shown}: no {split} images")
    all_labels = np.concatenate([arrays["train_labels"], arrays["test_labels"]])
    if all_labels.min() < 0:
        raise UserError(f"IDX directory {shown}: labels must be class indices 0, 1, 2, ...; found "
                        f"{int(all_labels.min())}")
    n_classes = int(all_labels.max()) + 1
    if len(np.unique(all_labels)) < 2:
        raise UserError(f"IDX directory {shown}: every label is {int(all_labels[0])}, so there is one class only; "
                        "a classifier needs at least two")
    if class_names is None:
        class_names = FASHION_MNIST_CLASSES if n_classes == 10 else [str(i) for i in range(n_classes)]
    if len(class_names) < n_classes:
        raise UserError(f"data.class_names: the IDX files in {shown} have {n_classes} classes but "
                        f"{len(class_names)} class names are given")
    return Dataset(
        name=name or directory.name,
        source=source,
        class_names=list(class_names),
        x_train=_images_to_float(arrays["train_images"]),
        y_train=arrays["train_labels"].astype(np.int64),
        x_test=_images_to_float(arrays["test_images"]),
        y_test=arrays["test_labels"].astype(np.int64),
        provenance=provenance or f"IDX files from {shown}",
        licence=licence,
    )


# How the pages describe the embedded subset in Chinese (the English text is its README's).
EMBEDDED_PROVENANCE_ZH = ("Fashion-MNIST（Zalando Research；Xiao、Rasul、Vollgraf，2017）的分层子集——从原始训练集和测试集中"
                          "用固定随机种子为十个类别各抽取 2,000 张训练图片和 100 张测试图片，保留原始的 IDX 格式（gzip 压缩）")


def load_embedded() -> Dataset:
    """The stratified Fashion-MNIST subset shipped under ``content/fashion-mnist``.

    Its name, provenance and licence are given in English and Chinese: {"en": ..., "zh": ...}."""
    provenance = (EMBEDDED_DIR / "README.md").read_text(encoding="utf-8").split("\n\n")[1].strip()
    return load_idx_dataset(
        EMBEDDED_DIR, FASHION_MNIST_CLASSES, source="embedded",
        name={"en": "Fashion-MNIST (embedded subset)", "zh": "Fashion-MNIST（内置子集）"},
        provenance={"en": provenance, "zh": EMBEDDED_PROVENANCE_ZH},
        licence={"en": "MIT (Zalando SE)", "zh": "MIT（Zalando SE）"},
    )
