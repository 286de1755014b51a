"""Look inside the network: per-layer activations, how much they diverge, sweeps and curves.

Models take float32 images (N, H, W, C) in [0, 1] and return probabilities (N, n_classes);
they are called with ``training=False``. Keras is imported inside the functions that need it.
"""

from __future__ import annotations

import numpy as np

from generator.analysis import attack
from generator.analysis.attack import predict_probabilities
from generator.errors import UserError

INPUT_NAME = "input"


def _probed_layers(model):
    """[(name, layer type, layer or None for the input)]: the input, then every layer in order."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = {layer.name for layer in layers}
    input_name = INPUT_NAME if INPUT_NAME not in names else "model_input"
    return [(input_name, "InputLayer", None)] + [(l.name, type(l).__name__, l) for l in layers]


def _run_layers(model, probed, x_batch):
    """Activations of every probed layer for x_batch, in one forward pass."""
    import keras

    layers = [layer for _, _, layer in probed[1:]]
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None  # a Sequential model never built on an Input
    if inputs is not None and len(inputs) != 1:
        raise UserError(f"model {model.name!r} has {len(inputs)} inputs; only one image input is supported")
    if inputs is not None:
        # A functional view of the model whose outputs are all layer outputs: works for any
        # graph (Sequential or functional) whose layers each have a single output.
        extractor = keras.Model(inputs=inputs[0], outputs=[layer.output for layer in layers])
        outputs = extractor(x_batch, training=False)
    else:
        # A Sequential model that was never built on an Input has no graph to tap: running
        # its layers one after another is the same single pass.
        outputs, hidden = [], x_batch
        for layer in layers:
            hidden = layer(hidden, training=False)
            outputs.append(hidden)
    if len(layers) == 1 and not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [x_batch] + [np.asarray(output) for output in outputs]


def layer_activations(model, x_batch) -> dict[str, np.ndarray]:
    """Activations of the input and of every model layer, in model order, in one forward pass.

    x_batch: float32 (N, H, W, C), e.g. clean, adversarial and noise images stacked.
    Returns {name: array (N, ...)}; the first entry is the input itself under "input".
    """
    x_batch = np.asarray(x_batch, dtype=np.float32)
    probed = _probed_layers(model)
    values = _run_layers(model, probed, x_batch)
    return {name: value for (name, _, _), value in zip(probed, values)}


def layer_divergence(a, b, threshold: float) -> dict:
    """How far activations b (perturbed) are from a (clean); arrays of one shape, no batch axis.

    relative_l2: ||b - a|| / ||a||; if a is all zero, measured against ||b|| instead
        (1.0, or 0.0 when b is zero too).
    cosine: <a, b> / (||a|| ||b||); 1.0 when both are zero, 0.0 when only one is.
    fraction_changed: fraction of units with |b - a| > threshold * max|a|, i.e. changed by more
        than `threshold` of the layer's largest clean activation.
    top_filter: for feature maps (h, w, c), the channel whose change has the largest L2 norm;
        None for vectors, and None when nothing changed.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    change = b - a
    norm_a, norm_b, norm_change = (float(np.linalg.norm(v)) for v in (a, b, change))
    if norm_a > 0:
        relative_l2 = norm_change / norm_a
    else:
        relative_l2 = 1.0 if norm_b > 0 else 0.0
    if norm_a > 0 and norm_b > 0:
        cosine = float(np.clip(np.vdot(a, b) / (norm_a * norm_b), -1.0, 1.0))
    else:
        cosine = 1.0 if norm_a == norm_b else 0.0
    fraction_changed = float(np.mean(np.abs(change) > threshold * np.max(np.abs(a), initial=0.0)))
    top_filter = None
    if a.ndim == 3 and norm_change > 0:
        top_filter = int(np.argmax(np.sqrt(np.sum(change ** 2, axis=(0, 1)))))
    return {"relative_l2": relative_l2, "cosine": cosine, "fraction_changed": fraction_changed,
            "top_filter": top_filter}


def probe_image(model, x, x_adv, x_noise, threshold: float):
    """Activations of one image, its adversarial version and its noise control, compared.

    x, x_adv, x_noise: (H, W, C). One forward pass over the three stacked.
    Returns (layers, arrays): layers is the manifest's list, input first, each
    {"name", "type", "shape" (without batch), "adversarial": divergence, "noise": divergence};
    arrays maps "clean/<name>", "adversarial/<name>", "noise/<name>" to activations without
    the batch axis.
    """
    batch = np.stack([x, x_adv, x_noise]).astype(np.float32)
    probed = _probed_layers(model)
    values = _run_layers(model, probed, batch)
    layers, arrays = [], {}
    for (name, layer_type, _), value in zip(probed, values):
        clean, adversarial, noise = value
        layers.append({"name": name, "type": layer_type, "shape": list(clean.shape),
                       "adversarial": layer_divergence(clean, adversarial, threshold),
                       "noise": layer_divergence(clean, noise, threshold)})
        arrays[f"clean/{name}"] = clean
        arrays[f"adversarial/{name}"] = adversarial
        arrays[f"noise/{name}"] = noise
    return layers, arrays


def epsilon_sweep(model, x, gradient_sign, flip_epsilon, frames: int = 60,
                  epsilon_max: float = 0.3, overshoot: float = 0.25,
                  clip_min: float = 0.0, clip_max: float = 1.0) -> dict:
    """Predictions along x + eps * gradient_sign for eps from 0 to a bit past the flip.

    x, gradient_sign: (H, W, C). flip_epsilon: the found epsilon, included exactly as one
    frame; the sweep ends at (1 + overshoot) * flip_epsilon. None (not fooled): 0 ..
    epsilon_max. frames: at most this many (<= 60 keeps the GIF small).
    Returns the npz arrays: "sweep_epsilons" (K,), "sweep_probabilities" (K, n_classes),
    "sweep_labels" (K,), "sweep_flip_index": the first frame whose label differs from the
    clean one (frame 0, eps = 0), or -1. It can precede the flip_epsilon frame, since the
    boundary lies between the last unchanged grid point and flip_epsilon.
    """
    frames = int(min(max(frames, 2), 60))
    if flip_epsilon is None:
        epsilons = np.linspace(0.0, epsilon_max, frames)
    else:
        spread = np.linspace(0.0, (1.0 + overshoot) * flip_epsilon, frames - 1)
        epsilons = np.unique(np.append(spread, flip_epsilon))
    images = np.clip(np.asarray(x, np.float32)[None]
                     + epsilons.astype(np.float32).reshape(-1, 1, 1, 1)
                     * np.asarray(gradient_sign, np.float32)[None], clip_min, clip_max)
    probabilities = predict_probabilities(model, images)
    labels = probabilities.argmax(axis=1)
    changed = np.flatnonzero(labels != labels[0])
    return {"sweep_epsilons": epsilons, "sweep_probabilities": probabilities,
            "sweep_labels": labels, "sweep_flip_index": int(changed[0]) if changed.size else -1}


def robustness_curve(model, x, y, epsilons, seed: int = 0, batch_size: int = 256,
                     clip_min: float = 0.0, clip_max: float = 1.0) -> dict:
    """Accuracy on a held-out set versus epsilon, for FGSM and for sign noise of the same size.

    x: (N, H, W, C) images; y: (N,) true labels. FGSM here steps away from the true label;
    the noise draws one sign pattern per image from `seed` and scales it by each epsilon.
    Returns the manifest's {"epsilons", "fgsm_accuracy", "noise_accuracy", "samples"}.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    epsilons = [float(e) for e in epsilons]
    if len(x) == 0 or len(x) != len(y):
        raise UserError(f"robustness curve needs matching images and labels, got {len(x)} and {len(y)}")
    signs = np.random.default_rng(seed).integers(0, 2, size=x.shape) * 2 - 1
    noise_directions = signs.astype(np.float32)
    correct = {"fgsm": np.zeros(len(epsilons)), "noise": np.zeros(len(epsilons))}
    for start in range(0, len(x), batch_size):
        batch = slice(start, start + batch_size)
        directions = {"fgsm": attack.gradient_sign(model, x[batch], y[batch]),
                      "noise": noise_directions[batch]}
        for kind, direction in directions.items():
            for i, epsilon in enumerate(epsilons):
                images = np.clip(x[batch] + np.float32(epsilon) * direction, clip_min, clip_max)
                predicted = predict_probabilities(model, images).argmax(axis=1)
                correct[kind][i] += np.sum(predicted == y[batch])
    samples = len(x)
    return {"epsilons": epsilons,
            "fgsm_accuracy": [float(c / samples) for c in correct["fgsm"]],
            "noise_accuracy": [float(c / samples) for c in correct["noise"]],
            "samples": samples}
