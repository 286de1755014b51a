"""Pages and site stages: escaping, claims that follow the data, the attack code, the build."""

from __future__ import annotations

import copy
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import markdown
import pytest
import yaml

from generator.site import pages, mkdocs as site
from generator.errors import UserError
from sample_manifest import (CLASS_NAMES, GROWING, REPO_ROOT, image_record, sample_manifest,
                             write_sample_docs, write_sample_repo)

EVIL_SCRIPT = "<script>alert(1)</script>"
EVIL_MARKDOWN = "a|b*c_[x](y)"
TRICKY = [EVIL_SCRIPT, EVIL_MARKDOWN, "# 1. - + `x` \\ {: .c} & &amp; 'q\" ![i](j)", "1. item",
          "line\nbreak | cell"]
SUB_PATH = "butterfly-site"
# The Markdown extensions mkdocs.yml enables that change how text is parsed.
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


# --- escaping --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", TRICKY)
def test_escaped_text_renders_literally_everywhere(text):
    escaped = pages.escape_markdown(text)
    expected = " ".join(text.split())
    source = (f"# {escaped}\n\n{escaped}\n\n- {escaped}\n\n| A | B |\n|---|---|\n| {escaped} | x |\n\n"
              f"![{escaped}](a.png)\n\n[{escaped}](b.md)\n")
    out = rendered(source)
    assert "".join(out.text["h1"]) == expected
    assert "".join(out.text["p"]) .startswith(expected)
    assert "".join(out.text["li"]) == expected
    assert out.text["td"] == [expected, "x"]
    assert out.alts == [expected]
    assert "".join(out.text["a"]) == expected


def test_escaped_text_keeps_a_table_row_in_its_cells():
    row = " | ".join(pages.escape_markdown(t) for t in TRICKY)
    html = markdown.markdown("| " + " | ".join("h" * len(TRICKY)) + " |\n|" + "---|" * len(TRICKY)
                             + f"\n| {row} |\n", extensions=EXTENSIONS)
    assert html.count("<td>") == len(TRICKY)
    assert "<script>" not in html


def test_number_formats():
    assert pages.format_percent(0.91234) == "91.2%"
    assert pages.format_percent(None) == "—"
    assert pages.format_epsilon(0.0107) == "0.0107" and pages.format_epsilon(0.01) == "0.0100"
    assert pages.format_number(0.012345) == "0.0123"
    assert pages.format_ratio(311.4) == "311" and pages.format_ratio(2.345) == "2.3"
    assert pages.format_shape([26, 26, 10]) == "26 × 26 × 10"


# --- claims ----------------------------------------------------------------------------------

@pytest.mark.parametrize("values, grows", [
    ([0.02, 0.05, 0.1, 0.4, 0.9], True),
    ([0.02, 0.01, 0.03, 0.02, 0.9], False),       # last above first, but only 2 of 4 steps rise
    ([0.5, 0.6, 0.7, 0.8, 0.1], False),           # most steps rise, but the end is below the start
    ([0.1, float("nan"), 0.2, 0.3], True),        # non-finite values are skipped
    ([0.4], False), ([], False), ([0.2, 0.2, 0.2], False),
])
def test_grows_with_depth(values, grows):
    assert pages.grows_with_depth(values) is grows


def test_rising_steps_counts_increases():
    assert pages.rising_steps([1, 2, 1, 3]) == (2, 3)


@pytest.mark.parametrize("outcome, expected", [
    ("flipped", "flipped"), ("not_fooled", "not_fooled"),
    ("targeted_success", "targeted_success"), ("targeted_failure", "targeted_failure"),
    ("targeted_failure_changed", "targeted_failure"),
])
def test_attack_outcome(outcome, expected):
    assert pages.attack_outcome(image_record("x", outcome=outcome, target="Bag")) == expected


@pytest.fixture
def render(tmp_path):
    """render(images, **manifest options) -> {relative page path: text}."""
    repo = write_sample_repo(tmp_path / "repo")

    def run(images=None, **options):
        docs = tmp_path / "docs"
        manifest = write_sample_docs(docs, sample_manifest(images, **options))
        written = pages.render_docs(manifest, docs, repo)
        return {p.relative_to(docs).as_posix(): p.read_text(encoding="utf-8") for p in written}

    return run


# Phrases that must appear (and the others must not) for each outcome, per language.
OUTCOME_WORDS = {
    "flipped": ("The label flipped", "标签翻转了"),
    "not_fooled": ("The label held", "标签没有变"),
    "targeted_success": ("Target reached", "命中目标"),
    "targeted_failure": ("Target not reached", "没有命中目标"),
}


@pytest.mark.parametrize("outcome", ["flipped", "not_fooled", "targeted_success",
                                     "targeted_failure", "targeted_failure_changed"])
def test_each_outcome_has_its_own_wording(render, outcome):
    targeted = outcome.startswith("targeted")
    out = render([image_record("img", outcome=outcome, target="Bag" if targeted else None)],
                 targeted=targeted)
    key = pages.attack_outcome(image_record("img", outcome=outcome, target="Bag"))
    for lang, index in (("en", 0), ("zh", 1)):
        text = out[f"{lang}/examples/img.md"]
        for other, words in OUTCOME_WORDS.items():
            present = f'"{words[index]}"' in text
            assert present is (other == key), (lang, other)
    en = out["en/examples/img.md"]
    if outcome == "targeted_failure_changed":
        assert "just not to the target" in en and "只是不是目标类别" in out["zh/examples/img.md"]
    elif outcome == "targeted_failure":
        assert "The answer stays" in en and "just not to the target" not in en


def test_already_misclassified_is_said_only_when_true(render):
    out = render([image_record("wrong", true_label="Coat", clean_label="Shirt"),
                  image_record("right")])
    assert "Already misclassified" in out["en/examples/wrong.md"]
    assert "原本就判错了" in out["zh/examples/wrong.md"]
    assert "Already misclassified" not in out["en/examples/right.md"]
    assert "原本就判错了" not in out["zh/examples/right.md"]
    assert "already wrong" in out["en/gallery.md"]


def test_growth_with_depth_is_claimed_only_when_the_numbers_grow(render):
    shrinking = list(reversed(GROWING))
    out = render([image_record("grows"), image_record("shrinks", relative_l2=shrinking)])
    assert "The difference grows with depth" in out["en/examples/grows.md"]
    assert "差异随层数加深而增大" in out["zh/examples/grows.md"]
    assert "The difference grows with depth" not in out["en/examples/shrinks.md"]
    assert "does not grow steadily with depth" in out["en/examples/shrinks.md"]
    assert "差异并没有随层数稳定增大" in out["zh/examples/shrinks.md"]
    assert "**1 of 2**" in out["en/butterfly-effect.md"]


def test_noise_wording_follows_whether_noise_changed_the_label(render):
    out = render([image_record("calm"), image_record("noisy", noise_fooled=True)])
    assert "The noise\nchanges the label too" in out["en/examples/noisy.md"]
    assert "the model still answers" in out["en/examples/calm.md"]
    assert "噪声也改变了标签" in out["zh/examples/noisy.md"]


# --- figures and pages -----------------------------------------------------------------------

def test_every_page_is_written_in_both_languages(render):
    out = render()
    for lang in pages.LANGUAGES:
        for page in pages.PAGES:
            assert f"{lang}/{page}" in out
        assert {f"{lang}/examples/ankle-boot.md", f"{lang}/examples/bag.md"} <= set(out)
        assert f"butterfly_lang: {lang}" in out[f"{lang}/index.md"]
    assert "url=en/" in out["index.md"]


def test_figures_are_rendered_with_their_alt_text_and_missing_ones_omitted(render):
    full = image_record("full")
    partial = image_record("part", figure_keys=("perturbation", "thumbnail"), grid_layers=())
    out = render([full, partial], training=False, robustness=False)
    page = out["en/examples/full.md"]
    for key, figure in full["figures"].items():
        if key != "thumbnail":
            assert f"![{pages.escape_markdown(figure['alt'])}](../../{figure['path']})" in page, key
    part = out["en/examples/part.md"]
    assert "images/part/perturbation.png" in part
    for missing in ("butterfly", "sweep_gif", "overview_clean", "zoom_configured", "propagation_gif"):
        assert f"images/part/{missing}" not in part
    assert "### Close-ups" not in part and "No overview of the original image" in part
    training = out["en/training.md"]
    assert "training_curves" not in training and "did not train the model" in training
    assert "Accuracy as ε grows" not in out["en/butterfly-effect.md"]


def test_numbers_come_from_the_manifest(render):
    out = render()
    home = out["en/index.md"]
    assert "ε = 0.0114" in home and "83.1% accuracy" in home and "5,450 parameters" in home
    assert "| 3 | 0.5000 | 84.0% | 0.5500 | 82.0% |" in out["en/training.md"]
    assert "| 0.0200 | 20.0% | 81.0% |" in out["zh/butterfly-effect.md"]


# --- a model imported without data ----------------------------------------------------------

def test_model_facts_take_classes_from_the_model_then_the_dataset():
    facts = pages.model_facts(sample_manifest())
    assert facts == {"imported": False, "class_names": CLASS_NAMES, "class_count": 10,
                     "input_shape": [28, 28, 1]}
    names = [f"class {i}" for i in range(10)]
    facts = pages.model_facts(sample_manifest(imported=True, model_class_names=names))
    assert facts["imported"] and facts["class_names"] == names and facts["input_shape"] == [28, 28, 1]


def test_model_facts_rebuild_the_class_list_only_from_complete_predictions():
    everyone = [image_record(f"i{n}", clean_label=name, true_label=name,
                             adversarial_label=CLASS_NAMES[(n + 1) % 10])
                for n, name in enumerate(CLASS_NAMES)]
    manifest = sample_manifest(everyone, imported=True)
    del manifest["model"]["input_shape"]
    facts = pages.model_facts(manifest)
    assert facts["class_names"] == CLASS_NAMES and facts["class_count"] == 10
    assert facts["input_shape"] == [28, 28, 1]  # the first image's input layer
    facts = pages.model_facts(sample_manifest(imported=True))  # 3 of 10 classes seen
    assert facts["class_names"] is None and facts["class_count"] == 10
    clash = copy.deepcopy(everyone)
    clash[1]["clean"]["index"] = clash[0]["clean"]["index"]  # one index, two labels
    assert pages.model_facts(sample_manifest(clash, imported=True))["class_names"] is None


def test_an_imported_model_without_data_is_described_honestly(render):
    names = ["red panda", "lady|bug", "lifeboat", "pizza", "bell pepper", "school bus", "koala",
             "espresso", "orange", "sport car"]
    out = render(imported=True, model_class_names=names)
    for lang in pages.LANGUAGES:
        for page in pages.PAGES:
            assert f"{lang}/{page}" in out
    everything = "\n".join(out.values())
    assert "Fashion" not in everything and "| Epoch |" not in everything
    file = pages.escape_markdown("../models/tiny_vgg/model.json")
    row = "| conv\\_1\\_1 | Conv2D | 26 × 26 × 10 | 100 |"
    home, zh_home = out["en/index.md"], out["zh/index.md"]
    assert "Dataset: none" in home and "数据集：无" in zh_home
    assert f"imported from {file}" in " ".join(home.split()) and f"从 {file} 导入" in zh_home
    assert "accuracy on" not in home and "准确率为" not in zh_home
    assert row in home and row in zh_home
    listed = ", ".join(pages.escape_markdown(n) for n in names)
    assert f"one of 10 classes: {listed}." in home
    assert "、".join(pages.escape_markdown(n) for n in names) in zh_home
    assert "accuracy as ε grows" not in home and "准确率随 ε 的变化" not in zh_home
    training, zh_training = out["en/training.md"], out["zh/training.md"]
    assert "trained elsewhere" in training and "在别处训练" in zh_training
    assert "No dataset was loaded" in training and "没有载入数据集" in zh_training
    assert row in training and row in zh_training
    assert "images/model/butterfly_all.png" in out["en/butterfly-effect.md"]
    assert "## Accuracy as ε grows" not in out["en/butterfly-effect.md"]
    assert "## 准确率随 ε 的变化" not in out["zh/butterfly-effect.md"]
    assert "(unused" in out["en/reproduce.md"] and "未使用" in out["zh/reproduce.md"]
    # The abstract stays one admonition with one list item per fact.
    items = rendered(home).text["li"]
    assert any(item.startswith("Dataset: none.") for item in items)


def test_an_imported_model_without_a_class_list_gives_only_the_count(render):
    out = render(imported=True)
    assert "It answers with one of 10 classes." in out["en/index.md"]
    assert "它的回答是 10 个类别之一。" in out["zh/index.md"]
    assert "The model answers with one of 10 classes." in out["en/training.md"]


# --- failures on the home page ---------------------------------------------------------------

def test_failures_are_listed_near_the_top_of_the_home_page(render):
    failures = [{"source": f"content/images/{EVIL_MARKDOWN}.png", "message": EVIL_SCRIPT},
                {"source": "broken.png", "message": "cannot decode"}]
    out = render(failures=failures)
    for lang, title, sep in (("en", "Images that could not be processed", ": "),
                             ("zh", "无法处理的图片", "：")):
        home = out[f"{lang}/index.md"]
        assert home.index(f'!!! failure "{title}"') < home.index("## 1.")
        html = markdown.markdown(home, extensions=EXTENSIONS)
        assert "<script>" not in html
        box = re.search(r'<div class="admonition failure">(.*?)</div>', html, re.S).group(1)
        items = re.findall(r"<li>(.*?)</li>", box, re.S)
        assert items == [f"content/images/{EVIL_MARKDOWN}.png{sep}&lt;script&gt;alert(1)&lt;/script&gt;",
                         f"broken.png{sep}cannot decode"], lang
    assert "2 more could not be processed" in out["en/index.md"]
    assert "另有 2 张无法处理" in out["zh/index.md"]
    assert "could not be processed" not in render()["en/index.md"]


# --- the attack code -------------------------------------------------------------------------

def test_function_source_reads_the_function_with_its_decorator(tmp_path):
    path = tmp_path / "attack.py"
    path.write_text("import os\n\n\n@decorate\ndef fgsm(x):\n    return x\n\n\ndef other():\n    pass\n")
    excerpt = pages.function_source(path, "fgsm")
    assert excerpt == {"text": "@decorate\ndef fgsm(x):\n    return x", "first_line": 4,
                       "last_line": 6}


def test_function_source_fails_with_one_line(tmp_path):
    path = tmp_path / "attack.py"
    path.write_text("def other():\n    pass\n")
    with pytest.raises(UserError, match=r"no top-level function named 'fgsm'") as error:
        pages.function_source(path, "fgsm")
    assert "\n" not in str(error.value)
    path.write_text("def broken(:\n")
    with pytest.raises(UserError, match="cannot parse"):
        pages.function_source(path, "fgsm")
    with pytest.raises(UserError, match="cannot read"):
        pages.function_source(tmp_path / "missing.py", "fgsm")


def test_the_site_shows_the_real_attack_code_unchanged(tmp_path):
    docs = tmp_path / "docs"
    manifest = write_sample_docs(docs)
    written = pages.render_docs(manifest, docs, REPO_ROOT)
    home = next(p for p in written if p.as_posix().endswith("en/index.md")).read_text("utf-8")
    source = (REPO_ROOT / "generator" / "analysis" / "attack.py").read_text("utf-8").splitlines()
    for name in pages.ATTACK_FUNCTIONS["fgsm"] + pages.SEARCH_FUNCTIONS:
        excerpt = pages.function_source(REPO_ROOT / "generator" / "analysis" / "attack.py", name)
        body = "\n".join(source[excerpt["first_line"] - 1:excerpt["last_line"]])
        assert body in home and f'linenums="{excerpt["first_line"]}"' in home
    assert "def fgsm(" in home


def test_code_fence_outgrows_backticks_inside():
    assert pages.code_fence("a ``` b") == "````"
    assert pages.code_fence("plain") == "```"


def test_unknown_language_or_schema_is_a_user_error(render, tmp_path):
    manifest = sample_manifest()
    manifest["site"]["languages"] = ["en", "fr"]
    with pytest.raises(UserError, match="site.languages: 'fr'"):
        pages.render_docs(manifest, tmp_path / "d", REPO_ROOT)
    manifest = sample_manifest()
    manifest["schema"] = 2
    with pytest.raises(UserError, match="schema"):
        pages.render_docs(manifest, tmp_path / "d", REPO_ROOT)


# --- mkdocs.yml and the menu -----------------------------------------------------------------

class _EnvLoader(yaml.SafeLoader):
    pass


_EnvLoader.add_constructor("!ENV", lambda loader, node: loader.construct_sequence(node)[-1])


def test_mkdocs_yml_inherits_the_generated_menu():
    config = yaml.load((REPO_ROOT / "mkdocs.yml").read_text("utf-8"), Loader=_EnvLoader)
    assert config["INHERIT"] == "build/docs/" + pages.NAV_FILE
    assert config["docs_dir"] == "build/docs" and config["site_dir"] == "site"
    assert "nav" not in config
    assert config["theme"]["custom_dir"] == "templates/theme"
    assert (REPO_ROOT / "templates" / "theme" / "partials" / "alternate.html").is_file()
    assert "content.code.copy" in config["theme"]["features"]
    assert [p if isinstance(p, str) else next(iter(p)) for p in config["plugins"]] == ["search", "glightbox"]


def test_site_nav_lists_every_page_once_per_language():
    manifest = sample_manifest()
    nav = pages.site_nav(manifest)
    assert [next(iter(section)) for section in nav] == ["English", "简体中文"]
    flat = yaml.safe_dump(nav, allow_unicode=True)
    for lang in pages.LANGUAGES:
        for page in pages.PAGES:
            assert flat.count(f"{lang}/{page}") == 1
        for image in manifest["images"]:
            assert flat.count(f"{lang}/examples/{image['id']}.md") == 1


# --- building the site -----------------------------------------------------------------------

def evil_manifest() -> dict:
    """Class names, titles, captions, alt texts and file names that try to break out."""
    record = image_record("evil", f"{EVIL_SCRIPT} {EVIL_MARKDOWN}", caption=EVIL_MARKDOWN,
                          true_label=EVIL_MARKDOWN, clean_label=EVIL_MARKDOWN,
                          adversarial_label=EVIL_SCRIPT)
    record["source"] = f"content/images/{EVIL_MARKDOWN}.png"
    record["figures"]["thumbnail"]["alt"] = EVIL_SCRIPT + EVIL_MARKDOWN
    manifest = sample_manifest([record], title=f"{EVIL_SCRIPT} & co")
    manifest["site"]["site_url"] = f"https://example.github.io/{SUB_PATH}/"
    manifest["dataset"]["class_names"][0] = EVIL_SCRIPT
    manifest["failures"] = [{"source": f"{EVIL_MARKDOWN}.png", "message": EVIL_SCRIPT}]
    return manifest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A built site (MkDocs, strict) from the sample manifest with hostile text in it."""
    root = write_sample_repo(tmp_path_factory.mktemp("site"))
    docs = root / "build" / "docs"
    manifest = write_sample_docs(docs, evil_manifest())
    pages.render_docs(manifest, docs, root)
    site.build_site(root, docs, root / "site")
    return root / "site"


def html_pages(site_dir: Path) -> dict[str, str]:
    return {p.relative_to(site_dir).as_posix(): p.read_text("utf-8") for p in site_dir.rglob("*.html")}


def test_site_has_both_languages_and_the_menu(built):
    built_pages = html_pages(built)
    for lang in pages.LANGUAGES:
        for page in ("index.html", "training/index.html", "gallery/index.html",
                     "examples/evil/index.html", "butterfly-effect/index.html",
                     "reproduce/index.html", "references/index.html"):
            assert f"{lang}/{page}" in built_pages
    assert "examples/evil/" in built_pages["en/training/index.html"]  # the image page is in the menu
    assert not (built / pages.NAV_FILE).exists()
    assert (built / "manifest.json").is_file()


def root_relative(text: str) -> list[str]:
    return [m for m in re.findall(r'(?:href|src)="([^"]*)"', text)
            if m.startswith("/") and not m.startswith("//")]


def test_site_uses_only_relative_links(built):
    for name, text in html_pages(built).items():
        if name != "404.html":
            assert root_relative(text) == [], name
    # The 404 page is served at any depth, so MkDocs roots its links at site_url's path.
    assert {link.split("/")[1] for link in root_relative(html_pages(built)["404.html"])} == {SUB_PATH}


def test_language_switch_points_at_the_same_page(built):
    text = html_pages(built)["en/examples/evil/index.html"]
    assert re.search(r'<a href="../../../zh/examples/evil/" hreflang="zh"', text)
    text = html_pages(built)["zh/training/index.html"]
    assert re.search(r'<a href="../../en/training/" hreflang="en"', text)


def test_hostile_text_is_shown_as_text(built):
    for name, text in html_pages(built).items():
        assert EVIL_SCRIPT not in text, name
    gallery = html_pages(built)["en/gallery/index.html"]
    row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", gallery, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert len(cells) == 6
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a|b*c_[x](y)</a>" in cells[1]
    assert cells[2] == EVIL_MARKDOWN
    assert f'alt="&lt;script&gt;alert(1)&lt;/script&gt;{EVIL_MARKDOWN}"' in cells[0]
    assert "<title>Walkthrough - &lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>" in \
        html_pages(built)["en/index.html"]
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html_pages(built)["index.html"]
    assert f"<li>{EVIL_MARKDOWN}.png: &lt;script&gt;" in gallery
    assert f"<li>{EVIL_MARKDOWN}.png: &lt;script&gt;" in html_pages(built)["en/index.html"]
    assert f"<li>{EVIL_MARKDOWN}.png：&lt;script&gt;" in html_pages(built)["zh/index.html"]


def test_a_broken_link_fails_the_strict_build_and_keeps_the_old_site(tmp_path):
    root = write_sample_repo(tmp_path / "repo")
    docs = root / "build" / "docs"
    pages.render_docs(write_sample_docs(docs), docs, root)
    site.build_site(root, docs, root / "site")
    before = (root / "site" / "en" / "index.html").read_text("utf-8")
    page = docs / "en" / "references.md"
    page.write_text(page.read_text("utf-8") + "\n[gone](nowhere.md)\n", encoding="utf-8")
    with pytest.raises(UserError, match="nowhere.md") as error:
        site.build_site(root, docs, root / "site")
    assert "\n" not in str(error.value)
    assert (root / "site" / "en" / "index.html").read_text("utf-8") == before
    assert not list(root.glob(".site.*"))


def test_site_environment_takes_the_title_from_the_manifest(tmp_path):
    write_sample_docs(tmp_path, evil_manifest())
    env = site.site_environment(tmp_path, base={"PATH": "/bin", "BUTTERFLY_SITE_URL": "outer",
                                                "BUTTERFLY_DOCS_DIR": "stale"})
    inside = site.site_environment(tmp_path, tmp_path.parent, base={})
    assert inside["BUTTERFLY_DOCS_DIR"] == tmp_path.name  # relative to the project, for Zensical
    assert env["BUTTERFLY_SITE_NAME"] == "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
    assert env["BUTTERFLY_SITE_URL"] == f"https://example.github.io/{SUB_PATH}/"
    assert env["BUTTERFLY_DOCS_DIR"] == str(tmp_path.resolve())
    assert env["BUTTERFLY_NAV_FILE"] == str(tmp_path.resolve() / pages.NAV_FILE)
    # Without a manifest value, the outer environment's (e.g. the Pages workflow's) is used.
    env = site.site_environment(tmp_path / "nothing", base={"BUTTERFLY_SITE_URL": "https://x/y/",
                                                            "BUTTERFLY_SITE_NAME": "A<B"})
    assert env["BUTTERFLY_SITE_URL"] == "https://x/y/" and env["BUTTERFLY_SITE_NAME"] == "A&lt;B"
    assert "BUTTERFLY_REPO_URL" not in site.site_environment(tmp_path / "nothing", base={})


# --- deploying -------------------------------------------------------------------------------

def test_deploy_command_runs_gh_deploy_on_the_repository_config(tmp_path):
    command = site.deploy_command(tmp_path, remote="upstream", message="Publish")
    assert command[1:5] == ["-m", "mkdocs", "gh-deploy", "--force"]
    assert command[command.index("--config-file") + 1] == str(tmp_path / "mkdocs.yml")
    assert command[command.index("--remote-name") + 1] == "upstream"
    assert command[command.index("--remote-branch") + 1] == "gh-pages"
    assert command[-2:] == ["--message", "Publish"]


def test_deploy_without_a_remote_fails_with_one_line(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    write_sample_docs(tmp_path / "build" / "docs")
    (tmp_path / "build" / "docs" / "index.md").write_text("# x\n")
    with pytest.raises(UserError, match="git remote 'origin'") as error:
        site.deploy(tmp_path)
    assert "\n" not in str(error.value)


def test_deploy_without_built_pages_says_so(tmp_path):
    with pytest.raises(UserError, match="butterfly build"):
        site.deploy(tmp_path)


def test_a_build_without_images_or_training_still_builds(tmp_path):
    root = write_sample_repo(tmp_path / "repo")
    docs = root / "build" / "docs"
    manifest = sample_manifest([], training=False, robustness=False)
    manifest["failures"] = [{"source": "broken.png", "message": "cannot decode"}]
    pages.render_docs(write_sample_docs(docs, manifest), docs, root)
    site.build_site(root, docs, root / "site")
    assert "Images:" not in (docs / pages.NAV_FILE).read_text("utf-8")
    home = (root / "site" / "en" / "index.html").read_text("utf-8")
    assert "No image was processed" in home and "1\ncould not be processed" in home


def test_an_imported_model_without_data_builds_a_strict_site(tmp_path):
    root = write_sample_repo(tmp_path / "repo")
    docs = root / "build" / "docs"
    manifest = sample_manifest(imported=True,
                               failures=[{"source": "broken.png", "message": "cannot decode"}])
    pages.render_docs(write_sample_docs(docs, manifest), docs, root)
    site.build_site(root, docs, root / "site")
    built_pages = html_pages(root / "site")
    for lang in pages.LANGUAGES:
        assert "<td>conv_1_1</td>" in built_pages[f"{lang}/training/index.html"]
        assert "<td>conv_1_1</td>" in built_pages[f"{lang}/index.html"]
    assert "<li>broken.png: cannot decode</li>" in built_pages["en/index.html"]
