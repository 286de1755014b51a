from pathlib import Path

import pytest

from generator.inputs.config import Config, load_config, parse_config
from generator.errors import UserError

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
    ({"attack": {"method": "fsgm"}, "images": IMAGES},
     "site_config/site.yml: attack.method: must be one of 'fgsm', 'bim' or 'pgd', got 'fsgm'"),
    ({"attack": {"epsilon_step": -0.1}, "images": IMAGES},
     "site_config/site.yml: attack.epsilon_step: must be > 0.0, got -0.1"),
    ({"attack": {"epsilon_start": 0.5, "epsilon_max": 0.1}, "images": IMAGES},
     "site_config/site.yml: attack: epsilon_start (0.5) is larger than epsilon_max (0.1)"),
    ({"site": {"title": 3}, "images": IMAGES},
     "site_config/site.yml: site.title: expected a string, got 3"),
    ({"images": []}, "site_config/site.yml: images: must list at least one entry"),
    ({}, "site_config/site.yml: images: is required but missing"),
])
def test_bad_configs_name_key_and_value(data, message):
    assert error_of(data) == message


def test_every_problem_is_reported_at_once():
    message = error_of({"training": {"epochs": 0, "batch_size": "big"}, "images": IMAGES})
    assert "training.epochs: must be >= 1, got 0" in message
    assert "training.batch_size: expected an integer, got 'big'" in message


def test_unknown_key_without_close_match_lists_allowed_keys():
    message = error_of({"figures": {"colour": "red"}, "images": IMAGES})
    assert message.startswith("site_config/site.yml: figures.colour: unknown key 'colour' (allowed: zoom_layer,")


def test_missing_files_are_named(tmp_path):
    (tmp_path / "site.yml").write_text("images:\n  - path: nowhere.png\nmodel:\n  source: file\n  path: m.keras\n")
    with pytest.raises(UserError) as caught:
        load_config(tmp_path / "site.yml")
    assert "images[0].path: file not found: nowhere.png" in str(caught.value)
    assert "model.path: file not found: m.keras" in str(caught.value)


def test_unreadable_yaml_and_missing_file(tmp_path):
    (tmp_path / "site.yml").write_text("images: [\n")
    with pytest.raises(UserError, match=r"site.yml: line \d+, column \d+ is not valid YAML"):
        load_config(tmp_path / "site.yml")
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "other.yml")


def test_default_config_is_valid_and_documented():
    config = load_config()
    assert len(config.images) >= 8
    assert len({entry.label for entry in config.images}) == len(config.images)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for section, model in Config.model_fields.items():
        if model.exclude or section == "images":
            continue
        for key in model.annotation.model_fields:
            assert f"`{section}.{key}`" in readme, f"{section}.{key} is not documented in README.md"


def test_data_none_needs_an_imported_model_with_class_names(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    (tmp_path / "site.yml").write_text("data:\n  source: none\nimages:\n  - path: a.png\n")
    with pytest.raises(UserError) as caught:
        load_config(tmp_path / "site.yml")
    assert str(caught.value).endswith("data.source: 'none' needs model.source: file (training needs data)")
