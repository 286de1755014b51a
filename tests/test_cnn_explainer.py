"""The article, out of the box: CNN Explainer's model and photos as shipped, and the default site
telling the red panda's story, with a model trained here as its second experiment."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from conftest import CNN_EXPLAINER, SHARED_CNN_EXPLAINER

ARTICLE_CLASSES = ["lifeboat", "ladybug", "pizza", "bell pepper", "school bus", "koala", "espresso", "red panda",
                   "orange", "sport car"]


def shipped_files() -> dict[str, str]:
    lines = (CNN_EXPLAINER / "SHA256SUMS").read_text().splitlines()
    return {name.strip(): digest for digest, name in (line.split(maxsplit=1) for line in lines)}


def test_the_shipped_model_and_photos_match_their_checksums():
    listed = shipped_files()
    assert {"model.json", "group1-shard1of1.bin", "LICENSE", "panda_2.jpeg"} <= set(listed)
    assert len([name for name in listed if name.endswith(".jpeg")]) == 21
    for name, digest in listed.items():
        assert hashlib.sha256((CNN_EXPLAINER / name).read_bytes()).hexdigest() == digest, name
    readme = (CNN_EXPLAINER / "README.md").read_text()
    assert "poloclub/cnn-explainer" in readme and "MIT" in readme


@pytest.mark.skipif(not SHARED_CNN_EXPLAINER.is_dir(), reason="../shared is not here")
def test_the_shipped_files_are_copies_of_cnn_explainers():
    for name in shipped_files():
        assert (CNN_EXPLAINER / name).read_bytes() == (SHARED_CNN_EXPLAINER / name).read_bytes(), name


@pytest.mark.slow
def test_the_article_search_on_the_shipped_model():
    from generator.analysis.attack import AttackSettings
    from generator.analysis.record import analyse_image
    from generator.inputs.images import load_image
    from generator.inputs.model_import import load_model

    model = load_model(CNN_EXPLAINER / "model.json", ARTICLE_CLASSES, (0, 1))
    facts = {}
    for name in ("panda_2", "panda_1"):
        record, _ = analyse_image(model, load_image(CNN_EXPLAINER / f"{name}.jpeg", (64, 64, 3)), 7, AttackSettings(),
                                  ARTICLE_CLASSES, noise_draws=2, frames=30)
        facts[name] = record
    # "小熊猫 vs 车子": the red panda becomes a sports car at the search's first step.
    panda = facts["panda_2"]
    assert panda["clean"]["label"] == "red panda" and panda["clean"]["probability"] == pytest.approx(0.49, abs=0.02)
    assert panda["attack"]["outcome"] == "first_step" and panda["attack"]["epsilon"] == 0.01
    assert panda["attack"]["adversarial"]["label"] == "sport car"
    # panda_1: red panda (0.957) -> ladybug at 0.01; scanning from 0 it changes at about 0.0089.
    other = facts["panda_1"]
    assert other["clean"]["probability"] == pytest.approx(0.957, abs=0.005)
    assert other["attack"]["epsilon"] == 0.01 and other["attack"]["adversarial"]["label"] == "ladybug"
    assert other["attack"]["threshold"] == pytest.approx(0.0089, abs=0.0002)


@pytest.mark.slow
def test_the_default_site_tells_the_red_panda_story(built_site):
    manifest = json.loads((built_site / "site" / "manifest.json").read_text("utf-8"))
    article, trained = manifest["experiments"]
    panda = article["images"][0]
    assert (article["id"], panda["id"]) == ("article", "panda-2")
    assert panda["attack"]["epsilon"] == 0.01 and panda["attack"]["adversarial"]["label"] == "sport car"
    chosen = panda["figures"]["zh"]["zoom_chosen"]
    assert (chosen["layer"], chosen["channel"], chosen["unit"]) == ("max_pool_1", 2, "channel")
    assert article["model"]["class_labels"]["zh"][7] == "小熊猫" and article["model"]["class_labels"]["zh"][9] == "跑车"
    assert len(article["images"]) == 21
    # The second experiment trained here: a training history and its figures.
    assert trained["training"]["history"]["loss"] and trained["training"]["test_accuracy"] > 0.8
    assert {"training_curves", "training_gif", "first_layer_filters", "robustness"} <= set(trained["figures"]["en"])
    homes = {lang: (built_site / "build" / "docs" / lang / "index.md").read_text("utf-8") for lang in ("zh", "en")}
    assert "小熊猫" in homes["zh"] and "跑车" in homes["zh"] and "0.0100" in homes["zh"]
    assert "red panda" in homes["en"] and "sport car" in homes["en"] and "0.0100" in homes["en"]


@pytest.mark.slow
def test_the_standalone_script_finds_what_the_site_shows(built_site):
    """The downloadable script, run on the downloadable model, gives the manifest's epsilon and label."""
    manifest = json.loads((built_site / "site" / "manifest.json").read_text("utf-8"))
    downloads = built_site / "site" / "downloads"
    for experiment in manifest["experiments"]:
        image = experiment["images"][0]
        result = subprocess.run([sys.executable, str(downloads / "fgsm_search.py"),
                                 str(downloads / experiment["id"] / "model.keras"), str(built_site / image["source"])],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        attack, clean = image["attack"], image["clean"]
        assert result.stdout.strip() == (f"{clean['label']} ({clean['index']}) -> {attack['adversarial']['label']} "
                                         f"({attack['adversarial']['index']}) at epsilon {attack['epsilon']:.4f}")
