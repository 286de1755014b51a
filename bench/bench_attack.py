"""Benchmark: the batched minimal-epsilon search against the article's one-step-at-a-time loop.

Run by hand:  .venv/bin/python bench/bench_attack.py [--repeats 5] [--train-size 6000]

A Tiny VGG is trained for a few seconds on Fashion-MNIST (Debian's dataset-fashion-mnist files,
else the subset embedded in content/fashion-mnist). Test images are picked so that some flip at
the first grid point, some within 2-9 or 10-60 steps, and some need 100 or more; a second grid with a 10x smaller
epsilon_step forces hundreds of steps. For every image it prints the steps, the median time of
`plain_epsilon_loop` and of `minimal_epsilon` (without refinement: the same work as the loop;
and with the default 12 bisection steps), and their ratio. Both use the same forward pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from generator.analysis.attack import AttackSettings, minimal_epsilon, plain_epsilon_loop  # noqa: E402

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED = Path(__file__).resolve().parents[1] / "content" / "fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as stream:
        data = stream.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def tiny_vgg(input_shape, n_classes=10):
    import keras

    layers = [keras.Input(input_shape)]
    for block in (1, 2):
        for conv in (1, 2):
            layers += [keras.layers.Conv2D(10, 3, padding="same", name=f"conv_{block}_{conv}"),
                       keras.layers.Activation("relu", name=f"relu_{block}_{conv}")]
        layers.append(keras.layers.MaxPooling2D(name=f"max_pool_{block}"))
    layers += [keras.layers.Flatten(name="flatten"),
               keras.layers.Dense(n_classes, activation="softmax", name="output")]
    return keras.Sequential(layers, name="tiny_vgg")


def build_model(train_size: int):
    import keras

    keras.utils.set_random_seed(0)
    model = tiny_vgg((28, 28, 1))
    folder = FASHION_MNIST if FASHION_MNIST.is_dir() else EMBEDDED
    print(f"Fashion-MNIST from {folder}")
    x_train = read_idx(folder / "train-images-idx3-ubyte.gz")[:train_size, ..., None] / 255.0
    y_train = read_idx(folder / "train-labels-idx1-ubyte.gz")[:train_size]
    x_test = read_idx(folder / "t10k-images-idx3-ubyte.gz")[:400, ..., None] / 255.0
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(x_train.astype(np.float32), y_train, epochs=3, batch_size=64, verbose=0)
    print(f"trained Tiny VGG on {train_size} images in {time.perf_counter() - started:.1f} s, "
          f"train accuracy {history.history['accuracy'][-1]:.3f}")
    return model, x_test.astype(np.float32)


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


BUCKETS = {"1 step": (1, 1), "2-9 steps": (2, 9), "10-60 steps": (10, 60),
           ">=100 steps": (100, 1000)}


def pick_images(model, images, settings, wanted, scan=400):
    """{bucket: indices of up to `wanted` images (among the first `scan`) whose search needs
    that many steps}."""
    quick = dataclasses.replace(settings, bisection_steps=0)
    buckets = {name: [] for name in BUCKETS}
    for index, image in enumerate(images[:scan]):
        steps = minimal_epsilon(model, image, quick).steps
        for name, (low, high) in BUCKETS.items():
            if low <= steps <= high and len(buckets[name]) < wanted:
                buckets[name].append(index)
        if all(len(found) == wanted for found in buckets.values()):
            break
    return buckets


def compare(model, images, buckets, settings, repeats, label):
    print(f"\n== {label}: method={settings.method} epsilon_step={settings.epsilon_step} "
          f"grid={settings.grid_size} points, median of {repeats}")
    print(f"{'bucket':<15}{'image':>6}{'steps':>7}{'plain ms':>10}{'batched ms':>12}"
          f"{'ratio':>8}{'+refine ms':>12}{'batches':>9}")
    no_refine = dataclasses.replace(settings, bisection_steps=0)
    ratios = {}
    for bucket, indices in buckets.items():
        for index in indices:
            image = images[index]
            times = {"plain": [], "batched": [], "refined": []}
            for _ in range(repeats):  # interleaved, so load changes hit all three alike
                seconds, plain = timed(lambda: plain_epsilon_loop(model, image, settings))
                times["plain"].append(seconds)
                seconds, fast = timed(lambda: minimal_epsilon(model, image, no_refine))
                times["batched"].append(seconds)
                times["refined"].append(timed(lambda: minimal_epsilon(model, image, settings))[0])
                assert (fast.epsilon, fast.steps) == (plain.epsilon, plain.steps), (index, fast, plain)
            plain_time, fast_time, refine_time = (statistics.median(times[key])
                                                  for key in ("plain", "batched", "refined"))
            ratio = plain_time / fast_time
            ratios.setdefault(bucket, []).append(ratio)
            print(f"{bucket:<15}{index:>6}{plain.steps:>7}{plain_time * 1e3:>10.1f}"
                  f"{fast_time * 1e3:>12.1f}{ratio:>7.1f}x{refine_time * 1e3:>12.1f}{fast.batches:>9}")
    for bucket, values in ratios.items():
        print(f"median speed ratio, {bucket}: {statistics.median(values):.1f}x "
              f"(min {min(values):.1f}x, {len(values)} images)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--per-bucket", type=int, default=3)
    args = parser.parse_args()

    model, images = build_model(args.train_size)
    article = AttackSettings()
    minimal_epsilon(model, images[0], article)  # warm up TensorFlow before timing
    plain_epsilon_loop(model, images[0], article)

    buckets = pick_images(model, images, article, args.per_bucket)
    compare(model, images, buckets, article, args.repeats, "article grid")

    fine = dataclasses.replace(article, epsilon_step=article.epsilon_step / 10)
    fine_buckets = pick_images(model, images, fine, args.per_bucket)
    compare(model, images, fine_buckets, fine, args.repeats, "10x finer grid")

    bim = dataclasses.replace(article, method="bim", iterations=5)
    bim_buckets = {key: indices[:1] for key, indices in pick_images(model, images, bim, 1, scan=40).items()}
    compare(model, images, bim_buckets, bim, max(1, args.repeats // 2), "iterative FGSM (BIM)")


if __name__ == "__main__":
    main()
