"""Re-create the model files of the bad-input tests (run from the repository root):

    .venv/bin/python tests/bad_inputs/make_models.py

lambda_layer.keras: a 28x28x1 classifier of ten classes with a Lambda layer, saved by Keras
(the file carries the lambda's Python code, which a safe loader must refuse).
single_class.keras: a 28x28x1 model with one output unit (softmax): nothing to tell apart.
"""

from pathlib import Path

import keras

HERE = Path(__file__).resolve().parent


def small_classifier(units: int, with_lambda: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    layers = [keras.Input(shape=(28, 28, 1)), keras.layers.Conv2D(2, 3, name="conv_1_1")]
    if with_lambda:
        layers.append(keras.layers.Lambda(lambda x: x * 2.0, name="doubled"))
    layers += [keras.layers.MaxPooling2D(4, name="max_pool_1"), keras.layers.Flatten(name="flatten"), keras.layers.Dense(units, activation="softmax", name="output")]
    return keras.Sequential(layers)


if __name__ == "__main__":
    small_classifier(10, with_lambda=True).save(HERE / "lambda_layer.keras")
    small_classifier(1, with_lambda=False).save(HERE / "single_class.keras")
