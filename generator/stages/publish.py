"""Stage site: build every language with MkDocs into a fresh folder, add what lives at the site
root (the language chooser, the 404 page, the manifest, downloads, the in-browser explorer's
runtime, models and per-image data), then swap it in whole.

The previous ``site/`` stays untouched until the new one is complete. Each experiment's model is
exported to TensorFlow.js once (cached by the model's key and the exporter's code), so only a
build with a new model imports TensorFlow here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from generator.cache import code_version, content_key, fresh_sibling, swap_in
from generator.site.mkdocs import build_languages, root_page, start_workers
from generator.stages.context import Build

NOT_FOUND = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>404</title></head>
<body><p>{links}</p></body></html>
"""


def prepare_site(build: Build) -> None:
    """Start MkDocs for each language now, so that it loads while the build computes."""
    start_workers(build.languages, build.docs_dir, build.compiled_templates)


def stage_site(build: Build, manifest: dict) -> None:
    site = manifest["site"]
    fresh = fresh_sibling(build.site_dir)
    fresh.mkdir(parents=True, exist_ok=True)
    build_languages(build.docs_dir, fresh, site["languages"], rendered=build.cache.root / "mkdocs",
                    compiled=build.compiled_templates)
    (fresh / "index.html").write_text(root_page(site), encoding="utf-8")
    first = site["languages"][0]
    if site.get("site_url"):
        # Built with the site's address, the first language's 404 page links back from any depth.
        shutil.copy2(fresh / first / "404.html", fresh / "404.html")
    else:
        links = " · ".join(f'<a href="/{lang}/">{lang}</a>' for lang in site["languages"])
        (fresh / "404.html").write_text(NOT_FOUND.format(lang=first, links=links), encoding="utf-8")
    shutil.copy2(build.docs_dir / "manifest.json", fresh / "manifest.json")
    write_downloads(build, manifest, fresh / "downloads")
    write_explorer(build, manifest, fresh / "assets")
    swap_in(fresh, build.site_dir)


def write_downloads(build: Build, manifest: dict, folder: Path) -> None:
    """The files the code page offers: the standalone script and each experiment's model."""
    from generator.site.pages import STANDALONE_SCRIPT

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(STANDALONE_SCRIPT, folder / STANDALONE_SCRIPT.name)
    for experiment in manifest["experiments"]:
        target = folder / experiment["id"]
        target.mkdir()
        shutil.copy2(Path(experiment["model_dir"]) / "model.keras", target / "model.keras")
        (target / "classes.txt").write_text("\n".join(experiment["model"]["class_names"]) + "\n", encoding="utf-8")


def exported_model(build: Build, experiment: dict) -> Path:
    """The experiment's model in TensorFlow.js layers format, checked to load back to the same
    weights (cached by the model's cache key and the exporter's code)."""
    model_dir = Path(experiment["model_dir"])
    key = content_key("tfjs", model_dir.name, code_version("inputs/model_export"))
    if not build.cache.has("tfjs", key):
        from generator.inputs.model_export import export_tfjs_layers, verify_tfjs_export
        from generator.stages.model import load_saved

        with build.quiet_tensorflow():
            model = load_saved(model_dir / "model.keras")
            with build.cache.write("tfjs", key) as out:
                export_tfjs_layers(model, out)
                verify_tfjs_export(model, out)
    return build.cache.path("tfjs", key)


def write_explorer(build: Build, manifest: dict, assets: Path) -> None:
    """The explorer's runtime, each experiment's model and each image's data under site/assets/."""
    from generator.site.explorer import copy_runtime, image_payload, write_payload

    copy_runtime(assets)
    for experiment in manifest["experiments"]:
        shutil.copytree(exported_model(build, experiment), assets / "models" / experiment["id"])
        model = experiment["model"]
        for image in experiment["images"]:
            with np.load(build.cache.root / image["arrays"]) as npz:
                pixels, direction = npz["x"], npz["gradient_sign"]
            attack = image["attack"]
            settings = {**attack["settings"], "method": attack["method"], "target_index": attack["target_index"],
                        "clip_min": 0.0, "clip_max": 1.0}
            payload = image_payload(
                experiment_id=experiment["id"], image_id=image["id"], titles=image["title"], pixels=pixels,
                class_names=model["class_labels"], canonical_class_names=model["class_names"],
                true_index=image["true_index"], clean_index=image["clean"]["index"],
                clean_probabilities=image["clean"]["probabilities"], attack_settings=settings,
                grid_epsilon=attack["epsilon"], adversarial_index=attack["adversarial"]["index"],
                threshold=attack["threshold"], gradient_sign=direction, amplification=image["amplification"],
                layers=image["layers"], model_url=f"../../models/{experiment['id']}/model.json")
            write_payload(payload, assets / "explorer-data" / experiment["id"] / f"{image['id']}.json")
