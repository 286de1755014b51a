"""Sites in one language: `site.languages` chooses them and their order."""

from __future__ import annotations

import json

import pytest

from generator.inputs.config import load_config
from generator.pipeline import run_build

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("languages", [["en"], ["zh"]])
def test_a_site_in_one_language(project, languages):
    config_file = project(site={"languages": languages, "title": {"zh": "只有中文", "en": "English only"}})
    run_build(load_config(config_file))
    site = config_file.parent.parent / "site"
    (lang,) = languages
    other = "zh" if lang == "en" else "en"
    assert (site / lang / "index.html").is_file() and not (site / other).exists()
    root = (site / "index.html").read_text("utf-8")
    assert f'<html lang="{lang}">' in root and f"url={lang}/" in root
    home = (site / lang / "index.html").read_text("utf-8")
    assert f'lang="{lang}"' in home.split(">")[1] and "hreflang" not in home  # no language selector
    assert ("只有中文" if lang == "zh" else "English only") in home
    manifest = json.loads((site / "manifest.json").read_text("utf-8"))
    assert manifest["site"]["languages"] == languages
    assert set(manifest["experiments"][0]["images"][0]["figures"]) == {lang}
