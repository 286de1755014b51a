"""Site stage: build the generated docs into a static site with MkDocs, and publish it.

MkDocs runs as a subprocess (``python -m mkdocs``) on the repository's ``mkdocs.yml``. What
varies per build reaches that file through environment variables it reads with ``!ENV``:
the docs directory and the site title, description and URLs from the manifest. Zensical reads
the same file the same way.

The build writes into a temporary directory beside ``site_dir`` and swaps it in only when
MkDocs succeeded, so a failed build leaves the previous site untouched.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from generator.cache import swap_in
from generator.errors import UserError
from generator.site.pages import NAV_FILE

CONFIG_FILE = "mkdocs.yml"
_SITE_VARIABLES = {  # manifest["site"] key -> variable read by mkdocs.yml
    "title": "BUTTERFLY_SITE_NAME",
    "description": "BUTTERFLY_SITE_DESCRIPTION",
    "site_url": "BUTTERFLY_SITE_URL",
    "repo_url": "BUTTERFLY_REPO_URL",
}
_ESCAPED_VARIABLES = {"BUTTERFLY_SITE_NAME", "BUTTERFLY_SITE_DESCRIPTION"}


def site_environment(docs_dir: Path, repo_root: Path | None = None,
                     base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an MkDocs (or Zensical) run of ``repo_root/mkdocs.yml`` on ``docs_dir``.

    Reads ``docs_dir/manifest.json`` when present for the site title, description and URLs.
    A value missing from the manifest may come from the outer environment (``base``, default
    os.environ), e.g. BUTTERFLY_SITE_URL set by the Pages workflow. The title and description
    are HTML-escaped because the theme templates insert them unescaped. The docs directory is
    given relative to ``repo_root`` when it lies inside it (Zensical accepts only that);
    MkDocs also takes an absolute one.
    """
    outer = dict(os.environ if base is None else base)
    env = {key: value for key, value in outer.items() if not key.startswith("BUTTERFLY_")}
    docs = Path(docs_dir).resolve()
    if repo_root is not None and docs.is_relative_to(Path(repo_root).resolve()):
        docs = docs.relative_to(Path(repo_root).resolve())
    env["BUTTERFLY_DOCS_DIR"] = docs.as_posix()
    env["BUTTERFLY_NAV_FILE"] = (docs / NAV_FILE).as_posix()
    env["NO_MKDOCS_2_WARNING"] = "1"
    manifest_path = Path(docs_dir) / "manifest.json"
    site = {}
    if manifest_path.is_file():
        try:
            site = json.loads(manifest_path.read_text(encoding="utf-8")).get("site") or {}
        except (OSError, ValueError) as error:
            raise UserError(f"{manifest_path}: cannot read it: {error}") from None
    for key, variable in _SITE_VARIABLES.items():
        value = site.get(key) or outer.get(variable)
        if value:
            text = " ".join(str(value).split())
            env[variable] = html.escape(text) if variable in _ESCAPED_VARIABLES else text
    return env


def build_command(repo_root: Path, site_dir: Path, strict: bool = True) -> list[str]:
    """The MkDocs command line that builds ``repo_root/mkdocs.yml`` into ``site_dir``."""
    command = [sys.executable, "-m", "mkdocs", "build", "--clean",
               "--config-file", str(Path(repo_root) / CONFIG_FILE), "--site-dir", str(site_dir)]
    return command + (["--strict"] if strict else [])


def _first_problem(output: str) -> str:
    """The first WARNING/ERROR line of MkDocs output, or its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("WARNING", "ERROR")) or "Error:" in line:
            return " ".join(line.split())
    return lines[-1] if lines else "no output"


def build_site(repo_root: Path, docs_dir: Path, site_dir: Path, strict: bool = True) -> Path:
    """Build the site from ``docs_dir`` into ``site_dir`` with MkDocs; return ``site_dir``.

    In strict mode any MkDocs warning (a broken link, a missing image) fails the build with a
    :class:`UserError` naming the first warning; the previous ``site_dir`` is kept.
    """
    repo_root, docs_dir, site_dir = Path(repo_root), Path(docs_dir), Path(site_dir).resolve()
    if not (repo_root / CONFIG_FILE).is_file():
        raise UserError(f"{repo_root / CONFIG_FILE}: not found; run from the repository root")
    if not (docs_dir / "index.md").is_file():
        raise UserError(f"{docs_dir}: no generated pages (index.md missing); run the pages stage first")
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = site_dir.with_name(f".{site_dir.name}.building")
    shutil.rmtree(fresh, ignore_errors=True)
    result = subprocess.run(build_command(repo_root, fresh, strict), cwd=repo_root,
                            env=site_environment(docs_dir, repo_root),
                            capture_output=True, text=True)
    if result.returncode != 0 or not (fresh / "index.html").is_file():
        shutil.rmtree(fresh, ignore_errors=True)
        raise UserError(f"mkdocs build failed: {_first_problem(result.stderr + result.stdout)}")
    swap_in(fresh, site_dir)
    return site_dir


def deploy_command(repo_root: Path, remote: str = "origin", branch: str = "gh-pages",
                   message: str | None = None) -> list[str]:
    """The ``mkdocs gh-deploy`` command line publishing ``repo_root`` to ``remote/branch``."""
    command = [sys.executable, "-m", "mkdocs", "gh-deploy", "--force", "--strict",
               "--config-file", str(Path(repo_root) / CONFIG_FILE),
               "--remote-name", remote, "--remote-branch", branch]
    return command + (["--message", message] if message else [])


def deploy(repo_root: Path, docs_dir: Path | None = None, *, remote: str = "origin",
           branch: str = "gh-pages", message: str | None = None) -> list[str]:
    """Publish the built docs to GitHub Pages with ``mkdocs gh-deploy --force``.

    gh-deploy rebuilds the site (strict) from ``docs_dir`` (default ``repo_root/build/docs``),
    commits it to ``branch`` and force-pushes that branch to ``remote``. Fails with one line
    when the docs are not built, the directory is not a git repository or has no such remote.
    Returns the command that ran.
    """
    repo_root = Path(repo_root)
    docs_dir = Path(docs_dir) if docs_dir is not None else repo_root / "build" / "docs"
    if not (docs_dir / "index.md").is_file():
        raise UserError(f"{docs_dir}: no built pages to deploy; run `butterfly build` first")
    probe = subprocess.run(["git", "-C", str(repo_root), "remote", "get-url", remote],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        reason = " ".join(probe.stderr.split()) or f"exit status {probe.returncode}"
        raise UserError(f"cannot deploy: git remote '{remote}' is not usable in {repo_root} "
                        f"({reason}); add one with `git remote add {remote} <url>`")
    command = deploy_command(repo_root, remote, branch, message)
    result = subprocess.run(command, cwd=repo_root, env=site_environment(docs_dir, repo_root),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"mkdocs gh-deploy failed: {_first_problem(result.stderr + result.stdout)}")
    return command


def serve(repo_root: Path, docs_dir: Path, addr: str = "127.0.0.1:8000") -> None:
    """Preview the built docs with ``mkdocs serve`` (live reload) until interrupted."""
    command = [sys.executable, "-m", "mkdocs", "serve", "--config-file", str(Path(repo_root) / CONFIG_FILE),
               "--dev-addr", addr]
    try:
        subprocess.run(command, cwd=repo_root, env=site_environment(docs_dir, repo_root), check=False)
    except KeyboardInterrupt:
        pass
