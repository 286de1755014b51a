"""The generated docs and mkdocs.yml also build with Zensical, Material for MkDocs' successor.

Zensical reads mkdocs.yml (with its !ENV variables and the INHERITed menu) and must produce
the same pages as MkDocs, in both languages, each pair showing the same figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from generator.site import pages, mkdocs as site
from sample_manifest import write_sample_docs, write_sample_repo

pytestmark = pytest.mark.slow

pytest.importorskip("zensical")


def built_pages(site_dir: Path) -> set[str]:
    return {p.relative_to(site_dir).as_posix() for p in site_dir.rglob("index.html")}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """(zensical site dir, mkdocs site dir) from the same generated docs."""
    root = write_sample_repo(tmp_path_factory.mktemp("zensical"))
    docs = root / "build" / "docs"
    manifest = write_sample_docs(docs)
    pages.render_docs(manifest, docs, root)
    result = subprocess.run([sys.executable, "-m", "zensical", "build", "--strict",
                             "--config-file", "mkdocs.yml"], cwd=root,
                            env=site.site_environment(docs, root), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    mkdocs_site = site.build_site(root, docs, root / "mkdocs-site")
    return root / "site", mkdocs_site


def test_zensical_builds_the_same_pages_as_mkdocs(builds):
    zensical_site, mkdocs_site = builds
    found = built_pages(zensical_site)
    assert found == built_pages(mkdocs_site)
    for lang in pages.LANGUAGES:
        assert {f"{lang}/index.html", f"{lang}/gallery/index.html",
                f"{lang}/examples/ankle-boot/index.html"} <= found


def test_both_languages_show_the_same_figures(builds):
    zensical_site, mkdocs_site = builds
    for path in sorted(built_pages(zensical_site)):
        if not path.startswith("en/"):
            continue
        english = zensical_site / path
        chinese = zensical_site / ("zh/" + path[3:])
        shown = re.findall(r'<img [^>]*src="([^"]+)"', english.read_text("utf-8"))
        assert shown == re.findall(r'<img [^>]*src="([^"]+)"', chinese.read_text("utf-8")), path
        for src in shown:  # and every one of them is there
            assert (english.parent / src).resolve().is_file(), (path, src)
        assert shown == re.findall(r'<img [^>]*src="([^"]+)"',
                                   (mkdocs_site / path).read_text("utf-8")), path
    home = (zensical_site / "en" / "index.html").read_text("utf-8")
    assert "images/ankle-boot/butterfly.png" in home


def test_zensical_keeps_the_same_page_language_switch(builds):
    zensical_site, _ = builds
    text = (zensical_site / "zh" / "examples" / "bag" / "index.html").read_text("utf-8")
    assert re.search(r'<a href="(\./)*\.\./\.\./\.\./en/examples/bag/" hreflang="en"', text)
