"""The pipeline: config -> per experiment (data -> model -> images -> model extras) -> comparison
-> pages -> site.

Each stage is a small named step. Stages whose inputs are unchanged are read back from the
content cache (``build/cache``), so a build with nothing new to compute never imports TensorFlow;
a build whose inputs are all those of the last one, with its site intact, stops at once (see
generator.stages.freshness). Every number the site shows is in the manifest this module assembles
(``build/manifest.json``, published as ``site/manifest.json``); timings are kept apart
(``build/timings.json``, and printed at the end of the build) so that two builds of one config
publish identical files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from generator import __version__
from generator.buildlock import build_lock
from generator.cache import recover_swaps, sweep_scratch
from generator.errors import UserError
from generator.inputs.config import Config, check_url, localized, section_dict
from generator.stages.context import Build, ExperimentRun, quiet_tensorflow

LIBRARIES = ["tensorflow", "tensorflow-cpu", "keras", "numpy", "matplotlib", "pillow", "imageio", "jinja2",
             "mkdocs", "mkdocs-material", "pydantic", "jieba"]
SCHEMA = 2


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "butterfly": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def site_record(config: Config) -> dict:
    """The site's settings in every language. The address comes from site.site_url, else from
    BUTTERFLY_SITE_URL (the Pages workflow sets it), checked like the config's."""
    site = config.site
    site_url = site.site_url
    if not site_url and os.environ.get("BUTTERFLY_SITE_URL"):
        try:
            site_url = check_url(os.environ["BUTTERFLY_SITE_URL"])
        except ValueError as error:
            raise UserError(f"BUTTERFLY_SITE_URL: {error}") from None
    return {"title": {lang: localized(site.title, lang) for lang in site.languages},
            "description": {lang: localized(site.description, lang) for lang in site.languages},
            "languages": list(site.languages), "site_url": site_url, "repo_url": site.repo_url}


def base_manifest(build: Build) -> dict:
    config = build.config
    manifest = {
        "schema": SCHEMA, "butterfly_version": __version__, "site": site_record(config),
        "config_file": build.relative(config.config_file),
        "config_text": config.config_file.read_text(encoding="utf-8"),
        "versions": library_versions(),
    }
    # Wall-clock time only when asked for, so that two builds of one config are identical.
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        stamp = datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), timezone.utc)
        manifest["generated_at"] = stamp.isoformat(timespec="seconds")
    return manifest


@contextmanager
def exclusive(build: Build, wait: float = 0.0):
    """Hold the project's build lock; first repair what a killed build may have left: a swap
    cut in half (the old copy comes back) and scratch folders of the cache."""
    with build_lock(build.build_dir, wait=wait, on_wait=build.log):
        for line in recover_swaps(build.build_dir) + recover_swaps(build.root):
            build.log(line)
        sweep_scratch(build.cache.root)
        yield


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    scratch.replace(path)


# --- one experiment ----------------------------------------------------------------------------

def prepare_model(run: ExperimentRun) -> dict:
    """Stages data and model of one experiment; returns its manifest record so far."""
    from generator.stages.model import stage_data, stage_model

    build, experiment = run.build, run.experiment
    with build.stage("data"):
        dataset = stage_data(run)
        check_before_training(run)
    with build.stage("model"):
        model = stage_model(run)
    training = model.pop("training", None)
    return {"id": experiment.id,
            "title": {lang: localized(experiment.title, lang) for lang in build.languages} if experiment.title
            else {lang: localized(build.config.site.title, lang) for lang in build.languages},
            "description": ({lang: localized(experiment.description, lang) for lang in build.languages}
                            if experiment.description else None),
            "dataset": dataset, "model": model, "training": training,
            "seeds": {"training": experiment.training.seed if training else None,
                      "noise": experiment.attack.noise_seed}}


def check_model_settings(run: ExperimentRun, model: dict) -> None:
    """Settings that name parts of the model are checked against it before any image is drawn."""
    from generator.errors import suggest

    experiment = run.experiment
    maps = {layer["name"]: layer for layer in model["layers"] if len(layer["output_shape"]) == 3}
    layer, channel = experiment.figures.zoom_layer, experiment.figures.zoom_channel
    if layer not in maps:
        raise UserError(f"{experiment.key('figures.zoom_layer')}: the model has no feature-map layer '{layer}'"
                        f"{suggest(layer, maps)}; layers with maps: {', '.join(maps)}")
    channels = maps[layer]["output_shape"][2]
    if channel >= channels:
        raise UserError(f"{experiment.key('figures.zoom_channel')}: layer '{layer}' has {channels} channels "
                        f"(0 to {channels - 1}), got {channel}")


def check_before_training(run: ExperimentRun) -> None:
    """What the data alone can refuse, before a model is trained for nothing: the probe image,
    and the image list's paths, labels and attack targets (images are decoded later). With
    --keep-going a bad image is left to the images stage, which lists it and goes on."""
    from generator.stages.images import attack_settings, image_entries

    check_probe_image(run)
    if not run.build.keep_going:
        for entry in image_entries(run, None)[0]:
            attack_settings(run, entry.config.attack.model_dump(exclude_none=True), f"{entry.where}.attack")


def check_probe_image(run: ExperimentRun) -> None:
    """training.probe_image must name a test image (checked before any image is computed)."""
    experiment = run.experiment
    if run.dataset is not None and experiment.training.probe_image >= len(run.dataset.x_test):
        raise UserError(f"{experiment.key('training.probe_image')}: must be below the number of test images "
                        f"({len(run.dataset.x_test):,}), got {experiment.training.probe_image}")


def run_experiment(build: Build, experiment) -> dict:
    """All stages of one experiment; returns its manifest record."""
    from generator.stages.extras import stage_extras
    from generator.stages.images import stage_images

    run = ExperimentRun(build, experiment)
    record = prepare_model(run)
    check_model_settings(run, record["model"])
    with build.stage("images"):
        images, failures = stage_images(run, tuple(record["model"]["input_shape"]))
        if not images:
            raise UserError(f"experiment '{run.id}': no image could be attacked: "
                            + "; ".join(f["message"] for f in failures))
    with build.stage("model figures"):
        extras, figures, folders = stage_extras(run, record["training"])
    if record["training"]:
        record["training"]["probe_image"] = extras["probe_image"]
    record.update({
        "attack_settings": {**section_dict(experiment.attack), "targeted": experiment.attack.target is not None},
        "figure_settings": section_dict(experiment.figures),
        "images": images, "failures": failures, "robustness": extras["robustness"],
        "figures": figures, "figure_dirs": {lang: str(path) for lang, path in folders.items()},
        "cache": run.cache_status, "model_dir": str(run.model_dir),
    })
    warn_over_budget(build, record)
    return record


def warn_over_budget(build: Build, experiment: dict) -> None:
    """One line for each animation that could not be made as small as figures.gif_max_kb."""
    sets = [(f"image '{image['id']}'", image["figures"]) for image in experiment["images"]]
    for owner, by_language in [*sets, ("model", experiment["figures"])]:
        for lang, figures in by_language.items():
            for figure in (figures or {}).values():
                if figure.get("over_budget"):
                    build.warn_once(f"experiment '{experiment['id']}': {owner}: {Path(figure['path']).name} ({lang}) "
                                    f"is {figure['bytes'] / 1000:.0f} kB, over figures.gif_max_kb "
                                    f"({figure['over_budget'] // 1000}) even at its smallest")


# --- entry points ------------------------------------------------------------------------------

def check_all(config: Config, *, verbose: bool = False) -> str:
    """Validate what a build would reject later: data loads, a model file loads, images decode,
    layer names and settings fit the model. Builds nothing."""
    from generator.stages.images import attack_settings, image_entries
    from generator.stages.model import stage_data

    build = Build(config, verbose=verbose)
    site_record(config)  # the site's address may also come from the environment
    lines = []
    for experiment in config.experiments:
        run = ExperimentRun(build, experiment)
        dataset = stage_data(run)
        if experiment.model.source == "file":
            from generator.inputs.model_import import describe_model, load_model
            with quiet_tensorflow(verbose):
                model = load_model(experiment.resolve(experiment.model.path), run.classes.canonical,
                                   tuple(experiment.model.input_range))
            layers, input_shape = describe_model(model), tuple(int(d) for d in model.input_shape[1:])
        else:
            from generator.analysis.training import check_fits, layer_names
            input_shape = run.dataset.input_shape
            problem = check_fits(input_shape, experiment.model.blocks)
            if problem:
                raise UserError(f"{experiment.key('model.blocks')}: {problem}")
            layers = tiny_vgg_layers(input_shape, experiment.model.blocks, experiment.model.filters, layer_names)
        check_model_settings(run, {"layers": layers})
        check_probe_image(run)
        entries, _ = image_entries(run, input_shape)
        for entry in entries:
            attack_settings(run, entry.config.attack.model_dump(exclude_none=True), f"{entry.where}.attack")
        lines.append(f"{experiment.id}: {dataset['name'] if dataset else 'no dataset'}, "
                     f"{len(run.classes.canonical)} classes, {len(entries)} images, model {experiment.model.source}")
    return f"config {config.config_file} is valid: " + "; ".join(lines)


def tiny_vgg_layers(input_shape, blocks: int, filters: int, names) -> list[dict]:
    """The layer list (name, output shape) Tiny VGG will have, without building it."""
    height, width = input_shape[:2]
    layers = []
    for name in names(blocks):
        if name.startswith("conv"):
            height, width = height - 2, width - 2
        elif name.startswith("max_pool"):
            height, width = height // 2, width // 2
        if name in ("flatten", "output"):
            break
        layers.append({"name": name, "output_shape": [height, width, filters]})
    return layers


def run_train(config: Config, *, verbose: bool = False, wait: float = 0.0) -> list[dict]:
    """Stages data and model of every experiment; returns their records."""
    build = Build(config, verbose=verbose)
    with exclusive(build, wait):
        return [prepare_model(ExperimentRun(build, experiment)) for experiment in config.experiments]


def run_build(config: Config, *, verbose: bool = False, keep_going: bool = False, jobs: int | None = None,
              wait: float = 0.0) -> dict:
    """The whole pipeline; returns the manifest (also written to build/ and published with the site).

    When nothing the build reads changed since the last successful one and its site is intact,
    it says so and returns that build's manifest, having done nothing else."""
    from generator.stages.freshness import Fingerprint
    from generator.progress import timing_lines

    start = time.perf_counter()
    build = Build(config, verbose=verbose, keep_going=keep_going, jobs=jobs)
    with exclusive(build, wait):
        fingerprint = Fingerprint(config, build.build_dir, build_settings(build), build_options(build))
        manifest_file = build.build_dir / "manifest.json"
        if fingerprint.site_is_current(build.site_dir) and manifest_file.is_file():
            fingerprint.record(build.site_dir)  # new times of unchanged files: the quick check passes next time
            build.log(f"site is up to date: nothing to do ({time.perf_counter() - start:.1f} s)")
            return json.loads(manifest_file.read_text(encoding="utf-8"))
        if verbose:
            build.log("building: " + "; ".join(fingerprint.changes(build.site_dir)))
        manifest = _build_site(build)
        fingerprint.record(build.site_dir)
        timings = {"total": round(time.perf_counter() - start, 3), "stages": build.timings,
                   "images": {**build.work, "processes": build.jobs},
                   "cache": {e["id"]: e["cache"] for e in manifest["experiments"]}}
        write_json_atomic(build.build_dir / "timings.json", timings)
        for line in timing_lines(timings):
            build.log(line)
    return manifest


def build_options(build: Build) -> dict:
    """The command-line options that change what a build writes."""
    return {"keep_going": build.keep_going}


def build_settings(build: Build) -> dict:
    """What, besides files, decides what a build writes (see generator.stages.freshness)."""
    from generator.figures.words import font_fingerprint

    return {"schema": SCHEMA, "versions": library_versions(), "keep_going": build.keep_going,
            "fonts": {lang: font_fingerprint(lang) for lang in build.languages}}


def _build_site(build: Build) -> dict:
    from generator.stages.docs import stage_comparison, stage_docs
    from generator.stages.drawing import Jobs
    from generator.stages.publish import prepare_site, stage_site

    from generator.figures.words import words_for

    config = build.config
    # The stages start the drawing workers as soon as they know there is something to draw.
    build.drawings = Jobs(build)
    prepare_site(build)
    try:
        for lang in build.languages:
            if words_for(lang).fallback_warning:
                build.warn_once(words_for(lang).fallback_warning)
        manifest = base_manifest(build)
        # Figures are drawn while the next experiment trains and analyses, and the comparison
        # figures while the last images are drawn.
        manifest["experiments"] = [run_experiment(build, experiment) for experiment in config.experiments]
        with build.stage("comparison"):
            stage_comparison(build, manifest)
        with build.stage("figures"):
            wait_for_figures(build)
        with build.stage("pages"):
            stage_docs(build, manifest)
        # The analyses are stored meanwhile; the site reads their arrays.
        build.drawings.wait()
    finally:
        build.drawings.abandon()
    with build.stage("site"):
        stage_site(build, manifest)
    write_json_atomic(build.build_dir / "manifest.json", manifest)
    return manifest


def wait_for_figures(build: Build) -> None:
    """Wait for the figures the pages show; a progress bar (or one line per image) meanwhile."""
    from generator.progress import Progress

    if not build.drawings.pending:
        return
    build.log(f"[figures] drawing with {build.jobs} process{'es' if build.jobs != 1 else ''}")
    with Progress("[figures]", build.images_waiting, "image", build.log) as build.progress:
        build.drawings.wait(low=False)
    build.progress = None


def clean(root: Path, wait: float = 0.0) -> list[Path]:
    """Remove the build outputs (build/ and site/, and what a killed build left beside them)
    and nothing else, under the build lock."""
    from generator.cache import SWAP_NEW_SUFFIX, SWAP_OLD_SUFFIX

    removed = []
    with build_lock(root / "build", wait=wait):
        leftovers = [p for p in root.glob(".site*") if p.name.endswith((SWAP_OLD_SUFFIX, SWAP_NEW_SUFFIX))]
        for target in [root / "site", *leftovers, root / "build"]:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
                removed.append(target)
    return removed
