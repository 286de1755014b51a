"""The up-to-date check: which changes make a build necessary, which do not."""

import os
import time

import pytest

from generator.stages.freshness import Fingerprint, input_files, quickly_up_to_date, site_listing
from generator.inputs.config import REPO_ROOT, load_config

SETTINGS = {"keep_going": False, "fonts": {"en": "font-a"}}
OPTIONS = {"keep_going": False}


@pytest.fixture
def built(project):
    """A project whose site/ a (pretend) build has just made and recorded."""
    config_file = project()
    root = config_file.parent.parent
    (root / "site" / "en").mkdir(parents=True)
    (root / "site" / "index.html").write_text("<p>site</p>")
    (root / "site" / "en" / "page.html").write_text("<p>page</p>")
    Fingerprint(load_config(config_file), root / "build", SETTINGS, OPTIONS).record(root / "site")
    (root / "build" / "manifest.json").write_text("{}")
    return config_file


def current(config_file, settings=SETTINGS) -> bool:
    root = config_file.parent.parent
    return Fingerprint(load_config(config_file), root / "build", settings, OPTIONS).site_is_current(root / "site")


def test_nothing_changed_is_up_to_date(built):
    assert current(built)


def test_touching_a_file_without_changing_it_is_up_to_date(built):
    image = built.parent.parent / "images" / "trouser-8183.png"
    later = time.time() + 10
    os.utime(image, (later, later))
    assert current(built)


def test_every_input_counts(built, small_idx_dir):
    config = load_config(built)
    files = {str(path) for path in input_files(config)[0]}
    root = built.parent.parent
    expected = [built, root / "images" / "ankle-boot-5420.png", small_idx_dir / "train-images-idx3-ubyte.gz",
                REPO_ROOT / "mkdocs.yml", REPO_ROOT / "templates" / "en" / "image.md.j2",
                REPO_ROOT / "generator" / "analysis" / "attack.py", REPO_ROOT / "content" / "code" / "fgsm_search.py"]
    for path in expected:
        assert str(path) in files, path
    assert not any("__pycache__" in path for path in files)


@pytest.mark.parametrize("change", ["image", "config", "settings", "environment", "site edited", "site removed"])
def test_a_change_makes_the_site_out_of_date(built, change, monkeypatch):
    root = built.parent.parent
    settings = SETTINGS
    if change == "image":
        with open(root / "images" / "trouser-8183.png", "ab") as handle:
            handle.write(b"\0")
    elif change == "config":
        built.write_text(built.read_text() + "\n# a comment is a change of the published config text\n")
    elif change == "settings":
        settings = {**SETTINGS, "fonts": {"en": "font-b"}}
    elif change == "environment":
        monkeypatch.setenv("BUTTERFLY_SITE_URL", "https://example.org/")
    elif change == "site edited":
        (root / "site" / "en" / "page.html").write_text("<p>edited</p>")
    else:
        for path in sorted((root / "site").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    assert not current(built, settings)
    root_config = load_config(built)
    reasons = Fingerprint(root_config, root / "build", settings, OPTIONS).changes(root / "site")
    expected = {"image": "trouser-8183.png changed", "config": "site.yml changed", "settings": "options",
                "environment": "environment", "site edited": "not as the last build left it",
                "site removed": "not as the last build left it"}[change]
    assert any(expected in reason for reason in reasons), reasons


def test_site_listing_needs_an_index_page(tmp_path):
    assert site_listing(tmp_path / "none") is None
    (tmp_path / "index.html").write_text("x")
    assert site_listing(tmp_path) == site_listing(tmp_path)


def test_the_quick_check_passes_only_when_nothing_can_have_changed(built, small_idx_dir, monkeypatch):
    """Before the config is parsed: same files (size and time), same folders, same options,
    environment and fonts, the same site."""
    root = built.parent.parent
    assert quickly_up_to_date(built, OPTIONS)
    assert not quickly_up_to_date(built, {"keep_going": True})
    monkeypatch.setenv("BUTTERFLY_CJK_FONT", str(root / "none.ttf"))
    assert not quickly_up_to_date(built, OPTIONS)
    monkeypatch.delenv("BUTTERFLY_CJK_FONT")
    assert quickly_up_to_date(built, OPTIONS)
    # A file that appears in a folder the build reads (here the IDX data folder).
    extra = small_idx_dir / "notes.txt"
    extra.write_text("x")
    try:
        assert not quickly_up_to_date(built, OPTIONS)
    finally:
        extra.unlink()
    assert quickly_up_to_date(built, OPTIONS)
    # Touched without a change: the quick check cannot tell, the full one can (and says current).
    image = root / "images" / "trouser-8183.png"
    later = time.time() + 10
    os.utime(image, (later, later))
    assert not quickly_up_to_date(built, OPTIONS) and current(built)
    (root / "site" / "en" / "page.html").write_text("<p>edited</p>")
    assert not quickly_up_to_date(built, OPTIONS)
