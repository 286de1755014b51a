"""Figures: sizes, frame counts, honest colour scales, the flip frame, GIF budgets, alt text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from generator import figures
from generator.figures.common import (
    FLIP_COLOUR, diverging_colours, enlargement, neutral_colour, sequential_colours,
)

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
TINY_VGG_28 = [("conv_1_1", 26, 10), ("relu_1_1", 26, 10), ("conv_1_2", 24, 10), ("relu_1_2", 24, 10),
               ("max_pool_1", 12, 10), ("conv_2_1", 10, 10), ("relu_2_1", 10, 10), ("conv_2_2", 8, 10),
               ("relu_2_2", 8, 10), ("max_pool_2", 4, 10)]


def tiny_vgg_layers(seed: int = 0, shapes=TINY_VGG_28, change: float = 0.05):
    """Clean and adversarial activations of Tiny VGG's shapes: ReLU-like maps and a small change."""
    rng = np.random.default_rng(seed)
    clean, adv = [], []
    for name, side, channels in shapes:
        values = rng.normal(0, 1, (side, side, channels)).astype(np.float32)
        moved = values + rng.normal(0, change, values.shape).astype(np.float32)
        if name.startswith(("relu", "max_pool")):
            values, moved = np.maximum(values, 0), np.maximum(moved, 0)
        clean.append((name, values))
        adv.append((name, moved))
    return clean, adv


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def count_colour(image: np.ndarray, colour) -> int:
    return int(np.all(image == np.asarray(colour, dtype=np.uint8), axis=-1).sum())


def check_record(record: dict, path: Path, frames=None) -> None:
    assert record["path"] == str(path)
    assert record["bytes"] == os.path.getsize(path) > 0
    with Image.open(path) as image:
        assert (record["width"], record["height"]) == image.size
        if frames is None:
            assert record["frames"] is None
        else:
            assert record["frames"] == image.n_frames == frames
    assert len(record["alt"]) > 40


# --- colour mapping ------------------------------------------------------------------------------

def test_difference_colormap_maps_zero_to_the_neutral_colour():
    neutral = neutral_colour()
    assert min(neutral) > 230 and max(neutral) - min(neutral) < 6  # a light, colourless grey
    colours = diverging_colours(np.array([-2.0, 0.0, 2.0]), limit=2.0)
    assert tuple(colours[1]) == neutral
    assert colours[0][2] > colours[0][0]  # negative: blue
    assert colours[2][0] > colours[2][2]  # positive: red
    # symmetric: +v and -v are equally far from neutral
    assert np.abs(colours[0].astype(int) - neutral).sum() == pytest.approx(
        np.abs(colours[2].astype(int) - neutral).sum(), rel=0.15)
    assert tuple(diverging_colours(np.zeros(3), limit=0.0)[0]) == neutral


def test_sequential_colours_depend_only_on_value_and_scale():
    values = np.array([0.0, 0.5, 1.0, 2.0])
    on_0_2 = sequential_colours(values, 0.0, 2.0)
    assert tuple(on_0_2[1]) != tuple(sequential_colours(values, 0.0, 1.0)[1])
    assert tuple(on_0_2[3]) == tuple(sequential_colours(np.array([5.0]), 0.0, 2.0)[0])  # clipped at the top


def test_shared_scales_cover_both_versions_of_a_layer():
    clean = [("a", np.zeros((2, 2, 1))), ("b", np.full((2, 2, 1), 3.0))]
    adv = [("a", np.full((2, 2, 1), 2.0)), ("b", np.full((2, 2, 1), -1.0))]
    assert figures.shared_scales(clean, adv) == {"a": (0.0, 2.0), "b": (-1.0, 3.0)}


def test_enlargement_keeps_pixels_whole_and_near_the_target():
    assert enlargement(12, 12, 80) == 6
    assert enlargement(62, 62, 80) == 2  # 62 px would be small; 124 is still within 1.6 x 80
    assert enlargement(300, 300, 80) == 1


# --- comparison grid -----------------------------------------------------------------------------

def test_comparison_grid_colours_clean_and_adversarial_on_one_scale(tmp_path):
    # Filter 0 holds 0.5 everywhere in both versions. The clean layer alone spans 0..1 and the
    # adversarial one 0..2: only a shared scale (0..2) gives 0.5 one colour in both rows.
    clean = np.zeros((6, 6, 3), np.float32)
    adv = np.zeros((6, 6, 3), np.float32)
    clean[:, :, 0] = adv[:, :, 0] = 0.5
    clean[0, 0, 1], adv[0, 0, 2] = 1.0, 2.0
    path = tmp_path / "grid.png"
    record = figures.comparison_grid("conv_x", clean, adv, path)
    check_record(record, path)
    image = pixels(path)
    side = 6 * enlargement(6, 6, 80)
    expected = sequential_colours(np.array([0.5]), 0.0, 2.0)[0]
    assert count_colour(image, expected) >= 2 * side * side
    # and filter 0's unchanged difference panel is entirely the neutral colour
    assert count_colour(image, neutral_colour()) >= side * side


def test_comparison_grid_labels_layer_filters_and_scales(tmp_path):
    clean, adv = tiny_vgg_layers()
    record = figures.comparison_grid("max_pool_1", clean[4][1], adv[4][1], tmp_path / "g.png")
    assert "max_pool_1" in record["alt"] and "12×12×10" in record["alt"]
    assert "±" in record["alt"] and "filters 0, 1, 2" in record["alt"]


def test_comparison_grid_with_many_channels_shows_the_most_changed(tmp_path):
    rng = np.random.default_rng(1)
    clean = rng.random((8, 8, 64), dtype=np.float32)
    adv = clean.copy()
    adv[:, :, 40] += 0.5
    adv[:, :, 7] += 0.2
    path = tmp_path / "many.png"
    record = figures.comparison_grid("conv_big", clean, adv, path, max_filters=10, order="change")
    check_record(record, path)
    assert "10 most changed of 64" in record["alt"]
    assert "filters 40, 7," in record["alt"]
    one_group = figures.comparison_grid("conv_big", clean, adv, tmp_path / "one.png", max_filters=16, columns=16)
    every = figures.comparison_grid("conv_big", clean, adv, tmp_path / "all.png", max_filters=None, columns=16)
    assert every["width"] == one_group["width"]
    assert every["height"] > 3 * one_group["height"] - 300  # 64 filters wrap into four row groups of 16


def test_comparison_grid_rejects_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="conv"):
        figures.comparison_grid("conv", np.zeros((4, 4, 2)), np.zeros((4, 4, 3)), tmp_path / "x.png")


def test_most_changed_filters_orders_by_summed_absolute_change():
    clean = np.zeros((3, 3, 4))
    adv = clean.copy()
    adv[:, :, 2] = -1.0
    adv[0, 0, 0] = 5.0
    assert figures.most_changed_filters(clean, adv, 3) == [2, 0, 1]


# --- overview ------------------------------------------------------------------------------------

def test_overviews_share_scale_and_size(tmp_path):
    clean, adv = tiny_vgg_layers()
    # a constant filter of value 0.25 in max_pool_2, the same in both versions
    for layers in (clean, adv):
        layers[-1][1][:, :, 3] = 0.25
    scales = figures.shared_scales(clean, adv)
    p_clean = np.eye(10)[2] * 0.9 + 0.01
    p_adv = np.eye(10)[6] * 0.9 + 0.01
    x = np.random.default_rng(0).random((28, 28, 1), dtype=np.float32)
    a = figures.network_overview(clean, p_clean, CLASS_NAMES, scales, tmp_path / "clean.png", "Original",
                                 image=x)
    b = figures.network_overview(adv, p_adv, CLASS_NAMES, scales, tmp_path / "adv.png",
                                 "Adversarial image, a much longer title than the other one", image=x)
    check_record(a, tmp_path / "clean.png")
    assert (a["width"], a["height"]) == (b["width"], b["height"])
    lo, hi = scales["max_pool_2"]
    expected = sequential_colours(np.array([0.25]), lo, hi)[0]
    area = (4 * enlargement(4, 4, 56)) ** 2
    assert count_colour(pixels(tmp_path / "clean.png"), expected) >= area
    assert count_colour(pixels(tmp_path / "adv.png"), expected) >= area
    assert "conv_1_1" in a["alt"] and "Pullover" in a["alt"] and "Shirt" in b["alt"]


def test_overview_of_many_channels_names_the_selection(tmp_path):
    rng = np.random.default_rng(2)
    clean = [("conv_wide", rng.random((16, 16, 64), dtype=np.float32))]
    adv = [("conv_wide", clean[0][1] + rng.normal(0, 0.1, (16, 16, 64)).astype(np.float32))]
    chosen = figures.select_filters(clean, adv, 8)
    assert len(chosen["conv_wide"]) == 8
    scales = figures.shared_scales(clean, adv)
    record = figures.network_overview(clean, np.full(3, 1 / 3), ["a", "b", "c"], scales, tmp_path / "o.png",
                                      "Wide", max_filters=8, filter_indices=chosen)
    assert "8 most changed of 64" in record["alt"]
    first = figures.network_overview(clean, np.full(3, 1 / 3), ["a", "b", "c"], scales, tmp_path / "f.png",
                                     "Wide", max_filters=8)
    assert "first 8 of 64" in first["alt"]


def test_overview_of_a_colour_input(tmp_path):
    clean, adv = tiny_vgg_layers(shapes=[("conv_1_1", 62, 10), ("max_pool_1", 30, 10), ("max_pool_2", 13, 10)])
    x = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    record = figures.network_overview(clean, np.full(10, 0.1), CLASS_NAMES, figures.shared_scales(clean, adv),
                                      tmp_path / "rgb.png", "Colour", image=x)
    check_record(record, tmp_path / "rgb.png")
    assert "input 64×64×3" in record["alt"] and "62×62×10" in record["alt"]


# --- zoom and perturbation -----------------------------------------------------------------------

def test_largest_change_window_finds_the_changed_block():
    diff = np.zeros((12, 12))
    diff[7:10, 2:5] = -1.0
    diff[0, 11] = 2.0
    assert figures.largest_change_window(diff, 3) == (7, 2)


def test_zoom_crop_boxes_the_largest_change(tmp_path):
    clean = np.zeros((12, 12, 4), np.float32)
    adv = clean.copy()
    adv[4:7, 8:11, 2] = 1.0
    path = tmp_path / "zoom.png"
    record = figures.zoom_crop("max_pool_1", 2, clean, adv, path, "configured filter")
    check_record(record, path)
    assert "max_pool_1, filter 2" in record["alt"]
    assert "rows 4–6 and columns 8–10" in record["alt"] and "100 %" in record["alt"]
    with pytest.raises(ValueError, match="filter 9"):
        figures.zoom_crop("max_pool_1", 9, clean, adv, path, "configured filter")


def test_zoom_crop_uses_the_layer_scale_for_both_versions(tmp_path):
    clean = np.zeros((8, 8, 2), np.float32)
    adv = clean.copy()
    clean[:, :, 0] = adv[:, :, 0] = 0.5
    adv[0, 0, 1] = 2.0  # the layer's scale is 0..2 because of another filter
    path = tmp_path / "zoom.png"
    figures.zoom_crop("pool", 0, clean, adv, path, "configured filter")
    side = 8 * enlargement(8, 8, 240)
    expected = sequential_colours(np.array([0.5]), 0.0, 2.0)[0]
    assert count_colour(pixels(path), expected) >= 2 * side * side


@pytest.mark.parametrize("channels", [1, 3])
def test_perturbation_image_amplifies_and_prints_the_factor(tmp_path, channels):
    x = np.full((28, 28, channels), 0.5, np.float32)
    x_adv = x.copy()
    x_adv[:14] += 0.05
    path = tmp_path / "p.png"
    record = figures.perturbation_image(x, x_adv, path)
    check_record(record, path)
    assert "×10" in record["alt"]  # 0.5 / max|delta| = 0.5 / 0.05
    # mid-grey: all of x, the unchanged half of x_adv and the unchanged half of the perturbation
    side = 28 * enlargement(28, 28, 224)
    assert count_colour(pixels(path), (128, 128, 128)) >= 2 * side * side
    fixed = figures.perturbation_image(x, x_adv, tmp_path / "q.png", amplification=4)
    assert "×4" in fixed["alt"]


# --- charts --------------------------------------------------------------------------------------

def test_charts_write_pngs_with_records(tmp_path):
    names = ["input", "conv_1_1", "relu_1_1", "max_pool_1", "flatten", "output"]
    made = {
        "bars": figures.probability_bars(np.eye(10)[2] * 0.8 + 0.02, np.eye(10)[6] * 0.8 + 0.02, CLASS_NAMES,
                                         tmp_path / "bars.png", k=4),
        "butterfly": figures.butterfly_plot(names, [0.02, 0.05, 0.0, 0.2, 0.4, float("inf")],
                                            [0.02, 0.02, 0.03, 0.03, 0.03, 0.01], tmp_path / "b.png", "Butterfly"),
        "all": figures.butterfly_all({f"image {i}": (names, np.geomspace(0.01, 1 + i, 6)) for i in range(8)},
                                     tmp_path / "all.png"),
        "robustness": figures.robustness_plot([0, 0.01, 0.02], [0.9, 0.5, 0.2], [0.9, 0.89, 0.88],
                                              tmp_path / "r.png"),
        "training": figures.training_curves({"loss": [1.0, 0.5], "accuracy": [0.6, 0.8]}, tmp_path / "t.png"),
        "filters": figures.first_layer_filters(np.random.default_rng(0).normal(size=(3, 3, 3, 10)),
                                               tmp_path / "k.png"),
    }
    for key, record in made.items():
        check_record(record, Path(record["path"]))
    assert "Pullover" in made["bars"]["alt"] and "Shirt" in made["bars"]["alt"]
    assert "output" in made["butterfly"]["alt"]
    assert "90.0 %" in made["robustness"]["alt"]
    with Image.open(tmp_path / "b.png") as png:
        assert png.info["Description"] == made["butterfly"]["alt"]


# --- GIFs ----------------------------------------------------------------------------------------

def sweep_inputs(steps: int, flip: int, shape=(28, 28, 1), seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random(shape, dtype=np.float32)
    sign = rng.choice([-1.0, 1.0], size=shape).astype(np.float32)
    epsilons = np.linspace(0, 0.05, steps)
    probabilities = np.zeros((steps, 10))
    labels = np.full(steps, 2)
    for i in range(steps):
        shift = i / steps
        probabilities[i, 2], probabilities[i, 6] = 0.9 - 0.6 * shift, 0.05 + 0.6 * shift
        probabilities[i, [0, 1, 3]] = 0.05 / 3
    if flip >= 0:
        labels[flip:] = 6
    return x, sign, epsilons, probabilities, labels


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]


def gif_durations(path) -> list[int]:
    with Image.open(path) as gif:
        return [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]


def test_sweep_gif_marks_and_holds_the_flip_frame(tmp_path):
    x, sign, eps, probs, labels = sweep_inputs(12, flip=5)
    path = tmp_path / "sweep.gif"
    record = figures.epsilon_sweep_gif(x, sign, eps, probs, labels, 5, CLASS_NAMES, path, fps=5)
    check_record(record, path, frames=12)
    frames = gif_frames(path)
    red = np.asarray(FLIP_COLOUR)
    corner = [np.abs(frame[2, 2].astype(int) - red).max() <= 24 for frame in frames]
    assert corner == [i == 5 for i in range(12)]
    durations = gif_durations(path)
    assert durations[5] > max(durations[:5] + durations[6:-1])
    assert "Pullover to Shirt" in record["alt"] and "frame 6" in record["alt"]


def test_sweep_gif_says_not_fooled(tmp_path):
    x, sign, eps, probs, labels = sweep_inputs(8, flip=-1, shape=(64, 64, 3))
    path = tmp_path / "sweep.gif"
    record = figures.epsilon_sweep_gif(x, sign, eps, probs, labels, -1, CLASS_NAMES, path, fps=5)
    check_record(record, path, frames=8)
    assert "not fooled" in record["alt"]
    red = np.asarray(FLIP_COLOUR)
    assert all(np.abs(frame[2, 2].astype(int) - red).max() > 24 for frame in gif_frames(path))


@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 3)])
def test_sweep_gif_stays_within_budget_and_keeps_the_flip(tmp_path, shape):
    x, sign, eps, probs, labels = sweep_inputs(90, flip=47, shape=shape)
    path = tmp_path / "sweep.gif"
    record = figures.epsilon_sweep_gif(x, sign, eps, probs, labels, 47, CLASS_NAMES, path, fps=8)
    assert record["frames"] <= 60 and record["bytes"] <= 500_000
    red = np.asarray(FLIP_COLOUR)
    marked = [i for i, frame in enumerate(gif_frames(path)) if np.abs(frame[2, 2].astype(int) - red).max() <= 24]
    assert len(marked) == 1
    assert f"ε = {eps[47]:.4f}" in record["alt"]


@pytest.mark.parametrize("shapes", [TINY_VGG_28, [("conv_1_1", 62, 10), ("relu_1_1", 62, 10), ("conv_1_2", 60, 10),
                                                   ("max_pool_1", 30, 10), ("conv_2_1", 28, 10), ("conv_2_2", 26, 10),
                                                   ("max_pool_2", 13, 10)]])
def test_propagation_gif_one_frame_per_layer_within_budget(tmp_path, shapes):
    clean, adv = tiny_vgg_layers(shapes=shapes)
    path = tmp_path / "prop.gif"
    record = figures.propagation_gif([(n, c, a) for (n, c), (_, a) in zip(clean, adv)], path, fps=2)
    check_record(record, path, frames=len(shapes))
    assert record["bytes"] <= 500_000
    assert shapes[0][0] in record["alt"] and "max_pool_2" in record["alt"]


def test_gifs_shrink_to_fit_a_byte_budget(tmp_path):
    clean, adv = tiny_vgg_layers(change=1.0)
    layers = [(n, c, a) for (n, c), (_, a) in zip(clean, adv)]
    roomy = figures.propagation_gif(layers, tmp_path / "roomy.gif", max_bytes=None)
    tight = figures.propagation_gif(layers, tmp_path / "tight.gif", max_bytes=roomy["bytes"] // 2)
    assert tight["bytes"] < roomy["bytes"] and tight["height"] < roomy["height"]
    assert tight["frames"] == roomy["frames"] == len(layers)  # layers are never dropped


def smooth_maps(rng, side: int, channels: int) -> np.ndarray:
    """Feature-map-like activations: a coarse random field enlarged and lightly jittered."""
    coarse = rng.random((max(2, side // 4), max(2, side // 4), channels), dtype=np.float32)
    fine = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:side, :side]
    return np.pad(fine, ((0, side - fine.shape[0]), (0, side - fine.shape[1]), (0, 0)), mode="edge")


def test_training_gif_frames_and_budget(tmp_path):
    rng = np.random.default_rng(3)
    start = {n: smooth_maps(rng, s, c) for n, s, c in TINY_VGG_28}
    end = {n: smooth_maps(rng, s, c) for n, s, c in TINY_VGG_28}
    epochs = [(e, [(n, start[n] + e / 10 * (end[n] - start[n])) for n, _, _ in TINY_VGG_28]) for e in range(1, 11)]
    accuracies = list(np.linspace(0.5, 0.85, 10))
    path = tmp_path / "train.gif"
    record = figures.training_gif(epochs, accuracies, path, fps=2)
    check_record(record, path, frames=10)
    assert record["bytes"] <= 500_000
    assert "50.0 %" in record["alt"] and "85.0 %" in record["alt"]
    backwards = figures.training_gif(epochs[::-1], accuracies[::-1], tmp_path / "back.gif")
    assert "epochs 1 to 10" in backwards["alt"] and "from 50.0 % to 85.0 %" in backwards["alt"]
    with pytest.raises(ValueError, match="accuracy"):
        figures.training_gif(epochs, accuracies[:-1], path)


def test_training_gif_of_noisy_maps_thins_epochs_to_fit(tmp_path):
    rng = np.random.default_rng(4)
    epochs = [(e, [(n, rng.random((s, s, c), dtype=np.float32)) for n, s, c in TINY_VGG_28]) for e in range(1, 21)]
    record = figures.training_gif(epochs, list(np.linspace(0.3, 0.9, 20)), tmp_path / "noisy.gif")
    # uncorrelated noise in every frame cannot fit 20 full frames into 500 KB: epochs are thinned
    assert record["bytes"] <= 500_000 and record["frames"] < 20
    assert f"{record['frames']} of the 20 epochs shown" in record["alt"]


def test_figures_do_not_import_tensorflow(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from generator import figures\n"
        "c = np.random.default_rng(0).random((6, 6, 3), dtype=np.float32)\n"
        f"figures.comparison_grid('conv', c, c * 1.1, {str(tmp_path / 'g.png')!r})\n"
        f"figures.probability_bars(np.full(3, 1 / 3), np.full(3, 1 / 3), ['a', 'b', 'c'], {str(tmp_path / 'p.png')!r})\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
