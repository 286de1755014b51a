"""Attacks and the epsilon search, on tiny Keras models with fixed weights (6x6x1 inputs)."""

import dataclasses
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from generator.analysis.attack import (  # noqa: E402
    AttackSettings,
    basic_iterative_method,
    fgsm,
    gradient_sign,
    minimal_epsilon,
    plain_epsilon_loop,
    predict_probabilities,
    projected_gradient_descent,
    sign_noise,
)
from generator.analysis.attack import ImageSearch  # noqa: E402
from generator.analysis.record import analyse_image, effect_of  # noqa: E402
from generator.analysis.sweep import epsilon_sweep  # noqa: E402
from generator.errors import UserError  # noqa: E402

SHAPE = (6, 6, 1)


def linear_model(weights, bias):
    """softmax(flatten(x) @ weights + bias): its loss gradient is known in closed form."""
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                              keras.layers.Dense(weights.shape[1], activation="softmax")])
    model.layers[-1].set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return model


def conv_parameters(seed, filters=3, n_classes=4):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.6, (3, 3, 1, filters)), rng.normal(0, 0.1, filters),
            rng.normal(0, 0.5, (4 * 4 * filters, n_classes)), rng.normal(0, 0.1, n_classes))


def conv_model(seed):
    """conv3x3 (valid) + relu, flatten, dense softmax, with weights drawn from `seed`."""
    kernel, kernel_bias, weights, bias = conv_parameters(seed)
    model = keras.Sequential([
        keras.Input(SHAPE),
        keras.layers.Conv2D(kernel.shape[-1], 3, activation="relu", name="conv"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(weights.shape[1], activation="softmax", name="output"),
    ])
    model.get_layer("conv").set_weights([kernel.astype(np.float32), kernel_bias.astype(np.float32)])
    model.get_layer("output").set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return model


def numpy_conv_loss(seed, x, label):
    """Cross-entropy of conv_model(seed) at one image x (6, 6, 1), in float64 NumPy."""
    kernel, kernel_bias, weights, bias = conv_parameters(seed)
    feature = np.zeros((4, 4, kernel.shape[-1]))
    for i in range(4):
        for j in range(4):
            feature[i, j] = np.tensordot(x[i:i + 3, j:j + 3], kernel, axes=3) + kernel_bias
    logits = np.maximum(feature, 0).reshape(-1) @ weights + bias
    logits = logits - logits.max()
    return -(logits[label] - np.log(np.exp(logits).sum()))


def images(seed, count, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, (count, *SHAPE)).astype(np.float32)


def softmax(logits):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def softmax_residual(p, labels):
    """p - onehot(labels), with the label's entry as minus the sum of the others: the same
    number, but it does not round to 0 when p_label is within 1e-16 of 1."""
    residual = p.copy()
    rows = np.arange(len(p))
    residual[rows, labels] = 0.0
    residual[rows, labels] = -residual.sum(axis=1)
    return residual


@pytest.mark.parametrize("targeted", [False, True])
def test_gradient_sign_matches_closed_form_for_softmax_linear_model(targeted):
    rng = np.random.default_rng(1)
    weights, bias = rng.normal(size=(36, 3)), rng.normal(size=3)
    x = images(2, 5)
    labels = np.array([0, 1, 2, 1, 0])
    p = softmax(x.reshape(5, -1).astype(np.float64) @ weights + bias)
    # d/dx of -log p_label = weights @ (p - onehot(label)); targeted uses the negated loss.
    gradient = softmax_residual(p, labels) @ weights.T * (-1 if targeted else 1)
    clear = np.abs(gradient) > 1e-4 * np.abs(gradient).max()
    signs = gradient_sign(linear_model(weights, bias), x, labels, targeted).reshape(5, -1)
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(signs[clear], np.sign(gradient[clear]))

    x_adv = fgsm(linear_model(weights, bias), x, labels, 0.05, targeted=targeted).reshape(5, -1)
    expected = np.clip(x.reshape(5, -1) + 0.05 * np.sign(gradient), 0, 1)
    np.testing.assert_allclose(x_adv[clear], expected[clear], atol=1e-6)


def test_gradient_sign_is_exact_for_a_confident_model():
    # Logit margins of 30-45: p_label rounds to 1.0 in float32, yet the loss gradient is not
    # zero and its sign is well defined. A separate softmax layer hides the logits from Keras.
    rng = np.random.default_rng(4)
    weights, bias = rng.normal(size=(36, 3)), np.array([40.0, 0.0, 0.0])
    model = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(3),
                              keras.layers.Activation("softmax")])
    model.layers[1].set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    x = images(5, 4, 0.3, 0.7)
    assert np.all(predict_probabilities(model, x)[:, 0] == 1.0)
    p = softmax(x.reshape(4, -1).astype(np.float64) @ weights + bias)
    for label, sign in ((0, 1), (2, -1)):  # away from the answer; towards an unlikely target
        gradient = softmax_residual(p, np.full(4, label)) @ weights.T * sign
        signs = gradient_sign(model, x, np.full(4, label), targeted=sign < 0).reshape(4, -1)
        np.testing.assert_array_equal(signs, np.sign(gradient))


def test_fgsm_matches_finite_difference_signs_on_conv_model():
    seed, x = 5, images(6, 1, 0.1, 0.9)[0].astype(np.float64)
    model = conv_model(seed)
    label = int(predict_probabilities(model, x[None]).argmax())
    h = 1e-6
    differences = np.zeros(x.size)
    for i in range(x.size):
        up, down = x.copy().reshape(-1), x.copy().reshape(-1)
        up[i] += h
        down[i] -= h
        differences[i] = (numpy_conv_loss(seed, up.reshape(SHAPE), label)
                          - numpy_conv_loss(seed, down.reshape(SHAPE), label)) / (2 * h)
    clear = np.abs(differences) > 1e-3 * np.abs(differences).max()
    assert clear.sum() > 20
    epsilon = 0.03
    x_adv = fgsm(model, x[None], [label], epsilon)[0].reshape(-1)
    steps = np.round((x_adv - x.reshape(-1).astype(np.float32)) / epsilon)
    np.testing.assert_array_equal(steps[clear], np.sign(differences[clear]))


@pytest.mark.parametrize("attack", ["fgsm", "bim", "pgd"])
def test_attacks_stay_within_epsilon_and_pixel_range(attack):
    model = conv_model(3)
    x = images(4, 6)
    x[0, :3] = 0.0  # pixels on the edges of the range must be clipped, not pushed out
    x[1, :3] = 1.0
    labels = predict_probabilities(model, x).argmax(axis=1)
    epsilon = 0.07
    run = {"fgsm": lambda: fgsm(model, x, labels, epsilon),
           "bim": lambda: basic_iterative_method(model, x, labels, epsilon, iterations=4),
           "pgd": lambda: projected_gradient_descent(model, x, labels, epsilon, iterations=4)}
    x_adv = run[attack]()
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.max(np.abs(x_adv - x)) <= epsilon + 1e-6
    assert np.max(np.abs(x_adv - x)) > epsilon / 2
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_pgd_start_depends_only_on_seed():
    model = conv_model(3)
    x = images(4, 2)
    labels = np.array([0, 1])
    first = projected_gradient_descent(model, x, labels, 0.05, iterations=1, seed=7)
    again = projected_gradient_descent(model, x, labels, 0.05, iterations=1, seed=7)
    alone = projected_gradient_descent(model, x[1:], labels[1:], 0.05, iterations=1, seed=7)
    other = projected_gradient_descent(model, x, labels, 0.05, iterations=1, seed=8)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[1:], alone)
    assert not np.array_equal(first, other)


def assert_same_search(fast, plain, same_image=True):
    assert (fast.epsilon, fast.steps, fast.fooled, fast.succeeded) == \
        (plain.epsilon, plain.steps, plain.fooled, plain.succeeded)
    assert fast.adversarial_index == plain.adversarial_index
    assert fast.attack_epsilon == plain.attack_epsilon
    if same_image:  # FGSM: the same NumPy arithmetic on the same gradient sign
        np.testing.assert_array_equal(fast.x_adv, plain.x_adv)


def test_batched_search_equals_plain_loop_on_random_models():
    settings = AttackSettings(epsilon_max=0.1, bisection_steps=0)
    seen_steps = []
    for seed in range(4):
        model = conv_model(seed)
        for x in images(100 + seed, 6):
            fast, plain = minimal_epsilon(model, x, settings), plain_epsilon_loop(model, x, settings)
            assert_same_search(fast, plain)
            seen_steps.append(plain.steps)
    assert min(seen_steps) == 1 and max(seen_steps) > 10
    assert settings.grid_size in seen_steps  # some images are not fooled at all


def test_batched_search_equals_plain_loop_when_hundreds_of_steps_are_needed():
    # A wide margin for class 0 makes FGSM need a large epsilon; pixels in [0.3, 0.7] are not
    # clipped before epsilon 0.3.
    weights = np.random.default_rng(3).normal(size=(36, 3))
    model = linear_model(weights, np.array([12.0, 0.0, 0.0]))
    settings = AttackSettings()
    steps = []
    for x in images(11, 3, 0.3, 0.7):
        fast, plain = minimal_epsilon(model, x, settings), plain_epsilon_loop(model, x, settings)
        assert_same_search(fast, plain)
        assert fast.fooled and fast.batches < 12
        steps.append(fast.steps)
        # The reported epsilon is the grid point start + k * step, not a running sum.
        assert fast.epsilon == settings.epsilon_start + (fast.steps - 1) * settings.epsilon_step
    assert min(steps) >= 100


def test_not_fooled_up_to_epsilon_max_is_a_normal_result():
    weights = np.random.default_rng(3).normal(size=(36, 3))
    model = linear_model(weights, np.array([40.0, 0.0, 0.0]))
    settings = AttackSettings(epsilon_max=0.2)
    x = images(12, 1, 0.3, 0.7)[0]
    fast, plain = minimal_epsilon(model, x, settings), plain_epsilon_loop(model, x, settings)
    assert_same_search(fast, plain)
    assert not fast.fooled and not fast.succeeded
    assert fast.epsilon is None and fast.grid_index is None
    assert fast.steps == settings.grid_size == 272  # 0.01, 0.0107, ..., 0.1997
    assert fast.attack_epsilon == pytest.approx(0.1997)
    assert fast.adversarial_index == fast.clean_index == 0


@pytest.mark.parametrize("method", ["bim", "pgd"])
def test_iterative_searches_equal_plain_loop(method):
    settings = AttackSettings(method=method, iterations=3, epsilon_step=0.003, epsilon_max=0.1,
                              bisection_steps=0)
    steps = []
    for seed in (0, 2):
        model = conv_model(seed)
        for x in images(200 + seed, 2):
            fast, plain = minimal_epsilon(model, x, settings), plain_epsilon_loop(model, x, settings)
            # Gradients of a batch may differ from one image's in the last bits, so an
            # iterative walk may differ in a pixel; labels and epsilons must not.
            assert_same_search(fast, plain, same_image=False)
            assert np.max(np.abs(fast.x_adv - x)) <= fast.attack_epsilon + 1e-6
            steps.append(fast.steps)
    assert max(steps) > 1


def test_targeted_search_reaches_target():
    model = conv_model(1)
    reached = 0
    for number, x in enumerate(images(300, 6)):
        ranking = np.argsort(predict_probabilities(model, x[None])[0])
        target = int(ranking[-2 - number % 2])  # second or third most likely class
        settings = AttackSettings(target_index=target, epsilon_max=0.15, bisection_steps=0)
        fast, plain = minimal_epsilon(model, x, settings), plain_epsilon_loop(model, x, settings)
        assert_same_search(fast, plain)
        if fast.succeeded:
            reached += 1
            assert fast.adversarial_index == target and fast.fooled
            assert predict_probabilities(model, fast.x_adv[None]).argmax() == target
            # Same image as the article's recipe: one targeted FGSM step of that epsilon.
            np.testing.assert_array_equal(
                fgsm(model, x[None], [target], fast.epsilon, targeted=True)[0], fast.x_adv)
        else:
            assert fast.steps == settings.grid_size
    assert reached >= 3


def test_targeted_search_that_misses_reports_the_first_change_of_label():
    weights = np.random.default_rng(3).normal(size=(36, 3))
    # Class 2 is out of reach (bias -60), class 1 is one small push away from class 0.
    model = linear_model(weights, np.array([2.0, 0.0, -60.0]))
    settings = AttackSettings(target_index=2, epsilon_max=0.1)
    x = images(14, 1, 0.3, 0.7)[0]
    fast, plain = minimal_epsilon(model, x, settings), plain_epsilon_loop(model, x, settings)
    assert_same_search(fast, plain)
    assert not fast.succeeded and fast.fooled and fast.clean_index == 0
    assert fast.adversarial_index == 1 and fast.steps == settings.grid_size
    assert fast.epsilon == fast.attack_epsilon < settings.epsilon_max
    before = fast.epsilon - settings.epsilon_step
    if before >= settings.epsilon_start:  # the grid point before it still had the clean label
        x_before = np.clip(x + np.float32(before) * fast.gradient_sign, 0, 1)
        assert predict_probabilities(model, x_before[None]).argmax() == 0


def test_sweep_threshold_is_the_first_changed_frame_and_lies_on_the_boundary():
    weights = np.random.default_rng(3).normal(size=(36, 3))
    model = linear_model(weights, np.array([6.0, 0.0, 0.0]))
    settings = AttackSettings(bisection_steps=12)
    x = images(13, 1, 0.3, 0.7)[0]
    search = ImageSearch(model, x, settings)
    found = minimal_epsilon(model, x, settings, search=search)
    assert found.fooled and found.steps > 1
    changed = lambda label: label != search.clean_label  # noqa: E731
    sweep = epsilon_sweep(search, found.epsilon, changed, frames=30, bisection_steps=12)
    # The threshold is a frame, the first whose label changed; every frame before it kept it.
    assert sweep.epsilons[sweep.flip_index] == sweep.threshold
    assert list(sweep.labels[:sweep.flip_index]) == [search.clean_label] * sweep.flip_index
    assert sweep.labels[sweep.flip_index] != search.clean_label
    # The search's answer is a frame too, and the sweep starts at 0 and passes the answer.
    assert sweep.epsilons[sweep.answer_index] == found.epsilon
    assert sweep.epsilons[0] == 0 and sweep.epsilons[-1] > found.epsilon
    assert np.all(np.diff(sweep.epsilons) > 0) and len(sweep.epsilons) <= 30
    width = sweep.epsilons[-1] / 27 / 2 ** 12

    def label_at(epsilon):
        x_adv = np.clip(x + np.float32(epsilon) * found.gradient_sign, 0, 1)
        return int(predict_probabilities(model, x_adv[None]).argmax())

    # The label along the FGSM line of a linear model changes once: at the threshold it has
    # changed, one bisection width below it has not.
    assert label_at(sweep.threshold) != found.clean_index
    assert label_at(sweep.threshold - 1.01 * width) == found.clean_index
    # The frames are the attack at each epsilon, exactly.
    np.testing.assert_array_equal(sweep.images, search.attack(sweep.epsilons))


def test_sweep_of_an_image_never_fooled_has_no_threshold():
    weights = np.random.default_rng(3).normal(size=(36, 3))
    model = linear_model(weights, np.array([40.0, 0.0, 0.0]))
    settings = AttackSettings(epsilon_max=0.2)
    search = ImageSearch(model, images(12, 1, 0.3, 0.7)[0], settings)
    sweep = epsilon_sweep(search, None, lambda label: label != search.clean_label, frames=12)
    assert sweep.threshold is None and sweep.flip_index == -1 and sweep.answer_index == -1
    assert sweep.epsilons[0] == 0 and sweep.epsilons[-1] == pytest.approx(0.2)


def test_analyse_image_gives_one_record_of_every_epsilon():
    model = conv_model(2)
    x = images(400, 1, 0.2, 0.8)[0]
    names = ["a", "b", "c", "d"]
    record, arrays = analyse_image(model, x, 3, AttackSettings(noise_seed=4), names, noise_draws=3, frames=20)
    json.dumps(record)
    clean, attack, noise = record["clean"], record["attack"], record["noise"]
    assert set(clean) == {"label", "index", "probability", "probabilities"}
    assert clean["label"] == names[clean["index"]] and record["true_label"] == "d"
    assert record["misclassified"] == (clean["index"] != 3)
    assert attack["fooled"] and attack["succeeded"] and attack["target"] is None
    assert attack["outcome"] in ("first_step", "later")
    assert (attack["previous_epsilon"] is None) == (attack["outcome"] == "first_step")
    assert attack["adversarial"]["index"] != clean["index"]
    # The sweep's flip frame is the threshold, its answer frame the search's epsilon.
    assert arrays["sweep_epsilons"][record["sweep"]["flip_index"]] == attack["threshold"]
    assert arrays["sweep_epsilons"][record["sweep"]["answer_index"]] == attack["epsilon"]
    assert attack["threshold"] <= attack["epsilon"]
    assert record["amplification"] == pytest.approx(0.5 / arrays["sweep_epsilons"][-1])
    # No pixel is clipped in [0.2, 0.8], so both perturbations have exactly the size epsilon.
    assert noise["epsilon"] == attack["epsilon"] and noise["draws"] == 3 == len(arrays["x_noise"])
    for draw in arrays["x_noise"]:
        assert float(np.max(np.abs(draw - x))) == pytest.approx(attack["epsilon"], abs=1e-6)
    assert attack["linf"] == pytest.approx(attack["epsilon"], abs=1e-6)
    assert set(np.unique(arrays["gradient_sign"])) <= {-1.0, 0.0, 1.0}
    # Each layer compares like with like: the noise's change beside the attack's, and their ratio.
    for layer in record["layers"]:
        assert layer["ratio"] == pytest.approx(layer["attack"]["relative_l2"] / layer["noise"]["relative_l2"])
    assert record["most_changed"]["layer"] == "conv"
    unknown, _ = analyse_image(model, x, None, AttackSettings(), names, noise_draws=1, frames=10)
    assert unknown["true_label"] is None and unknown["misclassified"] is False
    assert unknown["attack"]["effect"] == "changed"


@pytest.mark.parametrize("true, clean, adversarial, effect", [
    (None, 0, 0, "held"), (None, 0, 1, "changed"), (0, 0, 1, "fooled"), (1, 0, 1, "corrected"),
    (2, 0, 1, "changed"), (0, 0, 0, "held")])
def test_effect_is_judged_against_the_true_class(true, clean, adversarial, effect):
    assert effect_of(true, clean, adversarial) == effect


def test_sign_noise_is_seeded_and_bounded():
    x = images(9, 1)[0]
    noise = sign_noise(x, 0.05, seed=1)
    np.testing.assert_array_equal(noise, sign_noise(x, 0.05, seed=1))
    assert not np.array_equal(noise, sign_noise(x, 0.05, seed=2))
    assert np.max(np.abs(noise - x)) <= 0.05 + 1e-6 and noise.min() >= 0 and noise.max() <= 1


@pytest.mark.parametrize("key,value", [("method", "deepfool"), ("epsilon_step", 0.0),
                                       ("epsilon_max", 0.001), ("iterations", 0),
                                       ("step_size", -1.0), ("chunk", 0), ("epsilon_step", 1e-9)])
def test_bad_settings_are_user_errors_naming_the_key(key, value):
    with pytest.raises(UserError, match=key):
        AttackSettings(**{key: value})


def test_target_equal_to_clean_prediction_or_out_of_range_is_a_user_error():
    model = conv_model(0)
    x = images(500, 1)[0]
    clean = int(predict_probabilities(model, x[None]).argmax())
    with pytest.raises(UserError, match="already"):
        minimal_epsilon(model, x, AttackSettings(target_index=clean))
    with pytest.raises(UserError, match="out of range"):
        minimal_epsilon(model, x, AttackSettings(target_index=9))


def test_grid_includes_epsilon_max_when_it_lies_on_the_grid():
    settings = AttackSettings(epsilon_start=0.01, epsilon_step=0.0007, epsilon_max=0.0107)
    assert settings.grid_size == 2
    assert dataclasses.replace(settings, epsilon_max=0.0106).grid_size == 1
