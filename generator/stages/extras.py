"""Stage model extras: what an experiment shows about its model as a whole.

The probe image's feature maps after every training epoch, and the accuracy on held-out
images as epsilon grows (under the attack and under noise); then the model's figures in every
site language (training curves and animation, first-layer filters, robustness curve).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from generator.cache import code_version, content_key
from generator.inputs.config import section_dict
from generator.stages.context import ExperimentRun
from generator.stages.drawing import read_figure_list, write_figure_list


def compute_extras(run: ExperimentRun, out: Path) -> None:
    """training_maps.npz (per-epoch maps of the probe image) and extras.json (robustness curve)."""
    from generator.analysis.batching import compiled_model
    from generator.analysis.probe import layer_activations, robustness_curve

    experiment, dataset = run.experiment, run.dataset
    model = run.keras_model()
    extras: dict = {"robustness": None, "probe_image": None}
    snapshots = run.model_dir / "snapshots.npz"
    if dataset is not None and snapshots.exists():
        index = experiment.training.probe_image
        probe = dataset.x_test[index:index + 1]
        maps = {}
        with np.load(snapshots) as npz, run.build.quiet_tensorflow():
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
        extras["probe_image"] = {"index": int(index), "label": dataset.class_names[int(dataset.y_test[index])],
                                 "label_index": int(dataset.y_test[index])}
    robustness = experiment.robustness
    if dataset is not None and robustness.samples and len(dataset.x_test):
        count = min(robustness.samples, len(dataset.x_test))
        # An even spread over the test set, so every class is represented.
        picks = np.linspace(0, len(dataset.x_test) - 1, count).astype(int)
        run.log(f"[model] robustness curve on {count:,} of {len(dataset.x_test):,} test images, "
                f"{len(robustness.epsilons)} epsilons")
        with run.build.quiet_tensorflow():
            extras["robustness"] = robustness_curve(compiled_model(model), dataset.x_test[picks],
                                                    dataset.y_test[picks], robustness.epsilons,
                                                    seed=experiment.attack.noise_seed)
        extras["robustness"]["test_size"] = int(len(dataset.x_test))
    (out / "extras.json").write_text(json.dumps(extras, indent=1))


def draw_model_figures(training: dict | None, extras_dir: Path, settings, lang: str, out: Path) -> dict:
    """The model's figures in one language (``settings``: the experiment's figures section);
    stores their records beside them and returns them. Runs in a drawing worker."""
    from generator.figures import plots, gifs, grids
    from generator.figures.words import words_for

    words = words_for(lang)
    extras = json.loads((extras_dir / "extras.json").read_text())
    made = {}
    if training:
        made["training_curves"] = plots.training_curves(training["history"], out / "training_curves.png", words=words)
    maps_file = extras_dir / "training_maps.npz"
    if maps_file.exists() and training:
        with np.load(maps_file) as npz:
            epochs = sorted({name.split("/")[0] for name in npz.files if "/" in name}, key=lambda e: int(e[6:]))
            epoch_maps = [(int(epoch.split("_")[1]), [(name.split("/")[1], npz[name]) for name in npz.files
                                                      if name.startswith(epoch + "/")]) for epoch in epochs]
            made["training_gif"] = gifs.training_gif(epoch_maps, training["history"]["val_accuracy"],
                                                     out / "training.gif", fps=max(settings.gif_fps / 2, 0.5),
                                                     max_frames=settings.gif_max_frames,
                                                     max_bytes=settings.gif_max_kb * 1000, words=words)
            made["first_layer_filters"] = grids.first_layer_filters(npz["kernel"], out / "first_layer_filters.png",
                                                                    words=words)
    if extras["robustness"]:
        r = extras["robustness"]
        made["robustness"] = plots.robustness_plot(r["epsilons"], r["fgsm_accuracy"], r["noise_accuracy"],
                                                   out / "robustness.png", samples=r["samples"],
                                                   test_size=r["test_size"], words=words)
    return write_figure_list(out, made)


def stage_extras(run: ExperimentRun, training: dict | None) -> tuple[dict, dict, dict]:
    """(extras, {lang: model figure records}, {lang: folder holding them}). Missing figures
    are drawn by the build's drawing jobs, which fill the records as they finish."""
    from generator.figures.words import font_fingerprint

    experiment, cache = run.experiment, run.build.cache
    key = content_key("extras", run.model_key, experiment.training.probe_image, section_dict(experiment.robustness),
                      experiment.attack.noise_seed, run.dataset.fingerprint() if run.dataset else None,
                      code_version("analysis"))
    if not cache.has("extras", key):
        with cache.write("extras", key) as out:
            compute_extras(run, out)
    extras_dir = cache.path("extras", key)
    figures, folders = dict.fromkeys(run.build.languages), {}
    for lang in run.build.languages:
        fkey = content_key("model_figures", key, lang, font_fingerprint(lang), section_dict(experiment.figures),
                           training and training.get("history"), code_version("figures"))
        folders[lang] = cache.path("figures", fkey)
        if cache.has("figures", fkey):
            figures[lang] = read_figure_list(folders[lang])
        else:
            run.build.drawings.submit("figures", fkey, draw_model_figures,
                                      (training, extras_dir, experiment.figures, lang),
                                      lambda made, lang=lang: figures.__setitem__(lang, made))
    return json.loads((extras_dir / "extras.json").read_text()), figures, folders
