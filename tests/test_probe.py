"""Per-layer probing, divergence numbers, the epsilon sweep and the robustness curve."""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from generator.analysis.attack import AttackSettings, attack_image, gradient_sign, predict_probabilities  # noqa: E402
from generator.errors import UserError  # noqa: E402
from generator.analysis.probe import (  # noqa: E402
    epsilon_sweep,
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
                                                   "fraction_changed": 0.0, "top_filter": None}
    zeros = np.zeros(5)
    assert layer_divergence(zeros, zeros, 0.01) == {"relative_l2": 0.0, "cosine": 1.0,
                                                    "fraction_changed": 0.0, "top_filter": None}


def test_divergence_values_on_a_hand_computed_example():
    a = np.ones((2, 2, 3))
    b = a.copy()
    b[0, 0, 1] = 3.0   # change 2 in filter 1
    b[1, 1, 2] = 1.5   # change 0.5 in filter 2
    result = layer_divergence(a, b, threshold=0.6)
    assert result["relative_l2"] == pytest.approx(np.sqrt(4.25) / np.sqrt(12))
    assert result["cosine"] == pytest.approx((12 + 2 + 0.5) / (np.sqrt(12) * np.sqrt(12 + 8 + 1.25)))
    assert result["fraction_changed"] == pytest.approx(1 / 12)  # only |2| > 0.6 * max|a|
    assert result["top_filter"] == 1
    vector = layer_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.1)
    assert vector["cosine"] == 0.0 and vector["top_filter"] is None
    assert vector["relative_l2"] == pytest.approx(np.sqrt(2)) and vector["fraction_changed"] == 1.0
    from_zero = layer_divergence(np.zeros(3), np.ones(3), 0.1)
    assert from_zero == {"relative_l2": 1.0, "cosine": 0.0, "fraction_changed": 1.0, "top_filter": None}


def test_probe_image_compares_every_layer_for_adversarial_and_noise():
    model = small_vgg(1)
    x = images(4, 1, 0.2, 0.8)[0]
    result = attack_image(model, x, None, AttackSettings())
    layers, arrays = probe_image(model, x, result["x_adv"], result["x_noise"], threshold=0.05)
    json.dumps(layers)
    names = [layer["name"] for layer in layers]
    assert names == ["input"] + [layer.name for layer in model.layers]
    assert [layer["type"] for layer in layers][:3] == ["InputLayer", "Conv2D", "Activation"]
    assert layers[5]["shape"] == [3, 3, 4] and layers[-1]["shape"] == [3]
    for layer in layers:
        for kind in ("clean", "adversarial", "noise"):
            assert arrays[f"{kind}/{layer['name']}"].shape == tuple(layer["shape"])
        for comparison in ("adversarial", "noise"):
            assert layer[comparison]["relative_l2"] > 0
    assert layers[0]["adversarial"]["top_filter"] == 0  # the input has one channel
    assert layers[-2]["adversarial"]["top_filter"] is None
    np.testing.assert_array_equal(arrays["adversarial/input"], result["x_adv"])
    np.testing.assert_allclose(arrays["adversarial/output"],
                               result["attack"]["adversarial"]["probabilities"], atol=1e-6)


def test_epsilon_sweep_spans_the_flip_and_includes_it():
    model = small_vgg(2)
    x = images(5, 1, 0.2, 0.8)[0]
    result = attack_image(model, x, None, AttackSettings())
    flip = result["attack"]["epsilon"]
    sweep = epsilon_sweep(model, x, result["gradient_sign"], flip, frames=60)
    epsilons = sweep["sweep_epsilons"]
    assert len(epsilons) <= 60 and epsilons[0] == 0.0 and epsilons[-1] > flip
    assert np.all(np.diff(epsilons) > 0) and flip in epsilons
    assert sweep["sweep_probabilities"].shape == (len(epsilons), 3)
    labels = sweep["sweep_labels"]
    assert labels[0] == result["clean"]["index"]
    assert labels[list(epsilons).index(flip)] == result["attack"]["adversarial"]["index"]
    flip_index = sweep["sweep_flip_index"]
    assert 0 < flip_index <= list(epsilons).index(flip)
    assert np.all(labels[:flip_index] == labels[0]) and labels[flip_index] != labels[0]

    unchanged = epsilon_sweep(model, x, np.zeros_like(x), None, frames=10, epsilon_max=0.2)
    assert len(unchanged["sweep_epsilons"]) == 10 and unchanged["sweep_epsilons"][-1] == 0.2
    assert unchanged["sweep_flip_index"] == -1


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
