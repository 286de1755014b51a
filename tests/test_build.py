"""The whole pipeline on a small project: manifest, figures, what a rebuild redoes, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.errors import UserError
from generator.inputs.config import load_config
from generator.pipeline import run_build

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def timings_of(root: Path) -> dict:
    return json.loads((root / "build" / "timings.json").read_text())


def build_in_a_process(config: Path) -> subprocess.CompletedProcess:
    """run_build in a fresh interpreter; prints whether TensorFlow (or Keras) got imported."""
    script = ("import sys; from generator.pipeline import run_build; from generator.inputs.config import load_config; "
              f"run_build(load_config({str(config)!r}), verbose=True); "
              "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def files_under(folder: Path) -> dict[str, Path]:
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}


def test_build_rebuild_add_an_image_and_keep_going(project, capsys):
    root = project().parent.parent
    manifest = run_build(load_config(root / "site_config" / "site.yml"))
    experiment = manifest["experiments"][0]
    assert [image["id"] for image in experiment["images"]] == ["ankle-boot-5420", "trouser-8183"]
    site = root / "site"
    assert (site / "index.html").is_file() and (site / "manifest.json").is_file()
    languages = manifest["site"]["languages"]
    for image in experiment["images"]:
        assert image["clean"]["label"] in experiment["dataset"]["class_names"]
        assert [layer["name"] for layer in image["layers"]][:2] == ["input", "conv_1_1"]
        assert list(image["figures"]) == languages
        for lang in languages:
            for key, figure in image["figures"][lang].items():
                assert (root / "build" / "docs" / lang / figure["path"]).is_file(), key
                assert figure["alt"], key
    assert {"training_curves", "training_gif", "first_layer_filters"} <= set(experiment["figures"]["en"])
    assert experiment["training"]["probe_image"]["label"] in experiment["dataset"]["class_names"]
    timings = timings_of(root)
    assert {"model", "images", "figures", "pages", "site"} <= set(timings["stages"])
    assert timings["images"]["analysed"] == 2 and timings["images"]["drawn"] == 2 * len(languages)
    log = capsys.readouterr().err
    assert "where the time went" in log and "2 analysed" in log

    # Nothing changed: the rebuild says so and stops, without TensorFlow and without touching site/.
    before = {name: path.stat().st_mtime_ns for name, path in files_under(site).items()}
    rebuilt = build_in_a_process(root / "site_config" / "site.yml")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "site is up to date" in rebuilt.stderr and "[pages]" not in rebuilt.stderr
    assert rebuilt.stdout.split() == ["False", "False"]
    assert {name: path.stat().st_mtime_ns for name, path in files_under(site).items()} == before

    # Only the title changed: pages and MkDocs run, nothing is drawn, no figure is copied: the
    # figures of build/docs are the cache's own files (hard links).
    retitled = project(site={"title": "Another title"})
    rebuilt = build_in_a_process(retitled)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.split() == ["False", "False"] and "[site]" in rebuilt.stderr
    assert "Another title" in (site / "en" / "index.html").read_text()
    assert timings_of(root)["images"]["drawn"] == 0
    cache_files = {path.stat().st_ino for path in (root / "build" / "cache" / "figures").rglob("*.png")}
    docs_figures = [path for path in (root / "build" / "docs").rglob("figures/**/*.png")]
    assert docs_figures and all(path.stat().st_ino in cache_files for path in docs_figures)

    # One more image: the model is reused, only the new image is computed and drawn.
    shutil.copy(REPO / "content" / "images" / "bag-1331.png", root / "images")
    config = project(images=[{"path": "images/ankle-boot-5420.png", "label": "Ankle boot"},
                             {"path": "images/trouser-8183.png", "label": "Trouser"},
                             {"path": "images/bag-1331.png", "label": "Bag", "title": "A <b>bag</b> | x"}])
    manifest = run_build(load_config(config))
    log = capsys.readouterr().err
    experiment = manifest["experiments"][0]
    assert experiment["cache"]["model"] == "hit" and "training Tiny VGG" not in log
    assert "ankle-boot-5420: " in log and log.count("(computed)") == 1 and log.count("(cached)") == 2
    assert experiment["images"][2]["title"]["en"] == "A <b>bag</b> | x"
    assert timings_of(root)["images"]["analysed"] == 1
    assert timings_of(root)["images"]["drawn"] == len(languages)

    # A broken image: without --keep-going the build stops and the old site stays.
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    broken = project(images=[{"path": "images/ankle-boot-5420.png"}, {"path": "images/broken.png"}])
    before = (site / "index.html").read_bytes()
    with pytest.raises(UserError, match="broken.png"):
        run_build(load_config(broken))
    assert (site / "index.html").read_bytes() == before

    # With --keep-going the other images are built and the failure is listed on the home page.
    manifest = run_build(load_config(broken), keep_going=True)
    experiment = manifest["experiments"][0]
    assert [image["id"] for image in experiment["images"]] == ["ankle-boot-5420"]
    assert len(experiment["failures"]) == 1 and "broken.png" in experiment["failures"][0]["message"]
    assert "broken.png" in (site / "en" / "index.html").read_text()


def test_drawing_in_parallel_gives_the_bytes_of_a_serial_build(project, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    serial = project(site={"languages": ["en", "zh"]}).parent.parent
    parallel = tmp_path / "parallel"
    shutil.copytree(serial, parallel)
    run_build(load_config(serial / "site_config" / "site.yml"), jobs=1)
    # The same model for both (training is deterministic too, but that is another test's job).
    shutil.copytree(serial / "build" / "cache" / "model", parallel / "build" / "cache" / "model")
    run_build(load_config(parallel / "site_config" / "site.yml"), jobs=2)
    assert timings_of(serial)["images"]["processes"] == 1 and timings_of(parallel)["images"]["processes"] == 2
    serial_docs, parallel_docs = files_under(serial / "build" / "docs"), files_under(parallel / "build" / "docs")
    assert sorted(serial_docs) == sorted(parallel_docs)
    assert sum(1 for name in serial_docs if name.endswith((".png", ".gif"))) > 40
    different = [name for name in serial_docs if serial_docs[name].read_bytes() != parallel_docs[name].read_bytes()]
    # The MkDocs configs name the path from their folder to the theme, which differs between
    # the two projects; every figure, page and the manifest must not differ.
    assert different == ["mkdocs-en.yml", "mkdocs-zh.yml"]
    assert (serial / "site" / "manifest.json").read_bytes() == (parallel / "site" / "manifest.json").read_bytes()


def test_imported_model_with_other_layers_gets_per_layer_figures(tmp_path):
    import keras
    import numpy as np
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
        "site": {"languages": ["en"]},
        "data": {"source": "none"},
        "model": {"source": "file", "path": "other.keras", "class_names": ["cat", "dog", "fish"]},
        "attack": {"epsilon_max": 0.5},
        "figures": {"zoom_layer": "rectify", "zoom_channel": 1},
        "images": [{"path": "wide.png"}, {"path": "small.jpg", "label": "fish", "attack": {"target": "cat"}}],
    }))
    manifest = run_build(load_config(config))
    experiment = manifest["experiments"][0]
    assert experiment["dataset"] is None and experiment["training"] is None
    assert experiment["model"]["source"] == "imported"
    first, second = experiment["images"]
    assert [layer["name"] for layer in first["layers"]] == ["input", "features", "norm", "rectify", "mixer", "pool",
                                                            "scores"]
    assert {"grid_features", "grid_norm", "grid_rectify", "grid_mixer"} <= set(first["figures"]["en"])
    assert "grid_pool" not in first["figures"]["en"]
    assert second["attack"]["targeted"] and second["attack"]["target"] == "cat"
    if second["attack"]["succeeded"]:
        assert second["attack"]["adversarial"]["label"] == "cat"
    experiment_id = experiment["id"]
    assert (tmp_path / "site" / "en" / experiment_id / "small" / "index.html").is_file()
