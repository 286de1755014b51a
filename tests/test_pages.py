"""Pages: escaping, formats, the language configs, and the sentences each record chooses.

The page tests render the real default build's manifest (tests/conftest.py ``built_site``),
changed where a case needs it (an image that is never fooled, a corrected one, ...), in both
languages.
"""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
import yaml

from generator.errors import UserError
from generator.inputs.config import REPO_ROOT
from generator.site import mkdocs, pages
from generator.site.format import (escape_html, escape_markdown, format_epsilon, format_percent, format_ratio,
                                   format_threshold)

EVIL_SCRIPT = "<script>alert(1)</script>"
TRICKY = [EVIL_SCRIPT, "a|b*c_[x](y)", "# 1. - + `x` \\ {: .c} & &amp; 'q\" ![i](j)", "1. item", "line\nbreak | cell"]
EXTENSIONS = ["tables", "attr_list", "admonition", "md_in_html", "toc", "pymdownx.superfences"]


class _Collect(HTMLParser):
    """Text of each element of interest, and every img alt."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.text, self.alts = [], {}, []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        if tag == "img":
            self.alts.append(dict(attrs)["alt"])
            self.stack.pop()

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack:
            self.text.setdefault(self.stack[-1], []).append(data)


def rendered(source: str) -> _Collect:
    collect = _Collect()
    collect.feed(markdown.markdown(source, extensions=EXTENSIONS))
    return collect


# --- escaping and formats ------------------------------------------------------------------

@pytest.mark.parametrize("text", TRICKY)
def test_escaped_text_renders_literally_everywhere(text):
    flat = " ".join(text.split())
    source = (f"# {escape_markdown(text)}\n\n{escape_markdown(text)}\n\n| a |\n|---|\n| {escape_markdown(text)} |\n\n"
              f"![{escape_markdown(text)}](x.png)\n")
    collect = rendered(source)
    for tag in ("h1", "p", "td"):
        assert "".join(collect.text[tag]).strip() == flat, tag
    assert collect.alts == [flat]
    assert escape_html(EVIL_SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_number_formats():
    assert format_epsilon(0.0107) == "0.0107" and format_epsilon(None) == "—"
    assert format_threshold(0.019122) == "0.01912" and format_threshold(0.0191) != format_epsilon(0.0191) + "0" * 0
    assert format_percent(0.9123) == "91.2%" and format_percent(0.00042) == "0.042%"
    assert format_percent(0.99967) == "99.97%" and format_percent(1.0) == "100.0%"  # never certainty it was not
    # A ratio just under a rule's bound never prints as the bound.
    assert format_ratio(1.98) == "1.98" and format_ratio(311.4) == "311" and format_ratio(None) == "—"


# --- the code on the site -------------------------------------------------------------------

def test_the_site_shows_the_real_attack_code_unchanged():
    source = (REPO_ROOT / pages.ATTACK_SOURCE).read_text("utf-8").splitlines()
    for excerpt in pages.attack_code(REPO_ROOT, pages.ATTACK_FUNCTIONS["fgsm"]):
        assert excerpt["text"].splitlines() == source[excerpt["first_line"] - 1:excerpt["last_line"]]
        assert excerpt["text"].lstrip().startswith(f"def {excerpt['name']}(")


def test_function_source_fails_with_one_line(tmp_path):
    path = tmp_path / "attack.py"
    path.write_text("def other():\n    pass\n")
    with pytest.raises(UserError, match="no top-level function named 'fgsm'"):
        pages.function_source(path, "fgsm")
    path.write_text("def broken(:\n")
    with pytest.raises(UserError, match="cannot parse it"):
        pages.function_source(path, "broken")


def test_code_fence_outgrows_backticks_inside():
    assert pages.code_fence("no ticks") == "```" and pages.code_fence("a ```` b") == "`````"


def test_links_from_a_page_to_figures_pages_and_the_site_root():
    helpers = pages.page_helpers("article/panda-2.md")
    assert helpers["asset"]("figures/article/panda-2/input.png") == "../figures/article/panda-2/input.png"
    assert helpers["link"]("gallery.md") == "../gallery.md"
    assert helpers["root"]("downloads/fgsm_search.py") == "../../../downloads/fgsm_search.py"
    assert pages.page_helpers("index.md")["root"]("manifest.json") == "../manifest.json"
    assert pages.page_helpers("article/index.md")["root"]("manifest.json") == "../../manifest.json"


# --- one language, one MkDocs project --------------------------------------------------------

SITE = {"title": {"zh": "标题 <b>", "en": "Title <b>"}, "description": {"zh": "描述", "en": "About"},
        "languages": ["zh", "en"], "site_url": "https://example.org/x/?a=1&b=2", "repo_url": "https://example.org/r"}


def test_each_language_is_its_own_material_project(tmp_path):
    zh = mkdocs.language_config(REPO_ROOT, tmp_path, "zh", SITE, [{"导览": "index.md"}])
    en = mkdocs.language_config(REPO_ROOT, tmp_path, "en", SITE, [{"Walkthrough": "index.md"}])
    assert zh["theme"]["language"] == "zh" and en["theme"]["language"] == "en"
    assert zh["docs_dir"] == "zh" and zh["site_url"] == "https://example.org/x/?a=1&b=2/zh/"
    assert zh["site_name"] == "标题 &lt;b&gt;"  # the theme inserts it unescaped
    search = next(p["search"] for p in zh["plugins"] if isinstance(p, dict) and "search" in p)
    assert "\\u200b" in search["separator"]  # jieba's word boundaries
    assert [alt["lang"] for alt in zh["extra"]["alternate"]] == ["zh", "en"]
    assert zh["theme"]["palette"][0]["toggle"]["name"] == "切换到深色模式"
    assert (tmp_path / zh["theme"]["custom_dir"]).resolve() == (REPO_ROOT / "templates" / "theme").resolve()
    # The extensions are the shared mkdocs.yml's; a heading's anchor has a Chinese tooltip.
    shared = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())
    assert en["markdown_extensions"] == shared["markdown_extensions"]
    toc = [e for e in zh["markdown_extensions"] if isinstance(e, dict) and "toc" in e]
    assert toc == [{"toc": {**next(e["toc"] for e in shared["markdown_extensions"] if isinstance(e, dict)
                                    and "toc" in e), "permalink_title": "永久链接"}}]
    assert [e for e in zh["markdown_extensions"] if e not in toc] == \
        [e for e in shared["markdown_extensions"] if not (isinstance(e, dict) and "toc" in e)]


def test_other_languages_segment_their_few_chinese_terms_with_a_dictionary_of_them(tmp_path):
    (tmp_path / "en" / "sub").mkdir(parents=True)
    (tmp_path / "en" / "glossary.md").write_text("| perturbation | 扰动 |\n| adversarial example | 对抗样本 |\n")
    (tmp_path / "en" / "sub" / "page.md").write_text("扰动, again\n")
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "index.md").write_text("对抗样本与扰动\n")
    en = mkdocs.search_settings(tmp_path, "en")
    assert (tmp_path / en["jieba_dict"]).read_text("utf-8") == "对抗样本 1\n扰动 1\n"
    assert "jieba_dict" not in mkdocs.search_settings(tmp_path, "zh")  # jieba's own dictionary
    (tmp_path / "en" / "glossary.md").write_text("no Chinese\n")
    (tmp_path / "en" / "sub" / "page.md").write_text("none here\n")
    assert "jieba_dict" not in mkdocs.search_settings(tmp_path, "en")


def test_the_root_page_sends_readers_to_their_language():
    page = mkdocs.root_page({**SITE, "languages": ["en", "zh"]})
    assert '<html lang="en">' in page and 'url=en/' in page
    assert 'var languages = ["en", "zh"]' in page and "navigator.languages" in page
    assert "Title &lt;b&gt;" in page and "<b>" not in page.split("<body>")[1]


def test_unknown_language_or_schema_is_a_user_error():
    with pytest.raises(UserError, match="schema"):
        pages.render_docs({"schema": 1}, Path("."), REPO_ROOT)
    with pytest.raises(UserError, match="'fr' has no templates"):
        pages.render_docs({"schema": pages.SCHEMA, "site": {"languages": ["fr"]}}, Path("."), REPO_ROOT)


# --- sentences chosen by the record ----------------------------------------------------------

@pytest.fixture(scope="module")
def manifest(built_site) -> dict:
    return json.loads((built_site / "build" / "docs" / "manifest.json").read_text("utf-8"))


def render(manifest: dict, tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    pages.render_docs(manifest, docs, REPO_ROOT)
    return docs


def page_text(docs: Path, lang: str, page: str) -> str:
    return " ".join((docs / lang / page).read_text("utf-8").split())



@pytest.mark.slow
def test_every_page_is_written_in_every_language_with_its_menu(manifest, tmp_path):
    docs = render(manifest, tmp_path)
    for lang in ("zh", "en"):
        names = {p.relative_to(docs / lang).as_posix() for p in (docs / lang).rglob("*.md")}
        expected = set(pages.PAGES) | {f"{e['id']}/index.md" for e in manifest["experiments"]} | {
            f"{e['id']}/{i['id']}.md" for e in manifest["experiments"] for i in e["images"]}
        assert names == expected
        config = yaml.safe_load((docs / f"mkdocs-{lang}.yml").read_text("utf-8"))
        assert config["theme"]["language"] == lang
        listed = json.dumps(config["nav"], ensure_ascii=False)
        assert all(f'"{page}"' in listed for page in expected), lang
    assert "小熊猫" in page_text(docs, "zh", "gallery.md") and "red panda" in page_text(docs, "en", "gallery.md")


OUTCOMES = {  # outcome -> a phrase only its box says, in English and Chinese
    "first_step": ("already changes the prediction", "就已经把预测"),
    "later": ("for every ε from", "一直加到"),
    "never": ("The prediction holds", "预测没有改变"),
    "target_reached": ("Target reached", "到达了目标类别"),
    "target_missed": ("Target not reached", "没有到达目标类别"),
}
EFFECTS = {  # (effect, misclassified) -> a phrase only that case says
    ("corrected", True): ("corrects the model instead of fooling it", "反倒纠正了它"),
    ("changed", True): ("from one wrong prediction to another", "从一个错误的预测换到了另一个"),
}
CASES = [("first_step", "fooled", False), ("later", "fooled", False), ("never", "held", False),
         ("target_reached", "fooled", False), ("target_missed", "held", False), ("first_step", "corrected", True),
         ("later", "changed", True)]


@pytest.mark.slow
@pytest.mark.parametrize("outcome, effect, misclassified", CASES)
def test_each_outcome_has_its_own_wording(manifest, tmp_path, outcome, effect, misclassified):
    changed = copy.deepcopy(manifest)
    image = changed["experiments"][0]["images"][0]
    attack = image["attack"]
    attack.update(outcome=outcome, effect=effect, targeted=outcome.startswith("target"),
                  target_index=attack["adversarial"]["index"] if outcome.startswith("target") else None)
    if outcome == "later":
        attack.update(grid_index=3, steps=4, previous_epsilon=0.0121)
    if outcome in ("never", "target_missed"):
        attack.update(epsilon=None, threshold=None, grid_index=None)
    image["misclassified"] = misclassified
    if misclassified:
        wrong = (image["clean"]["index"] + 1) % 10
        image["true_index"] = attack["adversarial"]["index"] if effect == "corrected" else (
            wrong if wrong != attack["adversarial"]["index"] else (wrong + 1) % 10)
    docs = render(changed, tmp_path)
    page = f"article/{image['id']}.md"
    texts = {"en": page_text(docs, "en", page), "zh": page_text(docs, "zh", page)}
    for phrases, chosen in ((OUTCOMES, outcome), (EFFECTS, (effect, misclassified))):
        for key, (english, chinese) in phrases.items():
            said = key == chosen
            assert (english in texts["en"]) == said, (key, "en")
            assert (chinese in texts["zh"]) == said, (key, "zh")
    assert ("Misclassified before any attack" in texts["en"]) == misclassified
    assert ("攻击之前就已误分类" in texts["zh"]) == misclassified


@pytest.mark.slow
@pytest.mark.parametrize("verdict, english, chinese", [
    ("amplified", "the network amplifies the attack's direction", "网络放大的是攻击所选的方向"),
    ("grows_like_noise", "the growth is not specific to the attack", "这种增长并不是攻击特有的"),
    ("no_growth", "does not show the butterfly effect", "看不到蝴蝶效应"),
])
def test_growth_is_claimed_only_as_the_measurement_says(manifest, tmp_path, verdict, english, chinese):
    changed = copy.deepcopy(manifest)
    image = changed["experiments"][0]["images"][0]
    image["butterfly"]["verdict"] = verdict
    docs = render(changed, tmp_path)
    page = f"article/{image['id']}.md"
    assert english in page_text(docs, "en", page) and chinese in page_text(docs, "zh", page)
    for other in ("the network amplifies the attack's direction", "the growth is not specific to the attack",
                  "does not show the butterfly effect"):
        if other != english:
            assert other not in page_text(docs, "en", page)


@pytest.mark.slow
def test_close_up_captions_name_the_map_the_figure_drew(manifest, tmp_path):
    docs = render(manifest, tmp_path)
    for experiment in manifest["experiments"]:
        for image in experiment["images"]:
            for lang in ("en", "zh"):
                text = (docs / lang / experiment["id"] / f"{image['id']}.md").read_text("utf-8")
                for key in ("zoom_chosen", "zoom_most_changed"):
                    figure = image["figures"][lang].get(key)
                    if figure is None:
                        continue
                    unit = {"en": figure["unit"], "zh": "卷积核" if figure["unit"] == "filter" else "通道"}[lang]
                    named = f"{figure['layer']}, {unit} {figure['channel']}" if lang == "en" else \
                        f"{figure['layer']} 的{unit} {figure['channel']}"
                    caption = text.split(figure["path"].split("/")[-1])[1].split("</figcaption>")[0]
                    assert named.replace("_", "\\_") in caption, (image["id"], lang, key)
            most = image["most_changed"]
            figure = image["figures"]["en"]["zoom_most_changed"]
            assert (figure["layer"], figure["channel"]) == (most["layer"], most["channel"])


@pytest.mark.slow
def test_failures_are_listed_on_the_home_pages(manifest, tmp_path):
    changed = copy.deepcopy(manifest)
    changed["experiments"][1]["failures"] = [{"source": "content/images/broken.png",
                                              "message": "experiment 'fashion': image broken.png cannot be decoded"}]
    docs = render(changed, tmp_path)
    for lang in ("en", "zh"):
        home = page_text(docs, lang, "index.md")
        assert escape_markdown("content/images/broken.png") in home
        assert escape_markdown("experiment 'fashion': image broken.png") in home
        assert home.index("broken") < home.index("## 1.")


def test_compiled_templates_are_kept_and_a_changed_template_is_compiled_again(tmp_path):
    from generator.site.pages import _environment

    templates, compiled = tmp_path / "templates", tmp_path / "compiled"
    templates.mkdir()
    for text, expected in (("first {{ 1 + 1 }}", "first 2"), ("second {{ 2 + 2 }}", "second 4")):
        (templates / "page.md.j2").write_text(text, encoding="utf-8")
        assert _environment(templates, compiled).get_template("page.md.j2").render() == expected
        assert len(list(compiled.iterdir())) == 1  # one entry per template, replaced when it changes
