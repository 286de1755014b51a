"""Import a model trained elsewhere: a ``.keras`` file, a legacy ``.h5`` file, or a TensorFlow.js
*layers* model (``model.json`` plus binary weight shards, as CNN Explainer publishes its Tiny VGG).

Safe loading: the file is first read as data (:mod:`generator.inputs.model_files`): the model
config of a ``.keras`` or ``.h5`` file has every layer checked, so a ``Lambda`` layer, a custom
layer class or a Python function as an option is refused with a line naming the layer and its
class; the file then goes through ``keras.saving.load_model`` in safe mode, with no custom
objects registered. TensorFlow.js models are rebuilt here from an allow-list of standard Keras
layers (convolutions, pooling, dense, normalisation, activations, merges); their JSON is read as
data, never deserialized into arbitrary objects, and the weight shards are checked against the
manifest's sizes and shapes before any value is used.

The pipeline feeds every model float32 NHWC pixels in [0, 1] and expects softmax probabilities
back. :func:`load_model` makes an imported model fit that contract: a model that expects another
input range gets a ``Rescaling`` layer named ``input_scaling`` in front, and a model whose last
layer is linear (logits) gets a ``Softmax`` layer named ``probabilities`` at the end. Both
appear as ordinary layers on the site.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from generator.errors import UserError, quote_value, shorten
from generator.inputs.model_files import (bare, check_model_file, check_saved_layers, first_line, model_label, quoted,
                                          read_h5_model_config, read_keras_archive_config, read_tfjs_document,
                                          read_weight_shards)
from generator.inputs.paths import shown_path


# Keras 2 layer class -> (Keras 3 class in keras.layers, accepted config keys, renamed keys).
_CONV_KEYS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation",
              "use_bias", "groups")
_POOL_KEYS = ("pool_size", "strides", "padding", "data_format")
LAYER_SPECS: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "InputLayer": ("InputLayer", (), {}),
    "Conv2D": ("Conv2D", _CONV_KEYS, {}),
    "DepthwiseConv2D": ("DepthwiseConv2D", ("kernel_size", "strides", "padding", "depth_multiplier", "data_format",
                                            "dilation_rate", "activation", "use_bias"), {}),
    "SeparableConv2D": ("SeparableConv2D", ("filters", "kernel_size", "strides", "padding", "data_format",
                                            "dilation_rate", "depth_multiplier", "activation", "use_bias"), {}),
    "Dense": ("Dense", ("units", "activation", "use_bias"), {}),
    "Activation": ("Activation", ("activation",), {}),
    "ReLU": ("ReLU", ("max_value", "negative_slope", "threshold"), {}),
    "LeakyReLU": ("LeakyReLU", ("alpha", "negative_slope"), {"alpha": "negative_slope"}),
    "ELU": ("ELU", ("alpha",), {}),
    "Softmax": ("Softmax", ("axis",), {}),
    "MaxPooling2D": ("MaxPooling2D", _POOL_KEYS, {}),
    "AveragePooling2D": ("AveragePooling2D", _POOL_KEYS, {}),
    "GlobalAveragePooling2D": ("GlobalAveragePooling2D", ("data_format", "keepdims"), {}),
    "GlobalMaxPooling2D": ("GlobalMaxPooling2D", ("data_format", "keepdims"), {}),
    "Flatten": ("Flatten", ("data_format",), {}),
    "Rescaling": ("Rescaling", ("scale", "offset"), {}),
    "Reshape": ("Reshape", ("target_shape",), {}),
    "Dropout": ("Dropout", ("rate",), {}),
    "SpatialDropout2D": ("SpatialDropout2D", ("rate", "data_format"), {}),
    "BatchNormalization": ("BatchNormalization", ("axis", "momentum", "epsilon", "center", "scale"), {}),
    "ZeroPadding2D": ("ZeroPadding2D", ("padding", "data_format"), {}),
    "Add": ("Add", (), {}),
    "Average": ("Average", (), {}),
    "Maximum": ("Maximum", (), {}),
    "Multiply": ("Multiply", (), {}),
    "Concatenate": ("Concatenate", ("axis",), {}),
}
_MERGE_LAYERS = frozenset({"Add", "Average", "Maximum", "Multiply", "Concatenate"})
# Config keys with no effect on inference (initialisers, regularisers, training-only details).
_IGNORED_KEYS = frozenset({
    "name", "trainable", "dtype", "batch_input_shape", "batch_size", "batch_shape", "fused", "seed",
    "noise_shape", "sparse", "ragged",
    *(f"{part}_{kind}" for part in ("kernel", "bias", "depthwise", "pointwise", "beta", "gamma",
                                      "moving_mean", "moving_variance")
      for kind in ("initializer", "regularizer", "constraint")),
    "activity_regularizer",
})
# Keys accepted only with their neutral value.
_NEUTRAL_VALUES = {"renorm": False, "virtual_batch_size": None, "adjustment": None, "renorm_clipping": None,
                   "renorm_momentum": 0.99}
ACTIVATIONS = frozenset({"linear", "relu", "relu6", "elu", "selu", "sigmoid", "tanh", "softmax", "softplus",
                         "softsign", "swish", "silu", "gelu", "exponential"})
_PASS_THROUGH = frozenset({"Dropout", "SpatialDropout2D", "Flatten", "Reshape"})
_WEIGHT_ALIASES = {("DepthwiseConv2D", "kernel"): "depthwise_kernel"}


# --- public API -----------------------------------------------------------------------------

def load_model(path: str | Path, class_names: Sequence[str], input_range: Sequence[float] = (0.0, 1.0)):
    """Load ``.keras``, ``.h5`` or TF.js ``model.json`` and fit it to the pipeline's contract.

    Returns a ``keras.Model`` taking (N, H, W, C) float32 in [0, 1] and returning (N, len(class_names))
    probabilities. ``input_range`` is the pixel range the file's model was trained on, e.g.
    (0, 255) or (-1, 1); anything but (0, 1) adds a layer ``input_scaling``. A linear last layer
    gets a ``probabilities`` softmax layer appended. Every failure is a :class:`UserError`.
    """
    path = check_model_file(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        model = load_tfjs_layers_model(path)
    elif suffix == ".keras":
        model = _load_keras_file(path)
    else:
        model = _load_h5_file(path)
    return fit_to_pipeline(model, class_names, input_range, source=shown_path(path))


def describe_model(model) -> list[dict[str, Any]]:
    """One entry per layer (input layers excluded): name, type, output shape without batch, parameters."""
    described = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        shape = layer.output.shape
        described.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": [None if d is None else int(d) for d in shape[1:]],
            "parameters": int(layer.count_params()),
        })
    return described


def fit_to_pipeline(model, class_names: Sequence[str], input_range: Sequence[float] = (0.0, 1.0),
                    source: str = "model"):
    """Check a loaded model against the pipeline's contract and add scaling / softmax layers if needed."""
    import keras

    low, high = _check_input_range(input_range, source)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"model {source} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                        "an image classifier with one input and one output is needed")
    input_shape = tuple(model.inputs[0].shape)
    if len(input_shape) != 4 or any(d is None for d in input_shape[1:]) or input_shape[3] not in (1, 3):
        raise UserError(f"model {source} takes inputs of shape {input_shape}; "
                        "expected (batch, height, width, 1 or 3) images")
    output_shape = tuple(model.outputs[0].shape)
    if len(output_shape) != 2:
        raise UserError(f"model {source} outputs shape {output_shape}; expected (batch, classes)")
    if output_shape[1] is None or output_shape[1] < 2:
        # One output unit tells nothing apart: there is no prediction an attack could change.
        outputs = "one output unit (one class only)" if output_shape[1] == 1 else f"outputs of shape {output_shape}"
        raise UserError(f"model {source} has {outputs}; an image classifier of at least two classes is needed")
    if output_shape[1] != len(class_names):
        raise UserError(f"model {source} outputs {output_shape[1]} classes but {len(class_names)} class names "
                        f"are configured ({', '.join(class_names)})")
    for layer in model.layers:
        if type(layer).__name__ == "Lambda":
            raise UserError(f"model {source} contains a Lambda layer {quoted(layer.name)} (arbitrary code); refused")
        for weight in layer.weights:
            if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
                raise UserError(f"model {source}: weight {bare(layer.name)}/{bare(weight.name)} "
                                "contains NaN or infinity")

    activation = final_activation(model)
    if activation not in ("softmax", "linear"):
        raise UserError(f"model {source}: the last layer's activation is {quoted(activation)}; "
                        "expected softmax probabilities or linear logits")
    add_softmax = activation == "linear"
    add_scaling = (low, high) != (0.0, 1.0)
    if not (add_scaling or add_softmax):
        return model
    taken = {layer.name for layer in model.layers}
    for needed, name in ((add_scaling, "input_scaling"), (add_softmax, "probabilities")):
        if needed and name in taken:
            raise UserError(f"model {source} already has a layer named {quoted(name)} (saved by Butterfly?); "
                            "it already takes [0, 1] pixels and returns probabilities, so drop model.input_range")
    scaling = keras.layers.Rescaling(scale=high - low, offset=low, name="input_scaling") if add_scaling else None
    softmax = keras.layers.Softmax(name="probabilities") if add_softmax else None

    if isinstance(model, keras.Sequential):
        stack = [keras.Input(shape=input_shape[1:], name="pixels")]
        stack += [scaling] if scaling else []
        stack += list(model.layers)
        stack += [softmax] if softmax else []
        return keras.Sequential(stack, name=model.name)

    pixels = keras.Input(shape=input_shape[1:], name="pixels")
    scaled = scaling(pixels) if scaling else pixels

    def call_with_scaled_input(layer, *args, **kwargs):
        # clone_model calls the first layers on `pixels`; they must see the rescaled tensor instead.
        args = keras.tree.map_structure(lambda t: scaled if t is pixels else t, args)
        return layer(*args, **kwargs)

    if scaling:
        rebuilt = keras.models.clone_model(model, input_tensors=pixels, clone_function=lambda layer: layer,
                                           call_function=call_with_scaled_input)
    else:
        rebuilt = model
    outputs = softmax(rebuilt.outputs[0]) if softmax else rebuilt.outputs[0]
    return keras.Model(rebuilt.inputs, outputs, name=model.name)


def final_activation(model) -> str:
    """Name of the activation that produces the model's output ('softmax', 'linear', ...)."""
    history = model.outputs[0]._keras_history
    operation = history.operation
    while type(operation).__name__ in _PASS_THROUGH:
        history = operation._inbound_nodes[history.node_index].input_tensors[0]._keras_history
        operation = history.operation
    kind = type(operation).__name__
    if kind == "Softmax":
        return "softmax"
    function = getattr(operation, "activation", None)
    if function is None:
        return f"none ({kind} layer '{operation.name}')"
    return getattr(function, "__name__", str(function))


# --- .keras and .h5 -------------------------------------------------------------------------

def _keras_load(path: Path):
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a bad file; all mean "cannot load".
        raise UserError(f"{model_label(path)} cannot be loaded safely: {first_line(error, path)}") from None


def _load_keras_file(path: Path):
    import keras

    check_saved_layers(read_keras_archive_config(path), path, keras)
    return _keras_load(path)


def _load_h5_file(path: Path):
    import keras

    config = read_h5_model_config(path)
    if config is not None:   # a weights-only file has none; Keras then says why it cannot load
        check_saved_layers(config, path, keras)
    return _keras_load(path)


# --- TensorFlow.js layers models ------------------------------------------------------------

def load_tfjs_layers_model(path: str | Path):
    """Rebuild a TF.js layers model (Keras 2 topology) with Keras 3 layers and load its weights."""
    path = Path(path)
    config, manifest = read_tfjs_document(path)
    try:
        model = _build_model(config, path)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise UserError(f"{model_label(path)}: malformed modelTopology ({type(error).__name__}: "
                        f"{first_line(error)})") from None
    weights = read_weight_shards(manifest, path)
    _assign_weights(model, weights, path)
    return model


def _build_model(config: dict, path: Path):
    import keras

    kind = config["class_name"]
    body = config.get("config", {})
    if kind == "Sequential":
        layer_configs = body if isinstance(body, list) else body["layers"]
        name = None if isinstance(body, list) else body.get("name")
        if not layer_configs:
            raise UserError(f"{model_label(path)}: the Sequential model has no layers")
        first = layer_configs[0]["config"]
        batch_shape = first.get("batch_input_shape") or first.get("batch_shape")
        if batch_shape is None:
            raise UserError(f"{model_label(path)}: the first layer has no batch_input_shape, "
                            "so the input size is unknown")
        stack = [keras.Input(shape=tuple(batch_shape[1:]), name="pixels")]
        for layer_config in layer_configs:
            if layer_config["class_name"] == "InputLayer":
                continue
            stack.append(_make_layer(layer_config, path))
        return keras.Sequential(stack, name=name or "sequential")
    if kind in ("Model", "Functional"):
        return _build_functional(body, path)
    raise UserError(f"{model_label(path)}: model class {quoted(kind)} is not supported "
                    "(Sequential or functional Model only)")


def _inbound_refs(node: Any, layer_name: str, path: Path) -> list[tuple[str, int]]:
    """(source layer, tensor index) pairs for one call of a layer, from either Keras 2 node format."""
    if isinstance(node, dict):  # newer format: {"args": [...keras tensors...], "kwargs": {}}
        refs: list[tuple[str, int]] = []

        def collect(value):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                source, node_index, tensor_index = value["config"]["keras_history"]
                refs.append((source, node_index, tensor_index))
            elif isinstance(value, (list, tuple)):
                for item in value:
                    collect(item)

        collect(node.get("args", []))
        triples = refs
    else:
        triples = []
        for ref in node:
            if len(ref) > 3 and ref[3]:
                raise UserError(f"{model_label(path)}: layer {quoted(layer_name)} is called with arguments "
                                f"{quote_value(ref[3])}; not supported")
            triples.append((ref[0], ref[1], ref[2]))
    for source, node_index, _ in triples:
        if node_index != 0:
            raise UserError(f"{model_label(path)}: layer {quoted(source)} is shared (used more than once); "
                            "not supported")
    return [(source, tensor_index) for source, _, tensor_index in triples]


def _build_functional(body: dict, path: Path):
    import keras

    tensors: dict[str, Any] = {}
    for entry in body["layers"]:
        config = entry["config"]
        name = entry.get("name") or config["name"]
        if entry["class_name"] == "InputLayer":
            batch_shape = config.get("batch_input_shape") or config.get("batch_shape")
            tensors[name] = keras.Input(shape=tuple(batch_shape[1:]), name=name)
            continue
        nodes = entry.get("inbound_nodes", [])
        if len(nodes) != 1:
            raise UserError(f"{model_label(path)}: layer {quoted(name)} is called {len(nodes)} times; "
                            "only single calls are supported")
        refs = _inbound_refs(nodes[0], name, path)
        inputs = []
        for source, tensor_index in refs:
            if source not in tensors:
                raise UserError(f"{model_label(path)}: layer {quoted(name)} reads from unknown layer {quoted(source)}")
            if tensor_index != 0:
                raise UserError(f"{model_label(path)}: layer {quoted(source)} has several outputs; not supported")
            inputs.append(tensors[source])
        layer = _make_layer(entry, path)
        argument = inputs if entry["class_name"] in _MERGE_LAYERS else _single(inputs, name, path)
        tensors[name] = layer(argument)

    def endpoints(key: str):
        refs = body[key]
        return [tensors[ref[0]] for ref in refs]

    inputs, outputs = endpoints("input_layers"), endpoints("output_layers")
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                       name=body.get("name"))


def _single(inputs: list, name: str, path: Path):
    if len(inputs) != 1:
        raise UserError(f"{model_label(path)}: layer {quoted(name)} has {len(inputs)} inputs; expected one")
    return inputs[0]


def _make_layer(layer_config: dict, path: Path):
    """A Keras 3 layer from a Keras 2 layer config, allow-listed class and options only."""
    import keras

    kind = layer_config["class_name"]
    config = layer_config["config"]
    name = config["name"]
    if kind not in LAYER_SPECS:
        raise UserError(f"{model_label(path)}: layer {quoted(name)} of type {bare(kind)} is not supported "
                        f"(supported: {', '.join(sorted(LAYER_SPECS))})")
    class_name, accepted, renamed = LAYER_SPECS[kind]
    kwargs: dict[str, Any] = {"name": name}
    for key, value in config.items():
        if key in _IGNORED_KEYS:
            continue
        if key in _NEUTRAL_VALUES:
            if value != _NEUTRAL_VALUES[key]:
                raise UserError(f"{model_label(path)}: layer {quoted(name)} uses {bare(key)}={quote_value(value)}, "
                                "which is not supported")
            continue
        if key not in accepted:
            raise UserError(f"{model_label(path)}: layer {quoted(name)} ({bare(kind)}) has an unsupported option "
                            f"{quoted(key)}")
        if key == "data_format" and value not in (None, "channels_last"):
            raise UserError(f"{model_label(path)}: layer {quoted(name)} uses data_format {quote_value(value)}; "
                            "only channels_last is supported")
        if key == "activation" and value not in ACTIVATIONS:
            raise UserError(f"{model_label(path)}: layer {quoted(name)} uses activation {quote_value(value)}, "
                            f"which is not supported (supported: {', '.join(sorted(ACTIVATIONS))})")
        if key == "axis" and isinstance(value, list) and len(value) == 1:
            value = value[0]
        kwargs[renamed.get(key, key)] = value
    try:
        return getattr(keras.layers, class_name)(**kwargs)
    except (TypeError, ValueError) as error:
        raise UserError(f"{model_label(path)}: layer {quoted(name)} ({bare(kind)}) cannot be built: "
                        f"{first_line(error)}") from None


def _assign_weights(model, weights: dict[str, np.ndarray], path: Path) -> None:
    """Set each layer's variables from manifest weights named '<layer>/<variable>'."""
    by_layer: dict[tuple[str, str], str] = {}
    for full_name in weights:
        parts = full_name.split(":")[0].split("/")
        if len(parts) < 2:
            raise UserError(f"{model_label(path)}: weight name {quoted(full_name)} is not '<layer>/<variable>'")
        by_layer[(parts[-2], parts[-1])] = full_name
    used = set()
    for layer in model.layers:
        kind = type(layer).__name__
        for variable in layer.weights:
            manifest_variable = _WEIGHT_ALIASES.get((kind, variable.name), variable.name)
            key = (layer.name, manifest_variable)
            if key not in by_layer:
                key = (layer.name, variable.name)
            if key not in by_layer:
                raise UserError(f"{model_label(path)}: the manifest has no weight for "
                                f"{bare(layer.name)}/{bare(manifest_variable)}")
            full_name = by_layer[key]
            value = weights[full_name]
            if tuple(value.shape) != tuple(variable.shape):
                raise UserError(f"{model_label(path)}: weight {bare(full_name)} has shape {list(value.shape)} in the "
                                f"manifest but layer {quoted(layer.name)} needs {list(variable.shape)}")
            variable.assign(value)
            used.add(full_name)
    unused = [name for name in weights if name not in used]
    if unused:
        raise UserError(f"{model_label(path)}: manifest weights match no layer: {shorten(', '.join(unused[:5]), 200)}")


def _check_input_range(input_range: Sequence[float], source: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise UserError(f"model.input_range for {source} must be two numbers [low, high], got "
                        f"{input_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UserError(f"model.input_range for {source} must satisfy low < high, got {list(input_range)}")
    return low, high
