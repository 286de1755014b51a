"""A synthetic, schema-complete manifest with placeholder figures, for page and site tests.

The numbers are invented; they exist to exercise the templates' logic (which claim is made
for which data), never to be published. ``write_sample_docs`` writes small PNG/GIF files at
every figure path the manifest names, so a strict MkDocs build can check every link.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
# (name, type, shape) of Tiny VGG on 28x28x1 inputs; "input" first as in the manifest.
LAYERS = [("input", "InputLayer", [28, 28, 1]), ("conv_1_1", "Conv2D", [26, 26, 10]),
          ("relu_1_1", "Activation", [26, 26, 10]), ("conv_1_2", "Conv2D", [24, 24, 10]),
          ("relu_1_2", "Activation", [24, 24, 10]), ("max_pool_1", "MaxPooling2D", [12, 12, 10]),
          ("conv_2_1", "Conv2D", [10, 10, 10]), ("relu_2_1", "Activation", [10, 10, 10]),
          ("conv_2_2", "Conv2D", [8, 8, 10]), ("relu_2_2", "Activation", [8, 8, 10]),
          ("max_pool_2", "MaxPooling2D", [4, 4, 10]), ("flatten", "Flatten", [160]),
          ("output", "Dense", [10])]
GROWING = [0.02, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.9]
NOISE = [0.02, 0.03, 0.03, 0.03, 0.03, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.01]
IMAGE_FIGURE_KEYS = ("perturbation", "probabilities", "overview_clean", "overview_adversarial",
                     "zoom_configured", "zoom_most_changed", "butterfly", "sweep_gif",
                     "propagation_gif", "thumbnail", "input")
MODEL_FIGURE_KEYS = ("training_curves", "training_gif", "first_layer_filters", "robustness",
                     "butterfly_all")
SAMPLE_ATTACK_SOURCE = '''"""Sample attack module for page tests (never imported)."""


def gradient_sign(model, x, labels, targeted=False):
    """Sample text."""
    return model.gradient(x, labels).sign()


@staticmethod
def fgsm(model, x, labels, epsilon, clip_min=0.0, clip_max=1.0, targeted=False):
    """One signed gradient step of size epsilon (sample text for the page tests)."""
    step = epsilon * gradient_sign(model, x, labels, targeted)
    return (x + step).clip(clip_min, clip_max)


def basic_iterative_method(model, x, labels, epsilon, step_size=None, iterations=10):
    return _iterate(model, x, labels, epsilon, step_size, iterations)


def projected_gradient_descent(model, x, labels, epsilon, step_size=None, iterations=10):
    return _iterate(model, x, labels, epsilon, step_size, iterations)


def _iterate(model, x, labels, epsilon, step_size, iterations):
    for _ in range(iterations):
        x = fgsm(model, x, labels, step_size)
    return x


def plain_epsilon_loop(model, x, settings=None):
    """Sample text with a code fence inside: ```python```."""
    k = 0
    while not model.flips(x, k):
        k += 1
    return k
'''


def figure(path: str, alt: str, width: int = 120, height: int = 80, frames: int | None = None) -> dict:
    return {"path": path, "alt": alt, "width": width, "height": height, "frames": frames,
            "bytes": 0}


def prediction(label: str, probability: float) -> dict:
    index = CLASS_NAMES.index(label) if label in CLASS_NAMES else 0
    probabilities = [(1.0 - probability) / 9.0] * 10
    probabilities[index] = probability
    return {"label": label, "index": index, "probability": probability,
            "probabilities": probabilities}


def image_record(image_id: str, title: str | None = None, *, outcome: str = "flipped",
                 true_label: str | None = "Ankle boot", clean_label: str = "Ankle boot",
                 adversarial_label: str = "Sandal", target: str | None = None,
                 caption: str | None = "A sample picture.", relative_l2=GROWING,
                 noise_fooled: bool = False, figure_keys=IMAGE_FIGURE_KEYS,
                 grid_layers=("conv_1_1", "relu_1_1", "max_pool_1", "max_pool_2")) -> dict:
    """One image record; ``outcome`` is flipped | not_fooled | targeted_success |
    targeted_failure | targeted_failure_changed (label changed, not to the target)."""
    targeted = outcome.startswith("targeted")
    fooled = outcome in ("flipped", "targeted_success", "targeted_failure_changed")
    succeeded = outcome in ("flipped", "targeted_success")
    if outcome == "targeted_success":
        adversarial_label = target or "Bag"
    adversarial = prediction(adversarial_label, 0.61) if fooled else None
    found = outcome in ("flipped", "targeted_success")
    layers = [{"name": name, "type": kind, "shape": shape,
               "adversarial": {"relative_l2": relative_l2[i], "cosine": 0.99 - 0.01 * i,
                               "fraction_changed": 0.05 * i / 2, "top_filter": 2 if len(shape) == 3 else None},
               "noise": {"relative_l2": NOISE[i], "cosine": 0.999, "fraction_changed": 0.01,
                         "top_filter": 1 if len(shape) == 3 else None}}
              for i, (name, kind, shape) in enumerate(LAYERS)]
    figures = {key: figure(f"images/{image_id}/{key}.{'gif' if key.endswith('gif') else 'png'}",
                           f"{key} of {title or image_id}",
                           frames=12 if key.endswith("gif") else None)
               for key in figure_keys}
    for name in grid_layers:
        figures[f"grid_{name}"] = figure(f"images/{image_id}/grid_{name}.png",
                                         f"comparison grid of {name} for {title or image_id}")
    return {
        "id": image_id, "title": title or image_id, "caption": caption,
        "source": f"content/images/{image_id}.png", "true_label": true_label,
        "clean": prediction(clean_label, 0.93),
        "misclassified": true_label is not None and true_label != clean_label,
        "attack": {"method": "fgsm", "targeted": targeted, "target": target if targeted else None,
                   "fooled": fooled, "succeeded": succeeded,
                   "epsilon": 0.0114 if found else None,
                   "refined_epsilon": 0.01093 if found else None,
                   "steps": 3 if found else 130, "linf": 0.0114 if fooled else 0.1,
                   "adversarial": adversarial},
        "noise": {"epsilon": 0.0114, **prediction(adversarial_label if noise_fooled else clean_label, 0.9),
                  "fooled": noise_fooled},
        "layers": layers, "figures": figures, "arrays": f"probe/{image_id}.npz",
    }


def sample_manifest(images: list[dict] | None = None, *, targeted: bool = False,
                    training: bool = True, robustness: bool = True, imported: bool = False,
                    model_class_names: list[str] | None = None,
                    failures: list[dict] | None = None,
                    title: str = "Butterfly sample") -> dict:
    """A complete manifest. Defaults: two untargeted images, the first flipped.

    ``imported=True`` is a model trained elsewhere and attacked without data: dataset,
    training and robustness null, model-level figures only ``butterfly_all``.
    ``model_class_names`` goes into ``model.class_names``.
    """
    if imported:
        training = robustness = False
    if images is None:
        images = [image_record("ankle-boot", "Ankle boot 5420"),
                  image_record("bag", "Bag 1331", outcome="not_fooled", true_label="Bag",
                               clean_label="Bag", relative_l2=list(reversed(GROWING)))]
    epochs = 3
    return {
        "schema": 1, "generated_at": "2025-01-01T00:00:00+00:00", "butterfly_version": "0.1.0",
        "site": {"title": title, "description": "How an invisible change fools a CNN.",
                 "languages": ["en", "zh"], "site_url": None, "repo_url": None},
        "config_file": "site_config/site.yml",
        "config_text": "seed: 7\nattack:\n  epsilon_start: 0.01\n",
        "versions": {"python": "3.11.2", "tensorflow": "2.21.0", "keras": "3.15.0",
                     "numpy": "2.1.0", "mkdocs": "1.6.1", "mkdocs_material": "9.8.2"},
        "seeds": {"training": 7, "noise": 11},
        "dataset": None if imported else {
            "name": "Fashion-MNIST (subset)", "source": "embedded",
            "class_names": list(CLASS_NAMES), "input_shape": [28, 28, 1],
            "train_size": 6000, "test_size": 1000, "provenance": "sample provenance",
            "licence": "MIT"},
        "model": {"source": "trained" if training else "imported",
                  "file": "../models/tiny_vgg/model.json" if imported else "build/model.keras",
                  "architecture": "tiny_vgg", "parameters": 5450,
                  "layers": [{"name": n, "type": t, "output_shape": s, "parameters": 100}
                             for n, t, s in LAYERS[1:]],
                  **({"input_shape": [28, 28, 1]} if imported else {}),
                  **({"class_names": list(model_class_names)} if model_class_names else {})},
        "training": None if not training else {
            "epochs": epochs, "batch_size": 64, "learning_rate": 0.001,
            "history": {"loss": [1.2, 0.7, 0.5], "accuracy": [0.6, 0.78, 0.84],
                        "val_loss": [0.9, 0.6, 0.55], "val_accuracy": [0.7, 0.8, 0.82]},
            "test_accuracy": 0.8312, "test_loss": 0.5012, "seconds": 8.25, "cached": False,
            "probe_image": {"index": 3, "label": "Dress"}},
        "attack_settings": {"method": "fgsm", "epsilon_start": 0.01, "epsilon_step": 0.0007,
                            "epsilon_max": 0.1, "targeted": targeted,
                            "target": "Bag" if targeted else None, "iterations": None,
                            "step_size": None, "noise_seed": 11, "change_threshold": 0.05,
                            "zoom_layer": "max_pool_1", "zoom_filter": 2},
        "images": images,
        "failures": list(failures or []),
        "robustness": None if not robustness else {
            "epsilons": [0.0, 0.01, 0.02], "fgsm_accuracy": [0.83, 0.5, 0.2],
            "noise_accuracy": [0.83, 0.82, 0.81], "samples": 200},
        "figures": {key: figure(f"images/model/{key}.{'gif' if key.endswith('gif') else 'png'}",
                                f"{key.replace('_', ' ')} of the model",
                                frames=3 if key.endswith("gif") else None)
                    for key in MODEL_FIGURE_KEYS
                    if (training or key not in ("training_curves", "training_gif"))
                    and (not imported or key == "butterfly_all")},
        "timings": {"train": 8.25, "attack": 1.5, "figures": 4.0},
        "cache": {"train": "miss", "attack": "miss", "figures": "miss"},
    }


def _all_figures(manifest: dict):
    yield from manifest["figures"].values()
    for image in manifest["images"]:
        yield from image["figures"].values()


def write_sample_docs(docs_dir: Path, manifest: dict | None = None) -> dict:
    """Write placeholder figures for every figure record and manifest.json; return the manifest."""
    manifest = copy.deepcopy(manifest) if manifest is not None else sample_manifest()
    docs_dir = Path(docs_dir)
    for number, record in enumerate(_all_figures(manifest)):
        target = docs_dir / record["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        colour = (40 + 7 * number % 200, 90, 160)
        size = (record["width"], record["height"])
        if target.suffix == ".gif":
            frames = [Image.new("RGB", size, colour), Image.new("RGB", size, (200, 60, 60))]
            frames[0].save(target, save_all=True, append_images=frames[1:], duration=200, loop=0)
        else:
            Image.new("RGB", size, colour).save(target)
        record["bytes"] = target.stat().st_size
    (docs_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False),
                                            encoding="utf-8")
    return manifest


def write_sample_repo(root: Path, attack_source: str = SAMPLE_ATTACK_SOURCE) -> Path:
    """A repository-like root: the real templates, mkdocs.yml and a sample generator/attack.py.

    Copies (not links) so that builders that insist on files inside the project root work.
    """
    root = Path(root)
    shutil.copytree(REPO_ROOT / "templates", root / "templates", dirs_exist_ok=True)
    shutil.copy2(REPO_ROOT / "mkdocs.yml", root / "mkdocs.yml")
    (root / "generator" / "analysis").mkdir(parents=True, exist_ok=True)
    (root / "generator" / "analysis" / "attack.py").write_text(attack_source, encoding="utf-8")
    return root
