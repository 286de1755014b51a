"""The computing stages: data, model (trained or imported), each image's attack and figures, model extras.

Each stage reads its result back from the content cache when its inputs are unchanged, and
imports TensorFlow only when it has something to compute.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator.cache import code_version, content_key, file_digest
from generator.inputs.config import Config, section_dict
from generator.inputs.datasets import Dataset, load_embedded, load_idx_dataset
from generator.errors import UserError, suggest

if TYPE_CHECKING:
    from generator.pipeline import Build


def load_dataset(config: Config) -> Dataset:
    data = config.data
    if data.source == "embedded":
        return load_embedded()
    if data.source == "idx":
        return load_idx_dataset(config.resolve(data.path), data.class_names)
    if data.source == "folder":
        from generator.inputs.folder_data import load_folder_dataset
        return load_folder_dataset(config.resolve(data.path), None, data.validation_split, data.seed,
                                   class_names=data.class_names)
    from generator.inputs.download import load_recipe
    return load_recipe(data.recipe, seed=data.seed)


def model_key(config: Config, dataset_fingerprint: str) -> str:
    return content_key("model", section_dict(config.model), section_dict(config.training), dataset_fingerprint,
                       code_version("analysis/training"), metadata.version("keras"))


def train_model(build: Build, dataset: Dataset, out: Path) -> None:
    """Train Tiny VGG into ``out``: model.keras, snapshots.npz (weights per epoch), model.json."""
    from generator.analysis.training import build_tiny_vgg, check_fits, train
    from generator.inputs.model_import import describe_model

    config = build.config
    problem = check_fits(dataset.input_shape, config.model.blocks)
    if problem:
        raise UserError(f"model.blocks: {problem}")
    t = config.training
    build.log(f"[model] training Tiny VGG on {len(dataset.x_train)} images for {t.epochs} epochs")
    with build.quiet_tensorflow():
        model = build_tiny_vgg(dataset.input_shape, len(dataset.class_names), blocks=config.model.blocks,
                               filters=config.model.filters, seed=t.seed)
        # Keras writes its progress to stdout, which stays visible.
        result = train(model, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, epochs=t.epochs,
                       batch_size=t.batch_size, learning_rate=t.learning_rate, seed=t.seed,
                       verbose=1 if sys.stdout.isatty() else 2)
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
    build.model_key = key
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


def imported_model_key(config: Config, class_names: list[str]) -> str:
    path = config.resolve(config.model.path)
    files = sorted(path.parent.glob("*.bin")) + [path] if path.suffix == ".json" else [path]
    return content_key("imported", [file_digest(f) for f in files], class_names, list(config.model.input_range),
                       code_version("inputs/model_import"))


def stage_imported_model(build: Build, class_names: list[str]) -> dict:
    """Import a model trained elsewhere; it is loaded from the user's file whenever it is needed."""
    config = build.config
    key = imported_model_key(config, class_names)
    build.model_dir = build.cache.path("model", key)
    build.model_key = key
    path = config.resolve(config.model.path)
    build.model_loader = lambda: _import(path, class_names, config.model.input_range)
    if build.cache.has("model", key):
        build.cache_status["model"] = "hit"
    else:
        build.cache_status["model"] = "miss"
        from generator.inputs.model_import import describe_model

        model = build.keras_model()
        # A TF.js or Keras file often names its model just "sequential"; its folder or file name says more.
        name = path.parent.name if path.suffix == ".json" else path.stem
        info = {"source": "imported", "file": str(config.model.path), "architecture": name,
                "parameters": int(model.count_params()), "layers": describe_model(model), "training": None,
                "input_shape": [int(d) for d in model.input_shape[1:]]}
        with build.cache.write("model", key) as out:
            (out / "model.json").write_text(json.dumps(info, indent=1))
    return json.loads((build.model_dir / "model.json").read_text())


def _import(path: Path, class_names: list[str], input_range) -> object:
    from generator.inputs.model_import import load_model
    return load_model(path, class_names, tuple(input_range))


def attack_settings(config: Config, overrides: dict, class_names: list[str], where: str):
    """The config's attack section with an image's overrides; the target name becomes an index."""
    from generator.analysis.attack import AttackSettings

    merged = {**section_dict(config.attack), **overrides}
    target = merged.pop("target")
    target_index = None
    if target is not None:
        if target not in class_names:
            raise UserError(f"{where}.target: unknown class '{target}'{suggest(target, class_names)}")
        target_index = class_names.index(target)
    low, high = 0.0, 1.0
    return AttackSettings(method=merged["method"], epsilon_start=merged["epsilon_start"],
                          epsilon_step=merged["epsilon_step"], epsilon_max=merged["epsilon_max"],
                          target_index=target_index, iterations=merged["iterations"],
                          step_size=merged["step_size"], noise_seed=merged["noise_seed"],
                          clip_min=low, clip_max=high)


def compute_image(build: Build, entry, settings, class_names: list[str], out: Path) -> None:
    """Attack one image and probe every layer; writes record.json and arrays.npz into ``out``."""
    from generator.analysis.attack import attack_image
    from generator.analysis.probe import epsilon_sweep, probe_image

    model = build.keras_model()
    true_index = class_names.index(entry.label) if entry.label else None
    result = attack_image(model, entry.pixels, true_index, settings, class_names)
    x_adv, x_noise, direction = result.pop("x_adv"), result.pop("x_noise"), result.pop("gradient_sign")
    layers, arrays = probe_image(model, entry.pixels, x_adv, x_noise, build.config.attack.change_threshold)
    sweep = epsilon_sweep(model, entry.pixels, direction, result["attack"]["epsilon"],
                          frames=build.config.figures.gif_max_frames, epsilon_max=settings.epsilon_max,
                          clip_min=settings.clip_min, clip_max=settings.clip_max)
    result["attack"]["settings"] = {key: getattr(settings, key) for key in (
        "epsilon_start", "epsilon_step", "epsilon_max", "iterations", "step_size", "noise_seed")}
    record = {"id": entry.id, "title": entry.title, "caption": entry.caption, "source": entry.source,
              **result, "layers": layers}
    (out / "record.json").write_text(json.dumps(record, indent=1))
    np.savez_compressed(out / "arrays.npz", x=entry.pixels, x_adv=x_adv, x_noise=x_noise, gradient_sign=direction,
                        **arrays, **sweep)


def stage_images(build: Build, entries: list, class_names: list[str], failures: list[dict]) -> list[dict]:
    """Attack, probe and draw each image (cached per image); returns the manifest's image records."""
    from generator.figures.sets import image_figures

    config = build.config
    records = []
    code = code_version("analysis")
    figure_code = code_version("figures")
    for number, entry in enumerate(entries, 1):
        where = f"images[{entry.index}].attack" if hasattr(entry, "index") else f"image {entry.source}: attack"
        try:
            settings = attack_settings(config, entry.attack, class_names, where)
            key = content_key("image", build.model_key, file_digest(entry.path), entry.label, entry.title,
                              entry.caption, entry.id, str(settings), config.attack.change_threshold,
                              config.figures.gif_max_frames, code)
            if not build.cache.has("image", key):
                with build.cache.write("image", key) as out:
                    compute_image(build, entry, settings, class_names, out)
                status = "computed"
            else:
                status = "cached"
            folder = build.cache.path("image", key)
            record = json.loads((folder / "record.json").read_text())
            figure_key = content_key("figures", key, section_dict(config.figures), figure_code)
            if not build.cache.has("figures", figure_key):
                with np.load(folder / "arrays.npz") as npz:
                    arrays = {name: npz[name] for name in npz.files}
                with build.cache.write("figures", figure_key) as out:
                    made = image_figures(record, arrays, class_names, config.figures, out)
                    (out / "figures.json").write_text(json.dumps(made, indent=1))
            record["figures_dir"] = str(build.cache.path("figures", figure_key))
            record["figures"] = json.loads((build.cache.path("figures", figure_key) / "figures.json").read_text())
            record["arrays"] = str(folder.relative_to(build.cache.root) / "arrays.npz")
            records.append(record)
            attack = record["attack"]
            outcome = (f"label {record['clean']['label']} -> {attack['adversarial']['label']} at epsilon "
                       f"{attack['epsilon']:.4f}" if attack["fooled"] else f"not fooled up to {settings.epsilon_max}")
            build.log(f"[images] {number}/{len(entries)} {entry.id}: {outcome} ({status})")
        except UserError as error:
            if not build.keep_going:
                raise
            failures.append({"source": entry.source, "message": str(error)})
            build.log(f"[images] {number}/{len(entries)} {entry.id}: FAILED: {error}")
    return records


def compute_model_extras(build: Build, dataset: Dataset | None, out: Path) -> None:
    """Feature maps of the probe image after every epoch, and accuracy against epsilon."""
    from generator.analysis.probe import layer_activations, robustness_curve

    config = build.config
    model = build.keras_model()
    extras: dict = {"robustness": None, "probe_image": None}
    snapshots = build.model_dir / "snapshots.npz"
    if dataset is not None and snapshots.exists():
        index = min(config.training.probe_image, len(dataset.x_test) - 1)
        probe = dataset.x_test[index:index + 1]
        maps = {}
        with np.load(snapshots) as npz:
            epochs = sorted({name.split("/")[0] for name in npz.files}, key=lambda e: int(e[6:]))
            final = model.get_weights()
            for epoch in epochs:
                model.set_weights([npz[f"{epoch}/{i}"] for i in range(len(final))])
                for name, value in layer_activations(model, probe).items():
                    if value.ndim == 4:
                        maps[f"{epoch}/{name}"] = value[0]
            model.set_weights(final)
            maps["kernel"] = npz[f"{epochs[-1]}/0"]
        np.savez_compressed(out / "training_maps.npz", **maps)
        extras["probe_image"] = {"index": int(index), "label": dataset.class_names[int(dataset.y_test[index])]}
    if dataset is not None and config.robustness.samples and len(dataset.x_test):
        count = min(config.robustness.samples, len(dataset.x_test))
        # An even spread over the test set, so every class is represented.
        picks = np.linspace(0, len(dataset.x_test) - 1, count).astype(int)
        build.log(f"[model] robustness curve on {count} test images, {len(config.robustness.epsilons)} epsilons")
        extras["robustness"] = robustness_curve(model, dataset.x_test[picks], dataset.y_test[picks],
                                                config.robustness.epsilons, seed=config.attack.noise_seed)
    (out / "extras.json").write_text(json.dumps(extras, indent=1))


def model_figures(build: Build, training: dict | None, extras_dir: Path, out: Path) -> dict:
    from generator import figures

    extras = json.loads((extras_dir / "extras.json").read_text())
    settings = build.config.figures
    made = {}
    if training:
        made["training_curves"] = figures.training_curves(training["history"], out / "training_curves.png")
    maps_file = extras_dir / "training_maps.npz"
    if maps_file.exists() and training:
        with np.load(maps_file) as npz:
            epochs = sorted({name.split("/")[0] for name in npz.files if "/" in name}, key=lambda e: int(e[6:]))
            epoch_maps = [(int(epoch.split("_")[1]), [(name.split("/")[1], npz[name]) for name in npz.files
                                                      if name.startswith(epoch + "/")]) for epoch in epochs]
            made["training_gif"] = figures.training_gif(epoch_maps, training["history"]["val_accuracy"],
                                                        out / "training.gif", fps=max(settings.gif_fps / 2, 0.5),
                                                        max_frames=settings.gif_max_frames,
                                                        max_bytes=settings.gif_max_kb * 1000)
            made["first_layer_filters"] = figures.first_layer_filters(npz["kernel"], out / "first_layer_filters.png")
    if extras["robustness"]:
        r = extras["robustness"]
        made["robustness"] = figures.robustness_plot(r["epsilons"], r["fgsm_accuracy"], r["noise_accuracy"],
                                                     out / "robustness.png")
    for figure in made.values():
        figure["path"] = Path(figure["path"]).name
    return made


def stage_model_extras(build: Build, dataset: Dataset | None, training: dict | None):
    """Returns (extras dict, model figure records, folder holding the figure files)."""
    config = build.config
    key = content_key("extras", build.model_key, config.training.probe_image, section_dict(config.robustness),
                      config.attack.noise_seed, dataset.fingerprint() if dataset else None, code_version("analysis"))
    if not build.cache.has("extras", key):
        with build.cache.write("extras", key) as out:
            compute_model_extras(build, dataset, out)
    extras_dir = build.cache.path("extras", key)
    figure_key = content_key("model_figures", key, section_dict(config.figures), code_version("figures"))
    if not build.cache.has("figures", figure_key):
        with build.cache.write("figures", figure_key) as out:
            made = model_figures(build, training, extras_dir, out)
            (out / "figures.json").write_text(json.dumps(made, indent=1))
    figures_dir = build.cache.path("figures", figure_key)
    return (json.loads((extras_dir / "extras.json").read_text()),
            json.loads((figures_dir / "figures.json").read_text()), figures_dir)
