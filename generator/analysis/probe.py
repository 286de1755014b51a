"""Look inside the network: per-layer activations, how much they diverge, sweeps and curves.

Models take float32 images (N, H, W, C) in [0, 1] and return probabilities (N, n_classes);
they are called with ``training=False``. A CompiledModel may stand for a Keras model (see
:mod:`generator.analysis.batching`). Keras is imported inside the functions that need it.
"""

from __future__ import annotations

import numpy as np

from generator.analysis import attack
from generator.analysis.attack import predict_probabilities
from generator.analysis.batching import CompiledModel, ModelCall, Routine, compiled_model, run_routine
from generator.errors import UserError

INPUT_NAME = "input"


def _keras(model):
    return model.keras_model if isinstance(model, CompiledModel) else model


def _probed_layers(model):
    """[(name, layer type, layer or None for the input)]: the input, then every layer in order."""
    import keras

    layers = [layer for layer in _keras(model).layers if not isinstance(layer, keras.layers.InputLayer)]
    names = {layer.name for layer in layers}
    input_name = INPUT_NAME if INPUT_NAME not in names else "model_input"
    return [(input_name, "InputLayer", None)] + [(l.name, type(l).__name__, l) for l in layers]


def _layer_outputs(model, x_batch) -> list:
    """The outputs of every layer after the input, for x_batch, in one forward pass (tensors;
    a Keras model only, so that a CompiledModel can trace this function)."""
    import keras

    layers = [layer for _, _, layer in _probed_layers(model)[1:]]
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
    return list(outputs)


def layer_values(model, x_batch) -> list[np.ndarray]:
    """[x_batch] + the activations of every layer (N, ...) for x_batch (N, H, W, C), in one
    forward pass (traced once per input shape)."""
    x_batch = np.asarray(x_batch, dtype=np.float32)
    return [x_batch] + list(compiled_model(model).call_traced(_layer_outputs, x_batch))


def layer_activations(model, x_batch) -> dict[str, np.ndarray]:
    """Activations of the input and of every model layer, in model order, in one forward pass.

    x_batch: float32 (N, H, W, C), e.g. clean, adversarial and noise images stacked.
    Returns {name: array (N, ...)}; the first entry is the input itself under "input".
    """
    x_batch = np.asarray(x_batch, dtype=np.float32)
    probed = _probed_layers(model)
    values = [x_batch] + [np.asarray(value) for value in _layer_outputs(_keras(model), x_batch)]
    return {name: value for (name, _, _), value in zip(probed, values)}


def channel_changes(clean, changed) -> np.ndarray:
    """The L2 norm of the change of each channel: (c,) for feature maps (h, w, c).

    The one definition of "the channel that changed most" on the site: the largest entry,
    ties going to the lower index (np.argmax)."""
    change = np.asarray(changed, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    return np.sqrt(np.sum(change ** 2, axis=(0, 1)))


def channel_order(clean, changed) -> list[int]:
    """Channel indices by decreasing change (channel_changes), ties by index."""
    changes = channel_changes(clean, changed)
    return [int(i) for i in np.lexsort((np.arange(changes.size), -changes))]


def layer_divergence(a, b, threshold: float) -> dict:
    """How far activations b (perturbed) are from a (clean); arrays of one shape, no batch axis.

    relative_l2: ||b - a|| / ||a||; if a is all zero, measured against ||b|| instead
        (1.0, or 0.0 when b is zero too).
    cosine: <a, b> / (||a|| ||b||); 1.0 when both are zero, 0.0 when only one is.
    fraction_changed: fraction of units with |b - a| > threshold * max|a|, i.e. changed by more
        than `threshold` of the layer's largest clean activation.
    top_channel: for feature maps (h, w, c), the channel that changed most (channel_changes);
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
    top_channel = None
    if a.ndim == 3 and norm_change > 0:
        top_channel = int(np.argmax(channel_changes(a, b)))
    return {"relative_l2": relative_l2, "cosine": cosine, "fraction_changed": fraction_changed,
            "top_channel": top_channel}


UNITS = {"Conv2D": "filter", "DepthwiseConv2D": "filter", "SeparableConv2D": "filter"}


def unit_of(layer_type: str) -> str:
    """What one map of a layer is called: a convolution's maps come from its filters; any other
    layer (activation, pooling, the input) has channels."""
    return UNITS.get(layer_type, "channel")


def probe_image(model, x, x_adv, x_noise, threshold: float):
    """Activations of one image, its adversarial version and its noise controls, compared.

    x, x_adv: (H, W, C); x_noise: (K, H, W, C), K draws of random sign noise of the attack's
    size. One forward pass over all of them stacked.
    Returns (layers, arrays): layers is the manifest's list, input first, each
    {"name", "type", "unit", "shape" (without batch), "attack": divergence, "noise": divergence
    averaged over the K draws (top_channel from the first draw), "ratio": attack relative_l2 /
    noise relative_l2 (None when the noise changed nothing), and for feature maps "scale"
    [lo, hi] shared by the clean and adversarial maps, "difference_limit" max |adv - clean|,
    "channel_order" (channels by decreasing change)}; arrays maps "clean/<name>",
    "adversarial/<name>", "noise/<name>" (first draw) to activations without the batch axis.
    """
    return run_routine(model, probe_steps(model, x, x_adv, x_noise, threshold))


def probe_steps(model, x, x_adv, x_noise, threshold: float) -> Routine:
    """Routine of `probe_image` (same arguments and result)."""
    x_noise = np.asarray(x_noise, dtype=np.float32)
    batch = np.concatenate([np.stack([x, x_adv]).astype(np.float32), x_noise])
    probed = _probed_layers(model)
    values = yield ModelCall(batch, layer_values)
    layers, arrays = [], {}
    for (name, layer_type, _), value in zip(probed, values):
        clean, adversarial, noises = value[0], value[1], value[2:]
        attack = layer_divergence(clean, adversarial, threshold)
        draws = [layer_divergence(clean, noise, threshold) for noise in noises]
        noise = {key: float(np.mean([d[key] for d in draws])) for key in ("relative_l2", "cosine", "fraction_changed")}
        noise["top_channel"] = draws[0]["top_channel"]
        record = {"name": name, "type": layer_type, "unit": unit_of(layer_type), "shape": list(clean.shape),
                  "attack": attack, "noise": noise,
                  "ratio": attack["relative_l2"] / noise["relative_l2"] if noise["relative_l2"] > 0 else None}
        if clean.ndim == 3:
            record["scale"] = [float(min(clean.min(), adversarial.min())), float(max(clean.max(), adversarial.max()))]
            record["difference_limit"] = float(np.max(np.abs(adversarial - clean)))
            record["channel_order"] = channel_order(clean, adversarial)
        layers.append(record)
        arrays[f"clean/{name}"] = clean
        arrays[f"adversarial/{name}"] = adversarial
        arrays[f"noise/{name}"] = noises[0]
    return layers, arrays


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
