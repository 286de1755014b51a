"""Which figures a page gets: composes the ``figures`` functions over one image's arrays.

Arrays in (the probe stage's npz), files out; returns manifest figure records keyed by name,
with paths relative to the output folder. No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from generator import figures


def _maps(arrays: dict, kind: str, layers: list[dict]) -> list[tuple[str, np.ndarray]]:
    """(name, (h, w, c)) for the probed layers with spatial maps, the input excluded."""
    return [(layer["name"], arrays[f"{kind}/{layer['name']}"]) for layer in layers[1:]
            if len(layer["shape"]) == 3]


def image_figures(record: dict, arrays: dict, class_names: list[str], settings, out: Path) -> dict:
    """Every figure of one attacked image. ``settings`` is the config's figures section."""
    out = Path(out)
    clean, adversarial = _maps(arrays, "clean", record["layers"]), _maps(arrays, "adversarial", record["layers"])
    scales = figures.shared_scales(clean, adversarial)
    chosen = figures.select_filters(clean, adversarial, settings.max_filters)
    x, x_adv = arrays["x"], arrays["x_adv"]
    attack = record["attack"]
    adv_prediction = attack["adversarial"] or record["clean"]
    made = {}

    def add(key: str, figure: dict) -> None:
        figure["path"] = Path(figure["path"]).name
        made[key] = figure

    add("input", input_figure(x, out / "input.png", record["title"]))
    add("perturbation", figures.perturbation_image(x, x_adv, out / "perturbation.png"))
    add("probabilities", figures.probability_bars(record["clean"]["probabilities"], adv_prediction["probabilities"],
                                                   class_names, out / "probabilities.png", k=settings.top_k))
    for kind, layers, probabilities, title in (
            ("clean", clean, record["clean"]["probabilities"], "original image"),
            ("adversarial", adversarial, adv_prediction["probabilities"], "adversarial image")):
        add(f"overview_{kind}", figures.network_overview(
            layers, probabilities, class_names, scales, out / f"overview_{kind}.png", f"Inside the network: {title}",
            image=x if kind == "clean" else x_adv, max_filters=settings.max_filters, filter_indices=chosen,
            top_k=settings.top_k))
    for (name, clean_map), (_, adv_map) in zip(clean, adversarial):
        add(f"grid_{name}", figures.comparison_grid(name, clean_map, adv_map, out / f"grid_{name}.png",
                                                   max_filters=settings.max_filters,
                                                   order="change" if clean_map.shape[2] > settings.max_filters else "index"))
    zoom = dict(clean).get(settings.zoom_layer)
    if zoom is not None and settings.zoom_filter < zoom.shape[2]:
        add("zoom_configured", figures.zoom_crop(settings.zoom_layer, settings.zoom_filter, zoom,
                                                 dict(adversarial)[settings.zoom_layer], out / "zoom_configured.png",
                                                 "configured filter"))
    top = max(record["layers"][1:], key=lambda layer: layer["adversarial"]["relative_l2"]
              if len(layer["shape"]) == 3 else -1.0)
    if len(top["shape"]) == 3 and top["adversarial"]["top_filter"] is not None:
        add("zoom_most_changed", figures.zoom_crop(top["name"], top["adversarial"]["top_filter"],
                                                   arrays[f"clean/{top['name']}"], arrays[f"adversarial/{top['name']}"],
                                                   out / "zoom_most_changed.png", "filter that changed most"))
    names = [layer["name"] for layer in record["layers"]]
    add("butterfly", figures.butterfly_plot(names, [layer["adversarial"]["relative_l2"] for layer in record["layers"]],
                                            [layer["noise"]["relative_l2"] for layer in record["layers"]],
                                            out / "butterfly.png", f"Relative change per layer: {record['title']}"))
    add("sweep_gif", figures.epsilon_sweep_gif(x, arrays["gradient_sign"], arrays["sweep_epsilons"],
                                               arrays["sweep_probabilities"], arrays["sweep_labels"],
                                               int(arrays["sweep_flip_index"]), class_names, out / "sweep.gif",
                                               fps=settings.gif_fps, k=settings.top_k,
                                               max_frames=settings.gif_max_frames,
                                               max_bytes=settings.gif_max_kb * 1000))
    add("propagation_gif", figures.propagation_gif([(n, c, a) for (n, c), (_, a) in zip(clean, adversarial)],
                                                   out / "propagation.gif", fps=max(settings.gif_fps / 3, 0.5),
                                                   max_bytes=settings.gif_max_kb * 1000))
    return made


def input_figure(x: np.ndarray, path: Path, title: str) -> dict:
    """The exact array the model saw (H, W, C), enlarged with nearest-neighbour sampling."""
    from PIL import Image

    from generator.figures.common import enlarge, enlargement, image_colours, save_png

    height, width = x.shape[:2]
    image = Image.fromarray(enlarge(image_colours(x), enlargement(height, width, 160)))
    alt = (f"The input the model saw for {title}: {width}x{height} pixels, "
           f"{'grayscale' if x.shape[2] == 1 else 'colour'}, enlarged without smoothing.")
    return save_png(image, path, alt)
