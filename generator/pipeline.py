"""The pipeline: config -> data -> model -> attack/probe -> figures -> pages -> mkdocs.

Each stage is a small named step. Stages whose inputs are unchanged are read back from the
content cache (``build/cache``), so a build with nothing new to compute never imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from generator import __version__
from generator.cache import StageCache, swap_in
from generator.inputs.config import Config, section_dict
from generator.inputs.datasets import Dataset
from generator.errors import UserError
from generator.stages.computing import load_dataset, stage_images, stage_model, stage_imported_model, stage_model_extras

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
        self.model_key = ""
        self.model_loader = None

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
            with self.quiet_tensorflow():
                import keras
                if self.model_loader is None:
                    self.model_loader = lambda: keras.saving.load_model(self.model_dir / "model.keras", compile=False)
                self._model = self.model_loader()
        return self._model

    def quiet_tensorflow(self):
        return quiet_tensorflow(self.verbose)


@contextmanager
def quiet_tensorflow(verbose: bool = False):
    """Hide the notes TensorFlow's C++ core writes straight to stderr (shown with --verbose).

    Python exceptions still propagate; only file descriptor 2 is muted for the duration.
    """
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "butterfly": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


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
        "config_file": _relative(config.config_file, build.root),
        "config_text": config.config_file.read_text(encoding="utf-8"),
        "versions": library_versions(),
        "seeds": {"training": config.training.seed, "noise": config.attack.noise_seed},
    }


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies inside it (the manifest is published)."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


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


def check_all(config: Config, *, verbose: bool = False) -> str:
    """Validate inputs beyond the config file: data loads, images decode, a model file loads."""
    from generator.inputs.images import resolve_image_list

    dataset = None if config.data.source == "none" else load_dataset(config)
    class_names = list(config.model.class_names or dataset.class_names)
    input_shape = dataset.input_shape if dataset else None
    if config.model.source == "file":
        from generator.inputs.model_import import load_model
        with quiet_tensorflow(verbose):
            model = load_model(config.resolve(config.model.path), class_names, tuple(config.model.input_range))
        input_shape = tuple(int(d) for d in model.input_shape[1:])
    entries = resolve_image_list(image_entries(config), class_names, config.base_dir, input_shape)
    return (f"config {config.config_file} is valid: {dataset.name if dataset else 'no dataset'}, {len(class_names)} classes, "
            f"{len(entries)} images, model {config.model.source}")


def prepare_model(build: Build, manifest: dict):
    """Stages data and model: returns (dataset or None, class names, input shape, training record)."""
    config = build.config
    with build.stage("data"):
        dataset = None if config.data.source == "none" else load_dataset(config)
        manifest["dataset"] = dataset_record(dataset) if dataset else None
    class_names = list(config.model.class_names or (dataset.class_names if dataset else []))
    with build.stage("model"):
        if config.model.source == "file":
            info = stage_imported_model(build, class_names)
            input_shape = tuple(info["input_shape"])
        else:
            info = stage_model(build, dataset)
            input_shape = dataset.input_shape
        training = info.pop("training", None)
        info["class_names"] = class_names
    manifest["model"] = info
    return dataset, class_names, input_shape, training


def run_train(config: Config, *, verbose: bool = False) -> dict:
    """Stages data and model only; writes build/manifest.json with what is known."""
    build = Build(config, verbose=verbose)
    manifest = base_manifest(build)
    manifest["training"] = prepare_model(build, manifest)[3]
    manifest["timings"] = build.timings
    manifest["cache"] = build.cache_status
    write_json_atomic(build.build_dir / "manifest.json", manifest)
    return manifest


def run_build(config: Config, *, verbose: bool = False, keep_going: bool = False) -> dict:
    """The whole pipeline; returns the manifest (also written to build/ and published with the site)."""
    from generator.inputs.config import REPO_ROOT

    build = Build(config, verbose=verbose, keep_going=keep_going)
    manifest = base_manifest(build)
    failures: list[dict] = []
    dataset, class_names, input_shape, training = prepare_model(build, manifest)
    with build.stage("images"):
        from generator.inputs.images import collect_image_list, resolve_image_list

        raw = image_entries(config)
        if keep_going:
            entries, failures = collect_image_list(raw, class_names, config.base_dir, input_shape)
        else:
            entries = resolve_image_list(raw, class_names, config.base_dir, input_shape)
        records = stage_images(build, entries, class_names, failures)
        if not records:
            raise UserError("no image could be attacked: " + "; ".join(f["message"] for f in failures))
    with build.stage("model figures"):
        extras, model_figs, model_figs_dir = stage_model_extras(build, dataset, training)
    if training:
        training["probe_image"] = extras["probe_image"]
    manifest.update({
        "training": training, "attack_settings": {
            **section_dict(config.attack), "targeted": config.attack.target is not None,
            "zoom_layer": config.figures.zoom_layer,
            "zoom_filter": config.figures.zoom_filter},
        "images": records, "failures": failures, "robustness": extras["robustness"],
    })
    with build.stage("pages"):
        assemble_docs(build, manifest, model_figs, model_figs_dir, REPO_ROOT)
    with build.stage("site"):
        from generator.site.mkdocs import build_site
        build_site(REPO_ROOT, build.docs_dir, build.site_dir)
    manifest["timings"] = build.timings
    manifest["cache"] = build.cache_status
    write_json_atomic(build.build_dir / "manifest.json", manifest)
    write_json_atomic(build.site_dir / "manifest.json", manifest)
    return manifest


def assemble_docs(build: Build, manifest: dict, model_figs: dict, model_figs_dir: Path, repo_root: Path) -> None:
    """Figures, manifest and pages into a fresh docs folder, swapped in when complete."""
    from generator import figures
    from generator.site.pages import render_docs

    fresh = build.build_dir / ".docs.new"
    shutil.rmtree(fresh, ignore_errors=True)
    images_dir = fresh / "images"
    for record in manifest["images"]:
        target = images_dir / record["id"]
        shutil.copytree(record.pop("figures_dir"), target, ignore=shutil.ignore_patterns("figures.json"))
        for figure in record["figures"].values():
            figure["path"] = f"images/{record['id']}/{figure['path']}"
        record["figures"]["thumbnail"] = record["figures"]["input"]
    shutil.copytree(model_figs_dir, images_dir / "model", ignore=shutil.ignore_patterns("figures.json"))
    for figure in model_figs.values():
        figure["path"] = f"images/model/{figure['path']}"
    curves = {record["title"]: ([layer["name"] for layer in record["layers"]],
                                [layer["adversarial"]["relative_l2"] for layer in record["layers"]])
              for record in manifest["images"] if record["attack"]["fooled"]}
    if curves:
        figure = figures.butterfly_all(curves, images_dir / "model" / "butterfly_all.png")
        model_figs["butterfly_all"] = {**figure, "path": "images/model/butterfly_all.png"}
    manifest["figures"] = model_figs
    manifest["timings"] = dict(build.timings)
    manifest["cache"] = dict(build.cache_status)
    write_json_atomic(fresh / "manifest.json", manifest)
    render_docs(manifest, fresh, repo_root)
    swap_in(fresh, build.docs_dir)


def clean(root: Path) -> list[Path]:
    """Remove the build outputs (build/ and site/) and nothing else."""
    removed = []
    for name in ("build", "site"):
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(target)
    return removed
