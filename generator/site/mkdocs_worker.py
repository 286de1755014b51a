"""A process that builds one language's MkDocs project on request, kept warm between builds.

Started by :func:`generator.site.mkdocs.start_workers` at the start of a build, it loads
MkDocs, Material and the Markdown extensions while the build computes, then reads requests from
stdin, one JSON object per line ({"config_file", "site_dir", "strict", "cwd", "env",
"rendered"}), builds each as ``mkdocs build --clean`` would, and answers on stdout with one
line: {"ok", "log", "error"}, where "log" holds MkDocs' warnings and errors ("WARNING -  ...").
``butterfly serve`` keeps its workers, so a rebuild pays for neither the imports nor, in
Chinese, jieba's dictionary.

Each worker serves one language: jieba's dictionary is global to the process, and the languages
set different ones. Given the language's config of the previous build, a worker first builds a
one-page project with it and throws the result away: a first build loads much that later ones
reuse (Markdown extensions, Pygments' lexers, jieba's dictionary), about half a second, and more
in Chinese.

Three things make a worker's build cheaper than the command line's, with the same output
(see :func:`install`): files from the docs folder are hard-linked into the site, not copied
(the figures are most of the site's bytes); the theme's templates are compiled once and kept
on disk; and a page's Markdown is converted again, and its search entries made again, only
when something they depend on changed (:class:`RenderedPages`, kept on disk between builds
when the request names a file).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from importlib import metadata
from pathlib import Path


class _Collect(logging.Handler):
    """Keeps the text of every record it handles, as MkDocs' command line prints it."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname:<8}-  {record.getMessage()}")


def _build(config) -> None:
    """Build a loaded MkDocs config as its command line does (``--clean``)."""
    from mkdocs.commands.build import build

    config.plugins.on_startup(command="build", dirty=False)
    try:
        build(config, dirty=False)
    finally:
        config.plugins.on_shutdown()


def build_one(config_file: str, site_dir: str, strict: bool, cwd: str, env: dict,
              rendered: str | None = None) -> dict:
    """What ``mkdocs build --clean --config-file ... --site-dir ... [--strict]`` does, in this
    process. MkDocs counts the warnings of its own loggers and, strict, fails on any.
    ``rendered``: the file that keeps the pages' converted Markdown between builds."""
    from mkdocs.config import load_config

    global _pages
    os.chdir(cwd)
    os.environ.update(env)
    collect = _Collect()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(collect)
    error = None
    if not rendered:
        _pages = None
    elif _pages is None or _pages.path != Path(rendered):
        _pages = RenderedPages(Path(rendered))
    try:
        _build(load_config(config_file=config_file, site_dir=site_dir, strict=strict))
        if _pages is not None:
            _pages.save()
    except Exception as problem:  # Abort, a configuration error, a plugin's failure: all reported
        error = str(problem) or traceback.format_exc(limit=-3)
    finally:
        logger.removeHandler(collect)
        if _pages is not None:
            _pages.forget_use()
    return {"ok": error is None, "log": collect.lines, "error": error}


# --- what makes a worker's build cheaper -------------------------------------------------------

class RenderedPages:
    """Each page's Markdown converted to HTML, and the search entries of its HTML, reused while
    nothing they depend on changed.

    A page's entry is found by the page's source after the plugins' ``on_page_markdown``, its
    place (source path, URL, whether it is excluded), the Markdown and link-validation settings
    and the versions of the libraries that convert. It also lists every file the page's links
    looked up and what each resolved to, and is reused only when each still resolves the same
    way. A page whose conversion logged anything (a broken link, an unknown anchor) is never
    kept, so its warnings come again at every build.

    A page's search entries are found by everything the search plugin reads: the page's HTML
    after the plugins' ``on_page_content``, its URL, title, table of contents and metadata, the
    plugin's settings, the contents of its jieba dictionaries and the versions of Material and
    jieba."""

    def __init__(self, path: Path):
        self.path = path
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
            self.entries: dict[str, dict] = kept["pages"]
            self.search: dict[str, list] = kept["search"]
        except (OSError, ValueError, KeyError, TypeError):
            self.entries, self.search = {}, {}
        self.used: dict[str, dict] = {}
        self.searched: dict[str, list] = {}

    def save(self) -> None:
        """Keep the entries this build used, and only those."""
        self.entries, self.search = dict(self.used), dict(self.searched)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.tmp")
        scratch.write_text(json.dumps({"pages": self.entries, "search": self.search}, ensure_ascii=False),
                           encoding="utf-8")
        scratch.replace(self.path)

    def forget_use(self) -> None:
        """After a build, saved or not: the next one starts with nothing used."""
        self.used.clear()
        self.searched.clear()

    @staticmethod
    def key(page, config) -> str:
        settings = [config["markdown_extensions"], config["mdx_configs"], config["use_directory_urls"],
                    dict(config["validation"]["links"]), _converter_versions()]
        place = [page.file.src_uri, page.file.url, page.file.inclusion.is_excluded()]
        text = json.dumps([place, repr(settings), page.markdown], ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def render(self, page, config, files, convert) -> None:
        """``page.render(config, files)``, from an entry when one fits (``convert`` is MkDocs' own)."""
        from mkdocs.structure.toc import get_toc

        key = self.key(page, config)
        entry = self.entries.get(key)
        if entry is not None and all(_resolved(files.get_file_from_path(uri)) == target
                                     for uri, target in entry["lookups"].items()):
            page.content = entry["content"]
            page.toc = get_toc(entry["toc"])
            page._title_from_render = entry["title"]
            page.present_anchor_ids = set(entry["anchors"])
            if logging.getLogger("mkdocs").getEffectiveLevel() > logging.DEBUG:
                page.links_to_anchors = {files.get_file_from_path(uri): links for uri, links in entry["links"].items()}
            self.used[key] = entry
            return
        lookups = _Lookups(files)
        logged = _Collect()
        logged.setLevel(logging.INFO)
        logger = logging.getLogger("mkdocs")
        logger.addHandler(logged)
        try:
            convert(page, config, lookups)
        finally:
            logger.removeHandler(logged)
        if not logged.lines:
            self.used[key] = {
                "content": page.content, "toc": [_toc_token(item) for item in page.toc], "title": page._title_from_render,
                "anchors": sorted(page.present_anchor_ids),
                "links": {target.src_uri: links for target, links in (page.links_to_anchors or {}).items()},
                "lookups": lookups.seen}

    def index(self, search_index, page, add_entries) -> None:
        """``search_index.add_entry_from_context(page)``, from an entry when one fits
        (``add_entries`` is Material's own)."""
        settings = search_index.config
        dictionaries = [_file_digest(settings.get(name)) for name in ("jieba_dict", "jieba_dict_user")]
        metadata_read = {name: page.meta.get(name) for name in ("search", "tags", "title")}
        text = repr([sorted(settings.items()), dictionaries, _search_versions(), page.url, page.title, metadata_read,
                     [_toc_token(item) for item in page.toc], page.content])
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        made = self.search.get(key)
        if made is None:
            first = len(search_index.entries)
            add_entries(search_index, page)
            made = search_index.entries[first:]
        else:
            search_index.entries.extend(made)
        self.searched[key] = made


class _Lookups:
    """A page's view of MkDocs' Files that notes what each lookup resolved to."""

    def __init__(self, files):
        self._files = files
        self.seen: dict[str, list | None] = {}

    def get_file_from_path(self, path: str):
        found = self._files.get_file_from_path(path)
        self.seen[path] = _resolved(found)
        return found

    def __getattr__(self, name):
        return getattr(self._files, name)


def _resolved(file) -> list | None:
    """What a link to ``file`` turns into: its URL and whether it is left out of the site."""
    return None if file is None else [file.url, file.inclusion.is_excluded()]


def _toc_token(item) -> dict:
    return {"level": item.level, "id": item.id, "name": item.title, "children": [_toc_token(c) for c in item.children]}


# The kept pages of the current request's file (None: each page is converted).
_pages: RenderedPages | None = None


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


@functools.cache
def _converter_versions() -> list[str]:
    return [_version(name) for name in ("mkdocs", "markdown", "pymdown-extensions", "mkdocs-material", "pygments")]


@functools.cache
def _search_versions() -> list[str]:
    return [_version(name) for name in ("mkdocs-material", "jieba")]


def _file_digest(path: str | None) -> str | None:
    """The SHA-256 of a file named by a setting, relative to the current folder (None if unset
    or unreadable)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except OSError:
        return None


def install(compiled: Path | None = None) -> None:
    """Make this process's MkDocs builds cheaper, their output unchanged:

    - a file of the docs folder is hard-linked into the site (copied where that fails);
    - with ``compiled``, the theme's templates are compiled once and kept in that folder by
      Jinja's bytecode cache, keyed on their source, as the pages stage keeps its own;
    - a page's Markdown and its search entries come from :class:`RenderedPages` when the
      request names its file.
    """
    import mkdocs.utils
    from material.plugins.search.plugin import SearchIndex
    from mkdocs.structure.pages import Page
    from mkdocs.theme import Theme

    from generator.cache import link_or_copy, template_cache

    copy_file = mkdocs.utils.copy_file

    def link_docs_file(source: str, output: str) -> None:
        if Path(source).is_relative_to(Path.cwd()):  # the worker runs in the docs folder
            os.makedirs(os.path.dirname(output), exist_ok=True)
            link_or_copy(source, output)
        else:
            copy_file(source, output)

    mkdocs.utils.copy_file = link_docs_file

    if compiled is not None:
        bytecode, get_env = template_cache(compiled), Theme.get_env

        def cached_env(theme):
            env = get_env(theme)
            env.bytecode_cache = bytecode
            return env

        Theme.get_env = cached_env
    convert = Page.render

    def render(page, config, files) -> None:
        if _pages is None:
            convert(page, config, files)
        else:
            _pages.render(page, config, files, convert)

    Page.render = render
    add_entries = SearchIndex.add_entry_from_context

    def index(search_index, page) -> None:
        if _pages is None:
            add_entries(search_index, page)
        else:
            _pages.index(search_index, page, add_entries)

    SearchIndex.add_entry_from_context = index


# The warm-up page: a little of everything the site's pages use.
WARM_UP_PAGE = """# 蝴蝶效应 butterfly

!!! note "扰动 perturbation"
    Text.

??? info "Details"
    Text.

| a | b |
|---|---|
| 1 | 2 |

<figure markdown>
Text.
</figure>

```python
print("butterfly")
```
"""


def warm_up(config_file: str) -> None:
    """A throw-away build of the warm-up page with ``config_file`` (its nav left out); any
    failure is ignored: the real build reports its own."""
    from mkdocs.config import load_config

    logger = logging.getLogger("mkdocs")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with tempfile.TemporaryDirectory(prefix="butterfly-mkdocs-") as scratch:
            docs = Path(scratch) / "docs"
            docs.mkdir()
            (docs / "index.md").write_text(WARM_UP_PAGE, encoding="utf-8")
            os.chdir(Path(config_file).parent)  # where the config's relative paths start
            config = load_config(config_file=config_file, docs_dir=str(docs), site_dir=str(Path(scratch) / "site"))
            config["nav"] = None
            _build(config)
    except Exception:
        pass
    finally:
        logger.setLevel(level)


def main() -> None:
    # Ctrl-C reaches the whole process group; the build that started this worker stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Loading MkDocs must not slow down what the build does meanwhile (TensorFlow, the figures);
    # when the build waits for this process, nothing else competes with it.
    os.nice(5)
    # Answers go to the original stdout; anything else printed there goes to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # The imports a build needs, done before the first request arrives.
    import material.plugins.search.plugin  # noqa: F401
    import mkdocs.commands.build  # noqa: F401
    import mkdocs.config  # noqa: F401
    import pymdownx.superfences  # noqa: F401

    options = argparse.ArgumentParser(prog="python -m generator.site.mkdocs_worker")
    options.add_argument("--compiled", type=Path, help="where compiled templates are kept between processes")
    options.add_argument("warm_up", nargs="?", help="a config to warm up with")
    args = options.parse_args()
    install(args.compiled)
    if args.warm_up:
        warm_up(args.warm_up)
    for line in sys.stdin:
        answers.write(json.dumps(build_one(**json.loads(line))) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
