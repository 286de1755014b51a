"""Stages comparison and pages: what the experiments say together, then the Markdown pages of
every site language with their figures, assembled in a fresh folder and swapped in whole.

Layout of ``build/docs``::

    manifest.json               the published manifest
    mkdocs-<lang>.yml           one MkDocs config per language (INHERITs the project's mkdocs.yml)
    <lang>/...                  that language's pages (see generator.site.pages)
    <lang>/figures/<exp>/<id>/  the figures of one image, labelled in that language
    <lang>/figures/<exp>/model/ the figures of one experiment's model
    <lang>/figures/site/        the figures comparing the experiments
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from generator.cache import code_version, content_key, fresh_sibling, link_or_copy, swap_in
from generator.inputs.config import REPO_ROOT, localized
from generator.stages.context import Build
from generator.stages.drawing import FIGURE_LIST, read_figure_list, write_figure_list

# Keys of the build's records that point into the local cache: never published.
PRIVATE_KEYS = ("figure_dirs", "arrays", "cache", "model_dir")


def stage_comparison(build: Build, manifest: dict) -> None:
    """Per experiment, the butterfly measurement over its images; across experiments, the
    comparison figures (epsilon per model, attack/noise ratio per layer), in every language."""
    from generator.analysis.butterfly import AMPLIFIED_RATIO, GROWTH, experiment_butterfly
    from generator.figures.words import font_fingerprint

    manifest["butterfly_rules"] = {"amplified_ratio": AMPLIFIED_RATIO, "growth": GROWTH}

    for experiment in manifest["experiments"]:
        experiment["butterfly"] = experiment_butterfly([image["butterfly"] for image in experiment["images"]])
    data = [{"id": e["id"], "title": e["title"], "epsilon_max": e["attack_settings"]["epsilon_max"],
             "images": [(image["title"], image["attack"]["epsilon"], image["butterfly"]["maps"],
                         image["butterfly"]["ratio"]) for image in e["images"]]} for e in manifest["experiments"]]
    # Missing figures are drawn by the build's drawing jobs, which fill these as they finish.
    figures = manifest["figures"] = dict.fromkeys(build.languages)
    manifest["figure_dirs"] = {}
    for lang in build.languages:
        key = content_key("site_figures", data, lang, font_fingerprint(lang), code_version("figures"))
        folder = build.cache.path("figures", key)
        manifest["figure_dirs"][lang] = str(folder)
        if build.cache.has("figures", key):
            figures[lang] = read_figure_list(folder)
        else:
            build.drawings.submit("figures", key, draw_comparison, (data, lang),
                                  lambda made, lang=lang: figures.__setitem__(lang, made))


def draw_comparison(data: list[dict], lang: str, out: Path) -> dict:
    """The comparison figures in one language; stores their records beside them and returns them.
    Runs in a drawing worker."""
    from generator.figures import plots
    from generator.figures.words import words_for

    words = words_for(lang)
    made = {"epsilons": plots.epsilon_strip(
        {localized(e["title"], lang): [(localized(title, lang), eps) for title, eps, _, _ in e["images"]]
         for e in data}, out / "epsilons.png", epsilon_max=max(e["epsilon_max"] for e in data), words=words)}
    for e in data:
        curves = {localized(title, lang): (maps, ratios) for title, _, maps, ratios in e["images"] if len(maps) > 1}
        if curves:
            made[f"ratios_{e['id']}"] = plots.ratio_curves(curves, out / f"ratios_{e['id']}.png",
                                                           localized(e["title"], lang), words=words)
    return write_figure_list(out, made)


def _copy_figures(folder: str, target: Path, records: dict, prefix: str) -> None:
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns(FIGURE_LIST), dirs_exist_ok=True,
                    copy_function=link_or_copy)
    for figure in records.values():
        figure["path"] = f"{prefix}/{figure['path']}"


def published(manifest: dict) -> dict:
    """The manifest as the site publishes it: no local paths, no cache details."""
    clean = copy.deepcopy(manifest)

    def strip(record: dict) -> None:
        for key in PRIVATE_KEYS:
            record.pop(key, None)

    strip(clean)
    for experiment in clean["experiments"]:
        strip(experiment)
        for image in experiment["images"]:
            strip(image)
    return clean


def stage_docs(build: Build, manifest: dict) -> None:
    """Figures, manifest, pages and MkDocs configs into a fresh docs folder, swapped in whole."""
    from generator.site.pages import render_docs

    fresh = fresh_sibling(build.docs_dir)
    for lang in build.languages:
        figures = fresh / lang / "figures"
        for experiment in manifest["experiments"]:
            for image in experiment["images"]:
                _copy_figures(image["figure_dirs"][lang], figures / experiment["id"] / image["id"],
                              image["figures"][lang], f"figures/{experiment['id']}/{image['id']}")
            _copy_figures(experiment["figure_dirs"][lang], figures / experiment["id"] / "model",
                          experiment["figures"][lang], f"figures/{experiment['id']}/model")
        _copy_figures(manifest["figure_dirs"][lang], figures / "site", manifest["figures"][lang], "figures/site")
    public = published(manifest)
    (fresh / "manifest.json").write_text(json.dumps(public, indent=1, ensure_ascii=False), encoding="utf-8")
    render_docs(public, fresh, REPO_ROOT, compiled=build.compiled_templates)
    swap_in(fresh, build.docs_dir)
