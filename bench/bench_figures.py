"""Time the per-image figure set on realistic arrays and write samples for a look.

Run: .venv/bin/python bench/bench_figures.py [--repeats 5] [--out /tmp/figs]

The arrays come from a Tiny VGG forward pass written in NumPy (random He-initialised weights,
a drawn test image, a random sign perturbation), so shapes and value statistics match the real
pipeline without importing TensorFlow. Target: the whole per-image set in <= 1 s on 2 cores for
28x28x1, ideally also for 64x64x3.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator import figures  # noqa: E402

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


# --- a Tiny VGG in NumPy -------------------------------------------------------------------------

def tiny_vgg_weights(channels: int, height: int, width: int, filters: int = 10, classes: int = 10, seed: int = 0):
    """He-initialised weights for [conv-relu, conv-relu, maxpool] x 2, flatten, dense."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 3, channels, filters), (3, 3, filters, filters), (3, 3, filters, filters), (3, 3, filters, filters)]
    convs = [(rng.normal(0, np.sqrt(2 / (9 * s[2])), s).astype(np.float32), rng.normal(0, 0.05, s[3]).astype(np.float32))
             for s in shapes]
    side_h, side_w = ((height - 4) // 2 - 4) // 2, ((width - 4) // 2 - 4) // 2
    dense = rng.normal(0, np.sqrt(1 / (side_h * side_w * filters)), (side_h * side_w * filters, classes)).astype(np.float32)
    return convs, dense


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    windows = sliding_window_view(x, (3, 3), axis=(0, 1))  # (h, w, c, 3, 3)
    return np.einsum("hwcij,ijcf->hwf", windows, kernel, optimize=True) + bias


def _pool(x: np.ndarray) -> np.ndarray:
    h, w, c = x.shape
    return x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def tiny_vgg_forward(x: np.ndarray, weights) -> list[tuple[str, np.ndarray]]:
    """Every layer's activations for one image (H, W, C): [(name, array)], flatten and output 1-D."""
    convs, dense = weights
    out, layers = x, []
    for block in (1, 2):
        for step in (1, 2):
            kernel, bias = convs[(block - 1) * 2 + step - 1]
            out = _conv(out, kernel, bias)
            layers.append((f"conv_{block}_{step}", out))
            out = np.maximum(out, 0)
            layers.append((f"relu_{block}_{step}", out))
        out = _pool(out)
        layers.append((f"max_pool_{block}", out))
    flat = out.reshape(-1)
    layers.append(("flatten", flat))
    logits = flat @ dense
    logits = (logits - logits.max()) * 3.0
    probabilities = np.exp(logits) / np.exp(logits).sum()
    layers.append(("output", probabilities))
    return layers


def input_gradient_sign(x: np.ndarray, weights, label: int) -> np.ndarray:
    """sign of d(cross-entropy of `label`)/dx for the NumPy Tiny VGG, by hand-written backpropagation."""
    convs, dense = weights
    out, cache = x, []
    for block in range(2):
        for step in range(2):
            kernel, bias = convs[block * 2 + step]
            pre = _conv(out, kernel, bias)
            cache.append(("conv", kernel, pre))
            out = np.maximum(pre, 0)
        cache.append(("pool", out))
        out = _pool(out)
    logits = (out.reshape(-1) @ dense) * 3.0
    p = np.exp(logits - logits.max())
    p /= p.sum()
    grad = (p - np.eye(p.size)[label]) * 3.0
    grad = (dense @ grad).reshape(out.shape)
    for entry in reversed(cache):
        if entry[0] == "pool":
            before = entry[1]
            h, w, _ = before.shape
            pooled = _pool(before)
            up = np.repeat(np.repeat(pooled, 2, 0), 2, 1)
            spread = np.repeat(np.repeat(grad, 2, 0), 2, 1)
            full = np.zeros_like(before)
            full[: up.shape[0], : up.shape[1]] = spread * (before[: up.shape[0], : up.shape[1]] == up)
            grad = full
        else:
            _, kernel, pre = entry
            grad = grad * (pre > 0)
            padded = np.pad(grad, ((2, 2), (2, 2), (0, 0)))
            grad = _conv(padded, kernel[::-1, ::-1].transpose(0, 1, 3, 2), 0.0)
    return np.sign(grad).astype(np.float32)


def drawn_image(height: int, width: int, channels: int) -> np.ndarray:
    """A soft shirt-like silhouette (grey) or a coloured object on a background (RGB), in [0, 1]."""
    picture = Image.new("RGB", (width, height), (0, 0, 0) if channels == 1 else (40, 90, 140))
    draw = ImageDraw.Draw(picture)
    s = lambda fx, fy: (fx * width, fy * height)  # noqa: E731
    body = [s(.3, .15), s(.42, .12), s(.5, .2), s(.58, .12), s(.7, .15), s(.9, .35), s(.78, .45), s(.72, .38),
            s(.72, .9), s(.28, .9), s(.28, .38), s(.22, .45), s(.1, .35)]
    draw.polygon(body, fill=(210, 200, 190) if channels == 1 else (220, 120, 40))
    draw.line([s(.35, .55), s(.65, .55)], fill=(120, 120, 120) if channels == 1 else (250, 230, 90), width=max(1, height // 20))
    picture = picture.filter(ImageFilter.GaussianBlur(max(0.6, height / 40)))
    array = np.asarray(picture, dtype=np.float32) / 255
    return array[:, :, :1] if channels == 1 else array


def synthetic_case(height: int, width: int, channels: int, seed: int = 0) -> dict:
    """All arrays the figures stage reads for one image (see the manifest's npz list), plus model-level ones."""
    rng = np.random.default_rng(seed)
    weights = tiny_vgg_weights(channels, height, width, seed=seed)
    x = drawn_image(height, width, channels)
    clean = tiny_vgg_forward(x, weights)
    label0 = int(np.argmax(clean[-1][1]))
    gradient_sign = input_gradient_sign(x, weights, label0)
    found = next((e for e in np.arange(0.002, 1.0, 0.002)
                  if np.argmax(tiny_vgg_forward(np.clip(x + e * gradient_sign, 0, 1), weights)[-1][1]) != label0), 0.1)
    epsilons = np.linspace(0.0, 1.4 * found, 50)
    sweep = [tiny_vgg_forward(np.clip(x + e * gradient_sign, 0, 1), weights)[-1][1] for e in epsilons]
    labels = np.array([int(np.argmax(p)) for p in sweep])
    flips = np.flatnonzero(labels != label0)
    flip = int(flips[0]) if flips.size else -1
    eps = float(epsilons[flip]) if flip >= 0 else float(epsilons[-1])
    x_adv = np.clip(x + eps * gradient_sign, 0, 1)
    x_noise = np.clip(x + eps * rng.choice([-1.0, 1.0], size=x.shape), 0, 1).astype(np.float32)
    adv, noise = tiny_vgg_forward(x_adv, weights), tiny_vgg_forward(x_noise, weights)
    epochs = []
    for epoch in range(0, 9):
        blend = tiny_vgg_weights(channels, height, width, seed=seed + 100)
        mixed = ([((1 - epoch / 8) * kb[0] + epoch / 8 * ka[0], ka[1]) for ka, kb in zip(weights[0], blend[0])],
                 weights[1])
        epochs.append((epoch, [(n, a) for n, a in tiny_vgg_forward(x, mixed) if np.ndim(a) == 3]))
    return {"x": x, "x_adv": x_adv, "x_noise": x_noise, "gradient_sign": gradient_sign, "clean": clean, "adv": adv,
            "noise": noise, "sweep_epsilons": epsilons, "sweep_probabilities": np.array(sweep),
            "sweep_labels": labels, "sweep_flip_index": flip, "kernel": weights[0][0][0], "epochs": epochs,
            "accuracies": [0.1, 0.55, 0.68, 0.74, 0.78, 0.8, 0.82, 0.83, 0.84]}


# --- the figure set ------------------------------------------------------------------------------

def image_figure_set(case: dict, out: Path) -> dict[str, tuple[float, dict]]:
    """Render the per-image set the pipeline makes; {key: (seconds, record)}."""
    timings = {}

    def timed(key, call, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        record = call(*args, **kwargs)
        timings[key] = (time.perf_counter() - start, time.process_time() - cpu, record)

    maps_clean = [(n, a) for n, a in case["clean"] if np.ndim(a) == 3]
    maps_adv = [(n, a) for n, a in case["adv"] if np.ndim(a) == 3]
    scales = figures.shared_scales(maps_clean, maps_adv)
    chosen = figures.select_filters(maps_clean, maps_adv, 10)
    p_clean, p_adv = case["clean"][-1][1], case["adv"][-1][1]
    timed("overview_clean", figures.network_overview, maps_clean, p_clean, CLASS_NAMES, scales,
          out / "overview_clean.png", "Inside the network: the original image", image=case["x"], filter_indices=chosen)
    timed("overview_adversarial", figures.network_overview, maps_adv, p_adv, CLASS_NAMES, scales,
          out / "overview_adversarial.png", "Inside the network: the adversarial image", image=case["x_adv"],
          filter_indices=chosen)
    for (name, clean), (_, adv) in zip(maps_clean, maps_adv):
        timed(f"grid_{name}", figures.comparison_grid, name, clean, adv, out / f"grid_{name}.png")
    layer = dict(maps_clean)
    pool_clean, pool_adv = layer["max_pool_1"], dict(maps_adv)["max_pool_1"]
    timed("zoom_chosen", figures.zoom_crop, "max_pool_1", 2, pool_clean, pool_adv, out / "zoom_chosen.png",
          "configured filter")
    top = figures.most_changed_filters(pool_clean, pool_adv, 1)[0]
    timed("zoom_most_changed", figures.zoom_crop, "max_pool_1", top, pool_clean, pool_adv,
          out / "zoom_most_changed.png", "filter that changed most")
    timed("perturbation", figures.perturbation_image, case["x"], case["x_adv"], out / "perturbation.png",
          captions=(f"{CLASS_NAMES[int(np.argmax(p_clean))]} {100 * p_clean.max():.1f} %",
                    f"{CLASS_NAMES[int(np.argmax(p_adv))]} {100 * p_adv.max():.1f} %"))
    timed("probability_bars", figures.probability_bars, p_clean, p_adv, CLASS_NAMES, out / "probabilities.png")
    names = ["input"] + [n for n, _ in case["clean"]]
    adv_rel = [figures.relative_change(case["x"], case["x_adv"])] + [
        figures.relative_change(c, a) for (_, c), (_, a) in zip(case["clean"], case["adv"])]
    noise_rel = [figures.relative_change(case["x"], case["x_noise"])] + [
        figures.relative_change(c, a) for (_, c), (_, a) in zip(case["clean"], case["noise"])]
    timed("butterfly", figures.butterfly_plot, names, adv_rel, noise_rel, out / "butterfly.png",
          "The butterfly effect: relative change per layer")
    timed("sweep_gif", figures.epsilon_sweep_gif, case["x"], case["gradient_sign"], case["sweep_epsilons"],
          case["sweep_probabilities"], case["sweep_labels"], case["sweep_flip_index"], CLASS_NAMES,
          out / "sweep.gif", 6)
    prop = [("input", case["x"], case["x_adv"])] + [(n, c, a) for (n, c), (_, a) in zip(maps_clean, maps_adv)]
    timed("propagation_gif", figures.propagation_gif, prop, out / "propagation.gif", 1.5)
    return timings


def model_figure_set(case: dict, out: Path, curves: dict) -> dict[str, tuple[float, dict]]:
    """Render the per-model figures once (not part of the per-image budget)."""
    timings = {}
    history = {"loss": [1.9, 1.1, 0.8, 0.66, 0.6, 0.55, 0.52, 0.5], "accuracy": [0.4, 0.62, 0.72, 0.76, 0.79, 0.8, 0.82, 0.83],
               "val_loss": [1.3, 0.9, 0.78, 0.7, 0.66, 0.63, 0.62, 0.62],
               "val_accuracy": [0.55, 0.68, 0.74, 0.77, 0.78, 0.8, 0.81, 0.81]}
    eps = np.linspace(0, 0.1, 11)
    for key, call, args in (
            ("training_curves", figures.training_curves, (history, out / "training_curves.png")),
            ("training_gif", figures.training_gif, (case["epochs"], case["accuracies"], out / "training.gif")),
            ("first_layer_filters", figures.first_layer_filters, (case["kernel"], out / "first_layer_filters.png")),
            ("robustness", figures.robustness_plot, (eps, np.exp(-eps * 40) * 0.84, 0.84 - eps * 0.5,
                                                     out / "robustness.png")),
            ("butterfly_all", figures.butterfly_all, (curves, out / "butterfly_all.png"))):
        start, cpu = time.perf_counter(), time.process_time()
        record = call(*args)
        timings[key] = (time.perf_counter() - start, time.process_time() - cpu, record)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/figs"))
    args = parser.parse_args()
    budget = 1.0  # seconds for the whole per-image set on 2 cores
    for shape in ((28, 28, 1), (64, 64, 3)):
        case = synthetic_case(*shape, seed=1)
        out = args.out / "x".join(map(str, shape))
        first = image_figure_set(case, out)  # warm-up: imports matplotlib, loads fonts and colormaps
        if shape == (28, 28, 1):
            print(f"first run including imports: {sum(t for t, _, _ in first.values()):.3f} s wall")
        runs = [image_figure_set(case, out) for _ in range(args.repeats)]
        walls = [sum(t for t, _, _ in run.values()) for run in runs]
        cpus = [sum(c for _, c, _ in run.values()) for run in runs]
        print(f"\n{shape[0]}x{shape[1]}x{shape[2]}: full per-image set, median of {args.repeats}: "
              f"wall {statistics.median(walls):.3f} s (min {min(walls):.3f}), "
              f"CPU {statistics.median(cpus):.3f} s (min {min(cpus):.3f}); "
              f"median wall / {budget:.0f} s budget = {statistics.median(walls) / budget:.2f}; "
              f"flip index {case['sweep_flip_index']}")
        print(f"  {'figure':24s} {'wall ms':>8s} {'CPU ms':>8s}")
        for key in runs[0]:
            wall = statistics.median(run[key][0] for run in runs)
            cpu = statistics.median(run[key][1] for run in runs)
            record = runs[0][key][2]
            frames = f", {record['frames']} frames" if record["frames"] else ""
            print(f"  {key:24s} {wall * 1000:8.1f} {cpu * 1000:8.1f}  {record['width']}x{record['height']}, "
                  f"{record['bytes'] / 1000:.0f} KB{frames}")
        names = ["input"] + [n for n, _ in case["clean"]]
        rel = [figures.relative_change(case["x"], case["x_adv"])] + [
            figures.relative_change(c, a) for (_, c), (_, a) in zip(case["clean"], case["adv"])]
        # four scaled copies of this image's curve stand in for several attacked images
        curves = {f"image {i + 1}": (names, np.array(rel) * (0.7 + 0.15 * i)) for i in range(4)}
        model = model_figure_set(case, out, curves)
        print("  per model (once):")
        for key, (wall, cpu, record) in model.items():
            frames = f", {record['frames']} frames" if record["frames"] else ""
            print(f"  {key:24s} {wall * 1000:8.1f} {cpu * 1000:8.1f}  {record['width']}x{record['height']}, "
                  f"{record['bytes'] / 1000:.0f} KB{frames}")


if __name__ == "__main__":
    main()
