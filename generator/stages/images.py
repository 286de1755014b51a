"""Stage images: attack and probe every image of an experiment, then draw its figures in every
site language. Both steps are cached per image: adding an image computes and draws only it.

The images to compute are analysed together, their model calls merged into few large ones
(generator.analysis.batching: every record is the one the image gets alone); their figures are
drawn in parallel worker processes (generator.stages.drawing).
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from generator.cache import code_version, content_key, file_digest
from generator.errors import UserError, suggest
from generator.figures import SET_PARTS
from generator.inputs.config import localized, section_dict
from generator.stages.context import ExperimentRun
from generator.stages.drawing import read_figure_list, write_figure_list

# Images analysed together at most: their arrays stay in memory until they are drawn.
ANALYSIS_GROUP = 32


def attack_settings(run: ExperimentRun, overrides: dict, where: str):
    """The experiment's attack section with an image's overrides; the target name becomes an index."""
    from generator.analysis.attack import AttackSettings

    merged = {**section_dict(run.experiment.attack), **overrides}
    target = merged.pop("target")
    target_index = None
    if target is not None:
        target_index = run.classes.index_of(target)
        if target_index is None:
            raise UserError(f"{where}.target: unknown class '{target}'{suggest(target, run.classes.all_names())}")
    return AttackSettings(method=merged["method"], epsilon_start=merged["epsilon_start"],
                          epsilon_step=merged["epsilon_step"], epsilon_max=merged["epsilon_max"],
                          target_index=target_index, iterations=merged["iterations"],
                          step_size=merged["step_size"], noise_seed=merged["noise_seed"])


def image_entries(run: ExperimentRun, input_shape) -> tuple[list, list[dict]]:
    """The experiment's images, checked and decoded: (entries, failures). Each entry gets
    ``config`` (its config entry) and ``where`` (its key path). Without --keep-going the first
    problem stops the build."""
    from generator.inputs.images import collect_image_list, resolve_image_list

    experiment = run.experiment
    raw = [{"path": entry.path, **({"label": entry.label} if entry.label else {}),
            **({"id": entry.id} if entry.id else {}),
            **({"title": localized(entry.title, "en")} if entry.title else {})} for entry in experiment.images]
    names = run.classes.all_names()
    failures: list[dict] = []
    try:
        if run.build.keep_going:
            entries, failures = collect_image_list(raw, names, experiment.base_dir, input_shape)
        else:
            entries = resolve_image_list(raw, names, experiment.base_dir, input_shape)
    except UserError as error:
        raise UserError(f"experiment '{run.id}': {error}") from None
    for entry in entries:
        # By position: resolving the path again would fail where the image list found a problem.
        entry.config, entry.where = experiment.images[entry.index], experiment.key(f"images[{entry.index}]")
    for failure in failures:
        failure["source"] = run.build.relative(experiment.resolve(failure["source"]))
        failure["message"] = f"experiment '{run.id}': {failure['message']}"
    return entries, failures


def analysis_key(run: ExperimentRun, entry, settings, true_index) -> str:
    experiment = run.experiment
    return content_key("image", run.model_key, file_digest(entry.path), true_index, str(settings),
                       experiment.attack.change_threshold, experiment.attack.noise_draws,
                       experiment.figures.gif_max_frames, code_version("analysis"))


@dataclass(eq=False)
class ImagePlan:
    """One image of the stage: its entry, attack settings, true class, analysis cache key, its
    title and figure cache key per language, and what the stage learns (record, arrays when
    computed here, jobs still running)."""

    entry: object
    settings: object
    true_index: int | None
    key: str
    titles: dict | None = None
    figure_keys: dict | None = None
    status: str = "cached"
    record: dict | None = None
    arrays: dict | None = None
    running: int = 0
    waited: bool = False


def analyse(run: ExperimentRun, plans: list[ImagePlan]) -> list[tuple[ImagePlan, UserError]]:
    """Attack and probe the images of ``plans`` together, their model calls merged; fills each
    plan's record and arrays. Returns the (plan, error) of images that could not be attacked."""
    from generator.analysis.record import analyse_images
    from generator.progress import Progress

    experiment = run.experiment
    model = run.keras_model()
    failed = []
    iterative = any(plan.settings.method != "fgsm" for plan in plans)
    start = time.perf_counter()
    # FGSM searches take seconds; BIM and PGD ones run an attack per grid point and show progress.
    with Progress("[images] searching epsilon", sum(p.settings.grid_size for p in plans), "grid points", run.log,
                  bar=None if iterative else False) as progress:
        results = analyse_images(model, [(p.entry.pixels, p.true_index, p.settings) for p in plans],
                                 run.classes.canonical, change_threshold=experiment.attack.change_threshold,
                                 noise_draws=experiment.attack.noise_draws, frames=experiment.figures.gif_max_frames,
                                 on_points=progress.advance if iterative else None)
    for plan, result in zip(plans, results):
        if isinstance(result, UserError):
            failed.append((plan, result))
            continue
        plan.record, plan.arrays = result
        plan.record["attack"]["settings"] = {key: getattr(plan.settings, key) for key in (
            "epsilon_start", "epsilon_step", "epsilon_max", "iterations", "step_size", "noise_seed")}
    run.build.work["analysed"] += len(plans) - len(failed)
    run.build.work["analysis_seconds"] += time.perf_counter() - start
    return failed


def store_analysis(record: dict, arrays: dict, out: Path) -> None:
    """An image's analysis cache entry: record.json and arrays.npz. Runs in a drawing worker:
    compressing takes a while."""
    (out / "record.json").write_text(json.dumps(record, indent=1))
    save_arrays(out / "arrays.npz", arrays)


def save_arrays(path: Path, arrays: dict) -> None:
    """``np.savez_compressed`` at zlib's fastest level: activations are mostly noise to zlib, so
    its default level takes twice as long for files 1 % smaller. ``np.load`` reads it as usual."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def draw_image_figures(record: dict, arrays: dict | Path, class_names: list[str], title: str, settings,
                       lang: str, out: Path, part: int | None = None) -> dict:
    """The figures of one image in one language (or one part of them: see generator.figures.SET_PARTS),
    from its arrays (or their npz file). Runs in a drawing worker."""
    from generator.figures.sets import image_figures
    from generator.figures.words import words_for

    if not isinstance(arrays, dict):
        with np.load(arrays) as npz:
            arrays = {name: npz[name] for name in npz.files}
    return image_figures(record, arrays, class_names, title, settings, out, words_for(lang), part=part)


def write_figure_set(out: Path, parts: list[dict]) -> dict:
    """The parts' records as one set, also stored beside the figures."""
    return write_figure_list(out, {key: figure for part in parts for key, figure in part.items()})


def figure_keys(run: ExperimentRun, plan: "ImagePlan") -> dict[str, str]:
    """{language: cache key of the image's figures in it}."""
    from generator.figures.words import font_fingerprint

    figures_code, figure_settings = code_version("figures"), section_dict(run.experiment.figures)
    return {lang: content_key("figures", plan.key, lang, font_fingerprint(lang), figure_settings,
                              run.classes.by_language[lang], plan.titles[lang], figures_code)
            for lang in run.build.languages}


def stage_images(run: ExperimentRun, input_shape) -> tuple[list[dict], list[dict]]:
    """Attack, probe and draw each image (cached per image): (image records, failures).

    Images not in the cache are analysed together; their figures, and those missing for cached
    images, are drawn by the build's drawing jobs (generator.stages.drawing), which fill the
    records' "figures" as they finish: the pipeline waits for them before the pages."""
    build, cache, jobs = run.build, run.build.cache, run.build.drawings
    entries, failures = image_entries(run, input_shape)
    plans: list[ImagePlan] = []
    finished = 0

    def fail(entry, error: UserError) -> None:
        message = f"experiment '{run.id}': {error}" if f"'{run.id}'" not in str(error) else str(error)
        if not build.keep_going:
            raise UserError(message) from None
        failures.append({"source": build.relative(entry.path), "message": message})
        run.log(f"[images] {entry.id}: FAILED: {message}")

    def one_done(plan: ImagePlan) -> Callable:
        def done(made: dict | None, lang: str | None = None) -> None:
            nonlocal finished
            if lang is not None:
                plan.record["figures"][lang] = made
            plan.running -= 1
            if not plan.running:
                finished += 1
                build.image_done(f"[{run.id}] [images] {finished}/{len(plans)} {plan.entry.id}: "
                                 f"{describe_outcome(plan.record)} ({plan.status})", waited=plan.waited)
        return done

    def submit(plan: ImagePlan) -> None:
        """The record of an analysed image, and jobs for what is not in the cache yet."""
        entry, folder = plan.entry, cache.path("image", plan.key)
        done = one_done(plan)
        plan.running = 1  # until every job is submitted
        computed = plan.record
        if computed is not None:
            plan.status = "computed"
            # What a later build reads back from record.json (the job storing it gets the original).
            plan.record = json.loads(json.dumps(computed))
        else:
            plan.record = json.loads((folder / "record.json").read_text())
        plan.record.update({"id": entry.id, "experiment": run.id, "source": build.relative(entry.path),
                            "title": plan.titles,
                            "caption": ({lang: localized(entry.config.caption, lang) for lang in build.languages}
                                        if entry.config.caption else None),
                            "arrays": folder.relative_to(cache.root).as_posix() + "/arrays.npz",
                            # Keys in language order, whichever drawing finishes first.
                            "figures": dict.fromkeys(build.languages), "figure_dirs": {}})
        # The jobs get a copy: the record gains its figures while they may still be queued.
        drawn_record = json.loads(json.dumps(plan.record))
        for lang, fkey in plan.figure_keys.items():
            plan.record["figure_dirs"][lang] = str(cache.path("figures", fkey))
            if cache.has("figures", fkey):
                plan.record["figures"][lang] = read_figure_list(cache.path("figures", fkey))
                continue
            plan.running += 1
            jobs.submit("figures", fkey, draw_image_figures,
                        (drawn_record, plan.arrays if plan.arrays is not None else folder / "arrays.npz",
                         run.classes.by_language[lang], plan.titles[lang], run.experiment.figures, lang),
                        lambda made, lang=lang: done(made, lang), figure_set=True, parts=SET_PARTS,
                        finish=write_figure_set)
        if computed is not None:
            # Nothing waits for it before the site stage: a worker stores the analysis when it
            # has no figure to draw.
            jobs.submit("image", plan.key, store_analysis, (computed, plan.arrays), lambda _: None, low=True)
        plan.arrays = None  # the jobs hold what they need
        plan.waited = plan.running > 1
        build.images_waiting += plan.waited
        done(None)

    for entry in entries:
        try:
            settings = attack_settings(run, entry.config.attack.model_dump(exclude_none=True), f"{entry.where}.attack")
            true_index = run.classes.index_of(entry.label) if entry.label else None
            plan = ImagePlan(entry, settings, true_index, analysis_key(run, entry, settings, true_index))
            title = entry.config.title or entry.title
            plan.titles = {lang: localized(title, lang) for lang in build.languages}
            plan.figure_keys = figure_keys(run, plan)
            plans.append(plan)
        except UserError as error:
            fail(entry, error)
    computed = [plan for plan in plans if not cache.has("image", plan.key)]
    undrawn = sum(not cache.has("figures", key) for plan in plans for key in plan.figure_keys.values())
    if computed or undrawn > 1:
        jobs.start()  # the workers load while the model loads and the images are analysed
    for plan in plans:
        if plan not in computed:
            submit(plan)
    if computed:
        run.log(f"[images] analysing {len(computed)} of {len(plans)} images")
    for first in range(0, len(computed), ANALYSIS_GROUP):
        group = computed[first:first + ANALYSIS_GROUP]
        failed = dict(analyse(run, group))
        for plan in group:
            if plan in failed:
                plans.remove(plan)
                fail(plan.entry, failed[plan])
            else:
                submit(plan)
        if first + ANALYSIS_GROUP < len(computed):
            # The next group's arrays join these only when most of these are drawn.
            jobs.wait(leave=len(group))
    return [plan.record for plan in plans], failures


def describe_outcome(record: dict) -> str:
    """One line for the log: how the attack on this image ended."""
    attack, clean = record["attack"], record["clean"]["label"]
    if attack["epsilon"] is None:
        return f"{clean}: label held up to epsilon {attack['settings']['epsilon_max']}"
    return (f"{clean} -> {attack['adversarial']['label']} at epsilon {attack['epsilon']:.4f} "
            f"(threshold {attack['threshold']:.4f})" if attack["threshold"] is not None else
            f"{clean} -> {attack['adversarial']['label']} at epsilon {attack['epsilon']:.4f}")
