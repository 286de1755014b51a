"""The config's YAML loader: alias bombs, duplicate keys, deep nesting, sizes, line numbers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from generator.errors import UserError
from generator.inputs import yaml_safe
from generator.inputs.yaml_safe import MAX_CONFIG_BYTES, load_yaml, quote_value, read_yaml_file

REPO = Path(__file__).resolve().parents[1]


def refusal(text: str, source: str = "site.yml") -> str:
    with pytest.raises(UserError) as caught:
        load_yaml(text, source)
    message = str(caught.value)
    assert message.startswith(f"{source}:") and "\n" not in message
    return message


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic alias bomb as a config: each level is a list of `width` aliases of the one before."""
    lines = ["site:", "  title: laughs", "attack:"]
    lines.append('  l0: &l0 ["lol lol lol lol lol lol lol lol lol lol lol lol", ' +
                 ", ".join(['"lol lol lol lol lol lol lol lol lol lol lol lol"'] * (width - 1)) + "]")
    for level in range(1, levels + 1):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    lines.append(f"images: [*l{levels}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_in_well_under_a_second():
    text = billion_laughs()
    assert len(text.encode()) < 2000   # 9 ** 10 strings once expanded
    start = time.perf_counter()
    message = refusal(text)
    assert time.perf_counter() - start < 0.5
    assert "aliases expand it to more than 250,000 values" in message


def test_too_many_alias_references_are_refused():
    text = "base: &b {epsilon_max: 0.2}\nimages:\n" + "".join(f"  - {{path: a{i}.png, attack: *b}}\n"
                                                              for i in range(1001))
    message = refusal(text)
    assert message == "site.yml: line 1003: more than 1000 alias references (*name); refused"


def test_a_few_aliases_and_merge_keys_load_like_safe_load():
    text = ("strong: &strong {epsilon_start: 0.02, epsilon_max: 0.3}\n"
            "images:\n"
            "  - {path: a.png, attack: *strong}\n"
            "  - path: b.png\n"
            "    attack:\n"
            "      <<: *strong\n"
            "      epsilon_max: 0.5\n")
    assert load_yaml(text, "site.yml") == yaml.safe_load(text)
    assert load_yaml(text, "site.yml")["images"][1]["attack"] == {"epsilon_start": 0.02, "epsilon_max": 0.5}


def test_a_collection_containing_itself_is_refused():
    assert "refers to the collection that contains it" in refusal("loop: &loop [1, *loop]\n")


def test_duplicate_section_is_refused_with_both_lines():
    text = "site:\n  title: x\nattack:\n  method: fgsm\n\nfigures:\n  top_k: 3\n\nattack:\n  method: pgd\n"
    assert refusal(text) == "site.yml: duplicate key 'attack' at line 9 (first at line 3)"


def test_duplicate_key_inside_a_section_and_in_a_flow_mapping():
    assert refusal("attack:\n  epsilon_max: 0.1\n  epsilon_max: 0.2\n") == \
        "site.yml: duplicate key 'epsilon_max' at line 3 (first at line 2)"
    assert refusal("images:\n  - {path: a.png, label: x, path: b.png}\n") == \
        "site.yml: duplicate key 'path' at line 2 (first at line 2)"


def test_keys_equal_as_values_are_duplicates():
    assert "duplicate key True at line 2 (first at line 1)" in refusal("yes: 1\ntrue: 2\n")
    assert "duplicate key 1 at line 2" in refusal("1: a\n0x1: b\n")
    assert load_yaml("1: a\n'1': b\n", "s") == {1: "a", "1": "b"}   # an int and a string differ


def test_a_huge_duplicate_key_is_quoted_briefly():
    key = "k" * 1000   # YAML's longest plain key
    message = refusal(f"{key}: 1\n{key}: 2\n")
    assert len(message) < 150 and "duplicate key 'kkk" in message and "at line 2 (first at line 1)" in message


def test_deep_nesting_is_refused_not_a_crash():
    assert "nested more than 50 levels deep" in refusal("x: " + "[" * 5000 + "]" * 5000 + "\n")


def test_syntax_errors_and_python_tags_name_the_line():
    assert refusal("site:\n  title: [unclosed\nimages: []\n").startswith("site.yml: line 3, column")
    message = refusal("site:\n  title: !!python/object/apply:os.system ['echo hi']\n")
    assert message.startswith("site.yml: line 2, column 10 is not valid YAML (could not determine a constructor")


def test_size_limit(tmp_path, monkeypatch):
    big = "# " + "x" * MAX_CONFIG_BYTES + "\nsite: {}\n"
    assert "over the limit of 1,000,000" in refusal(big)
    path = tmp_path / "site.yml"
    path.write_text(big)
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("a file over the limit was read"))
    with pytest.raises(UserError, match=r"site.yml: 1,000,012 bytes, over the limit"):
        read_yaml_file(path)


def test_read_yaml_file_problems(tmp_path):
    with pytest.raises(UserError, match="absent.yml: not found"):
        read_yaml_file(tmp_path / "absent.yml")
    with pytest.raises(UserError, match="is a folder"):
        read_yaml_file(tmp_path)
    latin = tmp_path / "latin.yml"
    latin.write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin.yml: not UTF-8 text \(byte 10\)"):
        read_yaml_file(latin)


@pytest.mark.parametrize("config_file", sorted((REPO / "site_config").glob("*.yml")), ids=lambda p: p.name)
def test_the_shipped_configs_load_exactly_like_safe_load(config_file):
    text = config_file.read_text(encoding="utf-8")
    assert load_yaml(text, str(config_file)) == yaml.safe_load(text)
    assert read_yaml_file(config_file) == yaml.safe_load(text)


def test_empty_document_and_plain_values():
    assert load_yaml("", "s") is None and load_yaml("# only a comment\n", "s") is None
    assert load_yaml("- 1\n- two\n- 3.5\n- null\n", "s") == [1, "two", 3.5, None]


def test_quote_value_is_bounded_for_any_value():
    assert quote_value("lambda_3") == "'lambda_3'"
    assert len(quote_value("x" * 10_000)) <= 80
    nested = {"a": [list(range(10_000))] * 3, "b": "y" * 10_000}
    start = time.perf_counter()
    shown = quote_value(nested, limit=60)
    assert len(shown) <= 60 and shown.startswith("{'a': [[0, 1, 2")
    assert time.perf_counter() - start < 0.05
    assert "\n" not in quote_value("two\nlines")


def test_limits_are_the_documented_ones():
    assert yaml_safe.MAX_CONFIG_BYTES == 1_000_000 and yaml_safe.MAX_ALIAS_REFERENCES == 1_000
