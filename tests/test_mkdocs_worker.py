"""The MkDocs workers: a warmed-up worker writes what `mkdocs build` writes, strict mode still
fails on a warning, and a worker that died is replaced."""

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator.errors import UserError
from generator.site import mkdocs


def project(root: Path, body: str) -> Path:
    """A one-language project as the pages stage writes it: docs/mkdocs-en.yml and docs/en/."""
    docs = root / "docs"
    (docs / "en").mkdir(parents=True)
    (docs / "en" / "index.md").write_text(f"# Home\n\n{body}\n", encoding="utf-8")
    (docs / "mkdocs-en.yml").write_text("site_name: Test\ndocs_dir: en\ntheme:\n  name: material\n"
                                        "plugins:\n- search\n", encoding="utf-8")
    return docs


def differences(left: Path, right: Path) -> list[str]:
    compared = filecmp.dircmp(left, right)
    found = compared.left_only + compared.right_only + compared.diff_files + compared.funny_files
    return found + [name for sub in compared.common_dirs for name in differences(left / sub, right / sub)]


@pytest.mark.slow
def test_a_warm_worker_writes_what_mkdocs_build_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    docs = project(tmp_path, "Some *text* and [a link](#home).")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--clean", "--strict", "--config-file",
                    str(docs / "mkdocs-en.yml"), "--site-dir", str(tmp_path / "cli" / "en")],
                   cwd=docs, env=env, check=True, capture_output=True)
    compiled = tmp_path / "compiled"
    for build in ("first", "second", "third"):  # the second reuses the worker, the third a new one
        if build != "second":
            mkdocs.stop_workers()
            mkdocs.start_workers(["en"], docs, compiled)  # warms up with this config first
        mkdocs.build_languages(docs, tmp_path / build, ["en"])
        assert differences(tmp_path / "cli" / "en", tmp_path / build / "en") == [], build
        assert len(list(compiled.glob("*.cache"))) > 20  # the theme's templates, compiled once


@pytest.mark.slow
def test_strict_fails_on_a_warning_every_time_and_a_dead_worker_is_replaced(tmp_path):
    docs = project(tmp_path, "A link to [nowhere](missing.md).")
    for attempt in range(2):  # a repeated warning is not swallowed as a duplicate
        with pytest.raises(UserError, match=r"'en' pages failed: WARNING - Doc file 'index.md' contains a link "
                                            r"'missing.md', but the target is not found"):
            mkdocs.build_languages(docs, tmp_path / f"site{attempt}", ["en"])
    (docs / "en" / "index.md").write_text("# Home\n\nFine now.\n", encoding="utf-8")
    worker = mkdocs._workers["en"][0]
    worker.kill()
    worker.wait()
    mkdocs.build_languages(docs, tmp_path / "site", ["en"])
    assert (tmp_path / "site" / "en" / "index.html").is_file() and mkdocs._workers["en"][0] is not worker


def two_pages(docs: Path, link_target: str = "other.md") -> None:
    """index.md links to a section of other.md and shows a picture; anchors are checked."""
    config = docs / "mkdocs-en.yml"
    if "validation" not in config.read_text(encoding="utf-8"):
        config.write_text(config.read_text(encoding="utf-8") + "validation:\n  anchors: warn\n", encoding="utf-8")
    (docs / "en" / "index.md").write_text(f"# Home\n\nSee [the other page]({link_target}#part) and "
                                          "![a picture](picture.png).\n\n## Section\n\nText.\n", encoding="utf-8")
    (docs / "en" / "other.md").write_text("# Other\n\n## Part\n\nText.\n", encoding="utf-8")
    (docs / "en" / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))


@pytest.mark.slow
def test_kept_pages_give_the_same_site_and_links_are_checked_again(tmp_path, monkeypatch):
    """Converted pages kept between builds (and processes) write what a full conversion writes;
    a page kept whose link target is gone still fails the strict build; the docs folder's files
    are hard-linked into the site."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    docs = project(tmp_path, "")
    two_pages(docs)
    rendered = tmp_path / "rendered"
    mkdocs.stop_workers()
    mkdocs.build_languages(docs, tmp_path / "plain", ["en"])  # no kept pages
    for build in ("first", "second", "third"):  # the second reuses the worker, the third a new one
        if build == "third":
            mkdocs.stop_workers()
        mkdocs.build_languages(docs, tmp_path / build, ["en"], rendered=rendered)
        assert differences(tmp_path / "plain" / "en", tmp_path / build / "en") == [], build
        kept = json.loads((rendered / "en.json").read_text(encoding="utf-8"))
        assert (len(kept["pages"]), len(kept["search"])) == (2, 2), build
    picture = tmp_path / "third" / "en" / "picture.png"
    assert picture.stat().st_ino == (docs / "en" / "picture.png").stat().st_ino

    # index.md is unchanged but the page it links to is gone: it is converted again and warns.
    (docs / "en" / "other.md").unlink()
    with pytest.raises(UserError, match=r"'en' pages failed: WARNING - Doc file 'index.md' contains a link "
                                        r"'other.md#part', but the target 'other.md' is not found"):
        mkdocs.build_languages(docs, tmp_path / "gone", ["en"], rendered=rendered)
    # An anchor that other.md no longer has is found although index.md is kept.
    (docs / "en" / "other.md").write_text("# Other\n\nNo part.\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"contains a link 'other.md#part', but the doc 'other.md' does not contain "
                                        r"an anchor '#part'"):
        mkdocs.build_languages(docs, tmp_path / "no-anchor", ["en"], rendered=rendered)


@pytest.mark.slow
def test_a_page_whose_conversion_warned_is_not_kept(tmp_path):
    docs = project(tmp_path, "")
    two_pages(docs, link_target="missing.md")
    rendered = tmp_path / "rendered"
    mkdocs.build_languages(docs, tmp_path / "lenient", ["en"], strict=False, rendered=rendered)
    kept = json.loads((rendered / "en.json").read_text(encoding="utf-8"))
    assert [entry["title"] for entry in kept["pages"].values()] == ["Other"]
    with pytest.raises(UserError, match="missing.md"):  # converted again, so the warning comes again
        mkdocs.build_languages(docs, tmp_path / "strict", ["en"], rendered=rendered)


@pytest.mark.slow
def test_kept_search_entries_follow_the_segmentation_dictionary(tmp_path, monkeypatch):
    """A page's search entries are kept, and made again when the jieba dictionary that segments
    its Chinese changes: each build's index is the one a plain build writes."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    docs = project(tmp_path, "蝴蝶效应")
    config = docs / "mkdocs-en.yml"
    config.write_text(config.read_text(encoding="utf-8").replace("- search\n", "- search:\n    jieba_dict: dict.txt\n"),
                      encoding="utf-8")
    rendered = tmp_path / "rendered"
    mkdocs.stop_workers()
    indexes = []
    for words in ("蝴蝶效应 5\n", "蝴蝶 5\n效应 5\n"):
        (docs / "dict.txt").write_text(words, encoding="utf-8")
        for build in ("plain", "kept", "again"):
            target = tmp_path / words / build
            mkdocs.build_languages(docs, target, ["en"], rendered=None if build == "plain" else rendered)
            indexes.append((target / "en" / "search" / "search_index.json").read_text(encoding="utf-8"))
        assert indexes[-3] == indexes[-2] == indexes[-1]
    texts = [json.loads(index)["docs"][0]["text"] for index in (indexes[0], indexes[-1])]
    assert "蝴蝶效应" in texts[0] and "蝴蝶\u200b效应" in texts[1], texts
