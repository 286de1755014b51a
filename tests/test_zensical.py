"""The generated docs and language configs also build with Zensical, Material for MkDocs' successor.

Zensical reads the same generated build/docs/mkdocs-<lang>.yml files and must produce the same
pages as MkDocs, in every language, each showing the same figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("zensical")


def built_pages(site_dir: Path) -> set[str]:
    return {p.relative_to(site_dir).as_posix() for p in site_dir.rglob("index.html")}


@pytest.fixture(scope="module")
def zensical_sites(built_site):
    """{lang: (zensical site dir, mkdocs site dir)} from the default build's generated docs."""
    docs = built_site / "build" / "docs"
    sites = {}
    for lang in ("zh", "en"):
        result = subprocess.run([sys.executable, "-m", "zensical", "build", "--strict", "-f", f"mkdocs-{lang}.yml"],
                                cwd=docs, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        sites[lang] = (docs / "_site" / lang, built_site / "site" / lang)
    return sites


def test_zensical_builds_the_same_pages_as_mkdocs(zensical_sites):
    for lang, (zensical_site, mkdocs_site) in zensical_sites.items():
        found = built_pages(zensical_site)
        assert found == built_pages(mkdocs_site), lang
        assert {"index.html", "gallery/index.html", "article/panda-2/index.html"} <= found


def test_zensical_pages_show_the_same_figures_and_language(zensical_sites):
    for lang, (zensical_site, mkdocs_site) in zensical_sites.items():
        for path in sorted(built_pages(zensical_site)):
            page = (zensical_site / path).read_text("utf-8")
            shown = re.findall(r'<img [^>]*src="([^"]+)"', page)
            assert shown == re.findall(r'<img [^>]*src="([^"]+)"', (mkdocs_site / path).read_text("utf-8")), path
            for src in shown:
                assert ((zensical_site / path).parent / src).resolve().is_file(), (path, src)
            assert re.search(rf'<html[^>]* lang="{lang}"', page), path


def test_zensical_keeps_the_same_page_language_switch(zensical_sites):
    zensical_site, _ = zensical_sites["zh"]
    page = (zensical_site / "article" / "panda-2" / "index.html").read_text("utf-8")
    href = re.search(r'<a href="([^"]+)" hreflang="en"', page).group(1)
    assert href.rstrip("/").endswith("en/article/panda-2")
