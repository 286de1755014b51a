"""Per-layer probing, divergence numbers, the butterfly measurement and the robustness curve."""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from generator.analysis.attack import AttackSettings, gradient_sign, predict_probabilities  # noqa: E402
from generator.analysis.butterfly import experiment_butterfly, image_butterfly  # noqa: E402
from generator.analysis.record import analyse_image  # noqa: E402
from generator.errors import UserError  # noqa: E402
from generator.analysis.probe import (  # noqa: E402
    channel_changes,
    layer_activations,
    layer_divergence,
    probe_image,
    robustness_curve,
)

SHAPE = (6, 6, 1)


def small_vgg(seed=0):
    """Tiny VGG in miniature: conv-relu-conv-relu-pool, flatten, dense softmax."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(SHAPE),
        keras.layers.Conv2D(4, 3, padding="same", name="conv_1_1"),
        keras.layers.Activation("relu", name="relu_1_1"),
        keras.layers.Conv2D(4, 3, padding="same", name="conv_1_2"),
        keras.layers.Activation("relu", name="relu_1_2"),
        keras.layers.MaxPooling2D(name="max_pool_1"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(3, activation="softmax", name="output"),
    ])


def images(seed, count, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, (count, *SHAPE)).astype(np.float32)


def test_layer_activations_cover_input_and_every_layer_in_order():
    model = small_vgg()
    x = images(0, 3)
    activations = layer_activations(model, x)
    assert list(activations) == ["input", "conv_1_1", "relu_1_1", "conv_1_2", "relu_1_2",
                                 "max_pool_1", "flatten", "output"]
    shapes = {name: value.shape for name, value in activations.items()}
    assert shapes["input"] == (3, 6, 6, 1) and shapes["conv_1_2"] == (3, 6, 6, 4)
    assert shapes["max_pool_1"] == (3, 3, 3, 4) and shapes["flatten"] == (3, 36)
    np.testing.assert_array_equal(activations["input"], x)
    np.testing.assert_allclose(activations["output"], predict_probabilities(model, x), atol=1e-6)
    np.testing.assert_allclose(activations["relu_1_1"], np.maximum(activations["conv_1_1"], 0))


def test_layer_activations_of_a_branching_functional_model():
    inputs = keras.Input(SHAPE)
    left = keras.layers.Conv2D(2, 3, name="left")(inputs)
    right = keras.layers.Conv2D(2, 3, name="right")(inputs)
    merged = keras.layers.Add(name="merge")([left, right])
    outputs = keras.layers.Dense(3, activation="softmax", name="output")(
        keras.layers.Flatten(name="flatten")(merged))
    model = keras.Model(inputs, outputs)
    activations = layer_activations(model, images(1, 2))
    assert list(activations) == ["input", "left", "right", "merge", "flatten", "output"]
    np.testing.assert_allclose(activations["merge"], activations["left"] + activations["right"],
                               atol=1e-6)


def test_layer_activations_of_a_sequential_model_without_input():
    model = keras.Sequential([keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(3, activation="softmax", name="output")])
    x = images(2, 2)
    activations = layer_activations(model, x)
    assert list(activations) == ["input", "conv", "flatten", "output"]
    np.testing.assert_allclose(activations["output"], predict_probabilities(model, x), atol=1e-6)


def test_divergence_of_identical_activations_is_zero():
    a = np.random.default_rng(3).normal(size=(4, 4, 3))
    assert layer_divergence(a, a.copy(), 0.01) == {"relative_l2": 0.0, "cosine": pytest.approx(1.0),
                                                   "fraction_changed": 0.0, "top_channel": None}
    zeros = np.zeros(5)
    assert layer_divergence(zeros, zeros, 0.01) == {"relative_l2": 0.0, "cosine": 1.0,
                                                    "fraction_changed": 0.0, "top_channel": None}


def test_divergence_values_on_a_hand_computed_example():
    a = np.ones((2, 2, 3))
    b = a.copy()
    b[0, 0, 1] = 3.0   # change 2 in filter 1
    b[1, 1, 2] = 1.5   # change 0.5 in filter 2
    result = layer_divergence(a, b, threshold=0.6)
    assert result["relative_l2"] == pytest.approx(np.sqrt(4.25) / np.sqrt(12))
    assert result["cosine"] == pytest.approx((12 + 2 + 0.5) / (np.sqrt(12) * np.sqrt(12 + 8 + 1.25)))
    assert result["fraction_changed"] == pytest.approx(1 / 12)  # only |2| > 0.6 * max|a|
    assert result["top_channel"] == 1
    vector = layer_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.1)
    assert vector["cosine"] == 0.0 and vector["top_channel"] is None
    assert vector["relative_l2"] == pytest.approx(np.sqrt(2)) and vector["fraction_changed"] == 1.0
    from_zero = layer_divergence(np.zeros(3), np.ones(3), 0.1)
    assert from_zero == {"relative_l2": 1.0, "cosine": 0.0, "fraction_changed": 1.0, "top_channel": None}


def test_probe_image_compares_every_layer_for_attack_and_noise():
    model = small_vgg(1)
    x = images(4, 1, 0.2, 0.8)[0]
    _, result = analyse_image(model, x, None, AttackSettings(), ["a", "b", "c"], noise_draws=2, frames=8)
    layers, arrays = probe_image(model, x, result["x_adv"], result["x_noise"], threshold=0.05)
    json.dumps(layers)
    names = [layer["name"] for layer in layers]
    assert names == ["input"] + [layer.name for layer in model.layers]
    assert [layer["type"] for layer in layers][:3] == ["InputLayer", "Conv2D", "Activation"]
    assert [layer["unit"] for layer in layers][:6] == ["channel", "filter", "channel", "filter", "channel", "channel"]
    assert layers[5]["shape"] == [3, 3, 4] and layers[-1]["shape"] == [3]
    for layer in layers:
        for kind in ("clean", "adversarial", "noise"):
            assert arrays[f"{kind}/{layer['name']}"].shape == tuple(layer["shape"])
        for comparison in ("attack", "noise"):
            assert layer[comparison]["relative_l2"] > 0
    assert layers[0]["attack"]["top_channel"] == 0  # the input has one channel
    assert layers[-2]["attack"]["top_channel"] is None
    # The most changed channel is the one with the largest L2 change; the order ranks them all.
    pool = layers[5]
    changes = channel_changes(arrays["clean/max_pool_1"], arrays["adversarial/max_pool_1"])
    assert pool["attack"]["top_channel"] == int(np.argmax(changes)) == pool["channel_order"][0]
    assert sorted(pool["channel_order"]) == [0, 1, 2, 3]
    assert list(changes[pool["channel_order"]]) == sorted(changes, reverse=True)
    # One colour scale per layer for the original and the adversarial maps.
    both = np.concatenate([arrays["clean/max_pool_1"].ravel(), arrays["adversarial/max_pool_1"].ravel()])
    assert pool["scale"] == [float(both.min()), float(both.max())]
    np.testing.assert_array_equal(arrays["adversarial/input"], result["x_adv"])


def _layer(name, shape, attack, noise):
    return {"name": name, "shape": shape, "attack": {"relative_l2": attack}, "noise": {"relative_l2": noise}}


def test_butterfly_verdicts_compare_the_attack_with_noise_of_the_same_size():
    maps = [(3, 3, 1), (3, 3, 2), (2, 2, 2)]
    amplified = [_layer(n, list(s), a, b) for n, s, a, b in zip(("input", "conv", "pool"), maps, (0.1, 0.3, 0.6), (0.1, 0.12, 0.1))]
    amplified.append(_layer("output", [3], 0.9, 0.01))
    facts = image_butterfly(amplified)
    assert facts["maps"] == ["input", "conv", "pool"] and facts["deepest"] == "pool"
    assert facts["growth"] == pytest.approx(6.0) and facts["deepest_ratio"] == pytest.approx(6.0)
    assert facts["verdict"] == "amplified"
    assert facts["output"] == {"name": "output", "attack": 0.9, "noise": 0.01, "ratio": pytest.approx(90.0)}
    # The change grows, but noise grows as much: not specific to the attack.
    like_noise = [_layer(n, list(s), a, b) for n, s, a, b in zip(("input", "conv", "pool"), maps, (0.1, 0.3, 0.6), (0.1, 0.3, 0.5))]
    assert image_butterfly(like_noise)["verdict"] == "grows_like_noise"
    flat = [_layer(n, list(s), a, b) for n, s, a, b in zip(("input", "conv", "pool"), maps, (0.1, 0.1, 0.09), (0.1, 0.1, 0.09))]
    assert image_butterfly(flat)["verdict"] == "no_growth"
    summary = experiment_butterfly([facts, image_butterfly(like_noise), image_butterfly(flat)])
    assert summary["verdicts"] == {"amplified": 1, "grows_like_noise": 1, "no_growth": 1}
    assert summary["verdict"] == "no_growth"  # a tie goes to the weaker verdict
    assert summary["median_ratio"][0] == pytest.approx(1.0)


def test_robustness_at_zero_epsilon_is_clean_accuracy():
    model = small_vgg(3)
    x = images(6, 40)
    y = np.random.default_rng(7).integers(0, 3, 40)
    clean_accuracy = float(np.mean(predict_probabilities(model, x).argmax(axis=1) == y))
    curve = robustness_curve(model, x, y, [0.0, 0.05, 0.5], seed=1, batch_size=16)
    assert curve["samples"] == 40 and curve["epsilons"] == [0.0, 0.05, 0.5]
    assert curve["fgsm_accuracy"][0] == curve["noise_accuracy"][0] == pytest.approx(clean_accuracy)
    assert curve["fgsm_accuracy"][2] < clean_accuracy
    json.dumps(curve)
    # FGSM away from the true labels: the same numbers as attacking the batch directly.
    signs = gradient_sign(model, x, y)
    direct = np.mean(predict_probabilities(model, np.clip(x + np.float32(0.05) * signs, 0, 1)).argmax(1) == y)
    assert curve["fgsm_accuracy"][1] == pytest.approx(direct)
    with pytest.raises(UserError):
        robustness_curve(model, x[:0], y[:0], [0.0])
