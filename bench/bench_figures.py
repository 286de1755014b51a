"""Time the per-image figure set in each language, beside the English-only figure code of HEAD.

Run: .venv/bin/python bench/bench_figures.py [--repeats 5] [--out /tmp/figs]

The arrays come from a Tiny VGG forward pass written in NumPy (random He-initialised weights,
a drawn test image, a random sign perturbation), so shapes and value statistics match the real
pipeline without importing TensorFlow. Each image's set is now drawn twice (English and Chinese);
the old code (`git archive HEAD generator`, run in a child process with its own PYTHONPATH)
drew it once, in English. Printed: the median time per image and language, and the ratio of
the two-language set to the old one. Target: both languages together in <= 2 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
CLASS_NAMES = {"en": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
               "zh": ["T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴"]}
SHAPES = ((28, 28, 1), (64, 64, 3))


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
    feature_maps = [n for n, a in clean if np.ndim(a) == 3]
    layers_clean, layers_adv, layers_noise = dict(clean), dict(adv), dict(noise)
    conv_change = np.abs(layers_adv["conv_2_1"] - layers_clean["conv_2_1"]).sum(axis=(0, 1))
    return {"x": x, "x_adv": x_adv, "x_noise": x_noise, "gradient_sign": gradient_sign, "clean": clean, "adv": adv,
            "noise": noise, "sweep_epsilons": epsilons, "sweep_probabilities": np.array(sweep),
            "sweep_images": np.clip(x[None] + epsilons[:, None, None, None] * gradient_sign[None], 0, 1
                                    ).astype(np.float32),
            "sweep_labels": labels, "sweep_flip_index": flip,
            # the article's search (0.01, +0.0007, ...) stands in as a frame a little after the flip
            "sweep_answer_index": min(flip + 2, len(epsilons) - 1) if flip >= 0 else -1,
            "amplification": 0.5 / max(float(np.abs(x_adv - x).max()), 1e-6),
            "butterfly_names": ["input"] + feature_maps,
            "attack_rel": [_relative_change(x, x_adv)] + [_relative_change(layers_clean[n], layers_adv[n])
                                                          for n in feature_maps],
            "noise_rel": [_relative_change(x, x_noise)] + [_relative_change(layers_clean[n], layers_noise[n])
                                                           for n in feature_maps],
            "output_rel": (_relative_change(clean[-1][1], adv[-1][1]), _relative_change(clean[-1][1], noise[-1][1])),
            "top_channel": int(np.argmax(conv_change)),
            "kernel": weights[0][0][0], "epochs": epochs,
            "accuracies": [0.1, 0.55, 0.68, 0.74, 0.78, 0.8, 0.82, 0.83, 0.84]}


# --- the figure sets ----------------------------------------------------------------------------

def _relative_change(clean, changed) -> float:
    clean = np.asarray(clean, np.float64)
    norm = float(np.sqrt(np.square(clean).sum()))
    delta = float(np.sqrt(np.square(np.asarray(changed, np.float64) - clean).sum()))
    return delta / norm if norm else 0.0


def _timed(timings: dict, key: str, call, *args, **kwargs) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    record = call(*args, **kwargs)
    timings[key] = (time.perf_counter() - start, time.process_time() - cpu, record)


def image_figure_set(figures, case: dict, out: Path, lang: str) -> dict[str, tuple[float, float, dict]]:
    """Render the per-image set the pipeline makes in one language; {key: (wall s, CPU s, record)}."""
    words = figures.words_for(lang)
    names = CLASS_NAMES[words.lang]
    timings: dict = {}
    maps_clean = [(n, a) for n, a in case["clean"] if np.ndim(a) == 3]
    maps_adv = [(n, a) for n, a in case["adv"] if np.ndim(a) == 3]
    units = {n: "filter" if n.startswith("conv") else "channel" for n, _ in maps_clean}
    scales = figures.shared_scales(maps_clean, maps_adv)
    p_clean, p_adv = case["clean"][-1][1], case["adv"][-1][1]
    versions = (("clean", maps_clean, p_clean, case["x"]), ("adversarial", maps_adv, p_adv, case["x_adv"]))
    for kind, maps, p, x in versions:
        _timed(timings, f"overview_{kind}", figures.network_overview, maps, p, names, scales,
               out / f"overview_{kind}.png", words.t(f"overview_title_{kind}"), image=x, units=units, words=words)
    for (name, clean), (_, adv) in zip(maps_clean, maps_adv):
        _timed(timings, f"grid_{name}", figures.comparison_grid, name, clean, adv, out / f"grid_{name}.png",
               channels=list(range(clean.shape[2])), selection="all", unit=units[name], words=words)
    layer, adv_layer = dict(maps_clean), dict(maps_adv)
    _timed(timings, "zoom_chosen", figures.zoom_crop, "max_pool_1", 2, layer["max_pool_1"], adv_layer["max_pool_1"],
           out / "zoom_chosen.png", unit="channel", role="chosen", words=words)
    _timed(timings, "zoom_most_changed", figures.zoom_crop, "conv_2_1", case["top_channel"], layer["conv_2_1"],
           adv_layer["conv_2_1"], out / "zoom_most_changed.png", unit="filter", role="most_changed", words=words)
    captions = (f"{names[int(np.argmax(p_clean))]} {100 * p_clean.max():.1f} %",
                f"{names[int(np.argmax(p_adv))]} {100 * p_adv.max():.1f} %")
    _timed(timings, "perturbation", figures.perturbation_image, case["x"], case["x_adv"], out / "perturbation.png",
           amplification=case["amplification"], captions=captions, words=words)
    _timed(timings, "probability_bars", figures.probability_bars, p_clean, p_adv, names, out / "probabilities.png",
           words=words)
    _timed(timings, "butterfly", figures.butterfly_plot, case["butterfly_names"], case["attack_rel"],
           case["noise_rel"], out / "butterfly.png", words.t("butterfly_title", image="bench"),
           output=("output", *case["output_rel"]), words=words)
    _timed(timings, "sweep_gif", figures.epsilon_sweep_gif, case["sweep_images"], case["x"], case["sweep_epsilons"],
           case["sweep_probabilities"], case["sweep_labels"], out / "sweep.gif", flip_index=case["sweep_flip_index"],
           answer_index=case["sweep_answer_index"], amplification=case["amplification"], class_names=names, fps=6,
           epsilon_start=0.01, epsilon_step=0.0007, words=words)
    prop = [("input", case["x"], case["x_adv"], 0, "channel", case["attack_rel"][0])] + [
        (n, c, a, int(np.argmax(np.abs(a - c).sum(axis=(0, 1)))), units[n], rel)
        for ((n, c), (_, a)), rel in zip(zip(maps_clean, maps_adv), case["attack_rel"][1:])]
    _timed(timings, "propagation_gif", figures.propagation_gif, prop, out / "propagation.gif", fps=1.5,
           role="most_changed", words=words)
    return timings


def old_image_figure_set(figures, case: dict, out: Path) -> dict[str, tuple[float, float, dict]]:
    """The same set with the English-only signatures of HEAD (the code this one replaces)."""
    timings: dict = {}
    names = CLASS_NAMES["en"]
    maps_clean = [(n, a) for n, a in case["clean"] if np.ndim(a) == 3]
    maps_adv = [(n, a) for n, a in case["adv"] if np.ndim(a) == 3]
    scales = figures.shared_scales(maps_clean, maps_adv)
    chosen = figures.select_filters(maps_clean, maps_adv, 10)
    p_clean, p_adv = case["clean"][-1][1], case["adv"][-1][1]
    versions = (("clean", maps_clean, p_clean, case["x"]), ("adversarial", maps_adv, p_adv, case["x_adv"]))
    for kind, maps, p, x in versions:
        _timed(timings, f"overview_{kind}", figures.network_overview, maps, p, names, scales,
               out / f"overview_{kind}.png", f"Inside the network: the {kind} image", image=x, filter_indices=chosen)
    for (name, clean), (_, adv) in zip(maps_clean, maps_adv):
        _timed(timings, f"grid_{name}", figures.comparison_grid, name, clean, adv, out / f"grid_{name}.png")
    layer, adv_layer = dict(maps_clean), dict(maps_adv)
    _timed(timings, "zoom_chosen", figures.zoom_crop, "max_pool_1", 2, layer["max_pool_1"], adv_layer["max_pool_1"],
           out / "zoom_chosen.png", "configured filter")
    _timed(timings, "zoom_most_changed", figures.zoom_crop, "conv_2_1", case["top_channel"], layer["conv_2_1"],
           adv_layer["conv_2_1"], out / "zoom_most_changed.png", "filter that changed most")
    captions = (f"{names[int(np.argmax(p_clean))]} {100 * p_clean.max():.1f} %",
                f"{names[int(np.argmax(p_adv))]} {100 * p_adv.max():.1f} %")
    _timed(timings, "perturbation", figures.perturbation_image, case["x"], case["x_adv"], out / "perturbation.png",
           captions=captions)
    _timed(timings, "probability_bars", figures.probability_bars, p_clean, p_adv, names, out / "probabilities.png")
    _timed(timings, "butterfly", figures.butterfly_plot, case["butterfly_names"] + ["output"],
           case["attack_rel"] + [case["output_rel"][0]], case["noise_rel"] + [case["output_rel"][1]],
           out / "butterfly.png", "The butterfly effect: relative change per layer")
    _timed(timings, "sweep_gif", figures.epsilon_sweep_gif, case["x"], case["gradient_sign"], case["sweep_epsilons"],
           case["sweep_probabilities"], case["sweep_labels"], case["sweep_flip_index"], names, out / "sweep.gif", 6)
    prop = [("input", case["x"], case["x_adv"])] + [(n, c, a) for (n, c), (_, a) in zip(maps_clean, maps_adv)]
    _timed(timings, "propagation_gif", figures.propagation_gif, prop, out / "propagation.gif", 1.5)
    return timings


def model_figure_set(figures, case: dict, out: Path, lang: str) -> dict[str, tuple[float, float, dict]]:
    """Render the per-model and per-experiment figures once (not part of the per-image budget)."""
    words = figures.words_for(lang)
    timings: dict = {}
    history = {"loss": [1.9, 1.1, 0.8, 0.66, 0.6, 0.55, 0.52, 0.5],
               "accuracy": [0.4, 0.62, 0.72, 0.76, 0.79, 0.8, 0.82, 0.83],
               "val_loss": [1.3, 0.9, 0.78, 0.7, 0.66, 0.63, 0.62, 0.62],
               "val_accuracy": [0.55, 0.68, 0.74, 0.77, 0.78, 0.8, 0.81, 0.81]}
    eps = np.linspace(0, 0.1, 11)
    ratios = np.array(case["attack_rel"]) / np.array(case["noise_rel"])
    curves = {f"image {i + 1}": (case["butterfly_names"], ratios * (0.7 + 0.15 * i)) for i in range(4)}
    strip = {"Tiny VGG": [(f"image {i}", 0.01 + 0.003 * i) for i in range(6)] + [("image 7", None)],
             "CNN Explainer": [(f"photo {i}", 0.01 + 0.0007 * i) for i in range(12)]}
    _timed(timings, "training_curves", figures.training_curves, history, out / "training_curves.png", words=words)
    _timed(timings, "training_gif", figures.training_gif, case["epochs"], case["accuracies"], out / "training.gif",
           words=words)
    _timed(timings, "first_layer_filters", figures.first_layer_filters, case["kernel"],
           out / "first_layer_filters.png", words=words)
    _timed(timings, "robustness", figures.robustness_plot, eps, np.exp(-eps * 40) * 0.84, 0.84 - eps * 0.5,
           out / "robustness.png", samples=500, test_size=1000, words=words)
    _timed(timings, "ratio_curves", figures.ratio_curves, curves, out / "ratios.png", "Tiny VGG", words=words)
    _timed(timings, "epsilon_strip", figures.epsilon_strip, strip, out / "epsilons.png", epsilon_max=0.3, words=words)
    return timings


# --- measuring -----------------------------------------------------------------------------------

def _medians(runs: list[dict]) -> dict:
    """{"total": (median wall, median CPU), key: (median wall, median CPU, size text)}."""
    walls = [sum(t for t, _, _ in run.values()) for run in runs]
    cpus = [sum(c for _, c, _ in run.values()) for run in runs]
    result = {"total": (statistics.median(walls), statistics.median(cpus))}
    for key, (_, _, record) in runs[0].items():
        frames = f", {record['frames']} frames" if record["frames"] else ""
        result[key] = (statistics.median(run[key][0] for run in runs), statistics.median(run[key][1] for run in runs),
                       f"{record['width']}x{record['height']}, {record['bytes'] / 1000:.0f} KB{frames}")
    return result


def measure_old(repeats: int, out: Path) -> dict:
    """Median per-image times of HEAD's English-only figure code, run in a child process on a copy
    of HEAD's package: {shape text: medians}, or {} when there is no git history to compare with."""
    with tempfile.TemporaryDirectory() as old_tree:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD", "generator"], capture_output=True)
        if archive.returncode != 0:
            return {}
        subprocess.run(["tar", "-x", "-C", old_tree], input=archive.stdout, check=True)
        result = subprocess.run([sys.executable, __file__, "--old-tree", old_tree, "--repeats", str(repeats),
                                 "--out", str(out)], capture_output=True, text=True)
        if result.returncode != 0:
            print(f"(the old code could not be measured: {result.stderr.strip().splitlines()[-1:]})")
            return {}
        return json.loads(result.stdout.strip().splitlines()[-1])


def run_old(old_tree: str, repeats: int, out: Path) -> None:
    """In the child process: time HEAD's figure code and print the medians as one JSON line."""
    sys.path.insert(0, old_tree)
    from generator import figures  # the old package, found first

    results = {}
    for shape in SHAPES:
        case = synthetic_case(*shape, seed=1)
        folder = out / "old" / "x".join(map(str, shape))
        old_image_figure_set(figures, case, folder)  # warm-up
        results["x".join(map(str, shape))] = _medians([old_image_figure_set(figures, case, folder)
                                                       for _ in range(repeats)])
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/figs"))
    parser.add_argument("--old-tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.old_tree:
        run_old(args.old_tree, args.repeats, args.out)
        return
    sys.path.insert(0, str(REPO))
    from generator import figures

    budget = 2.0  # seconds for one image's set in both languages on 2 cores
    start = time.perf_counter()
    old = measure_old(args.repeats, args.out)
    print(f"old code measured in {time.perf_counter() - start:.1f} s")
    for shape in SHAPES:
        label = "x".join(map(str, shape))
        case = synthetic_case(*shape, seed=1)
        for lang in ("en", "zh"):  # warm-up: imports, fonts, colormaps
            image_figure_set(figures, case, args.out / label / lang, lang)
        runs = {"en": [], "zh": []}
        for _ in range(args.repeats):
            # as in a build: each image's arrays are new, its English set is drawn, then its Chinese
            # one, which reuses the language-independent panels of the English one
            figures.common.clear_shared_panels()
            for lang in ("en", "zh"):
                runs[lang].append(image_figure_set(figures, case, args.out / label / lang, lang))
        medians = {lang: _medians(runs[lang]) for lang in runs}
        both = medians["en"]["total"][0] + medians["zh"]["total"][0]
        print(f"\n{label}: per image, median of {args.repeats} (flip frame {case['sweep_flip_index']})")
        for lang in ("en", "zh"):
            wall, cpu = medians[lang]["total"]
            print(f"  {lang}: wall {wall:.3f} s, CPU {cpu:.3f} s")
        if label in old:
            print(f"  old, English only: wall {old[label]['total'][0]:.3f} s, CPU {old[label]['total'][1]:.3f} s")
            for what, i in (("wall", 0), ("CPU", 1)):  # CPU time is steadier on a shared machine
                ratio = {lang: medians[lang]["total"][i] / old[label]["total"][i] for lang in ("en", "zh")}
                print(f"  ratios ({what}): en / old {ratio['en']:.2f}, zh / old {ratio['zh']:.2f}, "
                      f"(en + zh) / old {ratio['en'] + ratio['zh']:.2f}")
        print(f"  en + zh: {both:.3f} s wall = {both / budget:.2f} of the {budget:.0f} s budget")
        print(f"  {'figure':22s} {'en ms':>8s} {'zh ms':>8s} {'old ms':>8s}  zh size")
        for key in medians["en"]:
            if key == "total":
                continue
            old_ms = f"{old[label][key][0] * 1000:8.1f}" if label in old and key in old[label] else f"{'':8s}"
            print(f"  {key:22s} {medians['en'][key][0] * 1000:8.1f} {medians['zh'][key][0] * 1000:8.1f} {old_ms}  "
                  f"{medians['zh'][key][2]}")
        print("  per model or experiment (once per language):")
        for lang in ("en", "zh"):
            model = model_figure_set(figures, case, args.out / label / lang, lang)
            print(f"  {lang}: " + ", ".join(f"{key} {wall * 1000:.0f} ms" for key, (wall, _, _) in model.items()))


if __name__ == "__main__":
    main()
