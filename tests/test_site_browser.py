"""The built site in a real browser: every page served under a sub-path, as on GitHub Pages.

Uses the system Chromium through Playwright (never a downloaded browser) and skips when
/usr/bin/chromium is absent. Screenshots of the home page and one image page are saved to
build/screenshots/ for a person to look at.
"""

from __future__ import annotations

import functools
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest

from generator.site import pages, mkdocs as site
from sample_manifest import REPO_ROOT, write_sample_docs, write_sample_repo

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SUB_PATH = "/butterfly-site/"
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
# The site under test: "synthetic_site" (below) or "built_site" (tests/conftest.py, the real
# default build). Both return a root directory holding site/.
SITE_FIXTURE = "built_site"


@pytest.fixture(scope="module")
def synthetic_site(tmp_path_factory) -> Path:
    root = write_sample_repo(tmp_path_factory.mktemp("browser"))
    manifest = write_sample_docs(root / "build" / "docs")
    pages.render_docs(manifest, root / "build" / "docs", root)
    site.build_site(root, root / "build" / "docs", root / "site")
    return root


@pytest.fixture(scope="module")
def site_dir(request) -> Path:
    return Path(request.getfixturevalue(SITE_FIXTURE)) / "site"


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

    server = QuietServer(("127.0.0.1", 0),
                         functools.partial(SubPathHandler, directory=str(site_dir)))
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


def page_paths(site_dir: Path) -> list[str]:
    """URL paths (relative to the site root) of every HTML page but the 404 page."""
    return sorted("" if p.parent == site_dir else p.parent.relative_to(site_dir).as_posix() + "/"
                  for p in site_dir.rglob("index.html"))


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def load(browser, url: str):
    """Open url; return (page, console errors). Lazy images are made eager and awaited."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15000)
    return page, errors


def twin(path: str) -> str:
    """The same page in the other language: en/examples/x/ <-> zh/examples/x/."""
    lang, rest = path.split("/", 1)
    return ("zh/" if lang == "en" else "en/") + rest


def test_every_page_loads_its_images_links_and_language_twin(browser, base_url, site_dir):
    paths = page_paths(site_dir)
    assert "en/" in paths and "zh/" in paths and any(p.startswith("en/examples/") for p in paths)
    checked: dict[str, int] = {}
    root = browser.new_page()
    root.goto(base_url)  # the root page redirects to the default language
    root.wait_for_url(base_url + "en/", timeout=10000)
    root.close()
    for path in paths:
        if path == "":
            continue
        page, errors = load(browser, base_url + path)
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                               ".map(i => i.getAttribute('src'))")
        assert broken == [], f"{path}: images not loaded: {broken}"
        targets = page.evaluate("Array.from(document.querySelectorAll('a[href], link[href], img[src], script[src]'))"
                                ".map(e => e.href || e.src)")
        for target in targets:
            url = urldefrag(target)[0]
            if urlsplit(url).netloc != urlsplit(base_url).netloc or url in checked:
                continue
            checked[url] = status(url)
        assert errors == [], f"{path}: console errors {errors}"
        other = twin(path)
        switch = page.locator(f"a.md-select__link[hreflang={other[:2]}]")
        assert switch.evaluate("a => a.href") == base_url + other, f"{path}: language switch"
        page.close()
    bad = {url: code for url, code in checked.items() if code != 200}
    assert bad == {}, f"local links that do not resolve: {bad}"
    assert any("/images/" in url for url in checked)


def test_language_menu_leads_to_the_same_page(browser, base_url, site_dir):
    example = next(p for p in page_paths(site_dir) if p.startswith("en/examples/"))
    page, _ = load(browser, base_url + example)
    page.hover(".md-header__option .md-select")
    page.click("a.md-select__link[hreflang=zh]")
    page.wait_for_url(base_url + twin(example))
    assert page.locator("html").get_attribute("lang")
    page.go_back()
    page.wait_for_url(base_url + example)
    page.close()


def test_screenshots_of_home_and_one_image_page(browser, base_url, site_dir):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    example = next(p for p in page_paths(site_dir) if p.startswith("en/examples/"))
    for name, path in (("home-en.png", "en/"), ("home-zh.png", "zh/"), ("image-page-en.png", example)):
        page, _ = load(browser, base_url + path)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        page.close()
        assert (SCREENSHOTS / name).stat().st_size > 10_000
