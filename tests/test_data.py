import gzip

import numpy as np
import pytest

from generator.inputs.datasets import FASHION_MNIST_CLASSES, load_embedded, load_idx_dataset, read_idx, write_idx
from generator.errors import UserError


def test_embedded_subset_is_stratified_and_large_enough():
    data = load_embedded()
    assert data.class_names == FASHION_MNIST_CLASSES
    assert data.input_shape == (28, 28, 1)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    train_counts = np.bincount(data.y_train, minlength=10)
    test_counts = np.bincount(data.y_test, minlength=10)
    assert train_counts.min() == train_counts.max() >= 500
    assert test_counts.min() == test_counts.max() >= 100
    # Name, provenance and licence in each site language, the Chinese in Chinese punctuation.
    for text in (data.name, data.provenance, data.licence):
        assert set(text) == {"en", "zh"}
    assert "Fashion-MNIST" in data.name["zh"] and "（" in data.name["zh"] and "(" not in data.name["zh"]
    assert "Fashion-MNIST" in data.provenance["en"] and "Fashion-MNIST" in data.provenance["zh"]
    assert data.licence["en"].startswith("MIT") and data.licence["zh"] == "MIT（Zalando SE）"


def test_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), array)
    (tmp_path / "plain").write_bytes(gzip.decompress((tmp_path / "a.gz").read_bytes()))
    assert np.array_equal(read_idx(tmp_path / "plain"), array)


def test_idx_errors_name_the_file(tmp_path):
    (tmp_path / "text").write_text("hello world")
    with pytest.raises(UserError, match="not an IDX file: .*text"):
        read_idx(tmp_path / "text")
    write_idx(tmp_path / "full.gz", np.zeros((4, 5, 5), np.uint8))
    raw = gzip.decompress((tmp_path / "full.gz").read_bytes())
    (tmp_path / "cut").write_bytes(raw[:-7])
    with pytest.raises(UserError, match="cut is truncated or damaged"):
        read_idx(tmp_path / "cut")
    with pytest.raises(UserError, match="IDX directory .* has no train-images-idx3-ubyte"):
        load_idx_dataset(tmp_path)


def test_idx_directory_loader(small_idx_dir):
    data = load_idx_dataset(small_idx_dir)
    assert data.x_train.shape == (300, 28, 28, 1) and data.x_test.shape == (100, 28, 28, 1)
    assert data.class_names == FASHION_MNIST_CLASSES
    assert load_idx_dataset(small_idx_dir).fingerprint() == data.fingerprint()
    with pytest.raises(UserError, match="10 classes but 2 class names"):
        load_idx_dataset(small_idx_dir, ["a", "b"])
