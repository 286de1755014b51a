"""The configuration: experiments, languages, strict values, messages that name the key."""

import shutil
from pathlib import Path

import pytest
import yaml

from generator.errors import UserError
from generator.inputs.config import (Config, DataSection, Experiment, SiteSection, load_config, localized,
                                     parse_config)

REPO = Path(__file__).resolve().parents[1]
CONFIG = Path("site_config/site.yml")
IMAGES = [{"path": "content/images/bag-1331.png"}]


def error_of(data) -> str:
    with pytest.raises(UserError) as caught:
        parse_config(data, CONFIG)
    return str(caught.value)


@pytest.mark.parametrize("data, message", [
    ({"images": [{"path": "a.png", "lable": "Bag"}]},
     "site_config/site.yml: images[0].lable: unknown key 'lable' (did you mean 'label'?)"),
    ({"traning": {}, "images": IMAGES},
     "site_config/site.yml: traning: unknown key 'traning' (did you mean 'training'?)"),
    ({"training": {"epochs": 0}, "images": IMAGES},
     "site_config/site.yml: training.epochs: must be >= 1, got 0"),
    ({"training": {"epochs": "ten"}, "images": IMAGES},
     "site_config/site.yml: training.epochs: expected an integer, got 'ten'"),
    ({"training": {"epochs": True}, "images": IMAGES},
     "site_config/site.yml: training.epochs: expected an integer, got True"),
    ({"attack": {"epsilon_step": True}, "images": IMAGES},
     "site_config/site.yml: attack.epsilon_step: expected a number, got True"),
    ({"attack": {"method": "fsgm"}, "images": IMAGES},
     "site_config/site.yml: attack.method: must be one of 'fgsm', 'bim' or 'pgd', got 'fsgm'"),
    ({"attack": {"epsilon_step": -0.1}, "images": IMAGES},
     "site_config/site.yml: attack.epsilon_step: must be > 0.0, got -0.1"),
    ({"attack": {"epsilon_start": 0.5, "epsilon_max": 0.1}, "images": IMAGES},
     "site_config/site.yml: attack: epsilon_start (0.5) is larger than epsilon_max (0.1)"),
    ({"robustness": {"epsilons": []}, "images": IMAGES},
     "site_config/site.yml: robustness: epsilons: list at least one epsilon, or set samples: 0 to leave the "
     "curve out"),
    ({"site": {"title": 3}, "images": IMAGES},
     "site_config/site.yml: site.title: expected a string, got 3"),
    ({"site": {"languages": ["zh", "fr"]}, "images": IMAGES},
     "site_config/site.yml: site.languages[1]: must be one of 'zh' or 'en', got 'fr'"),
    ({"site": {"languages": []}, "images": IMAGES}, "site_config/site.yml: site.languages: must list at least one entry"),
    ({"images": []}, "site_config/site.yml: images: must list at least one entry"),
    ({}, "site_config/site.yml: images: is required but missing (or list experiments)"),
])
def test_bad_configs_name_key_and_value(data, message):
    assert error_of(data) == message


@pytest.mark.parametrize("field, url", [
    ("repo_url", 'https://example.com/"><script>alert(1)</script>'),
    ("repo_url", "javascript://example.com/%0Aalert(document.domain)"),
    ("site_url", 'https://example.com/"><script>'),
    ("site_url", "ftp://example.com/"),
    ("repo_url", "example.com"),
])
def test_urls_must_be_plain_web_addresses(field, url):
    message = error_of({"site": {field: url}, "images": IMAGES})
    assert message.startswith(f"site_config/site.yml: site.{field}: must be ")
    assert "<script>" not in message.split("got")[0] and "\n" not in message


def test_a_search_grid_too_fine_is_refused_before_any_work():
    message = error_of({"attack": {"epsilon_step": 1e-8}, "images": IMAGES})
    assert message.startswith("site_config/site.yml: attack: epsilon_step 1e-08 is too small: ")
    assert message.endswith("grid points from 0.01 to 0.3 (limit 1,000,000)")


def test_every_problem_is_reported_at_once():
    message = error_of({"training": {"epochs": 0, "batch_size": "big"}, "images": IMAGES})
    assert "training.epochs: must be >= 1, got 0" in message
    assert "training.batch_size: expected an integer, got 'big'" in message


def test_unknown_key_without_close_match_lists_allowed_keys():
    message = error_of({"figures": {"colour": "red"}, "images": IMAGES})
    assert message.startswith("site_config/site.yml: figures.colour: unknown key 'colour' (allowed: zoom_layer,")


def test_a_huge_value_is_quoted_briefly():
    message = error_of({"training": {"epochs": "x" * 100_000}, "images": IMAGES})
    assert len(message) < 200


def test_a_config_without_experiments_is_one_experiment():
    config = parse_config({"attack": {"epsilon_step": 0.001}, "images": IMAGES}, CONFIG)
    assert [experiment.id for experiment in config.experiments] == ["main"]
    assert config.experiments[0].attack.epsilon_step == 0.001
    assert config.site.languages == ["zh", "en"]


def test_experiments_take_the_top_level_sections_as_defaults():
    config = parse_config({
        "attack": {"epsilon_step": 0.001, "epsilon_max": 0.2},
        "figures": {"zoom_layer": "max_pool_2"},
        "experiments": [
            {"id": "a", "images": IMAGES},
            {"id": "b", "attack": {"epsilon_step": 0.002}, "data": {"source": "none"}, "images": IMAGES},
        ]}, CONFIG)
    a, b = config.experiments
    assert (a.attack.epsilon_step, a.attack.epsilon_max, a.data.source) == (0.001, 0.2, "embedded")
    assert (b.attack.epsilon_step, b.attack.epsilon_max, b.data.source) == (0.002, 0.2, "none")
    assert a.figures.zoom_layer == b.figures.zoom_layer == "max_pool_2"


def test_errors_inside_an_experiment_name_it():
    message = error_of({"experiments": [{"id": "fine", "images": IMAGES},
                                        {"id": "broken", "attack": {"epsilon_step": 0}, "images": IMAGES}]})
    assert message == "site_config/site.yml: experiments[1] (broken).attack.epsilon_step: must be > 0.0, got 0.0"
    assert "images: give the images inside each experiment" in error_of(
        {"images": IMAGES, "experiments": [{"id": "a", "images": IMAGES}]})
    assert "experiments: id 'a' is used twice" in error_of(
        {"experiments": [{"id": "a", "images": IMAGES}, {"id": "a", "images": IMAGES}]})
    assert "experiments[0] (Not A Slug).id: must be lower-case letters" in error_of(
        {"experiments": [{"id": "Not A Slug", "images": IMAGES}]})


def test_text_and_class_names_can_be_given_per_language():
    config = parse_config({"site": {"title": {"zh": "标题", "en": "Title"}, "description": "one for all"},
                           "data": {"class_names": [{"zh": "包", "en": "Bag"}, "Coat"]},
                           "images": [{"path": "a.png", "title": {"zh": "包", "en": "A bag"}}]}, CONFIG)
    assert localized(config.site.title, "zh") == "标题" and localized(config.site.title, "en") == "Title"
    assert localized(config.site.description, "zh") == "one for all"
    experiment = config.experiments[0]
    assert localized(experiment.data.class_names[0], "zh") == "包" and experiment.data.class_names[1] == "Coat"
    assert localized(experiment.images[0].title, "en") == "A bag"
    # A language missing from a mapping falls back to English.
    assert localized({"en": "only English"}, "zh") == "only English"


def test_former_key_names_keep_working():
    config = parse_config({"figures": {"zoom_filter": 4, "max_filters": 8}, "images": IMAGES}, CONFIG)
    assert config.experiments[0].figures.zoom_channel == 4 and config.experiments[0].figures.max_channels == 8
    assert "give zoom_channel or its former name zoom_filter, not both" in error_of(
        {"figures": {"zoom_filter": 4, "zoom_channel": 3}, "images": IMAGES})


@pytest.mark.parametrize("name", ["legacy_site.yml", "legacy_cnn_explainer.yml"])
def test_configs_written_for_one_experiment_keep_working(tmp_path, name):
    """The configs shipped before experiments existed load unchanged, as one experiment."""
    data = yaml.safe_load((REPO / "tests" / "configs" / name).read_text())
    config = parse_config(data, tmp_path / "site_config" / "site.yml")
    (experiment,) = config.experiments
    assert len(experiment.images) == len(data["images"])
    assert experiment.figures.zoom_layer == "max_pool_1" and experiment.figures.zoom_channel == 2


def test_missing_files_are_named(tmp_path):
    (tmp_path / "site.yml").write_text("images:\n  - path: nowhere.png\nmodel:\n  source: file\n  path: m.keras\n")
    with pytest.raises(UserError) as caught:
        load_config(tmp_path / "site.yml")
    assert "images[0].path: file not found: nowhere.png" in str(caught.value)
    assert "model.path: file not found: m.keras" in str(caught.value)


def test_unreadable_yaml_duplicates_and_missing_file(tmp_path):
    (tmp_path / "site.yml").write_text("images: [\n")
    with pytest.raises(UserError, match=r"site.yml: line \d+, column \d+ is not valid YAML"):
        load_config(tmp_path / "site.yml")
    (tmp_path / "site.yml").write_text("attack: {}\nimages: []\nattack: {}\n")
    with pytest.raises(UserError, match="duplicate key 'attack' at line 3"):
        load_config(tmp_path / "site.yml")
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "other.yml")


def test_default_config_is_the_article_then_a_model_trained_here():
    config = load_config()
    article, trained = config.experiments
    assert article.model.source == "file" and article.data.source == "none"
    assert Path(article.images[0].path).name == "panda_2.jpeg"
    assert (article.figures.zoom_layer, article.figures.zoom_channel) == ("max_pool_1", 2)
    assert (article.attack.epsilon_start, article.attack.epsilon_step) == (0.01, 0.0007)
    assert trained.model.source == "train" and trained.data.source == "embedded"
    assert config.site.languages == ["zh", "en"]
    # Every class has a Chinese name in both experiments.
    for names in (article.model.class_names, trained.data.class_names):
        assert all(isinstance(name, dict) and name.get("zh") for name in names)


def test_every_key_is_documented():
    readme = (REPO / "README.md").read_text()
    for section, model in (("site", SiteSection), ("data", DataSection), *(
            (name, Experiment.model_fields[name].annotation) for name in
            ("model", "training", "attack", "figures", "robustness"))):
        for key in model.model_fields:
            assert f"`{section}.{key}`" in readme, f"{section}.{key} is not documented in README.md"
    for key in ("experiments", "images"):
        assert f"`{key}`" in readme
    assert {"site", "experiments"} <= set(Config.model_fields)


def test_data_none_needs_an_imported_model_with_class_names(tmp_path):
    shutil.copy(REPO / "content" / "images" / "bag-1331.png", tmp_path / "a.png")
    (tmp_path / "site.yml").write_text("data:\n  source: none\nimages:\n  - path: a.png\n")
    with pytest.raises(UserError) as caught:
        load_config(tmp_path / "site.yml")
    assert str(caught.value).endswith("data.source: 'none' needs model.source: file (training needs data)")
