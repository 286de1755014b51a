"""Which figures an image page gets: composes the figure functions over one image's arrays.

Arrays in (the analysis stage's npz), files out, in one language; returns manifest figure
records keyed by name, with paths relative to the output folder. Every choice of what to show
(which channels, in which order, which map is the most changed, the amplification of the
perturbation) is read from the image's record, where the analysis made it once; the figures
only draw. No TensorFlow here.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from generator.figures import gifs, grids, plots, zoom
from generator.figures.common import enlarge, enlargement, image_colours, image_kind, save_png


def _maps(arrays: dict, kind: str, layers: list[dict]) -> list[tuple[str, np.ndarray]]:
    """(name, (h, w, c)) for the probed layers with feature maps, the input excluded."""
    return [(layer["name"], arrays[f"{kind}/{layer['name']}"]) for layer in layers[1:] if len(layer["shape"]) == 3]


def shown_channels(layer: dict, max_channels: int) -> tuple[list[int], str]:
    """The channels a layer's pictures show, and how they were chosen: all of them (in index
    order), or the max_channels that changed most (most changed first, as the probe ranked them)."""
    count = layer["shape"][2]
    if count <= max_channels:
        return list(range(count)), "all"
    return layer["channel_order"][:max_channels], "most_changed"


# The two parts of an image's figures (generator.figures.SET_PARTS), of about equal drawing
# time: the stills and the butterfly plot, then, from this one on, the two animations.
SECOND_PART_FROM = "sweep_gif"


def image_figures(record: dict, arrays: dict, class_names: list[str], title: str, settings, out: Path,
                  words, part: int | None = None) -> dict:
    """Every figure of one attacked image in the language of ``words``; with ``part`` (0 or 1),
    only that part's (their records, in part order, make the whole set's). ``settings`` is the
    experiment's figures section; ``class_names`` and ``title`` are in that language."""
    out = Path(out)
    layers = {layer["name"]: layer for layer in record["layers"]}
    maps = [layer for layer in record["layers"][1:] if len(layer["shape"]) == 3]
    clean, adversarial = _maps(arrays, "clean", record["layers"]), _maps(arrays, "adversarial", record["layers"])
    scales = {layer["name"]: tuple(layer["scale"]) for layer in maps}
    chosen = {layer["name"]: shown_channels(layer, settings.max_channels) for layer in maps}
    units = {layer["name"]: layer["unit"] for layer in maps}
    x, x_adv = arrays["x"], arrays["x_adv"]
    attack = record["attack"]
    # (key, drawing) in page order; each drawing returns its figure record.
    drawings = [
        ("input", partial(input_figure, x, out / "input.png", title, words)),
        ("perturbation", partial(zoom.perturbation_image, x, x_adv, out / "perturbation.png",
                                 amplification=record["amplification"], words=words)),
        ("probabilities", partial(
            plots.probability_bars, record["clean"]["probabilities"], attack["adversarial"]["probabilities"],
            class_names, out / "probabilities.png", k=settings.top_k, words=words)),
    ]
    for kind, layer_maps, probabilities, image in (
            ("clean", clean, record["clean"]["probabilities"], x),
            ("adversarial", adversarial, attack["adversarial"]["probabilities"], x_adv)):
        drawings.append((f"overview_{kind}", partial(
            grids.network_overview, layer_maps, probabilities, class_names, scales, out / f"overview_{kind}.png",
            words.t(f"overview_title_{kind}"), image=image,
            channels={name: channels for name, (channels, _) in chosen.items()},
            selection={name: how for name, (_, how) in chosen.items()}, units=units, top_k=settings.top_k,
            words=words)))
    for (name, clean_map), (_, adv_map) in zip(clean, adversarial):
        drawings.append((f"grid_{name}", partial(
            grids.comparison_grid, name, clean_map, adv_map, out / f"grid_{name}.png", channels=chosen[name][0],
            selection=chosen[name][1], unit=units[name], words=words)))
    zoom_layer = layers[settings.zoom_layer]
    drawings.append(("zoom_chosen", partial(
        zoom.zoom_crop, settings.zoom_layer, settings.zoom_channel, arrays[f"clean/{settings.zoom_layer}"],
        arrays[f"adversarial/{settings.zoom_layer}"], out / "zoom_chosen.png", unit=zoom_layer["unit"],
        role="chosen", words=words)))
    most = record["most_changed"]
    if most is not None:
        drawings.append(("zoom_most_changed", partial(
            zoom.zoom_crop, most["layer"], most["channel"], arrays[f"clean/{most['layer']}"],
            arrays[f"adversarial/{most['layer']}"], out / "zoom_most_changed.png", unit=most["unit"],
            role="most_changed", words=words)))
    butterfly = record["butterfly"]
    output = butterfly["output"]
    drawings.append(("butterfly", partial(
        plots.butterfly_plot, butterfly["maps"], butterfly["attack"], butterfly["noise"], out / "butterfly.png",
        words.t("butterfly_title", image=title),
        output=(output["name"], output["attack"], output["noise"]) if output else None, words=words)))
    sweep = record["sweep"]
    drawings.append(("sweep_gif", partial(
        gifs.epsilon_sweep_gif, arrays["sweep_images"], x, arrays["sweep_epsilons"], arrays["sweep_probabilities"],
        arrays["sweep_labels"], out / "sweep.gif", flip_index=sweep["flip_index"], answer_index=sweep["answer_index"],
        amplification=record["amplification"], class_names=class_names,
        epsilon_start=attack["settings"]["epsilon_start"], epsilon_step=attack["settings"]["epsilon_step"],
        fps=settings.gif_fps, k=settings.top_k, max_frames=settings.gif_max_frames,
        max_bytes=settings.gif_max_kb * 1000, words=words)))
    drawings.append(("propagation_gif", partial(
        gifs.propagation_gif,
        [(name, c, a, layers[name]["attack"]["top_channel"] or 0, units[name], layers[name]["attack"]["relative_l2"])
         for (name, c), (_, a) in zip(clean, adversarial)],
        out / "propagation.gif", fps=max(settings.gif_fps / 3, 0.5), max_bytes=settings.gif_max_kb * 1000,
        role="most_changed", words=words)))
    if part is not None:
        split = [key for key, _ in drawings].index(SECOND_PART_FROM)
        drawings = (drawings[:split], drawings[split:])[part]
    made = {}
    for key, draw in drawings:
        figure = draw()
        figure["path"] = Path(figure["path"]).name
        made[key] = figure
    return made


def input_figure(x: np.ndarray, path: Path, title: str, words) -> dict:
    """The exact array the model saw (H, W, C), enlarged with nearest-neighbour sampling."""
    from PIL import Image

    height, width = x.shape[:2]
    image = Image.fromarray(enlarge(image_colours(x), enlargement(height, width, 160)))
    alt = words.t("input_alt", title=title, width=width, height=height,
                  kind=words.t(image_kind(x)))
    return save_png(image, path, alt)
