"""Every number the pages state is the manifest's, for the thing the page talks about.

The built Markdown of the real default build (both languages) is parsed: every ε, every
percentage, every ratio ("×3.18", "4.03 times"), every layer name and every "filter/channel k" in
the text must be a value the manifest holds for that page's image or experiment, in the one
format the site prints it in.
Code blocks, the configuration listing and image alt text (written by the figures from the same
records) are left out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from generator.site import facts
from generator.site.format import (format_epsilon, format_fixed, format_number, format_percent, format_ratio,
                                   format_threshold)

pytestmark = pytest.mark.slow

EPSILON = re.compile(r"(?<![\d.])(\d\.\d{4,7})(?![\d.%])")  # 0.0100, 0.01912, 0.0000367: the ε formats
# "×3.18", "4.03 times", "4.03 倍": how many times as large (not a shape such as 62×62×10)
RATIO = re.compile(r"(?<![\d.])×(\d[\d,]*(?:\.\d+)?)|(?<![\d.,])(\d[\d,]*(?:\.\d+)?) ?(?:times|倍)")
PERCENT = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?(?:e-?\d+)?)%")
MAP = re.compile(r"([a-z][a-z0-9_\\]*), (filter|channel) (\d+)|([a-z][a-z0-9_\\]*) 的(卷积核|通道) (\d+)")


def text_of(markdown: str) -> str:
    """The page's prose: no front matter, code blocks, image syntax or raw HTML attributes."""
    markdown = re.sub(r"\A---\n.*?\n---\n", "", markdown, flags=re.S)
    markdown = re.sub(r"^(`{3,}).*?^\1", "", markdown, flags=re.S | re.M)
    markdown = re.sub(r"!\[(?:[^\]\\]|\\.)*\]\([^)]*\)(\{[^}]*\})?", "", markdown)
    return re.sub(r"<[^>]+>", " ", markdown)


def numbers(value) -> list[float]:
    """Every number inside a manifest subtree."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in numbers(item)]
    return []


def allowed(*subtrees) -> dict[str, set[str]]:
    values = [n for subtree in subtrees for n in numbers(subtree)]
    return {"epsilon": {format_epsilon(v) for v in values} | {format_threshold(v) for v in values},
            "ratio": {format_ratio(v) for v in values} | {format_number(v) for v in values},
            "percent": {format_percent(v).rstrip("%") for v in values} | {format_percent(v, 0).rstrip("%") for v in values}
            | {f"{v:g}" for v in values}}


@pytest.fixture(scope="module")
def site(built_site):
    manifest = json.loads((built_site / "build" / "docs" / "manifest.json").read_text("utf-8"))
    return built_site / "build" / "docs", manifest


def check_page(path: Path, scope: dict[str, set[str]], layers: set[str], maps: set[tuple] | None):
    text = text_of(path.read_text("utf-8"))
    for value in EPSILON.findall(text):
        assert value in scope["epsilon"], f"{path}: ε {value} is not a manifest value of this page"
    for value in PERCENT.findall(text):
        assert value in scope["percent"], f"{path}: {value}% is not a manifest value of this page"
    for match in RATIO.finditer(text):
        value = match.group(1) or match.group(2)
        assert value in scope["ratio"], f"{path}: ratio {value} is not a manifest value of this page"
    for match in MAP.finditer(text):
        layer = (match.group(1) or match.group(4)).replace("\\", "")
        unit = {"卷积核": "filter", "通道": "channel"}.get(match.group(5), match.group(2))
        channel = int(match.group(3) or match.group(6))
        assert layer in layers, f"{path}: no layer {layer}"
        if maps is not None:
            assert (layer, unit, channel) in maps, f"{path}: {layer} {unit} {channel} is not a map the page drew"
    for name in re.findall(r"\b((?:conv|relu)\\?_\d\\?_\d|max\\?_pool\\?_\d)\b", text):
        assert name.replace("\\", "") in layers, f"{path}: no layer {name}"


def image_maps(image: dict) -> set[tuple]:
    """The (layer, unit, channel) maps an image's pages name: its close-ups and each layer's most changed."""
    maps = {(f["layer"], f["unit"], f["channel"]) for lang in image["figures"] for key, f in image["figures"][lang].items()
            if key.startswith("zoom_")}
    return maps | {(layer["name"], layer["unit"], layer["attack"]["top_channel"]) for layer in image["layers"]
                   if layer["attack"]["top_channel"] is not None}


def test_image_pages_state_only_their_own_numbers(site):
    docs, manifest = site
    for experiment in manifest["experiments"]:
        layers = {layer["name"] for layer in experiment["images"][0]["layers"]}
        settings = (experiment["attack_settings"], experiment["training"], experiment["robustness"],
                    manifest["butterfly_rules"])
        for image in experiment["images"]:
            scope = allowed(image, *settings)
            for lang in manifest["site"]["languages"]:
                check_page(docs / lang / experiment["id"] / f"{image['id']}.md", scope, layers, image_maps(image))


def test_walkthrough_numbers_belong_to_its_example_and_its_experiments(site):
    docs, manifest = site
    article = manifest["experiments"][0]
    views = [facts.site_view(manifest, lang) for lang in manifest["site"]["languages"]]
    summaries = [{key: e[key] for key in ("counts", "epsilon", "accuracy")} for view in views for e in view["experiments"]]
    others = [{**e, "images": e["images"][:1]} for e in manifest["experiments"][1:]]
    scope = allowed(article["images"][0], article["attack_settings"], *others, summaries)
    layers = {layer["name"] for e in manifest["experiments"] for layer in e["images"][0]["layers"]}
    maps = image_maps(article["images"][0]) | {m for e in others for m in image_maps(e["images"][0])}
    for lang in manifest["site"]["languages"]:
        check_page(docs / lang / "index.md", scope, layers, maps)


def test_the_other_pages_state_manifest_numbers(site):
    docs, manifest = site
    views = [facts.site_view(manifest, lang) for lang in manifest["site"]["languages"]]
    summaries = [{key: e[key] for key in ("counts", "epsilon", "accuracy", "butterfly")}
                 for view in views for e in view["experiments"]]
    scope = allowed(manifest["experiments"], manifest["butterfly_rules"], summaries, views[0]["eight_bit_step"])
    layers = {layer["name"] for e in manifest["experiments"] for layer in e["images"][0]["layers"]}
    for lang in manifest["site"]["languages"]:
        for page in ("gallery.md", "butterfly-effect.md", "ideas.md", "code.md", "glossary.md", "references.md",
                     *(f"{e['id']}/index.md" for e in manifest["experiments"])):
            check_page(docs / lang / page, scope, layers, None)


def test_the_search_epsilon_of_each_image_is_the_one_its_page_and_the_gallery_print(site):
    """One ε per image: the search's answer, printed identically on the image page, in the
    gallery, and, for the running example, on the walkthrough."""
    docs, manifest = site
    for lang in manifest["site"]["languages"]:
        gallery = (docs / lang / "gallery.md").read_text("utf-8")
        for experiment in manifest["experiments"]:
            for image in experiment["images"]:
                epsilon = image["attack"]["epsilon"]
                if epsilon is None:
                    continue
                row = next(line for line in gallery.splitlines() if f"({experiment['id']}/{image['id']}.md)" in line)
                assert row.rstrip(" |").endswith(format_epsilon(epsilon)), (lang, image["id"])
                page = (docs / lang / experiment["id"] / f"{image['id']}.md").read_text("utf-8")
                assert f"ε = {format_epsilon(epsilon)}" in page
                if image["attack"]["threshold"] is not None:
                    assert format_threshold(image["attack"]["threshold"]) in page
        example = manifest["experiments"][0]["images"][0]["attack"]
        assert f"ε = {format_epsilon(example['epsilon'])}" in (docs / lang / "index.md").read_text("utf-8")


# The verdicts' names as the pages print them, and their counts over an experiment's images.
VERDICT_NAMES = {"en": {"amplified": "amplified", "grows_like_noise": "growth not specific to the attack",
                        "no_growth": "no growth"},
                 "zh": {"amplified": "攻击被放大", "grows_like_noise": "增长并非攻击特有", "no_growth": "未见增长"}}
VERDICT_COUNTS = {"en": re.compile(r"amplified\s+(\d+),\s+growth\s+not\s+specific\s+to\s+the\s+attack\s+(\d+),"
                                   r"\s+no\s+growth\s+(\d+)"),
                  "zh": re.compile(r"(\d+) 张判为攻击被放大，(\d+) 张(?:判为|的)增长并非攻击特有，(\d+) 张(?:判为)?未见增长")}


def test_verdicts_and_their_counts_are_those_of_the_images(site):
    """Each image's verdict in the butterfly-effect table is its own, and every count of verdicts
    the pages state is a count over one experiment's images (on that page, each experiment's, in
    order), recounted here from the images' records."""
    docs, manifest = site
    recounted = [tuple(sum(image["butterfly"]["verdict"] == verdict for image in experiment["images"])
                       for verdict in ("amplified", "grows_like_noise", "no_growth"))
                 for experiment in manifest["experiments"]]
    for lang in manifest["site"]["languages"]:
        page = (docs / lang / "butterfly-effect.md").read_text("utf-8")
        for experiment in manifest["experiments"]:
            for image in experiment["images"]:
                row = next(line for line in page.splitlines() if f"({experiment['id']}/{image['id']}.md)" in line)
                verdict = VERDICT_NAMES[lang][image["butterfly"]["verdict"]]
                assert row.rstrip(" |").endswith(verdict), (lang, image["id"])
        stated = [tuple(map(int, counts)) for counts in VERDICT_COUNTS[lang].findall(page)]
        assert stated == recounted, lang
        walkthrough = [tuple(map(int, counts)) for counts in VERDICT_COUNTS[lang].findall(
            (docs / lang / "index.md").read_text("utf-8"))]
        assert walkthrough and set(walkthrough) <= set(recounted), lang


RISES = {"en": re.compile(r"rises at (\d+|every one|none) of the\s+(\d+) steps"),
         "zh": re.compile(r"从一层到下一层(?:共 (\d+) 步，其中有 (\d+) 步上升|的 (\d+) 步(全都上升|没有一步上升))")}
NOT_GROWING = {"en": "The attack's own change ends below", "zh": "攻击本身造成的变化到最深一层时还不到起点的"}


def test_each_image_page_says_how_often_the_attacks_change_rises_between_layers(site):
    """How many of the steps from one layer to the next raise the attack's change, as the
    image's record counts them; and an amplified attack whose own change did not grow
    (while the noise's fell) is said to be so."""
    docs, manifest = site
    rules = manifest["butterfly_rules"]
    for experiment in manifest["experiments"]:
        for image in experiment["images"]:
            b = image["butterfly"]
            shrinking = (b["verdict"] == "amplified" and b["growth"] is not None and b["growth"] < rules["growth"]
                         and b["noise_growth"] is not None and b["noise_growth"] < 1)
            for lang in manifest["site"]["languages"]:
                page = (docs / lang / experiment["id"] / f"{image['id']}.md").read_text("utf-8")
                found = RISES[lang].findall(page)
                assert len(found) == 1, (lang, image["id"])
                if lang == "en":
                    rises, steps = found[0]
                    rises = {"every one": steps, "none": "0"}.get(rises, rises)
                else:
                    steps, rises, all_steps, which = found[0]
                    steps = steps or all_steps
                    rises = rises or (steps if which == "全都上升" else "0")
                assert (int(rises), int(steps)) == (b["rises"], b["steps"]), (lang, image["id"])
                assert (NOT_GROWING[lang] in " ".join(page.split())) == shrinking, (lang, image["id"])


BELOW_EIGHT_BIT_STEP = {"en": re.compile(r"For (\d+) of its images the threshold is below\s+(\S+), the\s+step"),
                        "zh": re.compile(r"有 (\d+) 张图片的阈值低于 (\S+)，即 8 位图像文件")}


def test_thresholds_below_an_eight_bit_step_are_counted_from_the_images(site):
    """The butterfly-effect page says, per experiment in order, how many thresholds lie below the
    step between two values of an 8-bit image file (1/255), recounted here from the images."""
    docs, manifest = site
    step = 1 / 255
    recounted = [sum(1 for image in experiment["images"]
                     if image["attack"]["threshold"] is not None and image["attack"]["threshold"] < step)
                 for experiment in manifest["experiments"]]
    assert any(recounted)  # the default site has such images (bug-3, koala-2)
    for lang in manifest["site"]["languages"]:
        stated = BELOW_EIGHT_BIT_STEP[lang].findall((docs / lang / "butterfly-effect.md").read_text("utf-8"))
        assert [int(count) for count, _ in stated] == [count for count in recounted if count], lang
        assert {value.rstrip("，,") for _, value in stated} == {format_threshold(step)}, lang


def test_formats_are_the_ones_the_test_expects():
    # The allowed sets above are built with the site's own formatters; pin what they print.
    assert format_epsilon(0.01) == "0.0100" and format_threshold(0.0013) == "0.00130"
    assert format_percent(0.492) == "49.2%" and format_number(0.0363) == "0.0363"
    assert format_ratio(3.58) == "3.58" and format_fixed(0.3095) == "0.3095"
