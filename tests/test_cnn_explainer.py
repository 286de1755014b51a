"""The article's experiment on CNN Explainer's own Tiny VGG and photos (skips without ../shared)."""

import json

import pytest

from conftest import CNN_EXPLAINER, REPO, copy_config

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CNN_EXPLAINER / "model.json").is_file(), reason="../shared fixtures absent")]


def test_red_panda_page_reproduces_the_article(tmp_path):
    from generator.pipeline import run_build
    from generator.inputs.config import load_config

    config = load_config(copy_config(REPO / "site_config" / "cnn_explainer.yml", tmp_path))
    config.images = config.images[:2]  # the red panda and one more keep this test short
    manifest = run_build(config)
    panda = manifest["images"][0]
    assert panda["id"] == "panda-1" and panda["true_label"] == "red panda"
    assert panda["clean"]["label"] == "red panda" and panda["clean"]["probability"] == pytest.approx(0.957, abs=0.01)
    # The article's search stops at its first step, epsilon 0.01, with the label ladybug.
    attack = panda["attack"]
    assert attack["fooled"] and attack["steps"] == 1 and attack["epsilon"] == pytest.approx(0.01)
    assert attack["adversarial"]["label"] == "ladybug"
    assert attack["refined_epsilon"] == pytest.approx(0.0089, abs=0.0005)
    assert [layer["name"] for layer in panda["layers"]][1:] == [layer["name"] for layer in manifest["model"]["layers"]]

    page = (tmp_path / "site" / "en" / "examples" / "panda-1" / "index.html").read_text()
    for text in ("red panda", "ladybug", "0.0100"):
        assert text in page
    published = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert published["images"][0]["attack"]["epsilon"] == attack["epsilon"]
