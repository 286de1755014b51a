"""The article's FGSM search, on its own.

Load a trained model, take the sign of the loss gradient at an image, then try
epsilon = 0.01, 0.0107, 0.0114, ... until the model's answer changes:

    python fgsm_search.py model.keras panda_2.jpeg

The model takes images with pixels in [0, 1] and returns class probabilities. A file
classes.txt beside the model (one class name per line, in the model's output order) gives the
answers their names. Needs TensorFlow (with Keras 3), NumPy and Pillow.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

EPSILON_START = 0.01   # the first epsilon tried
EPSILON_STEP = 0.0007  # added while the answer stays the same
EPSILON_MAX = 0.3      # give up here


def load_image(path, height, width, channels):
    """The image as the model sees it: (height, width, channels) floats in [0, 1].

    An image of another size is simply resized here; Butterfly's build also crops it to the
    model's aspect ratio first. CNN Explainer's photos are already 64x64, so nothing changes.
    """
    image = Image.open(path).convert("L" if channels == 1 else "RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels.reshape(height, width, channels)


def predict(model, x):
    """The model's probabilities for one image x (H, W, C)."""
    return model(x[None], training=False)[0].numpy()


def gradient_sign(model, x, label):
    """The sign (+1, 0 or -1 per pixel) of the gradient of the loss for `label` at image x.

    The loss is the cross-entropy -log p[label]. Adding log(sum of p), which is log 1 = 0,
    changes nothing mathematically but keeps the gradient exact when a very confident model
    rounds p[label] to exactly 1.0.
    """
    x = tf.convert_to_tensor(x[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        p = model(x, training=False)
        loss = tf.math.log(tf.reduce_sum(p)) - tf.math.log(tf.maximum(p[0, label], 1e-37))
    return tf.sign(tape.gradient(loss, x))[0].numpy()


def fgsm_search(model, x):
    """The article's loop. Returns (clean label, epsilon, adversarial label), epsilon None when
    the label never changes up to EPSILON_MAX."""
    clean = int(np.argmax(predict(model, x)))
    direction = gradient_sign(model, x, clean)  # computed once, at the clean image
    k = 0
    while k <= (EPSILON_MAX - EPSILON_START) / EPSILON_STEP + 1e-9:
        epsilon = EPSILON_START + k * EPSILON_STEP  # start + k * step: no rounding drift
        x_adv = np.clip(x + np.float32(epsilon) * direction, 0.0, 1.0)
        label = int(np.argmax(predict(model, x_adv)))
        if label != clean:
            return clean, epsilon, label
        k += 1
    return clean, None, clean


def main(model_path, image_path):
    model = keras.saving.load_model(model_path, compile=False)
    classes_file = Path(model_path).with_name("classes.txt")
    names = classes_file.read_text(encoding="utf-8").split("\n") if classes_file.exists() else None
    _, height, width, channels = model.input_shape
    x = load_image(image_path, height, width, channels)
    clean, epsilon, label = fgsm_search(model, x)
    name = (lambda i: f"{names[i]} ({i})") if names else str
    if epsilon is None:
        print(f"{name(clean)}: the label does not change up to epsilon {EPSILON_MAX}")
    else:
        print(f"{name(clean)} -> {name(label)} at epsilon {epsilon:.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python fgsm_search.py MODEL.keras IMAGE")
    main(sys.argv[1], sys.argv[2])
