"""Tiny VGG: build it, train it deterministically, keep a weight snapshot per epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


def layer_names(blocks: int) -> list[str]:
    """Names of Tiny VGG's layers, in order, for ``blocks`` conv blocks."""
    names = []
    for b in range(1, blocks + 1):
        names += [f"conv_{b}_1", f"relu_{b}_1", f"conv_{b}_2", f"relu_{b}_2", f"max_pool_{b}"]
    return names + ["flatten", "output"]


def build_tiny_vgg(input_shape: tuple[int, int, int], n_classes: int, *, blocks: int = 2, filters: int = 10,
                   seed: int = 0):
    """CNN Explainer's Tiny VGG: [conv3x3-relu, conv3x3-relu, maxpool2x2] x blocks, flatten, dense softmax.

    Input (N, H, W, C) float32 in [0, 1]; output (N, n_classes) probabilities. Convolutions are
    'valid' as in CNN Explainer, so each block shrinks the maps by 4 pixels before pooling.
    """
    import keras
    from keras import layers

    init = keras.initializers.GlorotUniform
    stack = [keras.Input(shape=input_shape, name="input")]
    for b in range(1, blocks + 1):
        for i in (1, 2):
            stack.append(layers.Conv2D(filters, 3, kernel_initializer=init(seed=seed + 10 * b + i), name=f"conv_{b}_{i}"))
            stack.append(layers.Activation("relu", name=f"relu_{b}_{i}"))
        stack.append(layers.MaxPooling2D(2, name=f"max_pool_{b}"))
    stack.append(layers.Flatten(name="flatten"))
    stack.append(layers.Dense(n_classes, activation="softmax", kernel_initializer=init(seed=seed + 1), name="output"))
    return keras.Sequential(stack, name="tiny_vgg")


def check_fits(input_shape: tuple[int, int, int], blocks: int) -> str | None:
    """Why ``blocks`` Tiny VGG blocks cannot take ``input_shape``, or None when they can."""
    size = min(input_shape[:2])
    for b in range(1, blocks + 1):
        size = (size - 4) // 2
        if size < 1:
            return f"a {input_shape[0]}x{input_shape[1]} input is too small for {blocks} blocks (nothing left after block {b})"
    return None


@dataclass
class TrainingResult:
    """What training produced: the history per epoch, one weight list per epoch, test scores."""

    history: dict[str, list[float]]
    snapshots: list[list[np.ndarray]] = field(repr=False)
    test_loss: float = 0.0
    test_accuracy: float = 0.0
    seconds: float = 0.0


def train(model, x_train, y_train, x_test, y_test, *, epochs: int, batch_size: int, learning_rate: float,
          seed: int, verbose: int = 1) -> TrainingResult:
    """Train with Adam on sparse categorical cross-entropy; same seed and data -> same weights.

    The test split doubles as validation data so each epoch's curve shows held-out accuracy.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    snapshots: list[list[np.ndarray]] = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    # Cosine decay: large steps early, fine ones at the end, so a few epochs reach a stable accuracy.
    steps = epochs * -(-len(x_train) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    fit = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, shuffle=True,
                    validation_data=(x_test, y_test), callbacks=[keep], verbose=verbose)
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    return TrainingResult(history, snapshots, float(test_loss), float(test_accuracy), seconds)
