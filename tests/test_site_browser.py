"""The real default site in a real browser, served under a sub-path as on GitHub Pages.

Uses the system Chromium through Playwright (never a downloaded browser) and skips when
/usr/bin/chromium is absent. Checks every page's language and interface, the links, the
language switch, Chinese search, the root page's choice of language, and on every image page
the live explorer against the manifest. Screenshots go to build/screenshots/ for a person to
look at.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SUB_PATH = "/butterfly-site/"
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"


@pytest.fixture(scope="module")
def site_dir(built_site) -> Path:
    return built_site / "site"


@pytest.fixture(scope="module")
def manifest(site_dir) -> dict:
    return json.loads((site_dir / "manifest.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def base_url(site_dir):
    """Serve site_dir at http://127.0.0.1:<port>/butterfly-site/ (nothing above the sub-path)."""

    class SubPathHandler(SimpleHTTPRequestHandler):
        def translate_path(self, path):
            if not path.startswith(SUB_PATH):
                return str(site_dir / "__outside_the_sub_path__")
            return super().translate_path("/" + path[len(SUB_PATH):])

        def log_message(self, *args):
            pass

    class QuietServer(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # the browser closing a connection early is not a site defect

    server = QuietServer(("127.0.0.1", 0), functools.partial(SubPathHandler, directory=str(site_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}{SUB_PATH}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def page_paths(site_dir: Path, lang: str | None = None) -> list[str]:
    """URL paths (relative to the site root) of every language page, optionally one language's."""
    paths = sorted(p.parent.relative_to(site_dir).as_posix() + "/" for p in site_dir.glob("*/**/index.html"))
    return [p for p in paths if lang is None or p.startswith(f"{lang}/")]


def open_page(browser, url: str, locale: str = "en-US", width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900}, locale=locale)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    return page, errors


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.lang = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.lang = attrs.get("lang")
        for key in ("href", "src"):
            if attrs.get(key) and tag in ("a", "link", "img", "script"):
                self.links.append(attrs[key])


def test_every_page_declares_its_language_and_every_local_link_resolves(site_dir, manifest):
    titles = manifest["site"]["title"]
    for lang in manifest["site"]["languages"]:
        for path in page_paths(site_dir, lang):
            html = (site_dir / path / "index.html").read_text("utf-8")
            parser = _Links()
            parser.feed(html)
            assert parser.lang == lang, path
            assert "<title>" in html and titles[lang].split("：")[0].split(":")[0] in html.split("</title>")[0], path
            for link in parser.links:
                target = urldefrag(link)[0]
                if not target or urlsplit(target).scheme or target.startswith(("//", "mailto:", "data:")):
                    continue
                resolved = (site_dir / path / unquote(target)).resolve()
                if resolved.is_dir():
                    resolved = resolved / "index.html"
                assert resolved.is_file(), f"{path}: {link}"
                assert site_dir.resolve() in resolved.parents, f"{path}: {link} leaves the site"


def test_chinese_pages_have_a_chinese_interface(browser, base_url, site_dir):
    page, errors = open_page(browser, base_url + "zh/", locale="zh-CN")
    assert page.evaluate("document.documentElement.lang") == "zh"
    assert page.get_attribute("input.md-search__input", "placeholder") == "搜索"
    assert page.locator(".md-nav__title").first.inner_text().strip()  # the theme's labels exist
    assert "目录" in page.content()  # "Table of contents" in Chinese
    footer = page.locator(".md-copyright").inner_text()
    assert "本站由" in footer and "Made with" not in footer
    assert page.get_attribute("a.headerlink", "title") == "永久链接"
    assert errors == []
    page.close()


@pytest.mark.parametrize("lang, word", [("zh", "扰动"), ("zh", "小熊猫"), ("en", "perturbation"), ("en", "扰动")])
def test_search_finds_words_in_the_pages_language(browser, base_url, lang, word):
    page, _ = open_page(browser, base_url + f"{lang}/")
    page.click("input.md-search__input")
    # The index loads in a worker; a query typed before it is ready is not run again.
    page.wait_for_function("""() => {
        const meta = document.querySelector('.md-search-result__meta');
        return meta && meta.textContent.trim() && !/Initializing|初始化/.test(meta.textContent);
    }""", timeout=60000)
    page.fill("input.md-search__input", word)
    page.press("input.md-search__input", "End")  # the search runs on key events
    page.wait_for_selector(".md-search-result__item", timeout=60000)
    results = page.locator(".md-search-result__item")
    assert results.count() > 0
    assert word in results.first.inner_text()
    page.close()


def test_the_root_page_sends_each_reader_to_their_language(browser, base_url):
    for locale, lang in (("zh-CN", "zh"), ("en-GB", "en"), ("fr-FR", "zh")):
        page, _ = open_page(browser, base_url, locale=locale)
        page.wait_for_url(base_url + f"{lang}/", timeout=10000)
        page.close()


def test_the_language_switch_leads_to_the_same_page(browser, base_url, site_dir, manifest):
    image = manifest["experiments"][0]["images"][0]
    for lang, other in (("en", "zh"), ("zh", "en")):
        path = f"{lang}/article/{image['id']}/"
        page, _ = open_page(browser, base_url + path)
        page.hover(".md-header__option .md-select")
        page.click(f"a.md-select__link[hreflang={other}]")
        page.wait_for_url(base_url + f"{other}/article/{image['id']}/")
        assert page.evaluate("document.documentElement.lang") == other
        page.close()
    for path in page_paths(site_dir, "en"):
        html = (site_dir / path / "index.html").read_text("utf-8")
        href = re.search(r'<a href="([^"]+)" hreflang="zh"', html).group(1)
        assert urljoin(base_url + path, href) == base_url + "zh/" + path[3:], path


def test_figures_with_words_are_drawn_in_each_language(site_dir, manifest):
    image = manifest["experiments"][0]["images"][0]
    for key in ("butterfly", "overview_clean", "sweep_gif", "probabilities"):
        zh, en = (site_dir / lang / image["figures"][lang][key]["path"] for lang in ("zh", "en"))
        assert zh.read_bytes() != en.read_bytes(), key
        assert re.search(r"[\u4e00-\u9fff]", image["figures"]["zh"][key]["alt"]), key


def test_images_load_without_console_errors(browser, base_url, manifest):
    first = [f"{e['id']}/{e['images'][0]['id']}/" for e in manifest["experiments"]]
    for path in ["zh/", "en/", "zh/gallery/", "en/butterfly-effect/", *(f"zh/{p}" for p in first)]:
        page, errors = open_page(browser, base_url + path)
        page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20000)
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src)")
        assert broken == [] and errors == [], (path, broken, errors)
        page.close()


def test_every_image_page_runs_the_model_with_the_builds_numbers(browser, base_url, manifest):
    """The explorer on each image page: the article's search gives the manifest's epsilon and
    label, and the probabilities at that epsilon match the manifest's within 1e-4."""
    for experiment in manifest["experiments"]:
        for image in experiment["images"]:
            page, errors = open_page(browser, base_url + f"en/{experiment['id']}/{image['id']}/")
            page.evaluate("window.butterflyExplorer.ready")
            found = page.evaluate("window.butterflyExplorer.search()")
            attack = image["attack"]
            assert found["epsilon"] == attack["epsilon"], image["id"]
            assert found["label"] == attack["adversarial"]["label"], image["id"]
            epsilon = attack["attack_epsilon"]
            got = page.evaluate("e => window.butterflyExplorer.evaluate(e)", epsilon)
            assert max(abs(a - b) for a, b in zip(got["probabilities"], attack["adversarial"]["probabilities"])) < 1e-4
            assert errors == [], (image["id"], errors)
            page.close()


def test_screenshots_of_the_home_pages_and_the_red_panda(browser, base_url, manifest):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panda = f"article/{manifest['experiments'][0]['images'][0]['id']}/"
    for name, path in (("home-zh.png", "zh/"), ("home-en.png", "en/"), ("panda-zh.png", "zh/" + panda),
                       ("panda-en.png", "en/" + panda)):
        page, _ = open_page(browser, base_url + path)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        page.close()
        assert (SCREENSHOTS / name).stat().st_size > 10_000
