"""Model calls of many images at once: a compiled model, and routines whose calls are merged.

The analysis of one image is written as a *routine*: a generator that yields the model calls it
needs (:class:`ModelCall`) and receives their outputs, e.g. ::

    probabilities = yield ModelCall(images)

:func:`run_routines` runs the routines of many images side by side and merges the calls they
are waiting on into few large model calls; :func:`run_routine` runs one. The one-image and the
many-image analysis are thus the same code.

Why merging keeps every number: a convolution computes each image of a batch alone, and a
dense layer (a matrix product) gives each row the same bits in any batch of two rows or more,
but other bits for a batch of one row (a matrix-vector product). So a call of one row is always
run alone, and calls of two rows or more are merged, in chunks of two rows or more: each row
then gets the bits it gets in its own routine's call, whichever images share the batch.
``tests/test_batching.py`` checks this on the models it builds.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Generator

import numpy as np

from generator.errors import UserError

# Rows per merged call: large enough that per-call overhead vanishes, small enough that the
# activations of every layer of a chunk (probe calls) stay within tens of megabytes.
MAX_PIXELS_PER_CALL = 2 ** 20
MAX_ROWS_PER_CALL = 256


class CompiledModel:
    """A Keras model whose calls are traced once per input shape.

    Each traced function takes images (None, H, W, C) float32: any batch size runs the same
    graph, so nothing is traced again when the number of images changes. ``model(x)`` is the
    forward pass (probabilities (N, n_classes) as a tensor); :meth:`call_traced` traces other
    functions of the model (the loss gradient, the activations of every layer).
    """

    def __init__(self, keras_model):
        self.keras_model = keras_model
        self._traced: dict = {}

    def __call__(self, x, training=False):
        import tensorflow as tf

        x = tf.convert_to_tensor(x, dtype=tf.float32)
        return self._function(_forward, x, ())(x)

    def call_traced(self, function: Callable, x, *row_arguments, **constants):
        """``function(keras_model, x, *row_arguments, **constants)`` as a traced graph.

        x: float32 (N, H, W, C); each row argument an integer array (N,) (passed as int64);
        constants: Python values fixed at tracing (one trace per distinct value). Returns the
        function's outputs as NumPy arrays (a list for several outputs).
        """
        import tensorflow as tf

        x = tf.convert_to_tensor(x, dtype=tf.float32)
        rows = [tf.convert_to_tensor(np.asarray(value, dtype=np.int64)) for value in row_arguments]
        outputs = self._function(function, x, tuple(sorted(constants.items())), len(rows))(x, *rows)
        if isinstance(outputs, (list, tuple)):
            return [np.asarray(output) for output in outputs]
        return np.asarray(outputs)

    def _function(self, function: Callable, x, constants: tuple, row_arguments: int = 0):
        import tensorflow as tf

        shape = tuple(int(d) for d in x.shape[1:])
        key = (function, shape, constants, row_arguments)
        if key not in self._traced:
            model, fixed = self.keras_model, dict(constants)
            signature = [tf.TensorSpec((None, *shape), tf.float32)] + \
                [tf.TensorSpec((None,), tf.int64)] * row_arguments
            # Traced as written: the functions branch and loop on Python values only, so
            # AutoGraph's rewriting would give the same graph; skipping it saves about 0.4 s of
            # a first analysis.
            self._traced[key] = tf.function(lambda *inputs: function(model, *inputs, **fixed),
                                            input_signature=signature, autograph=False)
        return self._traced[key]


def _forward(model, x):
    return model(x, training=False)


def compiled_model(model) -> CompiledModel:
    """The CompiledModel of a Keras model, made once per model object (it keeps its traces)."""
    if isinstance(model, CompiledModel):
        return model
    compiled = getattr(model, "_butterfly_compiled", None)
    if compiled is None:
        compiled = CompiledModel(model)
        # Kept on the model itself, so that the traces live exactly as long as the model does.
        object.__setattr__(model, "_butterfly_compiled", compiled)
    return compiled


@dataclasses.dataclass
class ModelCall:
    """What a routine asks for: ``run(compiled_model, images)`` on images (M, H, W, C).

    ``run`` returns one array (M, ...) or a list of arrays (M, ...); calls with the same ``run``
    are merged. The routine receives the outputs for its own M rows.
    """

    images: np.ndarray
    run: Callable | None = None

    def runner(self) -> Callable:
        return self.run or predict


def predict(model, images) -> np.ndarray:
    """Probabilities (M, n_classes) for images (M, H, W, C), one forward pass."""
    return np.array(model(np.asarray(images, dtype=np.float32), training=False))


Routine = Generator[ModelCall, object, object]


def run_routine(model, routine: Routine):
    """Run one routine to its end; returns its return value (its errors propagate)."""
    result = run_routines(model, [routine])[0]
    if isinstance(result, UserError):
        raise result
    return result


def run_routines(model, routines: list[Routine], on_round: Callable[[], None] | None = None) -> list:
    """Run routines side by side, merging the model calls they wait on; their return values in order.

    A routine that raises :class:`UserError` (e.g. a target the model already predicts) gets the
    error as its result and the others go on; any other exception propagates. ``on_round`` is
    called after each round of merged calls.
    """
    compiled = compiled_model(model)
    results: list = [None] * len(routines)
    waiting: dict[int, ModelCall] = {}

    def advance(index: int, value) -> None:
        try:
            waiting[index] = routines[index].send(value)
        except StopIteration as stop:
            results[index] = stop.value
            waiting.pop(index, None)
        except UserError as error:
            results[index] = error
            waiting.pop(index, None)

    for index in range(len(routines)):
        advance(index, None)
    while waiting:
        outputs = run_merged(compiled, dict(waiting))
        for index in sorted(outputs):
            advance(index, outputs[index])
        if on_round is not None:
            on_round()
    return results


def run_merged(compiled: CompiledModel, calls: dict[int, ModelCall]) -> dict[int, object]:
    """{routine: outputs} for {routine: call}: single-row calls alone, the others merged."""
    outputs: dict[int, object] = {}
    groups: dict[Callable, list[int]] = {}
    for index, call in calls.items():
        if len(call.images) == 1:
            outputs[index] = call.runner()(compiled, call.images)
        else:
            groups.setdefault(call.runner(), []).append(index)
    for run, indices in groups.items():
        images = np.concatenate([np.asarray(calls[i].images, dtype=np.float32) for i in indices])
        pieces = [run(compiled, images[start:stop]) for start, stop in chunks(len(images), images[0].size)]
        merged = _concatenate(pieces)
        start = 0
        for index in indices:
            stop = start + len(calls[index].images)
            # Copies, so that a routine keeping its rows does not keep the whole merged batch.
            outputs[index] = ([part[start:stop].copy() for part in merged] if isinstance(merged, list)
                              else merged[start:stop].copy())
            start = stop
    return outputs


def chunks(rows: int, pixels_per_row: int) -> list[tuple[int, int]]:
    """(start, stop) of the calls that run ``rows`` merged rows (rows >= 2): as few as the size
    limits allow, all of about one size. With at least 4 rows per call allowed, every call
    gets at least 2 rows."""
    limit = max(4, min(MAX_ROWS_PER_CALL, MAX_PIXELS_PER_CALL // max(1, pixels_per_row)))
    count = -(-rows // limit)
    bounds = np.linspace(0, rows, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _concatenate(pieces: list):
    if isinstance(pieces[0], list):
        return [np.concatenate(parts) for parts in zip(*pieces)]
    return np.concatenate(pieces)
