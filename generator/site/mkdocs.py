"""Site: one MkDocs Material build per language, as Material documents for multilingual sites.

Each language is its own MkDocs project: ``build/docs/mkdocs-<lang>.yml`` (written here from the
project's shared ``mkdocs.yml`` plus that language's settings: ``theme.language``, its title,
search language, menu and the language selector's ``extra.alternate``) builds ``build/docs/<lang>``
into ``site/<lang>``. The site root gets a page that sends a reader to the language their
browser prefers. Zensical reads the same generated files (``zensical build -f
build/docs/mkdocs-zh.yml``, into ``build/docs/_site/zh``).
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import yaml

from generator.errors import UserError

CONFIG_FILE = "mkdocs.yml"
LANGUAGE_NAMES = {"zh": "简体中文", "en": "English"}
# The colour-scheme toggle's tooltips, which mkdocs.yml gives in English.
PALETTE_TOGGLES = {"zh": ("切换到深色模式", "切换到浅色模式")}
# The tooltip of a heading's anchor (the toc extension's; its default is English).
PERMALINK_TITLES = {"zh": "永久链接"}
# Material's default separator plus the zero-width space its search plugin puts between the
# words jieba finds in Chinese text, so that 扰动 and 小熊猫 are words of the index.
SEARCH_SEPARATOR = r'[\s\u200b\-_,:!=\[\]()"`/]+|\.(?!\d)|&[lg]t;|(?!\b)(?=[A-Z][a-z])'
CHINESE_RUN = re.compile(r"[\u4e00-\u9fff]+")


def language_config_path(docs_dir: Path, lang: str) -> Path:
    return Path(docs_dir) / f"mkdocs-{lang}.yml"


def search_settings(docs_dir: Path, lang: str) -> dict:
    """The search plugin's settings for one language. Chinese pages are segmented with jieba's
    own dictionary. Other languages' pages hold Chinese only as whole terms (the glossary's), so
    they get a dictionary of exactly those terms, each then one word of the index: loading
    jieba's full dictionary would cost about a second of every build of that language."""
    settings = {"lang": [lang if lang != "zh" else "en"], "separator": SEARCH_SEPARATOR}
    if lang != "zh":
        runs = sorted({run for page in sorted((Path(docs_dir) / lang).rglob("*.md"))
                       for run in CHINESE_RUN.findall(page.read_text(encoding="utf-8"))})
        if runs:
            dictionary = Path(docs_dir) / f"jieba-{lang}.txt"
            dictionary.write_text("".join(f"{run} 1\n" for run in runs), encoding="utf-8")
            # Read by the plugin relative to the working directory, which is docs_dir.
            settings["jieba_dict"] = dictionary.name
    return settings


def language_config(repo_root: Path, docs_dir: Path, lang: str, site: dict, nav: list) -> dict:
    """The complete MkDocs config of one language: the shared mkdocs.yml with this language's
    settings. Paths are relative to the config file's folder (docs_dir)."""
    try:
        shared = yaml.safe_load((Path(repo_root) / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"{Path(repo_root) / CONFIG_FILE}: cannot read it: {error}") from None
    here = Path(docs_dir).resolve()

    def relative(path: Path) -> str:
        return os.path.relpath(Path(path).resolve(), here)

    theme = dict(shared.get("theme") or {})
    theme["language"] = lang
    if lang in PALETTE_TOGGLES:
        theme["palette"] = [{**scheme, "toggle": {**scheme["toggle"], "name": name}}
                            for scheme, name in zip(theme.get("palette") or [], PALETTE_TOGGLES[lang])]
    if theme.get("custom_dir"):
        theme["custom_dir"] = relative(Path(repo_root) / theme["custom_dir"])
    # The theme inserts the site name and description into HTML unescaped.
    config = {
        **shared,
        "site_name": html.escape(site["title"][lang]),
        "site_description": html.escape(site["description"][lang]),
        "docs_dir": lang,
        # Where Zensical (which wants it inside the config's folder) writes; MkDocs is given
        # its own target on the command line.
        "site_dir": f"_site/{lang}",
        "theme": theme,
        "markdown_extensions": localised_extensions(shared.get("markdown_extensions") or [], lang),
        "plugins": [{"search": search_settings(docs_dir, lang)},
                    *[plugin for plugin in shared.get("plugins") or [] if plugin != "search"]],
        # A site in one language has no language selector.
        "extra": {**(shared.get("extra") or {}), **({"alternate": [
            {"name": LANGUAGE_NAMES[other], "link": f"../{other}/", "lang": other} for other in site["languages"]]}
            if len(site["languages"]) > 1 else {})},
        "nav": nav,
    }
    if site.get("site_url"):
        config["site_url"] = site["site_url"].rstrip("/") + f"/{lang}/"
    if site.get("repo_url"):
        config["repo_url"] = site["repo_url"]
    return config


def localised_extensions(extensions: list, lang: str) -> list:
    """mkdocs.yml's Markdown extensions, the toc extension's anchor tooltip in ``lang``."""
    if lang not in PERMALINK_TITLES:
        return extensions
    localised = []
    for extension in extensions:
        if extension == "toc" or (isinstance(extension, dict) and "toc" in extension):
            options = extension["toc"] if isinstance(extension, dict) else {}
            extension = {"toc": {**(options or {}), "permalink_title": PERMALINK_TITLES[lang]}}
        localised.append(extension)
    return localised


def write_language_configs(repo_root: Path, docs_dir: Path, site: dict, navs: dict) -> list[Path]:
    written = []
    for lang in site["languages"]:
        path = language_config_path(docs_dir, lang)
        config = language_config(repo_root, docs_dir, lang, site, navs[lang])
        path.write_text("# Written by butterfly's pages stage from mkdocs.yml; do not edit.\n"
                        + yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


def _first_problem(output: str) -> str:
    """The first WARNING/ERROR line of MkDocs output, or its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("WARNING", "ERROR")) or "Error:" in line:
            return " ".join(line.split())
    return lines[-1] if lines else "no output"


def build_time_environment() -> dict[str, str]:
    """What MkDocs reads from the environment at build time. It stamps the sitemap (its dates and
    its gzip header) with the build time, or SOURCE_DATE_EPOCH when set; left unset, it is the
    start of the current UTC day, so that two builds of one day publish identical files."""
    day = int(time.time()) // 86400 * 86400
    return {"NO_MKDOCS_2_WARNING": "1", "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", str(day))}


# This process's MkDocs workers (generator.site.mkdocs_worker) and the files holding their
# stderr, by language: started once, kept between the rebuilds of ``butterfly serve``.
_workers: dict[str, tuple[subprocess.Popen, IO[bytes]]] = {}


def start_workers(languages: list[str], docs_dir: Path | None = None, compiled: Path | None = None) -> None:
    """Start a MkDocs worker for each language that has none yet, so that it loads MkDocs while
    the build computes (idempotent). A worker warms up with its language's config of the
    previous build in ``docs_dir``, if there is one; ``compiled``: a folder where it keeps the
    theme's compiled templates."""
    from generator.childproc import start_child

    for lang in languages:
        if lang in _workers and _workers[lang][0].poll() is None:
            continue
        previous = language_config_path(docs_dir, lang) if docs_dir is not None else None
        options = ["--compiled", str(Path(compiled).resolve())] if compiled is not None else []
        if previous is not None and previous.is_file():
            options.append(str(previous.resolve()))
        stderr = tempfile.TemporaryFile()
        _workers[lang] = (start_child([sys.executable, "-m", "generator.site.mkdocs_worker", *options],
                                      env={**os.environ, **build_time_environment()}, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=stderr, text=True, encoding="utf-8"), stderr)


def stop_workers() -> None:
    from generator.childproc import stop_child

    while _workers:
        worker, stderr = _workers.popitem()[1]
        stop_child(worker)
        stderr.close()


def build_languages(docs_dir: Path, target: Path, languages: list[str], strict: bool = True,
                    rendered: Path | None = None, compiled: Path | None = None) -> None:
    """Build every language's MkDocs project into ``target/<lang>``, the languages side by side,
    each by its worker (see start_workers, which gets ``compiled``). ``rendered``: a folder where
    the workers keep each language's converted pages between builds (``<lang>.json``).

    In strict mode any MkDocs warning (a broken link, a missing image) fails the build with a
    :class:`UserError` naming the language and the first warning.
    """
    start_workers(languages, compiled=compiled)
    answers = {}
    try:
        for lang in languages:
            request = {"config_file": str(language_config_path(docs_dir, lang)), "site_dir": str(Path(target) / lang),
                       "strict": strict, "cwd": str(docs_dir), "env": build_time_environment(),
                       "rendered": str(Path(rendered) / f"{lang}.json") if rendered else None}
            _workers[lang][0].stdin.write(json.dumps(request) + "\n")
            _workers[lang][0].stdin.flush()
        for lang in languages:
            line = _workers[lang][0].stdout.readline()
            answers[lang] = json.loads(line) if line else {"ok": False, "log": [], "error": _stopped(lang)}
    except BaseException:
        stop_workers()  # a worker may still be building: its answer must not reach the next build
        raise
    for lang in languages:
        answer = answers[lang]
        if not answer["ok"] or not (Path(target) / lang / "index.html").is_file():
            output = "\n".join(answer["log"] + [answer["error"] or "no index.html was written"])
            raise UserError(f"mkdocs build of the '{lang}' pages failed: {_first_problem(output)}")


def _stopped(lang: str) -> str:
    """Why a worker gave no answer: the end of what it wrote to stderr."""
    worker, stderr = _workers.pop(lang)
    worker.wait()
    stderr.seek(0)
    last = [line for line in stderr.read().decode("utf-8", "replace").splitlines() if line.strip()][-3:]
    stderr.close()
    return f"the MkDocs process stopped (exit code {worker.returncode})" + (": " + " / ".join(last) if last else "")


def root_page(site: dict) -> str:
    """site/index.html: sends a reader to the language their browser prefers among the site's
    languages, else the first; without JavaScript, to the first; links to all of them."""
    languages = site["languages"]
    first = languages[0]
    links = "\n".join(f'    <li><a href="{lang}/" hreflang="{lang}" lang="{lang}">'
                      f'{html.escape(site["title"][lang])} ({LANGUAGE_NAMES[lang]})</a></li>' for lang in languages)
    return f"""<!doctype html>
<html lang="{first}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{html.escape(site["title"][first])}</title>
  <script>
    (function () {{
      var languages = {json.dumps(languages)};
      var wanted = navigator.languages || [navigator.language || ""];
      for (var i = 0; i < wanted.length; i++) {{
        var code = String(wanted[i]).toLowerCase().split("-")[0];
        if (languages.indexOf(code) >= 0) {{ location.replace(code + "/"); return; }}
      }}
      location.replace(languages[0] + "/");
    }})();
  </script>
  <noscript><meta http-equiv="refresh" content="0; url={first}/"></noscript>
</head>
<body>
  <ul>
{links}
  </ul>
</body>
</html>
"""


def deploy(site_dir: Path, repo_root: Path, *, remote: str = "origin", branch: str = "gh-pages",
           message: str | None = None) -> None:
    """Publish the built site to GitHub Pages: commit ``site_dir`` to ``branch`` and force-push
    it to ``remote`` (ghp-import, which ``mkdocs gh-deploy`` uses too)."""
    from ghp_import import GhpError, ghp_import

    if not (Path(site_dir) / "index.html").is_file():
        raise UserError(f"{site_dir}: no built site to deploy; run `butterfly build` first")
    probe = subprocess.run(["git", "-C", str(repo_root), "remote", "get-url", remote], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = " ".join(probe.stderr.split()) or f"exit status {probe.returncode}"
        raise UserError(f"cannot deploy: git remote '{remote}' is not usable in {repo_root} "
                        f"({reason}); add one with `git remote add {remote} <url>`")
    cwd = os.getcwd()
    try:
        os.chdir(repo_root)
        ghp_import(str(site_dir), mesg=message or "Publish the site", remote=remote, branch=branch,
                   push=True, force=True, nojekyll=True)
    except GhpError as error:
        raise UserError(f"publishing to '{remote}/{branch}' failed: {' '.join(str(error).split())}") from None
    finally:
        os.chdir(cwd)
