"""Importing models: .keras / .h5 round trips, TF.js layers models, the pipeline contract, bad files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from generator.errors import UserError
from generator.inputs.model_import import describe_model, load_model, load_tfjs_layers_model

keras = pytest.importorskip("keras")

SHARED = Path(__file__).resolve().parents[2] / "shared"
CNN_EXPLAINER = Path(__file__).resolve().parents[1] / "content" / "cnn-explainer"
CNN_EXPLAINER_CLASSES = ["lifeboat", "ladybug", "pizza", "bell pepper", "school bus", "koala", "espresso",
                         "red panda", "orange", "sport car"]


# --- a small TF.js layers model written by the tests -----------------------------------------

INIT = {"kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}


def keras2_sequential_layers():
    """A Keras 2.2-style Sequential topology: conv, relu, batch norm, pool, dropout, flatten, linear dense."""
    return [
        {"class_name": "Conv2D", "config": {"name": "conv", "trainable": True, "batch_input_shape": [None, 8, 8, 3],
                                           "dtype": "float32", "filters": 4, "kernel_size": [3, 3],
                                           "strides": [1, 1], "padding": "valid", "data_format": "channels_last",
                                           "dilation_rate": [1, 1], "activation": "linear", "use_bias": True, **INIT}},
        {"class_name": "Activation", "config": {"name": "relu", "trainable": True, "dtype": "float32",
                                               "activation": "relu"}},
        {"class_name": "BatchNormalization", "config": {"name": "bn", "trainable": True, "axis": -1, "momentum": 0.99,
                                                       "epsilon": 0.001, "center": True, "scale": True,
                                                       "beta_initializer": {"class_name": "Zeros", "config": {}},
                                                       "gamma_regularizer": None}},
        {"class_name": "MaxPooling2D", "config": {"name": "pool", "trainable": True, "pool_size": [2, 2],
                                                 "padding": "valid", "strides": [2, 2],
                                                 "data_format": "channels_last"}},
        {"class_name": "Dropout", "config": {"name": "drop", "trainable": True, "rate": 0.5, "noise_shape": None,
                                            "seed": None}},
        {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {"name": "logits", "trainable": True, "units": 3, "activation": "linear",
                                          "use_bias": True, **INIT}},
    ]


def sequential_weights(seed=0):
    rng = np.random.default_rng(seed)
    return [
        ("conv/kernel", rng.normal(size=(3, 3, 3, 4))), ("conv/bias", rng.normal(size=4)),
        ("bn/gamma", rng.uniform(0.5, 1.5, 4)), ("bn/beta", rng.normal(size=4)),
        ("bn/moving_mean", rng.normal(size=4)), ("bn/moving_variance", rng.uniform(0.5, 2, 4)),
        ("logits/kernel", rng.normal(size=(36, 3))), ("logits/bias", rng.normal(size=3)),
    ]


def reference_sequential(weights):
    """The same network built directly with Keras 3 layers."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="conv"), layers.Activation("relu", name="relu"),
        layers.BatchNormalization(name="bn"), layers.MaxPooling2D(2, name="pool"), layers.Dropout(0.5, name="drop"),
        layers.Flatten(name="flatten"), layers.Dense(3, name="logits")])
    values = dict(weights)
    for layer in model.layers:
        for variable in layer.weights:
            variable.assign(values[f"{layer.name}/{variable.name}"])
    return model


def write_tfjs(folder: Path, topology: dict, weights, shards: int = 1, quantize: bool = False) -> Path:
    """Write model.json and `shards` weight files the way the TF.js converter does."""
    folder.mkdir(parents=True, exist_ok=True)
    specs, blobs = [], []
    for name, value in weights:
        value = np.asarray(value, dtype=np.float32)
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32"}
        if quantize:
            low, high = float(value.min()), float(value.max())
            scale = (high - low) / 255 or 1.0
            q = np.round((value - low) / scale).astype(np.uint8)
            spec["quantization"] = {"dtype": "uint8", "scale": scale, "min": low}
            blobs.append(q.tobytes())
        else:
            blobs.append(value.astype("<f4").tobytes())
        specs.append(spec)
    data = b"".join(blobs)
    cut = [round(i * len(data) / shards) for i in range(shards + 1)]
    paths = []
    for i in range(shards):
        name = f"group1-shard{i + 1}of{shards}.bin"
        (folder / name).write_bytes(data[cut[i]:cut[i + 1]])
        paths.append(name)
    document = {"format": "layers-model", "generatedBy": "keras v2.2.4-tf",
                "modelTopology": {"keras_version": "2.2.4-tf", "backend": "tensorflow", "model_config": topology},
                "weightsManifest": [{"paths": paths, "weights": specs}]}
    path = folder / "model.json"
    path.write_text(json.dumps(document))
    return path


def sequential_topology(layers=None):
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers or keras2_sequential_layers()}}


@pytest.fixture
def tfjs_model(tmp_path):
    return write_tfjs(tmp_path / "tfjs", sequential_topology(), sequential_weights(), shards=2)


def random_images(n, shape=(8, 8, 3), seed=1):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


# --- CNN Explainer's model (the shared fixture) ----------------------------------------------

@pytest.fixture(scope="module")
def cnn_explainer_model():
    if not (CNN_EXPLAINER / "model.json").is_file():
        pytest.skip("../shared/fixtures/cnn-explainer is not available")
    return load_model(CNN_EXPLAINER / "model.json", CNN_EXPLAINER_CLASSES)


def test_cnn_explainer_tiny_vgg_loads_with_its_layer_names(cnn_explainer_model):
    assert [layer.name for layer in cnn_explainer_model.layers] == [
        "conv_1_1", "relu_1_1", "conv_1_2", "relu_1_2", "max_pool_1",
        "conv_2_1", "relu_2_1", "conv_2_2", "relu_2_2", "max_pool_2", "flatten", "output"]
    described = describe_model(cnn_explainer_model)
    assert described[0] == {"name": "conv_1_1", "type": "Conv2D", "output_shape": [62, 62, 10], "parameters": 280}
    assert described[-1] == {"name": "output", "type": "Dense", "output_shape": [10], "parameters": 16910}
    assert sum(d["parameters"] for d in described) == cnn_explainer_model.count_params() == 19920


def test_cnn_explainer_predicts_red_panda_as_measured(cnn_explainer_model):
    from generator.inputs.images import load_image

    x = load_image(CNN_EXPLAINER / "panda_1.jpeg", (64, 64, 3))
    probabilities = cnn_explainer_model.predict(x[np.newaxis], verbose=0)[0]
    assert int(probabilities.argmax()) == 7 and CNN_EXPLAINER_CLASSES[7] == "red panda"
    assert probabilities[7] == pytest.approx(0.957, abs=0.01)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


# --- TF.js layers models written by the tests -----------------------------------------------

def test_tfjs_sequential_matches_a_directly_built_keras_model(tfjs_model):
    x = random_images(5)
    model = load_model(tfjs_model, ["a", "b", "c"])
    assert [layer.name for layer in model.layers][-2:] == ["logits", "probabilities"]
    expected = keras.activations.softmax(reference_sequential(sequential_weights())(x)).numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def functional_topology(node_format: str):
    def call(*sources):
        if node_format == "list":
            return [[[source, 0, 0, {}] for source in sources]]
        tensors = [{"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": "float32",
                                                                  "keras_history": [source, 0, 0]}}
                   for source in sources]
        return [{"args": [tensors if len(tensors) > 1 else tensors[0]], "kwargs": {}}]

    conv = {"strides": [1, 1], "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1],
            "activation": "relu", "use_bias": True, **INIT}
    return {"class_name": "Model", "config": {
        "name": "branchy",
        "layers": [
            {"name": "image", "class_name": "InputLayer", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 6, 6, 1], "dtype": "float32", "sparse": False, "name": "image"}},
            {"name": "c1", "class_name": "Conv2D", "inbound_nodes": call("image"),
             "config": {"name": "c1", "filters": 2, "kernel_size": [3, 3], **conv}},
            {"name": "c2", "class_name": "Conv2D", "inbound_nodes": call("c1"),
             "config": {"name": "c2", "filters": 2, "kernel_size": [1, 1], **conv}},
            {"name": "sum", "class_name": "Add", "inbound_nodes": call("c1", "c2"), "config": {"name": "sum"}},
            {"name": "gap", "class_name": "GlobalAveragePooling2D", "inbound_nodes": call("sum"),
             "config": {"name": "gap", "data_format": "channels_last"}},
            {"name": "out", "class_name": "Dense", "inbound_nodes": call("gap"),
             "config": {"name": "out", "units": 2, "activation": "softmax", "use_bias": True, **INIT}},
        ],
        "input_layers": [["image", 0, 0]], "output_layers": [["out", 0, 0]]}}


@pytest.mark.parametrize("node_format", ["list", "dict"])
def test_tfjs_functional_model_with_a_merge(tmp_path, node_format):
    rng = np.random.default_rng(4)
    weights = [("c1/kernel", rng.normal(size=(3, 3, 1, 2))), ("c1/bias", rng.normal(size=2)),
               ("c2/kernel", rng.normal(size=(1, 1, 2, 2))), ("c2/bias", rng.normal(size=2)),
               ("out/kernel", rng.normal(size=(2, 2))), ("out/bias", rng.normal(size=2))]
    path = write_tfjs(tmp_path, functional_topology(node_format), weights)
    model = load_model(path, ["no", "yes"], input_range=(-1, 1))
    assert [layer.name for layer in model.layers] == ["pixels", "input_scaling", "c1", "c2", "sum", "gap", "out"]

    w = dict(weights)
    x = random_images(3, (6, 6, 1))
    scaled = x * 2 - 1
    inputs = keras.Input((6, 6, 1))
    a = keras.layers.Conv2D(2, 3, padding="same", activation="relu")
    b = keras.layers.Conv2D(2, 1, padding="same", activation="relu")
    d = keras.layers.Dense(2, activation="softmax")
    h = a(inputs)
    reference = keras.Model(inputs, d(keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([h, b(h)]))))
    a.set_weights([w["c1/kernel"], w["c1/bias"]])
    b.set_weights([w["c2/kernel"], w["c2/bias"]])
    d.set_weights([w["out/kernel"], w["out/bias"]])
    np.testing.assert_allclose(model.predict(x, verbose=0), reference.predict(scaled, verbose=0), rtol=1e-5, atol=1e-6)


def test_uint8_quantized_weights_are_dequantized(tmp_path):
    path = write_tfjs(tmp_path, sequential_topology(), sequential_weights(), quantize=True)
    model = load_tfjs_layers_model(path)
    original = dict(sequential_weights())["logits/kernel"]
    loaded = np.asarray(model.get_layer("logits").kernel)
    step = (original.max() - original.min()) / 255
    assert np.abs(loaded - original).max() <= step / 2 + 1e-6
    assert not np.array_equal(loaded, original.astype(np.float32))


def assert_model_error(path, match, class_names=("a", "b", "c"), **kwargs):
    with pytest.raises(UserError, match=match) as caught:
        load_model(path, list(class_names), **kwargs)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_truncated_shard(tfjs_model):
    shard = tfjs_model.parent / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-10])
    message = assert_model_error(tfjs_model, "truncated")
    assert str(tfjs_model) in message and "group1-shard2of2.bin" in message


def test_missing_shard(tfjs_model):
    (tfjs_model.parent / "group1-shard1of2.bin").unlink()
    assert_model_error(tfjs_model, "weight shard group1-shard1of2.bin not found")


def edit_manifest(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_manifest_shape_that_does_not_fit_the_layer(tfjs_model):
    def transpose_kernel(document):
        document["weightsManifest"][0]["weights"][0]["shape"] = [3, 3, 4, 3]   # same size, wrong shape
    edit_manifest(tfjs_model, transpose_kernel)
    assert_model_error(tfjs_model, r"conv/kernel has shape \[3, 3, 4, 3\] .* needs \[3, 3, 3, 4\]")


def test_manifest_with_a_shard_outside_the_folder(tfjs_model):
    edit_manifest(tfjs_model, lambda d: d["weightsManifest"][0]["paths"].__setitem__(0, "../secret.bin"))
    assert_model_error(tfjs_model, "must stay inside the model's folder")


def test_unsupported_layers_and_options_are_refused(tmp_path):
    layers = keras2_sequential_layers()
    layers.insert(1, {"class_name": "Lambda", "config": {"name": "code", "function": "print('hi')"}})
    path = write_tfjs(tmp_path / "lambda", sequential_topology(layers), sequential_weights())
    assert_model_error(path, "layer 'code' of type Lambda is not supported")

    layers = keras2_sequential_layers()
    layers[0]["config"]["data_format"] = "channels_first"
    path = write_tfjs(tmp_path / "nchw", sequential_topology(layers), sequential_weights())
    assert_model_error(path, "only channels_last")

    layers = keras2_sequential_layers()
    layers[-1]["config"]["activation"] = "hard_sigmoid"
    path = write_tfjs(tmp_path / "hard", sequential_topology(layers), sequential_weights())
    assert_model_error(path, "activation 'hard_sigmoid'")


def test_json_that_is_not_a_layers_model(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"hello": "world"}))
    assert_model_error(path, "not a TensorFlow.js layers model")
    path.write_text("{ not json")
    assert_model_error(path, "not valid JSON")
    path.write_text(json.dumps({"format": "graph-model", "modelTopology": {}, "weightsManifest": []}))
    assert_model_error(path, "graph model")


def test_text_named_keras_and_random_h5(tmp_path):
    text = tmp_path / "model.keras"
    text.write_text("this is not a model")
    assert_model_error(text, "not a .keras file")
    noise = tmp_path / "model.h5"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_model_error(noise, "not an HDF5")
    import h5py
    weights_only = tmp_path / "weights.h5"
    with h5py.File(weights_only, "w") as handle:
        handle["x"] = np.zeros(3)
    assert_model_error(weights_only, "cannot be loaded safely")
    assert_model_error(tmp_path / "absent.keras", "model file not found")
    assert_model_error(tmp_path, "folder without model.json")


# --- .keras and .h5 round trips and the pipeline contract -----------------------------------

def small_keras_model(final_activation="softmax", n_classes=3):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3, name="conv"), keras.layers.Activation("relu", name="relu"),
        keras.layers.MaxPooling2D(2, name="pool"), keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(n_classes, activation=final_activation, name="output")])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_file_round_trip_gives_identical_predictions(tmp_path, suffix):
    model = small_keras_model()
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = load_model(path, ["a", "b", "c"])
    x = random_images(4, (8, 8, 1))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [layer.name for layer in loaded.layers] == ["conv", "relu", "pool", "flatten", "output"]


def with_middle(*middle, activation="softmax", n_classes=2):
    return keras.Sequential([keras.Input((4, 4, 1)), *middle, keras.layers.Flatten(name="flatten"),
                             keras.layers.Dense(n_classes, activation=activation, name="output")])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_in_a_keras_file_is_refused_by_name(tmp_path, suffix):
    path = tmp_path / f"lambda{suffix}"
    with_middle(keras.layers.Lambda(lambda t: t * 2, name="double")).save(path)
    message = assert_model_error(path, "Lambda", class_names=("a", "b"))
    assert message == f"model {path}: layer 'double' (Lambda) runs Python code from the file; refused"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_inside_a_nested_model_is_found(tmp_path, suffix):
    inner = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Lambda(lambda t: t + 1, name="lambda_3")],
                             name="inner")
    path = tmp_path / f"nested{suffix}"
    with_middle(inner).save(path)
    assert_model_error(path, r"layer 'lambda_3' \(Lambda\) runs Python code from the file; refused$",
                       class_names=("a", "b"))


class Doubling(keras.layers.Layer):
    """A layer class of the user's own: its code is not in the file, so it cannot be loaded."""

    def call(self, inputs):
        return inputs * 2


@keras.saving.register_keras_serializable(package="Mine")
class RegisteredDoubling(Doubling):
    pass


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("layer_class", [Doubling, RegisteredDoubling])
def test_custom_layer_class_is_refused_by_name(tmp_path, suffix, layer_class):
    path = tmp_path / f"custom{suffix}"
    with_middle(layer_class(name="times_two")).save(path)
    message = assert_model_error(path, r"layer 'times_two' \((Mine>)?\w*Doubling\) is not part of Keras but custom code",
                                 class_names=("a", "b"))
    assert message.endswith("which is not loaded; refused")


def custom_activation(x):
    return keras.ops.relu(x)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_custom_activation_function_is_refused_by_layer_and_option(tmp_path, suffix):
    path = tmp_path / f"activation{suffix}"
    with_middle(activation=custom_activation).save(path)
    assert_model_error(path, r"layer 'output' \(Dense\) option 'activation' is the function 'custom_activation'",
                       class_names=("a", "b"))


def rewrite_keras_config(path: Path, change) -> None:
    """Apply ``change`` to the config.json inside a .keras archive, keeping the other members."""
    import zipfile
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_unknown_layer_class_in_a_keras_file_is_refused_by_name(tmp_path):
    path = tmp_path / "unknown.keras"
    small_keras_model().save(path)

    def rename_pool(config):
        pool = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "pool")
        pool["class_name"] = "FancyPooling2D"
    rewrite_keras_config(path, rename_pool)
    message = assert_model_error(path, r"layer 'pool' \(FancyPooling2D\) is not part of Keras but custom code")
    assert "could not be deserialized" not in message


def test_unknown_layer_class_in_an_h5_file_is_refused_by_name(tmp_path):
    import h5py
    path = tmp_path / "unknown.h5"
    small_keras_model().save(path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "Wobble"
        handle.attrs["model_config"] = json.dumps(config)
    assert_model_error(path, r"layer 'conv' \(Wobble\) is not part of Keras")


def test_keras_archive_without_config_is_refused(tmp_path):
    import zipfile
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.weights.h5", b"")
    assert_model_error(path, "zip archive without config.json")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_functional_model_of_standard_layers_passes_the_check(tmp_path, suffix):
    keras.utils.set_random_seed(3)
    pixels = keras.Input((8, 8, 3), name="image")
    scaled = keras.layers.Rescaling(2.0, offset=-1.0, name="rescale")(pixels)
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a",
                            kernel_regularizer=keras.regularizers.L2(1e-4))(scaled)
    b = keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(4, 1, name="b")(a))
    merged = keras.layers.Add(name="sum")([a, keras.layers.ReLU(name="relu")(b)])
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(keras.layers.Dropout(0.2, name="drop")(merged))
    model = keras.Model(pixels, keras.layers.Dense(3, activation="softmax", name="out")(pooled))
    path = tmp_path / f"functional{suffix}"
    model.save(path)
    loaded = load_model(path, ["a", "b", "c"])
    x = random_images(2, (8, 8, 3))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_input_range_adds_a_rescaling_layer(tmp_path):
    model = small_keras_model()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path, ["a", "b", "c"], input_range=(0, 255))
    assert loaded.layers[0].name == "input_scaling"
    x = random_images(3, (8, 8, 1))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x * 255, verbose=0), rtol=1e-5, atol=1e-6)
    assert_model_error(path, "low < high", input_range=(1, 0))


def test_logits_get_a_softmax_and_other_activations_are_refused(tmp_path):
    logits = small_keras_model("linear")
    logits.save(tmp_path / "logits.keras")
    loaded = load_model(tmp_path / "logits.keras", ["a", "b", "c"])
    assert loaded.layers[-1].name == "probabilities"
    x = random_images(3, (8, 8, 1))
    np.testing.assert_allclose(loaded.predict(x, verbose=0).sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               keras.activations.softmax(logits(x)).numpy(), rtol=1e-5, atol=1e-6)
    small_keras_model("sigmoid").save(tmp_path / "sigmoid.keras")
    assert_model_error(tmp_path / "sigmoid.keras", "activation is 'sigmoid'")


def test_class_count_must_match_the_output(tmp_path):
    small_keras_model().save(tmp_path / "m.keras")
    assert_model_error(tmp_path / "m.keras", "outputs 3 classes but 2 class names", class_names=("a", "b"))


def test_describe_model_counts_every_parameter():
    model = small_keras_model()
    described = describe_model(model)
    assert [d["name"] for d in described] == ["conv", "relu", "pool", "flatten", "output"]
    assert described[2]["output_shape"] == [3, 3, 3] and described[3]["output_shape"] == [27]
    assert sum(d["parameters"] for d in described) == model.count_params() == 30 + 84


def test_wrapping_keeps_the_original_usable(tfjs_model):
    base = load_tfjs_layers_model(tfjs_model)
    before = copy.deepcopy([w.numpy() for w in base.weights])
    from generator.inputs.model_import import fit_to_pipeline
    wrapped = fit_to_pipeline(base, ["a", "b", "c"], (0, 255))
    assert wrapped.layers[0].name == "input_scaling" and wrapped.layers[-1].name == "probabilities"
    for a, b in zip(before, [w.numpy() for w in base.weights]):
        np.testing.assert_array_equal(a, b)
