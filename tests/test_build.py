"""The whole pipeline on a small project: manifest, figures, cache behaviour, bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator.pipeline import run_build
from generator.inputs.config import load_config
from generator.errors import UserError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def manifest_of(config_path: Path) -> dict:
    return json.loads((config_path.parent.parent / "build" / "manifest.json").read_text())


def test_build_add_an_image_and_keep_going(project, capsys):
    root = project().parent.parent
    manifest = run_build(load_config(root / "site_config" / "site.yml"))
    assert [image["id"] for image in manifest["images"]] == ["ankle-boot-5420", "trouser-8183"]
    site = root / "site"
    assert (site / "index.html").is_file() and (site / "manifest.json").is_file()
    for image in manifest["images"]:
        assert image["clean"]["label"] in manifest["dataset"]["class_names"]
        assert [layer["name"] for layer in image["layers"]][:2] == ["input", "conv_1_1"]
        for key, figure in image["figures"].items():
            assert (root / "build" / "docs" / figure["path"]).is_file(), key
            assert figure["alt"], key
    assert {"training_curves", "training_gif", "first_layer_filters"} <= set(manifest["figures"])
    assert manifest["training"]["probe_image"]["label"] in manifest["dataset"]["class_names"]
    capsys.readouterr()

    # One more image: the model is reused, only the new image is computed.
    shutil.copy(REPO / "content" / "images" / "bag-1331.png", root / "images")
    config = project(images=[{"path": "images/ankle-boot-5420.png", "label": "Ankle boot"},
                             {"path": "images/trouser-8183.png", "label": "Trouser"},
                             {"path": "images/bag-1331.png", "label": "Bag", "title": "A <b>bag</b> | x"}])
    manifest = run_build(load_config(config))
    log = capsys.readouterr().err
    assert manifest["cache"]["model"] == "hit" and "training Tiny VGG" not in log
    assert "ankle-boot-5420: " in log and log.count("(computed)") == 1 and log.count("(cached)") == 2
    assert manifest["images"][2]["title"] == "A <b>bag</b> | x"

    # Nothing new to compute: the rebuild never imports TensorFlow.
    script = ("import sys; from generator.pipeline import run_build; from generator.inputs.config import load_config; "
              f"run_build(load_config({str(config)!r})); print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    rebuilt = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.split() == ["False", "False"]

    # A broken image: without --keep-going the build stops and the old site stays.
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    broken = project(images=[{"path": "images/ankle-boot-5420.png"}, {"path": "images/broken.png"}])
    before = (site / "index.html").read_bytes()
    with pytest.raises(UserError, match="broken.png"):
        run_build(load_config(broken))
    assert (site / "index.html").read_bytes() == before

    # With --keep-going the other images are built and the failure is listed on the home page.
    manifest = run_build(load_config(broken), keep_going=True)
    assert [image["id"] for image in manifest["images"]] == ["ankle-boot-5420"]
    assert len(manifest["failures"]) == 1 and "broken.png" in manifest["failures"][0]["message"]
    home = (site / "en" / "index.html").read_text()
    assert "broken.png" in home


def test_imported_model_with_other_layers_gets_per_layer_figures(tmp_path):
    import keras
    import numpy as np
    import yaml
    from PIL import Image

    keras.utils.set_random_seed(3)
    inputs = keras.Input((20, 20, 3))
    x = keras.layers.Conv2D(4, 3, name="features")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.ReLU(name="rectify")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, name="mixer")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="scores")(x)
    keras.Model(inputs, outputs, name="other").save(tmp_path / "other.keras")
    rng = np.random.default_rng(0)
    for name, size in (("wide.png", (40, 30)), ("small.jpg", (12, 12))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "site_config").mkdir()
    config = tmp_path / "site_config" / "site.yml"
    config.write_text(yaml.safe_dump({
        "data": {"source": "none"},
        "model": {"source": "file", "path": "other.keras", "class_names": ["cat", "dog", "fish"]},
        "attack": {"epsilon_max": 0.5},
        "images": [{"path": "wide.png"}, {"path": "small.jpg", "label": "fish", "attack": {"target": "cat"}}],
    }))
    manifest = run_build(load_config(config))
    assert manifest["dataset"] is None and manifest["training"] is None and manifest["model"]["source"] == "imported"
    first, second = manifest["images"]
    assert [layer["name"] for layer in first["layers"]] == ["input", "features", "norm", "rectify", "mixer", "pool",
                                                            "scores"]
    assert {"grid_features", "grid_norm", "grid_rectify", "grid_mixer"} <= set(first["figures"])
    assert "grid_pool" not in first["figures"]
    assert second["attack"]["targeted"] and second["attack"]["target"] == "cat"
    if second["attack"]["succeeded"]:
        assert second["attack"]["adversarial"]["label"] == "cat"
    assert (tmp_path / "site" / "en" / "examples" / "small" / "index.html").is_file()
