"""The MkDocs workers: a warmed-up worker writes what `mkdocs build` writes, strict mode still
fails on a warning, and a worker that died is replaced."""

import filecmp
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
    mkdocs.stop_workers()
    mkdocs.start_workers(["en"], docs)  # warms up with this config first
    for build in ("first", "second"):  # the second build reuses the worker
        mkdocs.build_languages(docs, tmp_path / build, ["en"])
        assert differences(tmp_path / "cli" / "en", tmp_path / build / "en") == [], build


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
