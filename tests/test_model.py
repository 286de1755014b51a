import numpy as np
import pytest

from generator.inputs.datasets import load_idx_dataset
from generator.analysis.training import build_tiny_vgg, check_fits, layer_names, train
from generator.inputs.model_import import describe_model

TINY_VGG = ["conv_1_1", "relu_1_1", "conv_1_2", "relu_1_2", "max_pool_1",
            "conv_2_1", "relu_2_1", "conv_2_2", "relu_2_2", "max_pool_2", "flatten", "output"]


def test_tiny_vgg_names_and_shapes():
    model = build_tiny_vgg((28, 28, 1), 10)
    layers = describe_model(model)
    assert [layer["name"] for layer in layers] == TINY_VGG == layer_names(2)
    shapes = {layer["name"]: layer["output_shape"] for layer in layers}
    assert shapes["conv_1_1"] == [26, 26, 10] and shapes["max_pool_1"] == [12, 12, 10]
    assert shapes["max_pool_2"] == [4, 4, 10] and shapes["flatten"] == [160] and shapes["output"] == [10]
    probabilities = model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_blocks_filters_and_input_shape_are_configurable():
    model = build_tiny_vgg((64, 64, 3), 4, blocks=3, filters=6)
    layers = describe_model(model)
    assert [layer["name"] for layer in layers] == layer_names(3)
    assert layers[0]["output_shape"] == [62, 62, 6] and layers[-1]["output_shape"] == [4]
    assert check_fits((64, 64, 3), 3) is None
    assert "too small for 3 blocks" in check_fits((28, 28, 1), 3)


@pytest.mark.slow
def test_training_is_deterministic(small_idx_dir):
    data = load_idx_dataset(small_idx_dir)

    def weights_after_training():
        model = build_tiny_vgg(data.input_shape, 10, seed=5)
        result = train(model, data.x_train, data.y_train, data.x_test, data.y_test, epochs=2, batch_size=32,
                       learning_rate=0.004, seed=5, verbose=0)
        assert len(result.snapshots) == 2 and set(result.history) >= {"loss", "accuracy", "val_accuracy"}
        return model.get_weights(), result

    first, result = weights_after_training()
    second, _ = weights_after_training()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert all(np.array_equal(a, b) for a, b in zip(result.snapshots[-1], first))
    assert not all(np.array_equal(a, b) for a, b in zip(result.snapshots[0], first))


def test_a_saved_model_has_the_same_bytes_every_time(tmp_path):
    """Two models with the same weights, saved at different moments, give one file: no date of
    saving, no memory address; Keras loads it to the same predictions."""
    import zipfile

    from generator.stages.model import load_saved, save_model

    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    files = []
    for attempt in range(2):
        model = build_tiny_vgg((28, 28, 1), 10, seed=3)
        files.append(tmp_path / f"model{attempt}.keras")
        save_model(model, files[-1])
    assert files[0].read_bytes() == files[1].read_bytes()
    with zipfile.ZipFile(files[0]) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"date_saved" not in archive.read("metadata.json")
    np.testing.assert_array_equal(load_saved(files[0]).predict(x, verbose=0), model.predict(x, verbose=0))
