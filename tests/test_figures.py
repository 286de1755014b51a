"""Figures: sizes, frame counts, honest colour scales, what each record says it drew, the marked
sweep frames, GIF budgets, alt text, and the Chinese twins (with the CJK font, and without it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from generator import figures
from generator.figures import words as words_module
from generator.figures.common import (
    ANSWER_COLOUR, DIVERGING, FLIP_COLOUR, SEQUENTIAL, colour_table, diverging_colours, enlarge, enlargement,
    SUBTLE_LEVELS, neutral_colour, number, percent, save_png, sequential_colours,
)
from generator.figures.text import text_width, wrap_text
from generator.figures.words import PHRASES, words_for

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
CLASS_NAMES_ZH = ["T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴"]
TINY_VGG_28 = [("conv_1_1", 26, 10), ("relu_1_1", 26, 10), ("conv_1_2", 24, 10), ("relu_1_2", 24, 10),
               ("max_pool_1", 12, 10), ("conv_2_1", 10, 10), ("relu_2_1", 10, 10), ("conv_2_2", 8, 10),
               ("relu_2_2", 8, 10), ("max_pool_2", 4, 10)]
EN = words_for("en")
CJK = re.compile("[\u4e00-\u9fff]")


def chinese():
    """The Chinese words, or a skip when this machine has no font that writes Chinese."""
    words = words_for("zh")
    if words.lang != "zh":
        pytest.skip("no CJK font on this machine")
    return words


def unit_of(name: str) -> str:
    return "filter" if name.startswith("conv") else "channel"


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


def grid(name, clean, adv, path, channels=None, selection="all", **kwargs) -> dict:
    channels = list(range(clean.shape[2])) if channels is None else channels
    return figures.comparison_grid(name, clean, adv, path, channels=channels, selection=selection,
                                   unit=unit_of(name), **kwargs)


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
    record = grid("conv_x", clean, adv, path)
    check_record(record, path)
    image = pixels(path)
    side = 6 * enlargement(6, 6, 80)
    expected = sequential_colours(np.array([0.5]), 0.0, 2.0)[0]
    assert count_colour(image, expected) >= 2 * side * side
    # and filter 0's unchanged difference panel is entirely the neutral colour
    assert count_colour(image, neutral_colour()) >= side * side


@pytest.mark.parametrize("colours", [3, 600])
def test_a_saved_figure_keeps_every_colour_exactly(tmp_path, colours):
    # Rare colours are data too: a colour bar's ends, a map's largest change. Few colours make
    # a palette PNG, many an RGB one; either way the file holds the very pixels drawn.
    rng = np.random.default_rng(0)
    table = np.concatenate([colour_table(SEQUENTIAL), colour_table(DIVERGING), rng.integers(0, 256, (600, 3))])
    picks = rng.choice(len(table), colours, replace=False)
    drawn = np.repeat(table[picks].astype(np.uint8), 7, axis=0).reshape(-1, 7 if colours == 3 else 60, 3)
    save_png(Image.fromarray(drawn), tmp_path / "f.png", "alt")
    with Image.open(tmp_path / "f.png") as written:
        assert written.mode == ("P" if colours <= 256 else "RGB")
        assert np.array_equal(np.asarray(written.convert("RGB")), drawn)


def test_a_grid_shows_its_largest_changes_in_the_difference_scale(tmp_path):
    clean = np.random.default_rng(1).random((30, 30, 10)).astype(np.float32)
    adv = clean + np.random.default_rng(2).normal(0, 0.05, clean.shape).astype(np.float32)
    path = tmp_path / "grid.png"
    grid("max_pool_1", clean, adv, path)
    image = pixels(path)
    # both ends of both scales: the colour bars draw them, and one end of the difference scale
    # is the largest change of the grid
    for colour in (*colour_table(SEQUENTIAL)[[0, -1]], *colour_table(DIVERGING)[[0, -1]]):
        assert count_colour(image, colour) > 0, colour


def test_comparison_grid_labels_layer_unit_and_scales(tmp_path):
    clean, adv = tiny_vgg_layers()
    record = grid("max_pool_1", clean[4][1], adv[4][1], tmp_path / "g.png")
    assert "max_pool_1" in record["alt"] and "12×12×10" in record["alt"]
    assert "±" in record["alt"] and "channels 0, 1, 2" in record["alt"] and "filter" not in record["alt"]
    assert (record["layer"], record["unit"], record["channels"]) == ("max_pool_1", "channel", list(range(10)))
    conv = grid("conv_1_1", clean[0][1], adv[0][1], tmp_path / "c.png")
    assert "all 10 filters" in conv["alt"] and conv["unit"] == "filter"


def test_comparison_grid_draws_exactly_the_channels_passed_in_their_order(tmp_path):
    # channel k is constant k in both versions, so each channel has its own colour
    clean = np.broadcast_to(np.arange(5, dtype=np.float32), (6, 6, 5)).copy()
    path = tmp_path / "order.png"
    record = figures.comparison_grid("conv_x", clean, clean.copy(), path, channels=[3, 0, 2],
                                     selection="most_changed", unit="filter")
    assert record["channels"] == [3, 0, 2] and record["layer"] == "conv_x" and record["unit"] == "filter"
    assert "3 most changed of 5 filters" in record["alt"] and "filters 3, 0, 2" in record["alt"]
    image = pixels(path)
    side = 6 * enlargement(6, 6, 80)
    columns = {}
    for k in range(5):
        mask = np.all(image == sequential_colours(np.array([float(k)]), 0.0, 4.0)[0], axis=-1)
        columns[k] = np.flatnonzero(mask.sum(axis=0) >= side)  # pixel columns crossing a whole panel
    assert columns[1].size == 0 and columns[4].size == 0  # channels not passed are not drawn
    assert all(columns[k].size >= side for k in (3, 0, 2))
    assert columns[3].mean() < columns[0].mean() < columns[2].mean()  # in the order given


def test_comparison_grid_checks_what_it_is_told(tmp_path):
    maps = np.zeros((4, 4, 6), np.float32)
    with pytest.raises(ValueError, match="conv"):
        figures.comparison_grid("conv", np.zeros((4, 4, 2)), np.zeros((4, 4, 3)), tmp_path / "x.png",
                                channels=[0], selection="chosen", unit="filter")
    for channels, selection in (([0, 1], "all"), ([1, 2], "first"), ([0, 6], "chosen"), ([2, 2], "chosen")):
        with pytest.raises(ValueError, match="conv"):
            figures.comparison_grid("conv", maps, maps, tmp_path / "x.png", channels=channels, selection=selection,
                                    unit="filter")
    with pytest.raises(ValueError, match="unit"):
        figures.comparison_grid("pool", maps, maps, tmp_path / "x.png", channels=[0], selection="chosen",
                                unit="kernel")


def test_comparison_grid_of_many_channels_wraps(tmp_path):
    rng = np.random.default_rng(1)
    clean = rng.random((8, 8, 64), dtype=np.float32)
    adv = clean + 0.1
    first = grid("conv_big", clean, adv, tmp_path / "first.png", channels=list(range(10)), selection="first")
    assert "first 10 of 64 filters" in first["alt"]
    one_group = grid("conv_big", clean, adv, tmp_path / "one.png", channels=list(range(16)), selection="first",
                     columns=16)
    every = grid("conv_big", clean, adv, tmp_path / "all.png", columns=16)
    assert every["width"] == one_group["width"]
    assert every["height"] > 3 * one_group["height"] - 300  # 64 channels wrap into four row groups of 16


def test_panels_are_shared_between_languages_by_content_never_served_stale(tmp_path):
    clean, adv = tiny_vgg_layers()
    maps, moved = clean[4][1], adv[4][1]
    first = grid("max_pool_1", maps, moved, tmp_path / "a.png")
    again = grid("max_pool_1", maps.copy(), moved.copy(), tmp_path / "b.png")  # equal content, new arrays
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png")) and first["alt"] == again["alt"]
    changed = moved.copy()
    changed[:, :, 0] += 0.3
    grid("max_pool_1", maps, changed, tmp_path / "c.png")
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "c.png"))


# --- overview ------------------------------------------------------------------------------------

def overview(layers, probabilities, scales, path, title, **kwargs) -> dict:
    units = {name: unit_of(name) for name, _ in layers}
    return figures.network_overview(layers, probabilities, kwargs.pop("class_names", CLASS_NAMES), scales, path,
                                    title, units=units, **kwargs)


def test_overviews_share_scale_and_size(tmp_path):
    clean, adv = tiny_vgg_layers()
    # a constant map of value 0.25 in max_pool_2, the same in both versions
    for layers in (clean, adv):
        layers[-1][1][:, :, 3] = 0.25
    scales = figures.shared_scales(clean, adv)
    p_clean = np.eye(10)[2] * 0.9 + 0.01
    p_adv = np.eye(10)[6] * 0.9 + 0.01
    x = np.random.default_rng(0).random((28, 28, 1), dtype=np.float32)
    a = overview(clean, p_clean, scales, tmp_path / "clean.png", "Original", image=x)
    b = overview(adv, p_adv, scales, tmp_path / "adv.png", "Adversarial image, a much longer title than the other one",
                 image=x)
    check_record(a, tmp_path / "clean.png")
    assert (a["width"], a["height"]) == (b["width"], b["height"])
    lo, hi = scales["max_pool_2"]
    expected = sequential_colours(np.array([0.25]), lo, hi)[0]
    area = (4 * enlargement(4, 4, 56)) ** 2
    assert count_colour(pixels(tmp_path / "clean.png"), expected) >= area
    assert count_colour(pixels(tmp_path / "adv.png"), expected) >= area
    assert "conv_1_1" in a["alt"] and "Pullover" in a["alt"] and "Shirt" in b["alt"]
    assert "conv_1_1 26×26×10 (all 10 filters)" in a["alt"] and "max_pool_1 12×12×10 (all 10 channels)" in a["alt"]
    assert a["layers"][0] == {"layer": "conv_1_1", "channels": list(range(10)), "unit": "filter", "selection": "all"}
    assert a["layers"][4]["unit"] == "channel"


def test_overview_draws_the_channels_the_caller_chose(tmp_path):
    rng = np.random.default_rng(2)
    clean = [("conv_wide", rng.random((16, 16, 64), dtype=np.float32)), ("max_pool_1", rng.random((8, 8, 4),
                                                                                               dtype=np.float32))]
    adv = [(name, maps + 0.1) for name, maps in clean]
    scales = figures.shared_scales(clean, adv)
    chosen = [40, 3, 17, 8]
    record = overview(clean, np.full(3, 1 / 3), scales, tmp_path / "o.png", "Wide", class_names=["a", "b", "c"],
                      channels={"conv_wide": chosen}, selection={"conv_wide": "most_changed"})
    assert "4 most changed of 64 filters" in record["alt"]
    assert record["layers"][0] == {"layer": "conv_wide", "channels": chosen, "unit": "filter",
                                   "selection": "most_changed"}
    assert record["layers"][1]["channels"] == [0, 1, 2, 3]
    first = overview(clean, np.full(3, 1 / 3), scales, tmp_path / "f.png", "Wide", class_names=["a", "b", "c"],
                     channels={"conv_wide": list(range(8))}, selection={"conv_wide": "first"})
    assert "first 8 of 64 filters" in first["alt"]
    with pytest.raises(ValueError, match="conv_wide"):
        overview(clean, np.full(3, 1 / 3), scales, tmp_path / "x.png", "Wide", class_names=["a", "b", "c"],
                 channels={"conv_wide": chosen})  # a subset cannot be called 'all'


def test_overview_of_a_colour_input(tmp_path):
    clean, adv = tiny_vgg_layers(shapes=[("conv_1_1", 62, 10), ("max_pool_1", 30, 10), ("max_pool_2", 13, 10)])
    x = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    record = overview(clean, np.full(10, 0.1), figures.shared_scales(clean, adv), tmp_path / "rgb.png", "Colour",
                      image=x)
    check_record(record, tmp_path / "rgb.png")
    assert "input 64×64×3" in record["alt"] and "62×62×10" in record["alt"]


# --- zoom and perturbation -----------------------------------------------------------------------

def test_largest_change_window_finds_the_changed_block():
    diff = np.zeros((12, 12))
    diff[7:10, 2:5] = -1.0
    diff[0, 11] = 2.0
    assert figures.largest_change_window(diff, 3) == (7, 2)


def test_zoom_crop_boxes_the_largest_change_and_says_what_it_drew(tmp_path):
    clean = np.zeros((12, 12, 4), np.float32)
    adv = clean.copy()
    adv[4:7, 8:11, 2] = 1.0
    path = tmp_path / "zoom.png"
    record = figures.zoom_crop("max_pool_1", 2, clean, adv, path, unit="channel", role="chosen")
    check_record(record, path)
    assert {key: record[key] for key in ("layer", "channel", "unit", "role")} == {
        "layer": "max_pool_1", "channel": 2, "unit": "channel", "role": "chosen"}
    assert "max_pool_1, channel 2 (the third)" in record["alt"]
    assert "rows 4–6 and columns 8–10 (counted from 0)" in record["alt"] and "100%" in record["alt"]
    most = figures.zoom_crop("conv_2_1", 3, clean, adv, tmp_path / "m.png", unit="filter", role="most_changed")
    assert "changed most: conv_2_1, filter 3 (the fourth)" in most["alt"] and most["role"] == "most_changed"
    with pytest.raises(ValueError, match="channel 9"):
        figures.zoom_crop("max_pool_1", 9, clean, adv, path, unit="channel", role="chosen")
    with pytest.raises(ValueError, match="role"):
        figures.zoom_crop("max_pool_1", 2, clean, adv, path, unit="channel", role="best")


def test_zoom_crop_uses_the_layer_scale_for_both_versions(tmp_path):
    clean = np.zeros((8, 8, 2), np.float32)
    adv = clean.copy()
    clean[:, :, 0] = adv[:, :, 0] = 0.5
    adv[0, 0, 1] = 2.0  # the layer's scale is 0..2 because of another channel
    path = tmp_path / "zoom.png"
    figures.zoom_crop("pool", 0, clean, adv, path, unit="channel", role="chosen")
    side = 8 * enlargement(8, 8, 240)
    expected = sequential_colours(np.array([0.5]), 0.0, 2.0)[0]
    assert count_colour(pixels(path), expected) >= 2 * side * side


@pytest.mark.parametrize("channels", [1, 3])
def test_perturbation_image_uses_and_prints_the_given_factor(tmp_path, channels):
    x = np.full((28, 28, channels), 0.5, np.float32)
    x_adv = x.copy()
    x_adv[:14] += 0.05
    path = tmp_path / "p.png"
    record = figures.perturbation_image(x, x_adv, path, amplification=4)
    check_record(record, path)
    assert "×4" in record["alt"] and record["amplification"] == 4
    side = 28 * enlargement(28, 28, 224)
    image = pixels(path)
    # mid-grey: all of x, the unchanged half of x_adv and the unchanged half of the perturbation
    assert count_colour(image, (128, 128, 128)) >= 2 * side * side
    # the changed half of the perturbation: 0.5 + 4 × 0.05 = 0.7, 178.5 of 255
    assert int((np.abs(image.astype(int) - 178.5).max(axis=-1) <= 1).sum()) >= side * side // 2
    with pytest.raises(TypeError):
        figures.perturbation_image(x, x_adv, path)  # the factor is the caller's, never guessed


def test_the_perturbation_alt_calls_the_change_hard_to_see_only_when_it_is_small(tmp_path):
    x = np.full((8, 8, 3), 0.5, np.float32)
    x[:, :, 0] = 0.2  # a colour image
    said = {}
    for levels in (SUBTLE_LEVELS, SUBTLE_LEVELS + 1):
        x_adv = x.copy()
        x_adv[0, 0] += levels / 255
        for lang in ("en", "zh"):
            alt = figures.perturbation_image(x, x_adv, tmp_path / "p.png", amplification=4,
                                             words=words_for(lang))["alt"]
            said[levels, lang] = alt
    assert "looks almost the same" in said[SUBTLE_LEVELS, "en"] and "几乎一样" in said[SUBTLE_LEVELS, "zh"]
    assert "looks almost" not in said[SUBTLE_LEVELS + 1, "en"] and "几乎" not in said[SUBTLE_LEVELS + 1, "zh"]
    assert "colour image" in said[SUBTLE_LEVELS, "en"]


def test_a_black_and_white_photo_in_three_channels_is_called_greyscale(tmp_path):
    grey = np.random.default_rng(0).random((8, 8, 1), dtype=np.float32).repeat(3, axis=2)
    record = figures.perturbation_image(grey, grey, tmp_path / "p.png", amplification=4)
    assert "greyscale image" in record["alt"] and "colour" not in record["alt"]


def test_numbers_and_percentages_print_as_the_pages_print_them():
    assert number(1492.3) == "1,492" and number(-25000) == "−25,000" and number(0.0123456) == "0.0123"
    assert percent(0.492) == "49.2%" and percent(0.0042) == "0.42%" and percent(0.00001) == "<0.01%"
    # a probability below 1 never shows as certainty
    assert percent(0.99967) == "99.97%" and percent(0.999996) == "99.9996%" and percent(1.0) == "100.0%"


# --- charts --------------------------------------------------------------------------------------

LAYERS = ["input", "conv_1_1", "relu_1_1", "max_pool_1", "conv_2_1", "max_pool_2"]


def test_charts_write_pngs_with_records(tmp_path):
    made = {
        "bars": figures.probability_bars(np.eye(10)[2] * 0.8 + 0.02, np.eye(10)[6] * 0.8 + 0.02, CLASS_NAMES,
                                         tmp_path / "bars.png", k=4),
        "butterfly": figures.butterfly_plot(LAYERS, [0.02, 0.05, 0.0, 0.2, 0.4, float("inf")],
                                            [0.02, 0.02, 0.03, 0.03, 0.03, 0.01], tmp_path / "b.png", "Butterfly"),
        "ratios": figures.ratio_curves({f"image {i}": (LAYERS, np.geomspace(1, 1 + i, 6)) for i in range(12)},
                                       tmp_path / "r.png", "Tiny VGG"),
        "strip": figures.epsilon_strip({"Tiny VGG": [("a", 0.01), ("b", 0.0107), ("c", None)],
                                        "CNN Explainer": [("d", 0.01)]}, tmp_path / "s.png", epsilon_max=0.3),
        "robustness": figures.robustness_plot([0, 0.01, 0.02], [0.9, 0.5, 0.2], [0.9, 0.89, 0.88],
                                              tmp_path / "rb.png", samples=500, test_size=1000),
        "training": figures.training_curves({"loss": [1.0, 0.5], "accuracy": [0.6, 0.8]}, tmp_path / "t.png"),
        "filters": figures.first_layer_filters(np.random.default_rng(0).normal(size=(3, 3, 3, 10)),
                                               tmp_path / "k.png"),
    }
    for record in made.values():
        check_record(record, Path(record["path"]))
    assert "Pullover" in made["bars"]["alt"] and "Shirt" in made["bars"]["alt"]
    assert made["butterfly"]["layers"] == LAYERS and made["butterfly"]["output"] is None
    assert "Ratio attack ÷ noise: from 1 to" in made["butterfly"]["alt"]
    assert made["ratios"]["layers"] == LAYERS and len(made["ratios"]["images"]) == 12
    assert "median line over 12 images" in made["ratios"]["alt"]
    assert made["strip"]["groups"]["Tiny VGG"][2] == {"image": "c", "epsilon": None}
    assert "Tiny VGG: the prediction changed for 2 of 3 images" in made["strip"]["alt"] and "1 unchanged" in made["strip"]["alt"]
    assert "90.0%" in made["robustness"]["alt"] and "500 of 1,000 test images" in made["robustness"]["alt"]
    everything = figures.robustness_plot([0, 0.01], [0.9, 0.5], [0.9, 0.89], tmp_path / "all.png", samples=1000,
                                         test_size=1000)
    assert "all 1,000 test images" in everything["alt"]
    with Image.open(tmp_path / "b.png") as png:
        assert png.info["Description"] == made["butterfly"]["alt"]


def test_butterfly_plot_keeps_the_output_apart(tmp_path):
    attack, noise = [0.02, 0.03, 0.05, 0.08, 0.1, 0.2], [0.02, 0.02, 0.02, 0.02, 0.02, 0.02]
    small = figures.butterfly_plot(LAYERS, attack, noise, tmp_path / "small.png", "B", output=("output", 0.5, 0.01))
    figures.butterfly_plot(LAYERS, attack, noise, tmp_path / "huge.png", "B", output=("output", 800.0, 0.001))
    assert small["layers"] == LAYERS and small["output"] == "output"
    assert "Shown apart, the output probabilities (output): attack 0.5, noise 0.01, ratio 50." in small["alt"]
    # The output's values never reach the feature maps' axes: the left part of the two figures
    # (everything but the output panels) is the same whatever the output did.
    a, b = pixels(tmp_path / "small.png"), pixels(tmp_path / "huge.png")
    assert a.shape == b.shape
    left = int(a.shape[1] * 0.7)
    assert np.array_equal(a[:, :left], b[:, :left])
    assert not np.array_equal(a[:, left:], b[:, left:])


def test_ratio_curves_draw_a_median_line(tmp_path):
    curves = {"a": (LAYERS, [1, 1, 2, 2, 4, 4]), "b": (LAYERS, [1, 2, 2, 4, 4, 8]), "c": (LAYERS[:3], [1, 3, 3])}
    record = figures.ratio_curves(curves, tmp_path / "r.png", "Three images")
    assert record["images"] == ["a", "b", "c"]
    # median per layer over the images that have it: 1, 2, 2, 3, 4, 6
    assert "Median: from 1 to 6 (largest 6)" in record["alt"]


def test_epsilon_strip_sets_not_fooled_images_apart(tmp_path):
    path = tmp_path / "strip.png"
    record = figures.epsilon_strip({"model": [("a", None), ("b", None)]}, path, epsilon_max=0.25)
    check_record(record, path)
    assert "changed for 0 of 2 images" in record["alt"] and "ε = 0.25" in record["alt"]
    assert record["epsilon_max"] == 0.25


# --- GIFs ----------------------------------------------------------------------------------------

def sweep_inputs(steps: int, flip: int, shape=(28, 28, 1), seed: int = 0, top: float = 0.05):
    """An FGSM-like sweep: frame i is x + epsilons[i] * sign, clipped."""
    rng = np.random.default_rng(seed)
    x = rng.random(shape, dtype=np.float32)
    sign = rng.choice([-1.0, 1.0], size=shape).astype(np.float32)
    epsilons = np.linspace(0, top, steps)
    images = np.clip(x[None] + epsilons[:, None, None, None] * sign[None], 0, 1).astype(np.float32)
    probabilities = np.zeros((steps, 10))
    labels = np.full(steps, 2)
    for i in range(steps):
        shift = i / steps
        probabilities[i, 2], probabilities[i, 6] = 0.9 - 0.6 * shift, 0.05 + 0.6 * shift
        probabilities[i, [0, 1, 3]] = 0.05 / 3
    if flip >= 0:
        labels[flip:] = 6
    return images, x, epsilons, probabilities, labels


def sweep(images, x, epsilons, probabilities, labels, path, flip, answer=-1, **kwargs) -> dict:
    kwargs.setdefault("amplification", 10.0)
    return figures.epsilon_sweep_gif(images, x, epsilons, probabilities, labels, path, flip_index=flip,
                                     answer_index=answer, class_names=kwargs.pop("class_names", CLASS_NAMES),
                                     **kwargs)


def gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]


def gif_durations(path) -> list[int]:
    with Image.open(path) as gif:
        return [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]


def near(pixel, colour, tolerance: int = 24) -> bool:
    return int(np.abs(pixel.astype(int) - np.asarray(colour)).max()) <= tolerance


def test_sweep_gif_marks_and_holds_the_flip_and_answer_frames(tmp_path):
    images, x, eps, probs, labels = sweep_inputs(12, flip=5)
    eps = eps + np.linspace(0, 0.0011, 12)  # not round numbers: what is printed must be what was given
    path = tmp_path / "sweep.gif"
    record = sweep(images, x, eps, probs, labels, path, flip=5, answer=8, fps=5, epsilon_start=0.01,
                   epsilon_step=0.0007)
    check_record(record, path, frames=12)
    frames = gif_frames(path)
    assert [near(frame[2, 2], FLIP_COLOUR) for frame in frames] == [i == 5 for i in range(12)]
    assert [near(frame[2, 2], ANSWER_COLOUR) for frame in frames] == [i == 8 for i in range(12)]
    durations = gif_durations(path)
    assert durations[5] == durations[8] > max(durations[:5] + durations[6:8] + durations[9:-1])
    assert record["flip"] == {"frame": 5, "epsilon": float(eps[5])}
    assert record["answer"] == {"frame": 8, "epsilon": float(eps[8])}
    assert f"Pullover to Shirt at ε = {eps[5]:.4f}" in record["alt"] and "frame 6" in record["alt"]
    assert f"stops at ε = {eps[8]:.4f} (frame 9" in record["alt"]


def test_sweep_gif_marks_one_frame_twice_when_the_flip_is_the_answer(tmp_path):
    images, x, eps, probs, labels = sweep_inputs(8, flip=3)
    path = tmp_path / "sweep.gif"
    record = sweep(images, x, eps, probs, labels, path, flip=3, answer=3)
    frame = gif_frames(path)[3]
    assert near(frame[1, 1], FLIP_COLOUR) and near(frame[4, 4], ANSWER_COLOUR)  # outer red, inner orange
    assert record["flip"]["frame"] == record["answer"]["frame"] == 3


def test_sweep_gif_shows_the_given_images_with_the_given_amplification(tmp_path):
    # every frame moves the whole image by its own epsilon: the perturbation panel is one grey,
    # 0.5 + amplification × epsilon, drawn from the images passed in (not recomputed)
    steps, x = 4, np.full((16, 16, 1), 0.4, np.float32)
    eps = np.array([0.0, 0.01, 0.02, 0.03])
    images = (x[None] + eps[:, None, None, None]).astype(np.float32)
    probs = np.tile(np.eye(10)[2], (steps, 1))
    path = tmp_path / "sweep.gif"
    sweep(images, x, eps, probs, np.full(steps, 2), path, flip=-1, amplification=7.0, max_bytes=None)
    side = 16 * enlargement(16, 16, 168)
    for frame, e in zip(gif_frames(path), eps):
        grey = int(round((0.5 + 7.0 * e) * 255))
        assert count_colour(frame, (grey, grey, grey)) >= side * side


def test_sweep_gif_says_not_fooled(tmp_path):
    images, x, eps, probs, labels = sweep_inputs(8, flip=-1, shape=(64, 64, 3))
    path = tmp_path / "sweep.gif"
    record = sweep(images, x, eps, probs, labels, path, flip=-1, fps=5)
    check_record(record, path, frames=8)
    assert "stays" in record["alt"] and record["flip"] is None and record["answer"] is None
    assert not any(near(frame[2, 2], FLIP_COLOUR) for frame in gif_frames(path))


@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 3)])
def test_sweep_gif_stays_within_budget_and_keeps_the_marked_frames(tmp_path, shape):
    images, x, eps, probs, labels = sweep_inputs(90, flip=47, shape=shape)
    path = tmp_path / "sweep.gif"
    record = sweep(images, x, eps, probs, labels, path, flip=47, answer=53, fps=8, max_frames=20)
    assert record["frames"] <= 20 and record["bytes"] <= 500_000
    frames = gif_frames(path)
    flipped = [i for i, frame in enumerate(frames) if near(frame[2, 2], FLIP_COLOUR)]
    answered = [i for i, frame in enumerate(frames) if near(frame[2, 2], ANSWER_COLOUR)]
    assert flipped == [record["flip"]["frame"]] and answered == [record["answer"]["frame"]]
    assert record["flip"]["epsilon"] == float(eps[47]) and record["answer"]["epsilon"] == float(eps[53])
    assert f"ε = {eps[47]:.4f}" in record["alt"]


def test_sweep_gif_rejects_inconsistent_inputs(tmp_path):
    images, x, eps, probs, labels = sweep_inputs(6, flip=2)
    with pytest.raises(ValueError, match="answer_index"):
        sweep(images, x, eps, probs, labels, tmp_path / "s.gif", flip=2, answer=6)
    with pytest.raises(ValueError, match="decrease"):
        sweep(images, x, eps[::-1], probs, labels, tmp_path / "s.gif", flip=2)
    with pytest.raises(ValueError, match="length"):
        sweep(images[:-1], x, eps, probs, labels, tmp_path / "s.gif", flip=2)


def propagation_layers(clean, adv, channel: int = 1):
    return [(n, c, a, channel, unit_of(n), 0.01 * (i + 1)) for i, ((n, c), (_, a)) in enumerate(zip(clean, adv))]


@pytest.mark.parametrize("shapes", [TINY_VGG_28, [("conv_1_1", 62, 10), ("relu_1_1", 62, 10), ("conv_1_2", 60, 10),
                                                   ("max_pool_1", 30, 10), ("conv_2_1", 28, 10), ("conv_2_2", 26, 10),
                                                   ("max_pool_2", 13, 10)]])
def test_propagation_gif_one_frame_per_layer_within_budget(tmp_path, shapes):
    clean, adv = tiny_vgg_layers(shapes=shapes)
    path = tmp_path / "prop.gif"
    record = figures.propagation_gif(propagation_layers(clean, adv), path, fps=2)
    check_record(record, path, frames=len(shapes))
    assert record["bytes"] <= 500_000
    assert shapes[0][0] in record["alt"] and "max_pool_2 channel 1" in record["alt"]
    assert record["layers"][0] == {"layer": shapes[0][0], "channel": 1, "unit": "filter", "relative_change": 0.01}
    # the relative change printed is the one given (the probe's), not one measured here
    assert f"{shapes[-1][0]} {number(0.01 * len(shapes))}" in record["alt"]


def test_gifs_shrink_to_fit_a_byte_budget(tmp_path):
    clean, adv = tiny_vgg_layers(change=1.0)
    layers = propagation_layers(clean, adv)
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
    assert "50.0%" in record["alt"] and "85.0%" in record["alt"]
    backwards = figures.training_gif(epochs[::-1], accuracies[::-1], tmp_path / "back.gif")
    assert "epochs 1 to 10" in backwards["alt"] and "from 50.0% to 85.0%" in backwards["alt"]
    with pytest.raises(ValueError, match="accuracy"):
        figures.training_gif(epochs, accuracies[:-1], path)


def test_training_gif_of_noisy_maps_thins_epochs_to_fit(tmp_path):
    rng = np.random.default_rng(4)
    epochs = [(e, [(n, rng.random((s, s, c), dtype=np.float32)) for n, s, c in TINY_VGG_28]) for e in range(1, 21)]
    record = figures.training_gif(epochs, list(np.linspace(0.3, 0.9, 20)), tmp_path / "noisy.gif")
    # uncorrelated noise in every frame cannot fit 20 full frames into 500 KB: epochs are thinned
    assert record["bytes"] <= 500_000 and record["frames"] < 20
    assert f"{record['frames']} of the 20 epochs shown" in record["alt"]


# --- languages -----------------------------------------------------------------------------------

def test_every_phrase_exists_in_both_languages_and_the_chinese_is_chinese():
    for key, (english, chinese_text) in PHRASES.items():
        english = " ".join(english) if isinstance(english, tuple) else english
        chinese_text = " ".join(chinese_text) if isinstance(chinese_text, tuple) else chinese_text
        # a caller that fills the English fields fills the Chinese ones (ordinals also get the number)
        assert set(re.findall(r"{(\w+)}", chinese_text)) <= set(re.findall(r"{(\w+)}", english)) | {"number"}, key
        if re.search("[a-z]{3,}", re.sub(r"{\w+}", "", english)) and key != "ordinals":
            assert CJK.search(chinese_text), key


def test_chinese_wrapping_breaks_between_characters_not_before_punctuation():
    face = chinese().face(12)
    text = "差值 = 对抗样本 − 原始图像，色标 ±0.0491（红色表示升高，蓝色表示降低）；每层使用各自的色标。"
    lines = wrap_text(text, face, 150)
    assert len(lines) > 2 and all(text_width(line, face) <= 150 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert not any(line[0] in "，。；）、" for line in lines)
    assert all("±0.0491" in line or "0.0491" not in line for line in lines)
    labels = wrap_text("变化最大的 4 个（共 10 个卷积核）", face, 110, break_cjk=False)
    assert labels == ["变化最大的 4 个", "（共 10 个卷积核）"]


def test_a_chinese_figure_differs_from_its_english_twin(tmp_path):
    zh = chinese()
    clean, adv = tiny_vgg_layers()
    en_grid = grid("max_pool_1", clean[4][1], adv[4][1], tmp_path / "en.png")
    zh_grid = grid("max_pool_1", clean[4][1], adv[4][1], tmp_path / "zh.png", words=zh)
    assert not np.array_equal(pixels(tmp_path / "en.png"), pixels(tmp_path / "zh.png"))
    assert CJK.search(zh_grid["alt"]) and not CJK.search(en_grid["alt"])
    assert zh_grid["channels"] == en_grid["channels"] and zh_grid["unit"] == "channel"
    assert "所示通道为 0、1、2" in zh_grid["alt"]
    zoom = figures.zoom_crop("max_pool_1", 2, clean[4][1], adv[4][1], tmp_path / "z.png", unit="channel",
                             role="chosen", words=zh)
    assert "max_pool_1 的第 3 个通道（索引 2）" in zoom["alt"]
    images, x, eps, probs, labels = sweep_inputs(6, flip=3)
    gif = sweep(images, x, eps, probs, labels, tmp_path / "s.gif", flip=3, answer=4, class_names=CLASS_NAMES_ZH,
                words=zh, epsilon_start=0.01, epsilon_step=0.0007)
    assert f"ε = {eps[3]:.4f}" in gif["alt"] and "套头衫" in gif["alt"] and CJK.search(gif["alt"])
    chart = figures.butterfly_plot(LAYERS, [0.02] * 6, [0.01] * 6, tmp_path / "b.png", "蝴蝶效应",
                                   output=("output", 1.0, 0.1), words=zh)
    english = figures.butterfly_plot(LAYERS, [0.02] * 6, [0.01] * 6, tmp_path / "be.png", "Butterfly",
                                     output=("output", 1.0, 0.1))
    assert CJK.search(chart["alt"]) and chart["width"] == english["width"]
    assert not np.array_equal(pixels(tmp_path / "b.png"), pixels(tmp_path / "be.png"))


@pytest.fixture
def fresh_font_search():
    """Forget the font found so far, before and after the test."""
    words_module.cjk_font.cache_clear()
    yield
    words_module.cjk_font.cache_clear()


def test_without_a_cjk_font_chinese_pages_get_english_figures_and_a_warning(tmp_path, monkeypatch,
                                                                            fresh_font_search):
    monkeypatch.delenv(words_module.FONT_VARIABLE, raising=False)
    monkeypatch.setattr(words_module, "_fc_match", lambda: None)
    monkeypatch.setattr(words_module, "WELL_KNOWN_CJK_FONTS", ())
    words_module.cjk_font.cache_clear()
    assert words_module.find_cjk_font() is None
    zh = words_for("zh")
    assert zh.lang == "en" and zh.page_lang == "zh" and "BUTTERFLY_CJK_FONT" in zh.fallback_warning
    assert words_for("en").fallback_warning is None
    without = figures.font_fingerprint("zh")
    assert without == figures.font_fingerprint("en")
    clean, adv = tiny_vgg_layers()
    english = grid("max_pool_1", clean[4][1], adv[4][1], tmp_path / "en.png")
    fallback = grid("max_pool_1", clean[4][1], adv[4][1], tmp_path / "zh.png", words=zh)
    assert fallback["alt"] == english["alt"]
    assert np.array_equal(pixels(tmp_path / "en.png"), pixels(tmp_path / "zh.png"))
    # once a font can be found, the fingerprint (a cache key) changes, so Chinese figures are redrawn
    monkeypatch.undo()
    words_module.cjk_font.cache_clear()
    if words_for("zh").lang == "zh":
        assert figures.font_fingerprint("zh") != without


def test_the_font_variable_must_name_a_font_that_writes_chinese(monkeypatch, fresh_font_search):
    from generator.figures.words import latin_font_file

    monkeypatch.setattr(words_module, "_fc_match", lambda: None)
    monkeypatch.setattr(words_module, "WELL_KNOWN_CJK_FONTS", ())
    monkeypatch.setenv(words_module.FONT_VARIABLE, latin_font_file())  # DejaVu Sans: no Chinese
    assert words_module.find_cjk_font() is None
    collection = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    if not os.path.isfile(collection):
        pytest.skip("Noto Sans CJK is not installed")
    monkeypatch.setenv(words_module.FONT_VARIABLE, collection)
    found = words_module.find_cjk_font()
    assert found.path == collection and found.family == "Noto Sans CJK SC"  # the SC face of the collection


def test_figures_do_not_import_tensorflow(tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from generator import figures\n"
        "c = np.random.default_rng(0).random((6, 6, 3), dtype=np.float32)\n"
        f"figures.comparison_grid('conv', c, c * 1.1, {str(tmp_path / 'g.png')!r}, channels=[0, 1, 2], "
        "selection='all', unit='filter', words=figures.words_for('zh'))\n"
        "figures.probability_bars(np.full(3, 1 / 3), np.full(3, 1 / 3), ['a', 'b', 'c'], "
        f"{str(tmp_path / 'p.png')!r})\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_gif_keeps_a_photo_and_its_saturated_perturbation_close_to_their_colours(tmp_path):
    """Sweep frames of a colour photo: the photo's many colours and the amplified perturbation's
    pure hues share one palette; neither may move far (an octree palette moved hues by 55)."""
    from generator.figures.common import image_colours, save_gif

    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:64, 0:64] / 63.0
    photo = np.stack([0.5 + 0.45 * np.sin(5 * xs + 2 * ys), 0.3 + 0.3 * ys, 0.2 + 0.5 * xs * ys], axis=2)
    photo = np.clip(photo + rng.normal(0, 0.04, photo.shape), 0, 1).astype(np.float32)
    photo[:8] = np.round(photo[:8])  # saturated pixels: the perturbation cannot move them one way
    sign = rng.choice([-1.0, 1.0], size=photo.shape).astype(np.float32)
    frames, panels = [], []
    for epsilon in np.linspace(0, 0.0125, 8):
        moved = np.clip(photo + epsilon * sign, 0, 1)
        perturbation = image_colours(np.clip(0.5 + 40 * (moved - photo), 0, 1))
        sheet = np.full((150, 300, 3), 255, np.uint8)
        sheet[10:138, 10:138] = enlarge(image_colours(moved), 2)
        sheet[10:138, 160:288] = enlarge(perturbation, 2)
        frames.append(Image.fromarray(sheet))
        panels.append(sheet)
    path = tmp_path / "sweep.gif"
    save_gif(frames, path, "a colour photo and its amplified perturbation as epsilon grows", [100] * len(frames))
    for drawn, written in zip(panels, gif_frames(path)):
        error = np.abs(drawn.astype(int) - written.astype(int)).max(axis=2)
        assert error[10:138, 160:288].max() <= 30  # the perturbation (a palette of the whole frame: 37)
        assert error[10:138, 10:138].max() <= 40  # the photo, as close as 255 colours allow


def test_gif_keeps_a_colour_the_palette_holds_exactly(tmp_path):
    """A flat grey that the palette holds must come out as itself, not its neighbour."""
    from generator.figures.common import save_gif

    rng = np.random.default_rng(0)
    frames = []
    for grey in (128, 145, 163, 181):
        sheet = np.full((80, 160, 3), grey, np.uint8)
        sheet[:, 80:] = rng.integers(0, 256, (80, 80, 3))  # more colours than the palette holds
        frames.append(Image.fromarray(sheet))
    path = tmp_path / "greys.gif"
    save_gif(frames, path, "four flat greys beside random colours, one per frame", [100] * 4)
    for grey, written in zip((128, 145, 163, 181), gif_frames(path)):
        assert count_colour(written[:, :80], (grey, grey, grey)) == 80 * 80


def test_epsilon_strip_keeps_a_tall_stack_of_equal_epsilons_in_its_row(tmp_path, monkeypatch):
    """Thirteen images fooled at the first epsilon (as in the article) stack into one column: the
    column must stay inside its row's band and inside the axes, its dots apart."""
    from matplotlib.axes import Axes

    drawn = []
    scatter = Axes.scatter

    def recording_scatter(self, x, y, *args, **kwargs):
        drawn.append((self, np.asarray(x, float), np.asarray(y, float)))
        return scatter(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", recording_scatter)
    article = [(f"a{i}", 0.01) for i in range(13)] + [("b", 0.0114), ("c", 0.0121), ("d", 0.0212)]
    groups = {"The article: CNN Explainer's Tiny VGG": article, "Train your own": [("e", 0.02), ("f", 0.0205)]}
    path = tmp_path / "strip.png"
    figures.epsilon_strip(groups, path, epsilon_max=0.3)
    rows = {0: groups["Train your own"], 1: article}
    for axes, x, y in drawn:
        row = int(round(float(np.median(y))))
        assert len(x) == len([e for _, e in rows[row]])
        assert np.all(np.abs(y - row) < 0.45)  # within its own row's band
        low, high = axes.get_ylim()
        assert low < y.min() and y.max() < high
        column = np.sort(y[x == 0.01])
        if column.size > 1:  # dots of one epsilon are apart on the page
            pixels_per_unit = axes.bbox.height / (high - low)
            assert np.diff(column).min() * pixels_per_unit >= 6


def test_epsilon_strip_breaks_a_long_title_after_its_colon(tmp_path):
    from generator.figures.plots import _row_label_lines
    from generator.figures.words import words_for as words_in

    face = words_in("en").face(14)
    assert _row_label_lines("The article: CNN Explainer's Tiny VGG", face, 220) == [
        "The article:", "CNN Explainer's Tiny VGG"]
    assert _row_label_lines("Fashion", face, 220) == ["Fashion"]


def test_propagation_gif_draws_a_small_change_paler_than_a_large_one(tmp_path):
    """Every frame's difference is on one scale relative to its map's range: a layer changed by
    1 % of its range must look paler than one changed by 20 %, not equally saturated."""
    rng = np.random.default_rng(1)
    clean = rng.random((12, 12, 2)).astype(np.float32)
    slight = clean + rng.choice([-0.01, 0.01], size=clean.shape).astype(np.float32)
    strong = clean + rng.choice([-0.2, 0.2], size=clean.shape).astype(np.float32)
    layers = [("conv_1_1", clean, slight, 0, "filter", 0.01), ("conv_1_2", clean, strong, 0, "filter", 0.2)]
    path = tmp_path / "prop.gif"
    record = figures.propagation_gif(layers, path, max_bytes=None)
    check_record(record, path, frames=2)
    ends = colour_table(DIVERGING)[[0, -1]]

    def saturated(frame: np.ndarray) -> int:
        return sum(int(np.all(np.abs(frame.astype(int) - end) <= 12, axis=-1).sum()) for end in ends)

    first, last = gif_frames(path)
    assert saturated(first) == 0
    assert saturated(last) > 100
