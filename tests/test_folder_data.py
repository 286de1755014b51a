"""Folder datasets: one sub-folder per class, image policy, stratified seeded split, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from generator.errors import UserError
from generator.inputs.folder_data import load_folder_dataset, read_class_folders, stratified_split

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def make_folder(root, counts, size=(12, 8), mode="RGB"):
    """One sub-folder per class, each image a flat colour whose brightness numbers the file."""
    for name, count in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count):
            colour = tuple(int(c * (0.5 + i / (2 * count))) for c in COLOURS[name])
            image = Image.new("RGB", size, colour)
            image.convert(mode).save(folder / f"{name}_{i:02d}.png")
    return root


def test_classes_sorted_shape_inferred_and_labels_match_pictures(tmp_path):
    root = make_folder(tmp_path / "data", {"red": 10, "blue": 10, "green": 5})
    (root / "red" / "notes.txt").write_text("not an image, ignored")
    (root / ".hidden").mkdir()
    data = load_folder_dataset(root, None, validation_split=0.2, seed=3)
    assert data.class_names == ["blue", "green", "red"]
    assert data.source == "folder" and data.name == "data"
    assert data.x_train.shape[1:] == (8, 12, 3) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64
    assert len(data.x_train) + len(data.x_test) == 25
    assert np.bincount(data.y_test, minlength=3).tolist() == [2, 1, 2]
    # each picture's dominant colour is its class's colour
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        dominant = x.mean(axis=(1, 2)).argmax(axis=1)      # 0 red, 1 green, 2 blue channel
        assert (dominant == np.array([2, 1, 0])[y]).all()


def test_split_is_reproducible_for_a_seed_and_differs_across_seeds(tmp_path):
    root = make_folder(tmp_path / "data", {"red": 12, "blue": 12})
    a = load_folder_dataset(root, (4, 4, 3), 0.25, seed=1)
    b = load_folder_dataset(root, (4, 4, 3), 0.25, seed=1)
    c = load_folder_dataset(root, (4, 4, 3), 0.25, seed=2)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert a.x_test.shape == (6, 4, 4, 3)
    assert not np.array_equal(np.sort(a.x_test.mean(axis=(1, 2, 3))), np.sort(c.x_test.mean(axis=(1, 2, 3))))


def test_given_shape_grey_model_and_explicit_class_order(tmp_path):
    root = make_folder(tmp_path / "data", {"red": 3, "green": 3}, mode="L")
    x, y, names, files = read_class_folders(root, ["red", "green"], None)
    assert names == ["red", "green"] and x.shape == (6, 8, 12, 1) and y.tolist() == [0, 0, 0, 1, 1, 1]
    data = load_folder_dataset(root, (5, 5, 3), 0.5, seed=0, class_names=["red", "green"])
    assert data.x_train.shape[1:] == (5, 5, 3)


def test_stratified_split_keeps_one_image_each_side():
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    train, test = stratified_split(labels, 0.1, seed=0)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[test], minlength=3).tolist() == [1, 1, 0]


def test_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(UserError, match="data folder not found"):
        load_folder_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class sub-folders"):
        load_folder_dataset(tmp_path / "empty")
    root = make_folder(tmp_path / "data", {"red": 2, "blue": 2})
    (root / "green").mkdir()
    (root / "green" / "readme.txt").write_text("no pictures here")
    with pytest.raises(UserError, match=r"class folder .*green has no images"):
        load_folder_dataset(root)
    (root / "green" / "bad.jpg").write_text("not a jpeg")
    with pytest.raises(UserError, match=r"bad\.jpg.*not a PNG, JPEG"):
        load_folder_dataset(root, (4, 4, 3))
    with pytest.raises(UserError, match="no sub-folder for class 'gren' \\(did you mean 'green'\\?\\)"):
        load_folder_dataset(root, class_names=["red", "gren"])
    with pytest.raises(UserError, match="validation_split"):
        load_folder_dataset(root, (4, 4, 3), validation_split=1.0)


def test_a_single_class_is_refused(tmp_path):
    root = make_folder(tmp_path / "data", {"red": 3})
    with pytest.raises(UserError, match="only one class"):
        load_folder_dataset(root)
