"""Pages stage: fill the Jinja2 Markdown templates from the manifest, in every site language.

Each language is its own MkDocs project under the docs folder (see generator.site.mkdocs)::

    <lang>/index.md                 the walkthrough, steps 1-8, on the first experiment's first
                                    image, then the same on the other experiments
    <lang>/ideas.md                 why it works: convolution, ReLU, pooling, the sign step,
                                    targeted and untargeted attacks, the noise control
    <lang>/gallery.md               every attacked image of every experiment
    <lang>/butterfly-effect.md      the like-for-like measurement, per experiment and compared
    <lang>/<experiment>/index.md    one experiment: data, model, training, robustness
    <lang>/<experiment>/<image>.md  steps 2-7 for one image
    <lang>/code.md                  the standalone script and the project's own attack code
    <lang>/glossary.md              terms in English and Chinese
    <lang>/reproduce.md             configuration, versions, seeds
    <lang>/references.md            the visualizers and tools the article builds on

Every page of one language has its twin at the same path in the others; the theme override
``templates/theme/partials/alternate.html`` points the language selector at that twin.
The text is written per language in ``templates/<lang>/``; which sentence a page says about an
image or a model is decided here, from the manifest (see ``generator.site.facts``). Nothing in
here imports TensorFlow: the code shown on the site is read as text.
"""

from __future__ import annotations

import ast
import posixpath
import re
import shlex
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import jinja2

from generator.cache import template_cache
from generator.errors import UserError
from generator.site import facts
from generator.site.explorer import panel_html
from generator.site.format import FILTERS
from generator.site.mkdocs import LANGUAGE_NAMES, write_language_configs

TEMPLATE_LANGUAGES = ("zh", "en")
SCHEMA = 2
PAGES = ("index.md", "ideas.md", "gallery.md", "butterfly-effect.md", "code.md", "glossary.md",
         "reproduce.md", "references.md")
MENU_TITLES = {
    "en": {"index.md": "Walkthrough", "ideas.md": "Why it works", "gallery.md": "Gallery",
           "butterfly-effect.md": "The butterfly effect", "code.md": "Code", "glossary.md": "Glossary",
           "reproduce.md": "Reproduce", "references.md": "References", "model": "The model"},
    "zh": {"index.md": "导览", "ideas.md": "原理", "gallery.md": "图库", "butterfly-effect.md": "蝴蝶效应",
           "code.md": "代码", "glossary.md": "术语表", "reproduce.md": "复现", "references.md": "参考",
           "model": "模型"},
}
ATTACK_SOURCE = Path("generator") / "analysis" / "attack.py"
STANDALONE_SCRIPT = Path(__file__).resolve().parents[2] / "content" / "code" / "fgsm_search.py"
# Functions of generator/analysis/attack.py the code page shows, per attack method.
ATTACK_FUNCTIONS = {
    "fgsm": ("gradient_sign", "fgsm", "plain_epsilon_loop"),
    "bim": ("gradient_sign", "fgsm", "basic_iterative_method", "_iterate", "plain_epsilon_loop"),
    "pgd": ("gradient_sign", "fgsm", "projected_gradient_descent", "_iterate", "plain_epsilon_loop"),
}


# --- the code shown on the site ------------------------------------------------------------

def function_source(path: Path, name: str) -> dict:
    """Source text of the top-level function ``name`` in the Python file ``path``.

    Returns {"text", "first_line", "last_line"} (1-based, decorators included). Parsed with
    :mod:`ast`, never imported, so showing the code costs no TensorFlow import.
    """
    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read {path} to show its code: {error.strerror}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as error:
        raise UserError(f"{path}: cannot parse it (line {error.lineno}): {error.msg}") from None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            lines = source.splitlines()[first - 1:node.end_lineno]
            return {"text": "\n".join(lines), "first_line": first, "last_line": node.end_lineno}
    raise UserError(f"{path}: no top-level function named '{name}' to show on the site")


def code_fence(text: str) -> str:
    """A backtick fence longer than any backtick run inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def attack_code(repo_root: Path, names: Sequence[str]) -> list[dict]:
    """The source excerpts of the functions ``names`` of generator/analysis/attack.py, in order.

    Each: {"name", "path", "text", "first_line", "last_line", "fence"}.
    """
    path = Path(repo_root) / ATTACK_SOURCE
    shown = []
    for name in names:
        excerpt = function_source(path, name)
        shown.append({**excerpt, "name": name, "path": ATTACK_SOURCE.as_posix(), "fence": code_fence(excerpt["text"])})
    return shown


def standalone_script() -> dict:
    text = STANDALONE_SCRIPT.read_text(encoding="utf-8")
    return {"text": text.rstrip("\n"), "name": STANDALONE_SCRIPT.name, "fence": code_fence(text)}


# --- rendering -----------------------------------------------------------------------------

def _environment(templates_dir: Path, compiled: Path | None = None) -> jinja2.Environment:
    """The pages' Jinja environment; with ``compiled``, templates compiled once are kept there
    (Jinja's bytecode cache, checked against each template's source) for later builds."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        bytecode_cache=template_cache(compiled) if compiled is not None else None,
        undefined=jinja2.StrictUndefined, autoescape=False,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(FILTERS, code_fence=code_fence, shell_quote=shlex.quote)
    return env


def page_helpers(page: str) -> dict:
    """Path helpers bound to one page (``page`` relative to its language folder)."""
    page_dir = posixpath.dirname(page) or "."
    # With directory URLs, "a/b.md" is served as a/b/ and "a/index.md" as a/.
    stem = page[:-3]
    url_dir = posixpath.dirname(stem) if posixpath.basename(stem) == "index" else stem
    depth = (url_dir.count("/") + 1 if url_dir else 0) + 1  # + 1: the language folder

    def asset(path: str) -> str:
        """Link from this page to a file of the language's docs (figures)."""
        return quote(posixpath.relpath(path, page_dir), safe="/")

    def link(target: str) -> str:
        """Link from this page to another page of the same language."""
        return posixpath.relpath(target, page_dir)

    def root(path: str) -> str:
        """Link, in raw HTML, to a file at the site root (downloads, the manifest)."""
        return quote("../" * depth + path, safe="/")

    return {"asset": asset, "link": link, "root": root, "page": page}


def _check(manifest: dict) -> None:
    if manifest.get("schema") != SCHEMA:
        raise UserError(f"manifest: schema {manifest.get('schema')!r} is not {SCHEMA}; rebuild with this "
                        "version of butterfly")
    unknown = [code for code in manifest["site"]["languages"] if code not in TEMPLATE_LANGUAGES]
    if unknown:
        raise UserError(f"site.languages: {unknown[0]!r} has no templates; choose from {', '.join(TEMPLATE_LANGUAGES)}")


def site_nav(manifest: dict, lang: str) -> list:
    """One language's menu (MkDocs ``nav``): the walkthrough and the ideas, then one section per
    experiment (its model page and its images), then the pages that cover every experiment.

    Image pages carry no menu title here: MkDocs and Zensical take it from the page's own
    (escaped) title, so no user text is written unescaped into the theme.
    """
    titles = MENU_TITLES[lang]
    nav: list = [{titles["index.md"]: "index.md"}, {titles["ideas.md"]: "ideas.md"}]
    for experiment in manifest["experiments"]:
        pages = [{titles["model"]: f"{experiment['id']}/index.md"}]
        pages += [f"{experiment['id']}/{image['id']}.md" for image in experiment["images"]]
        nav.append({facts.localized(experiment["title"], lang): pages})
    nav += [{titles[page]: page} for page in PAGES[2:]]
    return nav


def render_docs(manifest: dict, docs_dir: Path, repo_root: Path, compiled: Path | None = None) -> list[Path]:
    """Write every page of every site language under ``docs_dir``, and their MkDocs configs.

    ``docs_dir`` already holds the figures the manifest points at (``<lang>/figures/...``) and
    ``manifest.json``; ``repo_root`` holds ``templates/``, ``mkdocs.yml`` and the attack code;
    ``compiled``, if given, keeps the compiled templates between builds.
    """
    _check(manifest)
    docs_dir, repo_root = Path(docs_dir), Path(repo_root)
    env = _environment(repo_root / "templates", compiled)
    method = manifest["experiments"][0]["attack_settings"]["method"] if manifest["experiments"] else "fgsm"
    shared = {"m": manifest, "code": attack_code(repo_root, ATTACK_FUNCTIONS.get(method, ATTACK_FUNCTIONS["fgsm"])),
              "script": standalone_script(), "language_names": LANGUAGE_NAMES}
    written = []
    navs = {}
    for lang in manifest["site"]["languages"]:
        view = facts.site_view(manifest, lang)

        def write(page: str, template: str, **extra: Any) -> None:
            text = env.get_template(template).render(**shared, **view, lang=lang, **page_helpers(page), **extra)
            target = docs_dir / lang / page
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(target)

        for page in PAGES:
            write(page, f"{lang}/{page}.j2")
        for experiment in view["experiments"]:
            write(f"{experiment['id']}/index.md", f"{lang}/experiment.md.j2", ex=experiment)
            for image in experiment["images"]:
                root = page_helpers(image["page"])["root"]
                explorer = panel_html(lang=lang, runtime_url=root("assets/explorer/"),
                                      payload_url=root(f"assets/explorer-data/{experiment['id']}/{image['id']}.json"))
                write(image["page"], f"{lang}/image.md.j2", ex=experiment, image=image, explorer=explorer)
        navs[lang] = site_nav(manifest, lang)
    written += write_language_configs(repo_root, docs_dir, manifest["site"], navs)
    return written

