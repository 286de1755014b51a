"""Stage site: build every language with MkDocs into a fresh folder, add what lives at the site
root (the language chooser, the 404 page, the manifest, downloads), then swap it in whole.

The previous ``site/`` stays untouched until the new one is complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from generator.cache import fresh_sibling, swap_in
from generator.site.mkdocs import build_languages, root_page
from generator.stages.context import Build

NOT_FOUND = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>404</title></head>
<body><p>{links}</p></body></html>
"""


def stage_site(build: Build, manifest: dict) -> None:
    site = manifest["site"]
    fresh = fresh_sibling(build.site_dir)
    fresh.mkdir(parents=True, exist_ok=True)
    build_languages(build.docs_dir, fresh, site["languages"])
    (fresh / "index.html").write_text(root_page(site), encoding="utf-8")
    first = site["languages"][0]
    if site.get("site_url"):
        # Built with the site's address, the first language's 404 page links back from any depth.
        shutil.copy2(fresh / first / "404.html", fresh / "404.html")
    else:
        links = " · ".join(f'<a href="/{lang}/">{lang}</a>' for lang in site["languages"])
        (fresh / "404.html").write_text(NOT_FOUND.format(lang=first, links=links), encoding="utf-8")
    shutil.copy2(build.docs_dir / "manifest.json", fresh / "manifest.json")
    write_downloads(build, manifest, fresh / "downloads")
    swap_in(fresh, build.site_dir)


def write_downloads(build: Build, manifest: dict, folder: Path) -> None:
    """The files the code page offers: the standalone script and each experiment's model."""
    from generator.site.pages import STANDALONE_SCRIPT

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(STANDALONE_SCRIPT, folder / STANDALONE_SCRIPT.name)
    for experiment in manifest["experiments"]:
        target = folder / experiment["id"]
        target.mkdir()
        shutil.copy2(Path(experiment["model_dir"]) / "model.keras", target / "model.keras")
        (target / "classes.txt").write_text("\n".join(experiment["model"]["class_names"]) + "\n", encoding="utf-8")
