"""Export a pipeline model as a TensorFlow.js *layers* model, so the site's pages can run it.

The format is the one ``tf.loadLayersModel`` reads and :func:`generator.inputs.model_import.
load_tfjs_layers_model` imports: ``model.json`` holds a Keras-2-style topology (snake_case layer
configs, as Keras 2.x saved them) plus a ``weightsManifest``; one binary shard holds every weight
as float32 little-endian, in manifest order. It is written here directly: the ``tensorflowjs``
package pins old TensorFlow versions.

Only layers whose inference both Keras and TensorFlow.js compute the same way are exported, with
only the options that matter at inference (no initialisers or regularisers). Anything else is
refused with a :class:`UserError` naming the layer, so a site never ships a model the browser
would run differently from the build.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from generator import __version__
from generator.errors import UserError

MODEL_FILE = "model.json"
SHARD_FILE = "group1-shard1of1.bin"
# The Keras version whose topology format TensorFlow.js reads (it converts snake_case keys).
KERAS_FORMAT_VERSION = "2.15.0"
# Activation names both sides know; Keras calls swish "silu" too.
ACTIVATIONS = {"linear": "linear", "relu": "relu", "relu6": "relu6", "elu": "elu", "selu": "selu",
               "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax", "softplus": "softplus",
               "softsign": "softsign", "swish": "swish", "silu": "swish"}
# Forward passes of the export and the original agree to this (the same operations in float32).
FORWARD_TOLERANCE = 1e-5


def _activation(layer) -> str:
    function = getattr(layer, "activation", None)
    name = getattr(function, "__name__", str(function))
    if name not in ACTIVATIONS:
        raise UserError(f"model export: layer '{layer.name}' uses activation '{name}', which the browser "
                        f"runtime does not compute the same way (supported: {', '.join(sorted(ACTIVATIONS))})")
    return ACTIVATIONS[name]


def _pair(value) -> list[int]:
    return [int(v) for v in (value if isinstance(value, (list, tuple)) else (value, value))]


def _channels_last(layer, config: dict) -> None:
    if config.get("data_format", "channels_last") != "channels_last":
        raise UserError(f"model export: layer '{layer.name}' uses data_format {config['data_format']!r}; "
                        "only channels_last is exported")


def _conv2d(layer, config: dict) -> dict:
    _channels_last(layer, config)
    if config.get("groups", 1) != 1:
        raise UserError(f"model export: layer '{layer.name}' is a grouped convolution (groups={config['groups']}); "
                        "not supported by the browser runtime")
    return {"filters": int(config["filters"]), "kernel_size": _pair(config["kernel_size"]),
            "strides": _pair(config["strides"]), "padding": config["padding"], "data_format": "channels_last",
            "dilation_rate": _pair(config["dilation_rate"]), "activation": _activation(layer),
            "use_bias": bool(config["use_bias"])}


def _dense(layer, config: dict) -> dict:
    return {"units": int(config["units"]), "activation": _activation(layer), "use_bias": bool(config["use_bias"])}


def _activation_layer(layer, config: dict) -> dict:
    return {"activation": _activation(layer)}


def _relu(layer, config: dict) -> dict:
    if float(config.get("negative_slope") or 0.0) != 0.0 or float(config.get("threshold") or 0.0) != 0.0:
        raise UserError(f"model export: layer '{layer.name}' is a ReLU with negative_slope or threshold; "
                        "the browser runtime supports only max_value")
    max_value = config.get("max_value")
    return {"max_value": None if max_value is None else float(max_value)}


def _pooling(layer, config: dict) -> dict:
    _channels_last(layer, config)
    return {"pool_size": _pair(config["pool_size"]), "strides": _pair(config["strides"] or config["pool_size"]),
            "padding": config["padding"], "data_format": "channels_last"}


def _global_pooling(layer, config: dict) -> dict:
    _channels_last(layer, config)
    if config.get("keepdims"):
        raise UserError(f"model export: layer '{layer.name}' keeps dimensions (keepdims=True); not supported "
                        "by the browser runtime")
    return {"data_format": "channels_last"}


def _flatten(layer, config: dict) -> dict:
    _channels_last(layer, config)
    return {"data_format": "channels_last"}


def _scalar(layer, config: dict, key: str) -> float:
    value = config.get(key)
    if isinstance(value, (list, tuple)) or not isinstance(value, (int, float)):
        raise UserError(f"model export: layer '{layer.name}' has a {key} of {value!r}; only one number is exported")
    return float(value)


def _rescaling(layer, config: dict) -> dict:
    return {"scale": _scalar(layer, config, "scale"), "offset": _scalar(layer, config, "offset")}


def _softmax(layer, config: dict) -> dict:
    axis = config.get("axis", -1)
    if axis not in (-1, [-1]):
        raise UserError(f"model export: layer '{layer.name}' is a softmax over axis {axis!r}; only the last axis "
                        "is exported")
    return {"axis": -1}


def _dropout(layer, config: dict) -> dict:
    # Inference ignores dropout; the rate is kept so the topology reads like the original.
    return {"rate": float(config["rate"])}


def _batch_normalization(layer, config: dict) -> dict:
    axis = config["axis"]
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    rank = len(layer.input.shape)
    if axis not in (-1, rank - 1):
        raise UserError(f"model export: layer '{layer.name}' normalises axis {axis!r}; only the channel axis "
                        "(the last) is exported")
    if config.get("renorm") or config.get("synchronized"):
        raise UserError(f"model export: layer '{layer.name}' uses renorm or synchronized batch normalisation; "
                        "not supported")
    return {"axis": -1, "momentum": float(config["momentum"]), "epsilon": float(config["epsilon"]),
            "center": bool(config["center"]), "scale": bool(config["scale"])}


# Keras 3 layer class -> its Keras 2 config (inference options only). InputLayer is written apart.
LAYER_WRITERS: dict[str, Callable[[Any, dict], dict]] = {
    "Conv2D": _conv2d,
    "Dense": _dense,
    "Activation": _activation_layer,
    "ReLU": _relu,
    "MaxPooling2D": _pooling,
    "AveragePooling2D": _pooling,
    "GlobalAveragePooling2D": _global_pooling,
    "GlobalMaxPooling2D": _global_pooling,
    "Flatten": _flatten,
    "Rescaling": _rescaling,
    "Softmax": _softmax,
    "Dropout": _dropout,
    "BatchNormalization": _batch_normalization,
}
SUPPORTED_LAYERS = ("InputLayer", *sorted(LAYER_WRITERS))


def _layer_config(layer) -> dict:
    """{"class_name", "config"} of one non-input layer, or UserError naming it."""
    kind = type(layer).__name__
    if kind not in LAYER_WRITERS:
        raise UserError(f"model export: layer '{layer.name}' of type {kind} cannot be exported to the browser "
                        f"(supported: {', '.join(SUPPORTED_LAYERS)})")
    options = LAYER_WRITERS[kind](layer, layer.get_config())
    return {"class_name": kind, "config": {"name": layer.name, "trainable": True, "dtype": "float32", **options}}


def _input_shape(model) -> list[int | None]:
    shape = list(model.inputs[0].shape)
    return [None] + [int(d) for d in shape[1:]]


def _sequential_topology(model) -> dict:
    layers = []
    for layer in model.layers:
        entry = _layer_config(layer)
        if not layers:
            entry["config"]["batch_input_shape"] = _input_shape(model)
        layers.append(entry)
    return {"class_name": "Sequential", "config": {"name": model.name, "layers": layers}}


def _model_nodes(model, layer) -> list:
    """The calls of `layer` that belong to `model`'s graph (a layer may also be used elsewhere)."""
    return [node for index, node in enumerate(layer._inbound_nodes)
            if f"{id(layer)}_ib-{index}" in model._nodes]


def _functional_topology(model) -> dict:
    layers = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            layers.append({"class_name": "InputLayer", "name": layer.name, "inbound_nodes": [],
                           "config": {"name": layer.name, "batch_input_shape": [None] + [int(d) for d in
                                                                                           layer.batch_shape[1:]],
                                      "dtype": "float32", "sparse": False}})
            continue
        entry = _layer_config(layer)
        nodes = _model_nodes(model, layer)
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
            raise UserError(f"model export: layer '{layer.name}' is called {len(nodes)} times or on several inputs; "
                            "only chains of single-input layers are exported")
        history = nodes[0].input_tensors[0]._keras_history
        if history.tensor_index != 0:
            raise UserError(f"model export: layer '{layer.name}' reads a second output of '{history.operation.name}'")
        entry["name"] = layer.name
        entry["inbound_nodes"] = [[[history.operation.name, 0, 0, {}]]]
        layers.append(entry)

    def endpoints(tensors) -> list:
        return [[tensor._keras_history.operation.name, 0, 0] for tensor in tensors]

    return {"class_name": "Model", "config": {"name": model.name, "layers": layers,
                                              "input_layers": endpoints(model.inputs),
                                              "output_layers": endpoints(model.outputs)}}


def _weights(model) -> list[tuple[str, np.ndarray]]:
    """(manifest name '<layer>/<variable>', float32 array) for every variable, in layer order."""
    import keras

    named = []
    for layer in model.layers:
        for variable in layer.weights:
            value = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
            named.append((f"{layer.name}/{variable.name}", value))
    return named


def export_tfjs_layers(model, out_dir: str | Path) -> dict:
    """Write ``out_dir/model.json`` and one weight shard in TensorFlow.js layers format.

    model: a Keras model taking (N, H, W, C) float32 images, built from the layers in
    SUPPORTED_LAYERS (Sequential, or functional with a chain of single-input layers).
    Returns {"files": [names], "bytes": total size, "input_shape": [H, W, C], "parameters": n,
    "layers": [layer names]}. Raises UserError naming the first layer that cannot be exported.
    """
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"model export: model '{model.name}' has {len(model.inputs)} inputs and "
                        f"{len(model.outputs)} outputs; one of each is exported")
    if isinstance(model, keras.Sequential):
        topology = _sequential_topology(model)
    else:
        topology = _functional_topology(model)
    weights = _weights(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shard = b"".join(value.astype("<f4").tobytes() for _, value in weights)
    document = {
        "format": "layers-model",
        "generatedBy": f"butterfly {__version__}",
        "convertedBy": None,
        "modelTopology": {"keras_version": KERAS_FORMAT_VERSION, "backend": "tensorflow", "model_config": topology},
        "weightsManifest": [{"paths": [SHARD_FILE],
                             "weights": [{"name": name, "shape": list(value.shape), "dtype": "float32"}
                                         for name, value in weights]}],
    }
    text = json.dumps(document, separators=(",", ":"))
    (out_dir / SHARD_FILE).write_bytes(shard)
    (out_dir / MODEL_FILE).write_text(text, encoding="utf-8")
    layer_names = [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
    return {"files": [MODEL_FILE, SHARD_FILE], "bytes": len(shard) + len(text.encode("utf-8")),
            "input_shape": [int(d) for d in model.inputs[0].shape[1:]],
            "parameters": int(sum(value.size for _, value in weights)), "layers": layer_names}


def _layer_outputs(model, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(layer name, activations) for every non-input layer of model on x (N, H, W, C).

    A layer reused from another model (as `fit_to_pipeline` does) has several calls; the ones
    of this model's graph are tapped, never `layer.output`, which is the layer's first call.
    """
    import keras

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if isinstance(model, keras.Sequential):
        outputs, hidden = [], x
        for layer in layers:
            hidden = layer(hidden, training=False)
            outputs.append(hidden)
    else:
        tapped = [_model_nodes(model, layer)[0].output_tensors[0] for layer in layers]
        outputs = keras.Model(model.inputs[0], tapped)(x, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [(layer.name, np.asarray(output)) for layer, output in zip(layers, outputs)]


def verify_tfjs_export(model, out_dir: str | Path, samples: int = 2, seed: int = 0) -> None:
    """Load ``out_dir/model.json`` back with the project's importer and compare it with ``model``.

    Every weight must be identical, and every layer's output on `samples` random images in
    [0, 1] (seeded) must agree within FORWARD_TOLERANCE. Raises UserError naming the first
    layer that differs.
    """
    import keras

    from generator.inputs.model_import import load_tfjs_layers_model

    loaded = load_tfjs_layers_model(Path(out_dir) / MODEL_FILE)
    originals = {layer.name: layer for layer in model.layers if type(layer).__name__ != "InputLayer"}
    copies = {layer.name: layer for layer in loaded.layers if type(layer).__name__ != "InputLayer"}
    if list(originals) != list(copies):
        raise UserError(f"model export in {out_dir}: layers {list(copies)} were read back, expected {list(originals)}")
    for name, layer in originals.items():
        copied = {variable.name: variable for variable in copies[name].weights}
        for variable in layer.weights:
            if variable.name not in copied:
                raise UserError(f"model export in {out_dir}: layer '{name}' lost its weight '{variable.name}'")
            if not np.array_equal(keras.ops.convert_to_numpy(variable),
                                  keras.ops.convert_to_numpy(copied[variable.name])):
                raise UserError(f"model export in {out_dir}: layer '{name}' weight '{variable.name}' differs")
    shape = [samples] + [int(d) for d in model.inputs[0].shape[1:]]
    x = np.random.default_rng(seed).uniform(0.0, 1.0, shape).astype(np.float32)
    for (name, expected), (_, got) in zip(_layer_outputs(model, x), _layer_outputs(loaded, x)):
        if expected.shape != got.shape or not np.allclose(expected, got, rtol=0, atol=FORWARD_TOLERANCE):
            difference = float(np.max(np.abs(expected - got))) if expected.shape == got.shape else float("inf")
            raise UserError(f"model export in {out_dir}: layer '{name}' computes differently after the round trip "
                            f"(largest difference {difference:.3g})")
