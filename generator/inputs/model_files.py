"""What a model file holds, read as data: no TensorFlow, no Keras, nothing from the file run.

These checks run when the configuration is read (``butterfly check`` and every build, before
any work and before TensorFlow is imported) and again when :mod:`generator.inputs.model_import`
loads the file: its type, its container (zip, HDF5, JSON), the layers a saved ``.keras`` or
``.h5`` config names (code such as a ``Lambda`` layer is refused by name) and, for a
TensorFlow.js model, that every weight shard is inside the model's folder and holds exactly the
bytes the manifest's weights need. Messages name the file as :func:`shown_path` shows it.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from generator.errors import UserError, quote_value, shorten
from generator.inputs.paths import shown_path

MAX_JSON_BYTES = 64 * 1024 * 1024
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SUFFIXES = (".json", ".keras", ".h5", ".hdf5")
_BYTES_PER_VALUE = {"float32": 4, "float16": 2, "uint8": 1, "uint16": 2}


def check_model_file(path: str | Path) -> Path:
    """The checks of a model file that need neither TensorFlow nor Keras; returns the file to
    load (``model.json`` when ``path`` is its folder). Raises :class:`UserError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model file not found: {shown_path(path)}")
    if path.is_dir():
        if not (path / "model.json").is_file():
            raise UserError(f"model path {shown_path(path)} is a folder without model.json; "
                            "give a .keras, .h5 or model.json file")
        path = path / "model.json"
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"{model_label(path)}: unsupported file type {quote_value(suffix)}; "
                        "give a .keras, .h5 or TF.js model.json file")
    if suffix == ".json":
        _, manifest = read_tfjs_document(path)
        for _ in weight_groups(manifest, path):
            pass
    elif suffix == ".keras":
        check_saved_layers(read_keras_archive_config(path), path)
    else:
        config = read_h5_model_config(path)
        if config is not None:   # a weights-only file has none; Keras then says why it cannot load
            check_saved_layers(config, path)
    return path


def model_label(path: Path) -> str:
    """'model <file>', as messages about a model file begin."""
    return f"model {shown_path(path)}"


def first_line(error: BaseException, path: Path | None = None) -> str:
    """The first line of an error from a library, at most 300 characters, naming ``path`` as
    messages do (Keras quotes the absolute path it was given)."""
    text = str(error).strip()
    if path is not None:
        text = text.replace(str(path), shown_path(path))
    return text.splitlines()[0][:300] if text else type(error).__name__



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
    if not zipfile.is_zipfile(path):
        raise UserError(f"{model_label(path)} is not a .keras file (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                with archive.open("config.json") as member:
                    text = member.read(MAX_JSON_BYTES + 1)
            except KeyError:
                raise UserError(f"{model_label(path)} is a zip archive without config.json, "
                                "not a Keras model") from None
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as error:
        raise UserError(f"{model_label(path)} is a damaged .keras archive: {first_line(error, path)}") from None
    return _parse_model_config(text, path)


def read_h5_model_config(path: Path) -> dict | None:
    """The ``model_config`` attribute of a Keras ``.h5`` file, or None if it has none."""
    import h5py

    with open(path, "rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise UserError(f"{model_label(path)} is not an HDF5 (.h5) file")
    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except OSError as error:
        raise UserError(f"{model_label(path)} is a damaged HDF5 file: {first_line(error, path)}") from None
    if raw is None:
        return None
    return _parse_model_config(raw if isinstance(raw, bytes) else str(raw).encode("utf-8"), path)


def _parse_model_config(text: bytes, path: Path) -> dict:
    if len(text) > MAX_JSON_BYTES:
        raise UserError(f"{model_label(path)}: its model config is over {MAX_JSON_BYTES} bytes")
    try:
        config = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{model_label(path)}: its model config is not valid JSON: {first_line(error, path)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise UserError(f"{model_label(path)}: its model config names no model class")
    return config


def quoted(text: Any) -> str:
    return shorten(repr(str(text)), 80)


def bare(text: Any) -> str:
    return shorten(" ".join(str(text).split()), 60)


def _is_keras_module(module: Any) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def check_saved_layers(config: dict, path: Path, keras=None) -> None:
    """Refuse, naming the layer and its class, a saved model Keras' safe mode would not load.

    ``config`` is the saved model config (``.keras`` config.json or ``.h5`` model_config). Keras
    reports such files only as "could not be deserialized"; this reads the config as data first
    and names the first layer that is code (``Lambda``), not part of Keras (a custom class), or
    configured with code (a Python function or lambda as activation, initialiser, ...). With
    the ``keras`` module given, a class that Keras' layers do not have is refused too.
    """
    _check_layer(config, path, keras, role="model")


def _is_keras_layer_class(kind: str, keras) -> bool:
    if kind in MODEL_CLASSES:
        return True
    found = getattr(keras.layers, kind, None) if kind.isidentifier() else None
    return isinstance(found, type) and issubclass(found, keras.layers.Layer)


def _check_layer(entry: Any, path: Path, keras, role: str = "layer") -> None:
    if not isinstance(entry, dict):
        raise UserError(f"{model_label(path)}: a layer entry of its config is not a mapping")
    kind = entry.get("class_name")
    body = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = entry.get("name") or body.get("name") or "?"
    layer = f"{model_label(path)}: {role} {quoted(name)} ({bare(kind)})"
    if not isinstance(kind, str):
        raise UserError(f"{layer} has no class name")
    if kind in REFUSED_LAYERS:
        raise UserError(f"{layer} {REFUSED_LAYERS[kind]}; refused")
    # Keras writes module null and registered name "Package>Class" for a class of the user's.
    from_keras = "module" not in entry or _is_keras_module(entry["module"])
    if not (from_keras and (keras is None or _is_keras_layer_class(kind, keras))):
        origin = entry.get("module") or entry.get("registered_name")
        origin_text = f" ({bare(origin)})" if origin and origin != kind else ""
        raise UserError(f"{layer} is not part of Keras but custom code{origin_text}, which is not loaded; refused")
    layers = body.get("layers")
    for nested in layers if isinstance(layers, list) else []:
        _check_layer(nested, path, keras)
    for key, value in body.items():
        if key != "layers":
            _check_serialized_objects(value, f"{layer} option '{bare(key)}'", keras)


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
        what = f"function {quoted(value.get('config'))}" if kind == "function" else f"class {bare(kind)}"
        raise UserError(f"{where} is the {what} from {bare(value['module'])}, custom code that is not loaded; "
                        "refused")
    for item in value.values():
        _check_serialized_objects(item, where, keras)



def read_json(path: Path) -> dict:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise UserError(f"{model_label(path)} is {size} bytes, too large for a model.json")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{model_label(path)} is not valid JSON: {first_line(error, path)}") from None
    if not isinstance(document, dict):
        raise UserError(f"{model_label(path)} is not a TensorFlow.js layers model (JSON is not an object)")
    return document



def read_tfjs_document(path: Path) -> tuple[dict, list]:
    """(model config, weightsManifest) of a TF.js layers ``model.json``, read as data."""
    document = read_json(path)
    if document.get("format") == "graph-model":
        raise UserError(f"{model_label(path)} is a TensorFlow.js graph model; only layers models can be imported")
    topology = document.get("modelTopology")
    manifest = document.get("weightsManifest")
    if not isinstance(topology, dict) or not isinstance(manifest, list):
        raise UserError(f"{model_label(path)} is not a TensorFlow.js layers model "
                        "(needs modelTopology and weightsManifest)")
    config = topology.get("model_config", topology)
    if not isinstance(config, dict) or "class_name" not in config:
        raise UserError(f"{model_label(path)}: modelTopology has no model class")
    return config, manifest


def weight_groups(manifest: list, path: str | Path):
    """Each group of a TF.js weightsManifest as (weight specs, shard files), once its shards are
    found inside the model's folder and hold exactly the bytes its weights need (float32, or
    uint8/uint16/float16 quantized). A spec is (name, shape, bytes -> float32 array, byte count)."""
    path = Path(path)
    folder = path.parent.resolve()
    for group in manifest:
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) \
                or not isinstance(group.get("weights"), list):
            raise UserError(f"{model_label(path)}: weightsManifest entries need 'paths' and 'weights' lists")
        specs = [_weight_spec(spec, path) for spec in group["weights"]]
        needed = sum(spec[3] for spec in specs)
        shards = [_shard_file(folder, name, path) for name in group["paths"]]
        sizes = [shard.stat().st_size for shard in shards]
        if sum(sizes) != needed:
            listing = shorten(", ".join(f"{shard.name} {size} bytes" for shard, size in zip(shards, sizes)), 200)
            raise UserError(f"{model_label(path)}: weight shards hold {sum(sizes)} bytes ({listing}) but the "
                            f"manifest's {len(specs)} weights need {needed}; a shard is truncated or belongs to "
                            "another model")
        yield specs, shards


def _decode(raw: bytes, dtype: str, scale: float = 1.0, low: float = 0.0):
    """float32 values of little-endian `raw` bytes of `dtype`, dequantised as value * scale + low."""
    import numpy as np  # only when weights are read: checking a config needs no NumPy

    values = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    return values if (scale, low) == (1.0, 0.0) else values * np.float32(scale) + np.float32(low)


def read_weight_shards(manifest: list, path: str | Path) -> dict:
    """{weight name: float32 array} from a TF.js weightsManifest, shards read beside ``path``
    (checked by :func:`weight_groups`)."""
    weights: dict = {}
    for specs, shards in weight_groups(manifest, path):
        buffer = b"".join(shard.read_bytes() for shard in shards)
        offset = 0
        for name, shape, decode, size in specs:
            if name in weights:
                raise UserError(f"{model_label(Path(path))}: weight {quoted(name)} appears twice in the manifest")
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
        raise UserError(f"{model_label(path)}: malformed weight entry {quote_value(spec)}") from None
    if any(d < 0 for d in shape):
        raise UserError(f"{model_label(path)}: weight {quoted(name)} has a negative dimension {shape}")
    if dtype != "float32":
        raise UserError(f"{model_label(path)}: weight {quoted(name)} has dtype {quote_value(dtype)}; "
                        "only float32 weights are supported")
    count = math.prod(shape)
    quantization = spec.get("quantization")
    if quantization is None:
        return name, shape, lambda raw: _decode(raw, "<f4"), 4 * count
    stored = quantization.get("dtype") if isinstance(quantization, dict) else None
    if stored == "float16":
        return name, shape, lambda raw: _decode(raw, "<f2"), 2 * count
    if stored in ("uint8", "uint16") and "scale" in quantization and "min" in quantization:
        scale, low = float(quantization["scale"]), float(quantization["min"])
        little_endian = "<u1" if stored == "uint8" else "<u2"
        return name, shape, lambda raw: _decode(raw, little_endian, scale, low), _BYTES_PER_VALUE[stored] * count
    raise UserError(f"{model_label(path)}: weight {quoted(name)} uses quantization {quote_value(quantization)}; "
                    "only uint8/uint16 (scale, min) and float16 are supported")


def _shard_file(folder: Path, name: Any, path: Path) -> Path:
    relative = PurePosixPath(str(name))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise UserError(f"{model_label(path)}: weight shard path {quote_value(name)} "
                        "must stay inside the model's folder")
    shard = (folder / Path(*relative.parts)).resolve()
    if not shard.is_relative_to(folder):
        raise UserError(f"{model_label(path)}: weight shard path {quote_value(name)} leaves the model's folder")
    if not shard.is_file():
        raise UserError(f"{model_label(path)}: weight shard {bare(name)} not found in {shown_path(folder)}")
    return shard
