"""Datasets fetched over the network, with a cache and checksums, turned into :class:`Dataset` objects.

Recipes: ``fashion-mnist`` (the four IDX files), ``cifar-10`` (the python tarball) and
``tiny-imagenet-cnn-explainer`` (the ten Tiny ImageNet classes CNN Explainer's Tiny VGG was
trained on, 64x64 colour, taken from the Tiny ImageNet zip).

Download cache: files land in ``$BUTTERFLY_CACHE/downloads/<recipe>/`` (default
``~/.cache/butterfly``); a file already there with the right checksum is used without any
network access. A download is written to a temporary file in the same folder, checked against
its checksum, synced and only then renamed into place, so an interrupted or corrupted download
never leaves a partial file behind. Mirrors: ``base_url`` (or ``$BUTTERFLY_DOWNLOAD_URL``)
replaces the recipe's own address; each file is fetched as ``<base_url>/<file name>``.
"""

from __future__ import annotations

import dataclasses
import http.client
import importlib
import io
import os
import pickle
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from generator.inputs.datasets import FASHION_MNIST_CLASSES, Dataset, load_idx_dataset
from generator.cache import file_digest
from generator.errors import UserError, shorten, suggest
from generator.inputs.paths import shown_path

ENV_CACHE = "BUTTERFLY_CACHE"
ENV_BASE_URL = "BUTTERFLY_DOWNLOAD_URL"
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a recipe: its name (in the cache and at the end of the URL) and checksums."""

    name: str
    md5: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    base_url: str
    files: tuple[RemoteFile, ...]
    licence: str
    citation: str


# Checksums: only values published by the dataset authors, or recorded identically by several
# independent loaders, are listed. No SHA-256 is published for any of these files, so MD5 is used.
RECIPES: dict[str, Recipe] = {
    "fashion-mnist": Recipe(
        name="fashion-mnist",
        title="Fashion-MNIST",
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        # MD5s as published in the authors' README (zalandoresearch/fashion-mnist, "Get the Data").
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", md5="25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", md5="bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", md5="bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        licence="MIT (Zalando SE)",
        citation="Han Xiao, Kashif Rasul, Roland Vollgraf, Fashion-MNIST (2017), arXiv:1708.07747",
    ),
    "cifar-10": Recipe(
        name="cifar-10",
        title="CIFAR-10",
        base_url="https://www.cs.toronto.edu/~kriz/",
        # MD5 as published on the dataset's page (www.cs.toronto.edu/~kriz/cifar.html, "python version").
        files=(RemoteFile("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a"),),
        licence="no licence stated by the authors; cite the technical report",
        citation="Alex Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009)",
    ),
    "tiny-imagenet-cnn-explainer": Recipe(
        name="tiny-imagenet-cnn-explainer",
        title="Tiny ImageNet, CNN Explainer's ten classes",
        base_url="http://cs231n.stanford.edu/",
        # The authors publish no checksum; this MD5 is the one recorded identically by several
        # independent dataset loaders for this URL (not verified against an authors' statement).
        files=(RemoteFile("tiny-imagenet-200.zip", md5="90528d7ca1a48142e341f4ef8d21d0de"),),
        licence="ImageNet images: ImageNet terms of access (non-commercial research and education only)",
        citation="Tiny ImageNet (Stanford CS231n), a subset of ImageNet (Deng et al. 2009)",
    ),
}

# CNN Explainer's classes, in the order of its model's outputs, with their WordNet ids. Each id
# was checked against copies of ImageNet's synset list (its name) and of Tiny ImageNet's 200
# class ids (its membership); the loader also fails loudly if a class has no images in the zip.
CNN_EXPLAINER_WNIDS: tuple[tuple[str, str], ...] = (
    ("lifeboat", "n03662601"),
    ("ladybug", "n02165456"),
    ("pizza", "n07873807"),
    ("bell pepper", "n07720875"),
    ("school bus", "n04146614"),
    ("koala", "n01882714"),
    ("espresso", "n07920052"),
    ("red panda", "n02509815"),
    ("orange", "n07747607"),
    ("sport car", "n04285008"),
)

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --- cache and download ---------------------------------------------------------------------

def cache_root(cache: str | Path | None = None) -> Path:
    """``cache`` if given, else ``$BUTTERFLY_CACHE``, else ``~/.cache/butterfly``."""
    if cache is not None:
        return Path(cache).expanduser()
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "butterfly").expanduser()


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"data.recipe: unknown recipe '{name}'{suggest(name, RECIPES)}; "
                        f"available: {', '.join(RECIPES)}")
    return RECIPES[name]


def _checksum_problem(path: Path, remote: RemoteFile) -> str | None:
    """None if ``path`` matches every checksum the recipe records, else what differs."""
    for algorithm, expected in (("md5", remote.md5), ("sha256", remote.sha256)):
        if expected is not None:
            actual = file_digest(path, algorithm)
            if actual != expected.lower():
                return f"its {algorithm.upper()} is {actual}, expected {expected}"
    return None


def fetch(recipe: str | Recipe, cache: str | Path | None = None, base_url: str | None = None, *,
          progress: bool = True, timeout: float = 30.0) -> dict[str, Path]:
    """Make sure every file of ``recipe`` is in the cache with the right checksum; {file name: path}.

    Files already cached and intact are not downloaded again (no network access at all).
    """
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    folder = cache_root(cache) / "downloads" / recipe.name
    base = base_url or os.environ.get(ENV_BASE_URL) or recipe.base_url
    paths = {}
    for remote in recipe.files:
        target = folder / remote.name
        if not (target.is_file() and _checksum_problem(target, remote) is None):
            download_file(base.rstrip("/") + "/" + remote.name, target, remote, progress=progress, timeout=timeout)
        paths[remote.name] = target
    return paths


def download_file(url: str, target: str | Path, remote: RemoteFile | None = None, *, progress: bool = True,
                  timeout: float = 30.0, stream: TextIO | None = None) -> Path:
    """Download ``url`` to ``target`` atomically, verifying ``remote``'s checksums before the rename."""
    target = Path(target)
    remote = remote or RemoteFile(target.name)
    if not url.startswith(("http://", "https://", "file:")):
        raise UserError(f"cannot download {url}: only http, https and file URLs are supported")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temporary = Path(temporary)
    by_hand = f"save it by hand as {shown_path(target)}, or use data.source: idx or folder"
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                _stream_to(url, out, timeout, _Progress(target.name, progress, stream or sys.stderr))
            except urllib.error.HTTPError as error:
                raise UserError(f"cannot download {url}: HTTP {error.code} {error.reason}; {by_hand}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                hint = "" if isinstance(error, http.client.IncompleteRead) else " (no internet?)"
                raise UserError(f"cannot download {url}: {_network_reason(error)}{hint}; {by_hand}") from None
            out.flush()
            os.fsync(out.fileno())
        problem = _checksum_problem(temporary, remote)
        if problem:
            raise UserError(f"downloaded {url} but {problem}; the file was discarded "
                            f"(a proxy page, a changed file or a bad mirror?)")
        os.replace(temporary, target)
        _fsync_directory(target.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _stream_to(url: str, out, timeout: float, progress: "_Progress") -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "butterfly-dataset-download"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        progress.start(total)
        received = 0
        while True:
            block = response.read(CHUNK_BYTES)
            if not block:
                break
            try:
                out.write(block)
            except OSError as error:
                raise UserError(f"cannot write the download of {url}: {error.strerror or error}") from None
            received += len(block)
            progress.update(received)
        if total is not None and received != total:
            raise http.client.IncompleteRead(b"", total - received)
        progress.finish(received)


def _network_reason(error: BaseException) -> str:
    reason = getattr(error, "reason", error)
    if isinstance(error, http.client.IncompleteRead):
        return f"connection lost with {error.expected} bytes still to come"
    if isinstance(reason, socket.gaierror):
        return "host name not found"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, OSError) and reason.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
        return "network unreachable"
    text = str(reason).strip()
    return (text.splitlines()[0] if text else type(reason).__name__)[:200]


def _fsync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class _Progress:
    """A one-line progress display on a terminal; a start and an end line otherwise."""

    def __init__(self, label: str, enabled: bool, stream: TextIO):
        self.label, self.enabled, self.stream = label, enabled, stream
        self.total: int | None = None
        self.last = 0.0
        self.interactive = enabled and hasattr(stream, "isatty") and stream.isatty()

    def start(self, total: int | None) -> None:
        self.total = total
        if self.enabled and not self.interactive:
            size = f" ({total / 1e6:.1f} MB)" if total else ""
            print(f"downloading {self.label}{size} ...", file=self.stream, flush=True)

    def update(self, received: int) -> None:
        now = time.monotonic()
        if not self.interactive or now - self.last < 0.2:
            return
        self.last = now
        share = f" ({100 * received / self.total:.0f}%)" if self.total else ""
        total = f" of {self.total / 1e6:.1f}" if self.total else ""
        print(f"\rdownloading {self.label}: {received / 1e6:.1f}{total} MB{share}", end="", file=self.stream,
              flush=True)

    def finish(self, received: int) -> None:
        if self.enabled:
            prefix = "\r" if self.interactive else ""
            print(f"{prefix}downloaded {self.label}: {received / 1e6:.1f} MB", file=self.stream, flush=True)


# --- recipes -> datasets --------------------------------------------------------------------

def load_recipe(name: str, cache: str | Path | None = None, base_url: str | None = None, *, seed: int = 0,
                train_per_class: int | None = None, test_per_class: int | None = None,
                progress: bool = True) -> Dataset:
    """Fetch (or reuse) a recipe's files and return its :class:`Dataset`.

    ``train_per_class`` / ``test_per_class`` keep a seeded random subset of that many images
    per class (all when None), which keeps memory small for CIFAR-10 and Tiny ImageNet.
    """
    loaders: dict[str, Callable[..., Dataset]] = {
        "fashion-mnist": load_fashion_mnist,
        "cifar-10": load_cifar10,
        "tiny-imagenet-cnn-explainer": load_tiny_imagenet_cnn_explainer,
    }
    get_recipe(name)
    dataset = loaders[name](cache, base_url, progress=progress)
    return subsample(dataset, train_per_class, test_per_class, seed)


def subsample(dataset: Dataset, train_per_class: int | None, test_per_class: int | None, seed: int) -> Dataset:
    """At most ``n`` images per class in each split, chosen with a seeded RNG, order kept."""
    if train_per_class is None and test_per_class is None:
        return dataset
    rng = np.random.default_rng(seed)

    def pick(y: np.ndarray, per_class: int | None) -> np.ndarray:
        if per_class is None:
            return np.arange(len(y))
        if per_class < 1:
            raise UserError(f"images per class must be at least 1, got {per_class}")
        chosen = [rng.permutation(np.flatnonzero(y == label))[:per_class] for label in np.unique(y)]
        return np.sort(np.concatenate(chosen))

    train, test = pick(dataset.y_train, train_per_class), pick(dataset.y_test, test_per_class)
    return dataclasses.replace(
        dataset, x_train=dataset.x_train[train], y_train=dataset.y_train[train],
        x_test=dataset.x_test[test], y_test=dataset.y_test[test],
        provenance=f"{dataset.provenance}; seeded subset (seed {seed}): {len(train)} training and "
                   f"{len(test)} test images")


def _provenance(recipe: Recipe, base_url: str | None) -> str:
    base = base_url or os.environ.get(ENV_BASE_URL) or recipe.base_url
    names = ", ".join(remote.name for remote in recipe.files)
    return f"{recipe.title}: {names} from {base}, MD5-checked; {recipe.citation}"


def load_fashion_mnist(cache=None, base_url=None, *, progress: bool = True) -> Dataset:
    """The full Fashion-MNIST: 60,000 + 10,000 images (N, 28, 28, 1)."""
    recipe = RECIPES["fashion-mnist"]
    paths = fetch(recipe, cache, base_url, progress=progress)
    folder = next(iter(paths.values())).parent
    return load_idx_dataset(folder, FASHION_MNIST_CLASSES, name=recipe.title, source="download",
                            provenance=_provenance(recipe, base_url), licence=recipe.licence)


def load_cifar10(cache=None, base_url=None, *, progress: bool = True) -> Dataset:
    """CIFAR-10: 50,000 + 10,000 colour images (N, 32, 32, 3), read straight from the tarball."""
    recipe = RECIPES["cifar-10"]
    tarball = fetch(recipe, cache, base_url, progress=progress)["cifar-10-python.tar.gz"]
    x_train, y_train, x_test, y_test, class_names = read_cifar10_tarball(tarball)
    return Dataset(name=recipe.title, source="download", class_names=class_names,
                   x_train=x_train.astype(np.float32) / 255, y_train=y_train,
                   x_test=x_test.astype(np.float32) / 255, y_test=y_test,
                   provenance=_provenance(recipe, base_url), licence=recipe.licence)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only.

    CIFAR-10's batches are Python 2 pickles of dicts holding a uint8 array, lists and strings.
    The only globals such a pickle names are NumPy's array reconstructor, ``ndarray`` and
    ``dtype`` (plus ``_codecs.encode``, which Python 3 uses for bytes in protocol 2). Any other
    global (``os.system``, ``builtins.eval``, ...) is refused, so a tampered file cannot run code.
    """

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return allowed[(module, name)]


def _allowed_globals() -> dict[tuple[str, str], object]:
    import codecs

    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # NumPy 1.x
        multiarray = importlib.import_module("numpy.core.multiarray")
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                              ("_codecs", "encode"): codecs.encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


def _safe_unpickle(data: bytes, where: str) -> dict:
    try:
        loaded = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # any failure of a data file means "not the file we expect"
        raise UserError(f"{where}: not a CIFAR batch ({error})") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{where}: not a CIFAR batch (a {type(loaded).__name__}, not a dict)")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in loaded.items()}


def read_cifar10_tarball(path: str | Path):
    """(x_train uint8 (N, 32, 32, 3), y_train int64, x_test, y_test, class names) from the python tarball."""
    path = Path(path)
    prefix = "cifar-10-batches-py/"
    batches = {f"data_batch_{i}": None for i in range(1, 6)} | {"test_batch": None, "batches.meta": None}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                key = member.name[len(prefix):] if member.name.startswith(prefix) else None
                if key in batches and member.isfile():
                    if member.size > 200_000_000:
                        raise UserError(f"{shown_path(path)}: member {shorten(member.name)} is implausibly large")
                    batches[key] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UserError(f"{shown_path(path)}: cannot read the CIFAR-10 tarball ({error})") from None
    missing = [key for key in batches if key != "batches.meta" and batches[key] is None]
    if missing:
        raise UserError(f"{shown_path(path)}: not the CIFAR-10 python tarball (missing "
                        f"{', '.join(prefix + m for m in missing)})")

    def images_and_labels(key: str):
        batch = _safe_unpickle(batches[key], f"{shown_path(path)}:{prefix}{key}")
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            labels = np.asarray(batch["labels"], dtype=np.int64)
            images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows hold R, then G, then B planes
        except (KeyError, ValueError) as error:
            raise UserError(f"{shown_path(path)}:{prefix}{key}: unexpected batch layout ({error})") from None
        if len(images) != len(labels):
            raise UserError(f"{shown_path(path)}:{prefix}{key}: {len(images)} images but {len(labels)} labels")
        return images, labels

    train = [images_and_labels(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = images_and_labels("test_batch")
    class_names = list(CIFAR10_CLASSES)
    if batches["batches.meta"] is not None:
        meta = _safe_unpickle(batches["batches.meta"], f"{shown_path(path)}:{prefix}batches.meta")
        names = meta.get("label_names")
        if isinstance(names, list) and len(names) == 10:
            class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return x_train, y_train, x_test, y_test, class_names


_TINY_TRAIN = re.compile(r"^tiny-imagenet-200/train/(n\d{8})/images/(n\d{8}_\d+\.JPEG)$")
_TINY_VAL = re.compile(r"^tiny-imagenet-200/val/images/(val_\d+\.JPEG)$")
_TINY_VAL_ANNOTATIONS = "tiny-imagenet-200/val/val_annotations.txt"
MAX_MEMBER_BYTES = 1_000_000  # a 64x64 JPEG is a few kB; anything larger is not Tiny ImageNet


def extract_tiny_imagenet_subset(zip_path: str | Path, destination: str | Path,
                                 classes: tuple[tuple[str, str], ...] = CNN_EXPLAINER_WNIDS) -> Path:
    """Copy the chosen classes out of the Tiny ImageNet zip as a folder dataset.

    Result: ``destination/train/<class>/*.JPEG`` (Tiny ImageNet's training images) and
    ``destination/test/<class>/*.JPEG`` (its labelled validation images). Only member names
    matching Tiny ImageNet's layout are read; files are written under names built here, never
    under names taken from the archive. The folder appears atomically (built beside, renamed).
    """
    zip_path, destination = Path(zip_path), Path(destination)
    if destination.is_dir():
        return destination
    name_of = {wnid: name for name, wnid in classes}
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            try:
                annotations = archive.read(_TINY_VAL_ANNOTATIONS).decode("utf-8")
            except KeyError:
                raise UserError(f"{shown_path(zip_path)}: not the Tiny ImageNet zip (no "
                                f"{_TINY_VAL_ANNOTATIONS})") from None
            val_class = {}
            for line in annotations.splitlines():
                fields = line.split("\t")
                if len(fields) >= 2 and fields[1] in name_of:
                    val_class[fields[0]] = fields[1]
            for folder in ("train", "test"):
                for name, _ in classes:
                    (staging / folder / name).mkdir(parents=True)
            counts = {"train": 0, "test": 0}
            for info in archive.infolist():
                match = _TINY_TRAIN.match(info.filename)
                if match and match.group(1) in name_of:
                    split, wnid, file_name = "train", match.group(1), match.group(2)
                else:
                    match = _TINY_VAL.match(info.filename)
                    if not match or match.group(1) not in val_class:
                        continue
                    split, file_name = "test", match.group(1)
                    wnid = val_class[file_name]
                if info.file_size > MAX_MEMBER_BYTES:
                    raise UserError(f"{shown_path(zip_path)}: member {shorten(info.filename)} is implausibly large")
                (staging / split / name_of[wnid] / file_name).write_bytes(archive.read(info))
                counts[split] += 1
        empty = [f"{split}/{name}" for split in ("train", "test") for name, _ in classes
                 if not any((staging / split / name).iterdir())]
        if empty:
            raise UserError(f"{shown_path(zip_path)}: no images found for {', '.join(empty)}; is it the Tiny ImageNet "
                            "zip?")
        os.replace(staging, destination)
    except (zipfile.BadZipFile, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{shown_path(zip_path)}: cannot read the Tiny ImageNet zip ({error})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def load_tiny_imagenet_cnn_explainer(cache=None, base_url=None, *, progress: bool = True) -> Dataset:
    """CNN Explainer's ten Tiny ImageNet classes, 64x64x3, in its model's output order."""
    from generator.inputs.folder_data import read_class_folders

    recipe = RECIPES["tiny-imagenet-cnn-explainer"]
    zip_path = fetch(recipe, cache, base_url, progress=progress)["tiny-imagenet-200.zip"]
    folder = extract_tiny_imagenet_subset(zip_path, cache_root(cache) / "datasets" / recipe.name)
    names = [name for name, _ in CNN_EXPLAINER_WNIDS]
    x_train, y_train, _, _ = read_class_folders(folder / "train", names, (64, 64, 3))
    x_test, y_test, _, _ = read_class_folders(folder / "test", names, (64, 64, 3))
    return Dataset(name=recipe.title, source="download", class_names=names,
                   x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   provenance=_provenance(recipe, base_url) + "; test images are Tiny ImageNet's validation images",
                   licence=recipe.licence)
