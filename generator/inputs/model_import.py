"""Import a model trained elsewhere: a ``.keras`` file, a legacy ``.h5`` file, or a TensorFlow.js
*layers* model (``model.json`` plus binary weight shards, as CNN Explainer publishes its Tiny VGG).

Safe loading: the model config of a ``.keras`` or ``.h5`` file is first read as data and every
layer checked (:func:`check_saved_layers`), so a ``Lambda`` layer, a custom layer class or a
Python function as an option is refused with a line naming the layer and its class; the file
then goes through ``keras.saving.load_model`` in safe mode, with no custom objects registered. TensorFlow.js models are rebuilt here from an
allow-list of standard Keras layers (convolutions, pooling, dense, normalisation, activations,
merges); their JSON is read as data, never deserialized into arbitrary objects, and the weight
shards are checked against the manifest's shapes before any value is used.

The pipeline feeds every model float32 NHWC pixels in [0, 1] and expects softmax probabilities
back. :func:`load_model` makes an imported model fit that contract: a model that expects another
input range gets a ``Rescaling`` layer named ``input_scaling`` in front, and a model whose last
layer is linear (logits) gets a ``Softmax`` layer named ``probabilities`` at the end. Both
appear as ordinary layers on the site.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from generator.errors import UserError, shorten

MAX_JSON_BYTES = 64 * 1024 * 1024
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

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
_BYTES_PER_VALUE = {"float32": 4, "float16": 2, "uint8": 1, "uint16": 2}


# --- public API -----------------------------------------------------------------------------

def load_model(path: str | Path, class_names: Sequence[str], input_range: Sequence[float] = (0.0, 1.0)):
    """Load ``.keras``, ``.h5`` or TF.js ``model.json`` and fit it to the pipeline's contract.

    Returns a ``keras.Model`` taking (N, H, W, C) float32 in [0, 1] and returning (N, len(class_names))
    probabilities. ``input_range`` is the pixel range the file's model was trained on, e.g.
    (0, 255) or (-1, 1); anything but (0, 1) adds a layer ``input_scaling``. A linear last layer
    gets a ``probabilities`` softmax layer appended. Every failure is a :class:`UserError`.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"model file not found: {path}")
    if path.is_dir():
        if (path / "model.json").is_file():
            path = path / "model.json"
        else:
            raise UserError(f"model path {path} is a folder without model.json; give a .keras, .h5 or model.json file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        model = load_tfjs_layers_model(path)
    elif suffix == ".keras":
        model = _load_keras_file(path)
    elif suffix in (".h5", ".hdf5"):
        model = _load_h5_file(path)
    else:
        raise UserError(f"model {path}: unsupported file type '{suffix}'; give a .keras, .h5 or TF.js model.json file")
    return fit_to_pipeline(model, class_names, input_range, source=str(path))


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
    if output_shape[1] != len(class_names):
        raise UserError(f"model {source} outputs {output_shape[1]} classes but {len(class_names)} class names "
                        f"are configured ({', '.join(class_names)})")
    for layer in model.layers:
        if type(layer).__name__ == "Lambda":
            raise UserError(f"model {source} contains a Lambda layer '{layer.name}' (arbitrary code); refused")
        for weight in layer.weights:
            if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
                raise UserError(f"model {source}: weight {layer.name}/{weight.name} contains NaN or infinity")

    activation = final_activation(model)
    if activation not in ("softmax", "linear"):
        raise UserError(f"model {source}: the last layer's activation is '{activation}'; "
                        "expected softmax probabilities or linear logits")
    add_softmax = activation == "linear"
    add_scaling = (low, high) != (0.0, 1.0)
    if not (add_scaling or add_softmax):
        return model
    taken = {layer.name for layer in model.layers}
    for needed, name in ((add_scaling, "input_scaling"), (add_softmax, "probabilities")):
        if needed and name in taken:
            raise UserError(f"model {source} already has a layer named '{name}' (saved by Butterfly?); "
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

def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _keras_load(path: Path):
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a bad file; all mean "cannot load".
        raise UserError(f"model {path} cannot be loaded safely: {_first_line(error)}") from None


def _load_keras_file(path: Path):
    if not zipfile.is_zipfile(path):
        raise UserError(f"model {path} is not a .keras file (not a zip archive)")
    check_saved_layers(read_keras_archive_config(path), path)
    return _keras_load(path)


def _load_h5_file(path: Path):
    with open(path, "rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise UserError(f"model {path} is not an HDF5 (.h5) file")
    config = read_h5_model_config(path)
    if config is not None:   # a weights-only file has none; Keras then says why it cannot load
        check_saved_layers(config, path)
    return _keras_load(path)


# Standard Keras layers that a safe loader must still refuse, with the reason shown to the user.
REFUSED_LAYERS = {
    "Lambda": "runs Python code from the file",
    "TFOpLambda": "runs TensorFlow code recorded from Python (a Keras 2 wrapper of a tf.* call)",
    "SlicingOpLambda": "runs TensorFlow code recorded from Python (a Keras 2 wrapper of a tf.* call)",
    "TFSMLayer": "loads a TensorFlow SavedModel from outside the file",
}
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})


def read_keras_archive_config(path: Path) -> dict:
    """The model config (``config.json``) of a ``.keras`` zip archive, read as data."""
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                with archive.open("config.json") as member:
                    text = member.read(MAX_JSON_BYTES + 1)
            except KeyError:
                raise UserError(f"model {path} is a zip archive without config.json, not a Keras model") from None
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as error:
        raise UserError(f"model {path} is a damaged .keras archive: {_first_line(error)}") from None
    return _parse_model_config(text, path)


def read_h5_model_config(path: Path) -> dict | None:
    """The ``model_config`` attribute of a Keras ``.h5`` file, or None if it has none."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except OSError as error:
        raise UserError(f"model {path} is a damaged HDF5 file: {_first_line(error)}") from None
    if raw is None:
        return None
    return _parse_model_config(raw if isinstance(raw, bytes) else str(raw).encode("utf-8"), path)


def _parse_model_config(text: bytes, path: Path) -> dict:
    if len(text) > MAX_JSON_BYTES:
        raise UserError(f"model {path}: its model config is over {MAX_JSON_BYTES} bytes")
    try:
        config = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"model {path}: its model config is not valid JSON: {_first_line(error)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise UserError(f"model {path}: its model config names no model class")
    return config


def _quoted(text: Any) -> str:
    return shorten(repr(str(text)), 80)


def _bare(text: Any) -> str:
    return shorten(" ".join(str(text).split()), 60)


def _is_keras_module(module: Any) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def check_saved_layers(config: dict, path: Path) -> None:
    """Refuse, naming the layer and its class, a saved model Keras' safe mode would not load.

    ``config`` is the saved model config (``.keras`` config.json or ``.h5`` model_config). Keras
    reports such files only as "could not be deserialized"; this reads the config as data first
    and names the first layer that is code (``Lambda``), not part of Keras (a custom class), or
    configured with code (a Python function or lambda as activation, initialiser, ...).
    """
    import keras

    _check_layer(config, path, keras, role="model")


def _is_keras_layer_class(kind: str, keras) -> bool:
    if kind in MODEL_CLASSES:
        return True
    found = getattr(keras.layers, kind, None) if kind.isidentifier() else None
    return isinstance(found, type) and issubclass(found, keras.layers.Layer)


def _check_layer(entry: Any, path: Path, keras, role: str = "layer") -> None:
    if not isinstance(entry, dict):
        raise UserError(f"model {path}: a layer entry of its config is not a mapping")
    kind = entry.get("class_name")
    body = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = entry.get("name") or body.get("name") or "?"
    layer = f"model {path}: {role} {_quoted(name)} ({_bare(kind)})"
    if not isinstance(kind, str):
        raise UserError(f"{layer} has no class name")
    if kind in REFUSED_LAYERS:
        raise UserError(f"{layer} {REFUSED_LAYERS[kind]}; refused")
    # Keras writes module null and registered name "Package>Class" for a class of the user's.
    from_keras = "module" not in entry or _is_keras_module(entry["module"])
    if not (from_keras and _is_keras_layer_class(kind, keras)):
        origin = entry.get("module") or entry.get("registered_name")
        origin_text = f" ({_bare(origin)})" if origin and origin != kind else ""
        raise UserError(f"{layer} is not part of Keras but custom code{origin_text}, which is not loaded; refused")
    layers = body.get("layers")
    for nested in layers if isinstance(layers, list) else []:
        _check_layer(nested, path, keras)
    for key, value in body.items():
        if key != "layers":
            _check_serialized_objects(value, f"{layer} option '{_bare(key)}'", keras)


def _check_serialized_objects(value: Any, where: str, keras) -> None:
    """Refuse Python functions, lambdas and custom classes inside a layer's options."""
    if isinstance(value, list):
        for item in value:
            _check_serialized_objects(item, where, keras)
        return
    if not isinstance(value, dict):
        return
    kind = value.get("class_name")
    if kind == "__lambda__":
        raise UserError(f"{where} is a Python lambda stored in the file; refused")
    if isinstance(kind, str) and "module" in value and not _is_keras_module(value["module"]):
        what = f"function {_quoted(value.get('config'))}" if kind == "function" else f"class {_bare(kind)}"
        raise UserError(f"{where} is the {what} from {_bare(value['module'])}, custom code that is not loaded; "
                        "refused")
    for item in value.values():
        _check_serialized_objects(item, where, keras)


# --- TensorFlow.js layers models ------------------------------------------------------------

def load_tfjs_layers_model(path: str | Path):
    """Rebuild a TF.js layers model (Keras 2 topology) with Keras 3 layers and load its weights."""
    path = Path(path)
    document = _read_json(path)
    if document.get("format") == "graph-model":
        raise UserError(f"model {path} is a TensorFlow.js graph model; only layers models can be imported")
    topology = document.get("modelTopology")
    manifest = document.get("weightsManifest")
    if not isinstance(topology, dict) or not isinstance(manifest, list):
        raise UserError(f"model {path} is not a TensorFlow.js layers model (needs modelTopology and weightsManifest)")
    config = topology.get("model_config", topology)
    if not isinstance(config, dict) or "class_name" not in config:
        raise UserError(f"model {path}: modelTopology has no model class")
    try:
        model = _build_model(config, path)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise UserError(f"model {path}: malformed modelTopology ({type(error).__name__}: {_first_line(error)})") from None
    weights = read_weight_shards(manifest, path)
    _assign_weights(model, weights, path)
    return model


def _read_json(path: Path) -> dict:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise UserError(f"model {path} is {size} bytes, too large for a model.json")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"model {path} is not valid JSON: {_first_line(error)}") from None
    if not isinstance(document, dict):
        raise UserError(f"model {path} is not a TensorFlow.js layers model (JSON is not an object)")
    return document


def _build_model(config: dict, path: Path):
    import keras

    kind = config["class_name"]
    body = config.get("config", {})
    if kind == "Sequential":
        layer_configs = body if isinstance(body, list) else body["layers"]
        name = None if isinstance(body, list) else body.get("name")
        if not layer_configs:
            raise UserError(f"model {path}: the Sequential model has no layers")
        first = layer_configs[0]["config"]
        batch_shape = first.get("batch_input_shape") or first.get("batch_shape")
        if batch_shape is None:
            raise UserError(f"model {path}: the first layer has no batch_input_shape, so the input size is unknown")
        stack = [keras.Input(shape=tuple(batch_shape[1:]), name="pixels")]
        for layer_config in layer_configs:
            if layer_config["class_name"] == "InputLayer":
                continue
            stack.append(_make_layer(layer_config, path))
        return keras.Sequential(stack, name=name or "sequential")
    if kind in ("Model", "Functional"):
        return _build_functional(body, path)
    raise UserError(f"model {path}: model class '{kind}' is not supported (Sequential or functional Model only)")


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
                raise UserError(f"model {path}: layer '{layer_name}' is called with arguments {ref[3]}; not supported")
            triples.append((ref[0], ref[1], ref[2]))
    for source, node_index, _ in triples:
        if node_index != 0:
            raise UserError(f"model {path}: layer '{source}' is shared (used more than once); not supported")
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
            raise UserError(f"model {path}: layer '{name}' is called {len(nodes)} times; only single calls are supported")
        refs = _inbound_refs(nodes[0], name, path)
        inputs = []
        for source, tensor_index in refs:
            if source not in tensors:
                raise UserError(f"model {path}: layer '{name}' reads from unknown layer '{source}'")
            if tensor_index != 0:
                raise UserError(f"model {path}: layer '{source}' has several outputs; not supported")
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
        raise UserError(f"model {path}: layer '{name}' has {len(inputs)} inputs; expected one")
    return inputs[0]


def _make_layer(layer_config: dict, path: Path):
    """A Keras 3 layer from a Keras 2 layer config, allow-listed class and options only."""
    import keras

    kind = layer_config["class_name"]
    config = layer_config["config"]
    name = config["name"]
    if kind not in LAYER_SPECS:
        raise UserError(f"model {path}: layer '{name}' of type {kind} is not supported "
                        f"(supported: {', '.join(sorted(LAYER_SPECS))})")
    class_name, accepted, renamed = LAYER_SPECS[kind]
    kwargs: dict[str, Any] = {"name": name}
    for key, value in config.items():
        if key in _IGNORED_KEYS:
            continue
        if key in _NEUTRAL_VALUES:
            if value != _NEUTRAL_VALUES[key]:
                raise UserError(f"model {path}: layer '{name}' uses {key}={value!r}, which is not supported")
            continue
        if key not in accepted:
            raise UserError(f"model {path}: layer '{name}' ({kind}) has an unsupported option '{key}'")
        if key == "data_format" and value not in (None, "channels_last"):
            raise UserError(f"model {path}: layer '{name}' uses data_format {value!r}; only channels_last is supported")
        if key == "activation" and value not in ACTIVATIONS:
            raise UserError(f"model {path}: layer '{name}' uses activation {value!r}, which is not supported "
                            f"(supported: {', '.join(sorted(ACTIVATIONS))})")
        if key == "axis" and isinstance(value, list) and len(value) == 1:
            value = value[0]
        kwargs[renamed.get(key, key)] = value
    try:
        return getattr(keras.layers, class_name)(**kwargs)
    except (TypeError, ValueError) as error:
        raise UserError(f"model {path}: layer '{name}' ({kind}) cannot be built: {_first_line(error)}") from None


def read_weight_shards(manifest: list, path: str | Path) -> dict[str, np.ndarray]:
    """{weight name: float32 array} from a TF.js weightsManifest, shards read beside ``path``.

    Every shard must exist inside the model's folder, and each group's shards together must
    hold exactly the bytes its weights need (float32, or uint8/uint16/float16 quantized).
    """
    path = Path(path)
    folder = path.parent.resolve()
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) \
                or not isinstance(group.get("weights"), list):
            raise UserError(f"model {path}: weightsManifest entries need 'paths' and 'weights' lists")
        specs = [_weight_spec(spec, path) for spec in group["weights"]]
        needed = sum(spec[3] for spec in specs)
        shards = [_shard_file(folder, name, path) for name in group["paths"]]
        sizes = [shard.stat().st_size for shard in shards]
        if sum(sizes) != needed:
            listing = ", ".join(f"{shard.name} {size} bytes" for shard, size in zip(shards, sizes))
            raise UserError(f"model {path}: weight shards hold {sum(sizes)} bytes ({listing}) but the manifest's "
                            f"{len(specs)} weights need {needed}; a shard is truncated or belongs to another model")
        buffer = b"".join(shard.read_bytes() for shard in shards)
        offset = 0
        for name, shape, decode, size in specs:
            if name in weights:
                raise UserError(f"model {path}: weight '{name}' appears twice in the manifest")
            weights[name] = decode(buffer[offset: offset + size]).reshape(shape)
            offset += size
    return weights


def _weight_spec(spec: Any, path: Path):
    """(name, shape, bytes -> float32 array, byte count) for one manifest weight."""
    try:
        name = str(spec["name"])
        shape = tuple(int(d) for d in spec["shape"])
        dtype = spec.get("dtype", "float32")
    except (KeyError, TypeError, ValueError):
        raise UserError(f"model {path}: malformed weight entry {str(spec)[:100]}") from None
    if any(d < 0 for d in shape):
        raise UserError(f"model {path}: weight '{name}' has a negative dimension {shape}")
    if dtype != "float32":
        raise UserError(f"model {path}: weight '{name}' has dtype {dtype}; only float32 weights are supported")
    count = math.prod(shape)
    quantization = spec.get("quantization")
    if quantization is None:
        return name, shape, lambda raw: np.frombuffer(raw, dtype="<f4").astype(np.float32), 4 * count
    stored = quantization.get("dtype") if isinstance(quantization, dict) else None
    if stored == "float16":
        return name, shape, lambda raw: np.frombuffer(raw, dtype="<f2").astype(np.float32), 2 * count
    if stored in ("uint8", "uint16") and "scale" in quantization and "min" in quantization:
        scale, low = float(quantization["scale"]), float(quantization["min"])
        little_endian = "<u1" if stored == "uint8" else "<u2"
        decode = lambda raw: (np.frombuffer(raw, dtype=little_endian).astype(np.float32) * scale + low)  # noqa: E731
        return name, shape, decode, _BYTES_PER_VALUE[stored] * count
    raise UserError(f"model {path}: weight '{name}' uses quantization {quantization!r}; "
                    "only uint8/uint16 (scale, min) and float16 are supported")


def _shard_file(folder: Path, name: Any, path: Path) -> Path:
    relative = PurePosixPath(str(name))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UserError(f"model {path}: weight shard path {name!r} must stay inside the model's folder")
    shard = (folder / Path(*relative.parts)).resolve()
    if not shard.is_relative_to(folder):
        raise UserError(f"model {path}: weight shard path {name!r} leaves the model's folder")
    if not shard.is_file():
        raise UserError(f"model {path}: weight shard {name} not found in {folder}")
    return shard


def _assign_weights(model, weights: dict[str, np.ndarray], path: Path) -> None:
    """Set each layer's variables from manifest weights named '<layer>/<variable>'."""
    by_layer: dict[tuple[str, str], str] = {}
    for full_name in weights:
        parts = full_name.split(":")[0].split("/")
        if len(parts) < 2:
            raise UserError(f"model {path}: weight name '{full_name}' is not '<layer>/<variable>'")
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
                raise UserError(f"model {path}: the manifest has no weight for {layer.name}/{manifest_variable}")
            full_name = by_layer[key]
            value = weights[full_name]
            if tuple(value.shape) != tuple(variable.shape):
                raise UserError(f"model {path}: weight {full_name} has shape {list(value.shape)} in the manifest "
                                f"but layer '{layer.name}' needs {list(variable.shape)}")
            variable.assign(value)
            used.add(full_name)
    unused = [name for name in weights if name not in used]
    if unused:
        raise UserError(f"model {path}: manifest weights match no layer: {', '.join(unused[:5])}")


def _check_input_range(input_range: Sequence[float], source: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise UserError(f"model.input_range for {source} must be two numbers [low, high], got {input_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise UserError(f"model.input_range for {source} must satisfy low < high, got {list(input_range)}")
    return low, high
