"""The pipeline: config -> data -> model -> attack/probe -> figures -> pages -> mkdocs.

Each stage is a small named step. Stages whose inputs are unchanged are read back from the
content cache (``build/cache``), so a build with nothing new to compute never imports TensorFlow.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__
from .cache import StageCache, code_version, content_key, swap_in
from .config import Config, section_dict
from .data import Dataset, load_embedded, load_idx_dataset
from .errors import UserError

LIBRARIES = ["tensorflow", "tensorflow-cpu", "keras", "numpy", "matplotlib", "pillow", "imageio", "jinja2",
             "mkdocs", "mkdocs-material", "pydantic"]


class Build:
    """State shared by the stages of one build: config, paths, cache, manifest, timings."""

    def __init__(self, config: Config, *, verbose: bool = False, keep_going: bool = False):
        self.config = config
        self.root = config.base_dir
        self.build_dir = self.root / "build"
        self.docs_dir = self.build_dir / "docs"
        self.site_dir = self.root / "site"
        self.cache = StageCache(self.build_dir / "cache")
        self.verbose = verbose
        self.keep_going = keep_going
        self.timings: dict[str, float] = {}
        self.cache_status: dict[str, str] = {}
        self._model = None
        self.model_dir: Path | None = None

    def log(self, message: str) -> None:
        print(f"butterfly: {message}", file=sys.stderr, flush=True)

    @contextmanager
    def stage(self, name: str):
        self.log(f"[{name}] ...")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)
        self.log(f"[{name}] done in {self.timings[name]:.1f} s")

    def keras_model(self):
        """The stage's Keras model, loaded on first use only (this is what imports TensorFlow)."""
        if self._model is None:
            import keras
            self._model = keras.saving.load_model(self.model_dir / "model.keras", compile=False)
        return self._model


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "butterfly": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


# --- data ------------------------------------------------------------------------------------

def load_dataset(config: Config) -> Dataset:
    data = config.data
    if data.source == "embedded":
        return load_embedded()
    if data.source == "idx":
        return load_idx_dataset(config.resolve(data.path), data.class_names)
    if data.source == "folder":
        from .folder_data import load_folder_dataset
        return load_folder_dataset(config.resolve(data.path), None, data.validation_split, data.seed)
    from .download import load_recipe
    return load_recipe(data.recipe)


# --- model -----------------------------------------------------------------------------------

def model_key(config: Config, dataset_fingerprint: str) -> str:
    return content_key("model", section_dict(config.model), section_dict(config.training), dataset_fingerprint,
                       code_version("model"), metadata.version("keras"))


def train_model(build: Build, dataset: Dataset, out: Path) -> None:
    """Train Tiny VGG into ``out``: model.keras, snapshots.npz (weights per epoch), model.json."""
    from .model import build_tiny_vgg, check_fits, describe_model, train

    config = build.config
    problem = check_fits(dataset.input_shape, config.model.blocks)
    if problem:
        raise UserError(f"model.blocks: {problem}")
    model = build_tiny_vgg(dataset.input_shape, len(dataset.class_names), blocks=config.model.blocks,
                           filters=config.model.filters, seed=config.training.seed)
    t = config.training
    build.log(f"[model] training Tiny VGG on {len(dataset.x_train)} images for {t.epochs} epochs")
    result = train(model, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, epochs=t.epochs,
                   batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed,
                   verbose=1 if sys.stderr.isatty() else 2)
    model.save(out / "model.keras")
    np.savez_compressed(out / "snapshots.npz", **{
        f"epoch_{e + 1:03d}/{i}": w for e, weights in enumerate(result.snapshots) for i, w in enumerate(weights)})
    info = {
        "source": "trained", "file": "model.keras", "architecture": "tiny_vgg",
        "parameters": int(model.count_params()), "layers": describe_model(model),
        "training": {
            "epochs": t.epochs, "batch_size": t.batch_size, "learning_rate": t.learning_rate,
            "history": result.history, "test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
            "seconds": round(result.seconds, 2),
        },
    }
    (out / "model.json").write_text(json.dumps(info, indent=1))


def stage_model(build: Build, dataset: Dataset) -> dict:
    """Train (or reuse) the model; returns the manifest's model record."""
    key = model_key(build.config, dataset.fingerprint())
    build.model_dir = build.cache.path("model", key)
    if build.cache.has("model", key):
        build.cache_status["model"] = "hit"
        build.log(f"[model] unchanged config and data: reusing {build.model_dir.relative_to(build.root)}")
    else:
        build.cache_status["model"] = "miss"
        with build.cache.write("model", key) as out:
            train_model(build, dataset, out)
    info = json.loads((build.model_dir / "model.json").read_text())
    if info.get("training"):
        info["training"]["cached"] = build.cache_status["model"] == "hit"
    return info


# --- manifest --------------------------------------------------------------------------------

def dataset_record(dataset: Dataset) -> dict:
    return {
        "name": dataset.name, "source": dataset.source, "class_names": dataset.class_names,
        "input_shape": list(dataset.input_shape), "train_size": int(len(dataset.x_train)),
        "test_size": int(len(dataset.x_test)), "provenance": dataset.provenance, "licence": dataset.licence,
    }


def base_manifest(build: Build) -> dict:
    config = build.config
    return {
        "schema": 1,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "butterfly_version": __version__,
        "site": {**section_dict(config.site), "languages": ["en", "zh"]},
        "config_file": str(config.config_file),
        "config_text": config.config_file.read_text(encoding="utf-8"),
        "versions": library_versions(),
        "seeds": {"training": config.training.seed, "noise": config.attack.noise_seed},
    }


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    scratch.replace(path)


# --- entry points ----------------------------------------------------------------------------

def image_entries(config: Config) -> list[dict]:
    """The configured image list as plain mappings (per-image attack overrides without unset keys)."""
    return [{**entry.model_dump(exclude={"attack"}, exclude_none=True),
             "attack": entry.attack.model_dump(exclude_none=True)} for entry in config.images]


def check_all(config: Config) -> str:
    """Validate inputs beyond the config file: data loads, images decode, a model file loads."""
    from .images import resolve_image_list

    dataset = load_dataset(config)
    class_names = config.model.class_names or dataset.class_names
    input_shape = dataset.input_shape
    if config.model.source == "file":
        from .model_import import load_model
        model = load_model(config.resolve(config.model.path), class_names, tuple(config.model.input_range))
        input_shape = tuple(int(d) for d in model.input_shape[1:])
    entries = resolve_image_list(image_entries(config), class_names, config.base_dir, input_shape)
    return (f"config {config.config_file} is valid: {dataset.name}, {len(class_names)} classes, "
            f"{len(entries)} images, model {config.model.source}")


def run_train(config: Config, *, verbose: bool = False) -> dict:
    """Stages config, data and model only; writes build/manifest.json with what is known."""
    build = Build(config, verbose=verbose)
    manifest = base_manifest(build)
    with build.stage("data"):
        dataset = load_dataset(config)
        manifest["dataset"] = dataset_record(dataset)
    with build.stage("model"):
        model_info = stage_model(build, dataset)
    manifest["training"] = model_info.pop("training", None)
    manifest["model"] = model_info
    manifest["timings"] = build.timings
    manifest["cache"] = build.cache_status
    write_json_atomic(build.build_dir / "manifest.json", manifest)
    return manifest


def clean(root: Path) -> list[Path]:
    """Remove the build outputs (build/ and site/) and nothing else."""
    removed = []
    for name in ("build", "site"):
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(target)
    return removed
