"""Stage images: attack and probe every image of an experiment, then draw its figures in every
site language. Both steps are cached per image: adding an image computes and draws only it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from generator.cache import code_version, content_key, file_digest
from generator.errors import UserError, suggest
from generator.inputs.config import localized, section_dict
from generator.stages.context import ExperimentRun


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
    by_path = {experiment.resolve(entry.path).resolve(): i for i, entry in enumerate(experiment.images)}
    for entry in entries:
        index = by_path[entry.path]
        entry.config, entry.where = experiment.images[index], experiment.key(f"images[{index}]")
    for failure in failures:
        failure["source"] = run.build.relative(experiment.resolve(failure["source"]))
        failure["message"] = f"experiment '{run.id}': {failure['message']}"
    return entries, failures


def analysis_key(run: ExperimentRun, entry, settings, true_index) -> str:
    experiment = run.experiment
    return content_key("image", run.model_key, file_digest(entry.path), true_index, str(settings),
                       experiment.attack.change_threshold, experiment.attack.noise_draws,
                       experiment.figures.gif_max_frames, code_version("analysis"))


def analyse(run: ExperimentRun, entry, settings, true_index, out: Path) -> None:
    """Attack one image and probe every layer; writes record.json and arrays.npz into ``out``."""
    from generator.analysis.record import analyse_image

    experiment = run.experiment
    with run.build.quiet_tensorflow():
        record, arrays = analyse_image(run.keras_model(), entry.pixels, true_index, settings, run.classes.canonical,
                                       change_threshold=experiment.attack.change_threshold,
                                       noise_draws=experiment.attack.noise_draws,
                                       frames=experiment.figures.gif_max_frames)
    record["attack"]["settings"] = {key: getattr(settings, key) for key in (
        "epsilon_start", "epsilon_step", "epsilon_max", "iterations", "step_size", "noise_seed")}
    (out / "record.json").write_text(json.dumps(record, indent=1))
    np.savez_compressed(out / "arrays.npz", **arrays)


def draw(run: ExperimentRun, record: dict, arrays_file: Path, lang: str, out: Path) -> None:
    """Every figure of one image in one language; writes figures.json beside them."""
    from generator.figures.sets import image_figures
    from generator.figures.words import words_for

    with np.load(arrays_file) as npz:
        arrays = {name: npz[name] for name in npz.files}
    made = image_figures(record, arrays, run.classes.by_language[lang], localized(record["title"], lang),
                         run.experiment.figures, out, words_for(lang))
    (out / "figures.json").write_text(json.dumps(made, indent=1, ensure_ascii=False))


def figure_key(run: ExperimentRun, key: str, record: dict, lang: str) -> str:
    from generator.figures.words import font_fingerprint

    return content_key("figures", key, lang, font_fingerprint(lang), section_dict(run.experiment.figures),
                       run.classes.by_language[lang], localized(record["title"], lang), code_version("figures"))


def stage_images(run: ExperimentRun, input_shape) -> tuple[list[dict], list[dict]]:
    """Attack, probe and draw each image (cached per image): (image records, failures)."""
    build, cache = run.build, run.build.cache
    entries, failures = image_entries(run, input_shape)
    records = []
    for number, entry in enumerate(entries, 1):
        try:
            settings = attack_settings(run, entry.config.attack.model_dump(exclude_none=True), f"{entry.where}.attack")
            true_index = run.classes.index_of(entry.label) if entry.label else None
            key = analysis_key(run, entry, settings, true_index)
            status = "cached" if cache.has("image", key) else "computed"
            if status == "computed":
                with cache.write("image", key) as out:
                    analyse(run, entry, settings, true_index, out)
            folder = cache.path("image", key)
            record = json.loads((folder / "record.json").read_text())
            title = entry.config.title or entry.title
            record.update({"id": entry.id, "experiment": run.id, "source": build.relative(entry.path),
                           "title": {lang: localized(title, lang) for lang in build.languages},
                           "caption": ({lang: localized(entry.config.caption, lang) for lang in build.languages}
                                       if entry.config.caption else None),
                           "arrays": folder.relative_to(cache.root).as_posix() + "/arrays.npz",
                           "figures": {}, "figure_dirs": {}})
            for lang in build.languages:
                fkey = figure_key(run, key, record, lang)
                if not cache.has("figures", fkey):
                    with cache.write("figures", fkey) as out:
                        draw(run, record, folder / "arrays.npz", lang, out)
                record["figure_dirs"][lang] = str(cache.path("figures", fkey))
                record["figures"][lang] = json.loads((cache.path("figures", fkey) / "figures.json").read_text())
            records.append(record)
            run.log(f"[images] {number}/{len(entries)} {entry.id}: {describe_outcome(record)} ({status})")
        except UserError as error:
            message = f"experiment '{run.id}': {error}" if f"'{run.id}'" not in str(error) else str(error)
            if not build.keep_going:
                raise UserError(message) from None
            failures.append({"source": build.relative(entry.path), "message": message})
            run.log(f"[images] {number}/{len(entries)} {entry.id}: FAILED: {message}")
    return records, failures


def describe_outcome(record: dict) -> str:
    """One line for the log: how the attack on this image ended."""
    attack, clean = record["attack"], record["clean"]["label"]
    if attack["epsilon"] is None:
        return f"{clean}: label held up to epsilon {attack['settings']['epsilon_max']}"
    return (f"{clean} -> {attack['adversarial']['label']} at epsilon {attack['epsilon']:.4f} "
            f"(threshold {attack['threshold']:.4f})" if attack["threshold"] is not None else
            f"{clean} -> {attack['adversarial']['label']} at epsilon {attack['epsilon']:.4f}")
