"""Merged model calls: compiled once per input shape, and every image's record the same
whichever images share its batches."""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from generator.analysis import batching  # noqa: E402
from generator.analysis.attack import AttackSettings, gradient_sign, predict_probabilities  # noqa: E402
from generator.analysis.batching import ModelCall, chunks, compiled_model, run_routines  # noqa: E402
from generator.analysis.record import analyse_image, analyse_images  # noqa: E402
from generator.errors import UserError  # noqa: E402

SHAPE = (12, 12, 3)


def small_cnn(seed: int):
    """conv-relu, flatten, dense softmax. Its dense layer has 1,000 inputs: large enough that
    a batch of one row (a matrix-vector product) gets other bits than a batch of several."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(10, 3, activation="relu", name="conv"),
                             keras.layers.Flatten(name="flatten"),
                             keras.layers.Dense(5, activation="softmax", name="output")])


def images(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.2, 0.8, (count, *SHAPE)).astype(np.float32)


def test_chunks_cover_every_row_and_never_leave_one_row_alone():
    for rows in range(2, 600):
        for pixels in (12288, 784, 2 ** 19):
            bounds = chunks(rows, pixels)
            assert bounds[0][0] == 0 and bounds[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert all(stop - start >= 2 for start, stop in bounds), (rows, pixels, bounds)
            limit = max(4, min(batching.MAX_ROWS_PER_CALL, batching.MAX_PIXELS_PER_CALL // pixels))
            assert all(stop - start <= limit for start, stop in bounds)


def test_compiled_model_gives_the_keras_numbers_and_traces_once_per_input_shape():
    model = small_cnn(0)
    compiled = compiled_model(model)
    assert compiled_model(model) is compiled and compiled_model(compiled) is compiled
    x = images(1, 7)
    labels = np.array([0, 1, 2, 3, 4, 0, 1])
    for count in (1, 2, 3, 7):
        np.testing.assert_array_equal(predict_probabilities(compiled, x[:count]),
                                      predict_probabilities(model, x[:count]))
        for targeted in (False, True):
            np.testing.assert_array_equal(gradient_sign(compiled, x[:count], labels[:count], targeted),
                                          gradient_sign(model, x[:count], labels[:count], targeted))
    # Four batch sizes, one trace each of the forward pass and of both gradients.
    traces = {key[0].__name__ + str(key[2]): function.experimental_get_tracing_count()
              for key, function in compiled._traced.items()}
    assert traces == {"_forward()": 1, "gradient_sign(('targeted', False),)": 1,
                      "gradient_sign(('targeted', True),)": 1}


def test_merged_calls_run_single_rows_alone_and_the_rest_together():
    calls = []

    def run(model, rows):
        calls.append(len(rows))
        return rows.reshape(len(rows), -1).sum(axis=1)

    def routine(count, offset):
        got = yield ModelCall(np.full((count, 2, 2, 1), offset, np.float32), run)
        return list(got)

    results = run_routines(small_cnn(0), [routine(1, 1.0), routine(3, 2.0), routine(2, 3.0), routine(1, 4.0)])
    assert results == [[4.0], [8.0] * 3, [12.0] * 2, [16.0]]
    assert sorted(calls) == [1, 1, 5]


def test_a_routine_that_fails_does_not_stop_the_others():
    def fails():
        yield ModelCall(np.zeros((2, *SHAPE), np.float32))
        raise UserError("this one")

    def works():
        probabilities = yield ModelCall(np.zeros((3, *SHAPE), np.float32))
        return probabilities.shape

    first, second = run_routines(small_cnn(0), [fails(), works()])
    assert isinstance(first, UserError) and second == (3, 5)


def same(record_a, arrays_a, record_b, arrays_b) -> None:
    assert json.dumps(record_a, sort_keys=True) == json.dumps(record_b, sort_keys=True)
    assert set(arrays_a) == set(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


@pytest.mark.parametrize("method", ["fgsm", "bim"])
def test_an_images_record_does_not_depend_on_the_images_beside_it(method):
    """Alone, in a group, and in another group: bit for bit the same record and arrays."""
    model = small_cnn(2)
    names = ["a", "b", "c", "d", "e"]
    settings = AttackSettings(method=method, epsilon_step=0.004, epsilon_max=0.3, iterations=3)
    x = images(3, 5)
    options = dict(noise_draws=3, frames=16)
    alone = [analyse_image(model, image, 1, settings, names, **options) for image in x]
    together = analyse_images(model, [(image, 1, settings) for image in x], names, **options)
    others = analyse_images(model, [(image, 1, settings) for image in images(4, 3)] + [(x[2], 1, settings)],
                            names, **options)
    for (record, arrays), (record_b, arrays_b) in zip(alone, together):
        same(record, arrays, record_b, arrays_b)
    same(*alone[2], *others[-1])
    # Not a trivial case: the searches took different numbers of steps, and on this model one
    # row alone gets other bits than the same row in a batch.
    assert len({record["attack"]["steps"] for record, _ in alone}) > 1
    assert not np.array_equal(predict_probabilities(model, x[:1]), predict_probabilities(model, x[:2])[:1])
