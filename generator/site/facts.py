"""What the pages say, decided from the manifest, per language.

The templates hold the sentences; this module hands them views of the manifest in one
language (class names translated, counts counted, medians taken) so that a template only
chooses among sentences by keys computed here, never by arithmetic of its own. Every number a
page prints comes from a manifest value through these views.
"""

from __future__ import annotations

import statistics
from math import prod
from typing import Any


def localized(value: Any, lang: str) -> Any:
    """A per-language mapping's entry for ``lang`` (else English, else the first), or the value."""
    if isinstance(value, dict):
        return value.get(lang) or value.get("en") or next(iter(value.values()), None)
    return value


# The step between two values an 8-bit image file stores (pixels in [0, 1]): a threshold below
# it is a change that exists only in floating point.
EIGHT_BIT_STEP = 1 / 255


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def image_view(image: dict, experiment: dict, lang: str) -> dict:
    """One image in one language: its record with class names translated and its figures."""
    names = experiment["model"]["class_labels"].get(lang) or experiment["model"]["class_names"]
    attack, clean, noise = image["attack"], image["clean"], image["noise"]

    def name(index):
        return None if index is None else names[index]

    figures = image["figures"][lang]
    zoom_layer = experiment["figure_settings"]["zoom_layer"]
    layers = {layer["name"]: layer for layer in image["layers"]}
    return {
        **image,
        "title": localized(image["title"], lang),
        "caption": localized(image["caption"], lang),
        "page": f"{experiment['id']}/{image['id']}.md",
        "true": name(image["true_index"]),
        "clean_name": name(clean["index"]),
        "adversarial_name": name(attack["adversarial"]["index"]),
        "target_name": name(attack["target_index"]),
        "threshold_name": name(attack["threshold_index"]),
        "noise_name": name(noise["index"]),
        "outcome": attack["outcome"],
        "effect": attack["effect"],
        "figures": figures,
        "zoom": {"layer": layers[zoom_layer], "figure": figures.get("zoom_chosen")},
        "most": {"layer": layers[image["most_changed"]["layer"]] if image["most_changed"] else None,
                 "figure": figures.get("zoom_most_changed")},
        "grids": [(layer, figures["grid_" + layer["name"]]) for layer in image["layers"]
                  if "grid_" + layer["name"] in figures],
        "top": top_classes(attack["adversarial"]["probabilities"], clean["probabilities"], names),
    }


def top_classes(adversarial, clean, names, k: int = 3) -> list[dict]:
    """The k classes most probable after the attack: {name, clean, adversarial}."""
    order = sorted(range(len(adversarial)), key=lambda i: -adversarial[i])[:k]
    return [{"name": names[i], "clean": clean[i], "adversarial": adversarial[i]} for i in order]


def experiment_view(experiment: dict, lang: str) -> dict:
    images = [image_view(image, experiment, lang) for image in experiment["images"]]
    effects = [image["effect"] for image in images]
    changed = [image for image in images if image["attack"]["epsilon"] is not None]
    training = experiment["training"]
    robustness = experiment["robustness"]
    model = experiment["model"]
    target = experiment["attack_settings"]["target"]
    target_index = next((names.index(target) for names in [model["class_names"], *model["class_labels"].values()]
                         if target in names), None)
    dataset = experiment["dataset"]
    return {
        **experiment,
        "dataset": {**dataset, **{key: localized(dataset[key], lang) for key in ("name", "provenance", "licence")}}
                   if dataset else None,
        "title": localized(experiment["title"], lang),
        "description": localized(experiment["description"], lang),
        "page": f"{experiment['id']}/index.md",
        "class_names": model["class_labels"].get(lang) or model["class_names"],
        "target_name": None if target_index is None else (model["class_labels"].get(lang) or model["class_names"])[target_index],
        "imported": experiment["model"]["source"] == "imported",
        "input_shape": experiment["model"]["input_shape"],
        "input_size": int(prod(experiment["model"]["input_shape"])),
        "figures": experiment["figures"][lang],
        "images": images,
        "example": images[0] if images else None,
        "counts": {"images": len(images), "misclassified": sum(1 for i in images if i["misclassified"]),
                   **{effect: effects.count(effect) for effect in ("fooled", "corrected", "changed", "held")},
                   "label_changed": len(changed),
                   "first_step": sum(1 for i in images if i["outcome"] == "first_step"),
                   "below_eight_bit_step": sum(1 for i in changed if i["attack"]["threshold"] is not None
                                               and i["attack"]["threshold"] < EIGHT_BIT_STEP),
                   "never": sum(1 for i in images if i["outcome"] == "never"),
                   "target_reached": sum(1 for i in images if i["outcome"] == "target_reached")},
        "epsilon": {"median": _median(i["attack"]["epsilon"] for i in changed),
                    "min": min((i["attack"]["epsilon"] for i in changed), default=None),
                    "max": max((i["attack"]["epsilon"] for i in changed), default=None),
                    "median_threshold": _median(i["attack"]["threshold"] for i in changed)},
        "accuracy": ({"value": training["test_accuracy"], "test_size": training["test_size"]}
                     if training else None),
        # The robustness curve is the same test accuracy at epsilon 0 only on the whole test set.
        "robustness_subset": bool(robustness and robustness["samples"] < robustness["test_size"]),
    }


def site_view(manifest: dict, lang: str) -> dict:
    """Everything a page of language ``lang`` reads."""
    experiments = [experiment_view(experiment, lang) for experiment in manifest["experiments"]]
    site = manifest["site"]
    return {
        "site": {**site, "title": localized(site["title"], lang), "description": localized(site["description"], lang)},
        "experiments": experiments,
        "article": experiments[0] if experiments else None,
        "example": experiments[0]["example"] if experiments else None,
        "others": experiments[1:],
        "site_figures": manifest["figures"][lang],
        "failures": [failure for experiment in experiments for failure in experiment["failures"]],
        "eight_bit_step": EIGHT_BIT_STEP,
        "uses_fashion_mnist": any("fashion" in (localized((e["dataset"] or {}).get("name"), "en") or "").lower()
                                  for e in experiments),
    }
