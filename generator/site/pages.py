"""Pages stage: fill the Jinja2 Markdown templates from the manifest, in every site language.

Layout written under the docs directory (the MkDocs ``docs_dir``)::

    index.md                    redirect to the default language's home page
    <lang>/index.md             the walkthrough (steps 1-8), first image as the running example
    <lang>/training.md          curves, training GIF, first-layer filters, per-epoch table
    <lang>/gallery.md           every attacked image in one table
    <lang>/examples/<id>.md     steps 2-7 for one image
    <lang>/butterfly-effect.md  all images' per-layer curves, robustness curve
    <lang>/reproduce.md         configuration, versions, seeds, timings
    <lang>/references.md        the visualizers the walkthrough builds on

Every page of one language has its twin at the same path in the other language; the theme
override ``templates/theme/partials/alternate.html`` uses the ``butterfly_lang`` front-matter
key to point the language selector at that twin.

Nothing in here imports TensorFlow: the attack code shown on the site is read from
``generator/attack.py`` as text (with :mod:`ast`), never imported.
"""

from __future__ import annotations

import ast
import json
import math
import posixpath
import re
import shlex
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import jinja2
import yaml

from generator.errors import UserError

LANGUAGES = ("en", "zh")
LANGUAGE_NAMES = {"en": "English", "zh": "简体中文"}
# Pages every language has (path below the language folder) and their menu titles; the
# per-image pages go in a section after the gallery.
PAGES = ("index.md", "training.md", "gallery.md", "butterfly-effect.md", "reproduce.md",
         "references.md")
MENU_TITLES = {
    "en": {"index.md": "Walkthrough", "training.md": "Training", "gallery.md": "Gallery",
           "examples": "Images", "butterfly-effect.md": "The butterfly effect",
           "reproduce.md": "Reproduce", "references.md": "References"},
    "zh": {"index.md": "导览", "training.md": "训练", "gallery.md": "图库", "examples": "各张图片",
           "butterfly-effect.md": "蝴蝶效应", "reproduce.md": "复现", "references.md": "参考"},
}
# The menu is written beside the pages; mkdocs.yml INHERITs it. A dot file, so neither MkDocs
# nor Zensical publishes it.
NAV_FILE = ".nav.yml"
ATTACK_SOURCE = Path("generator") / "analysis" / "attack.py"
# Functions of generator/attack.py the site shows, per attack method. FGSM is always shown
# (the walkthrough explains it); an iterative method adds its own loop.
ATTACK_FUNCTIONS = {
    "fgsm": ("gradient_sign", "fgsm"),
    "bim": ("gradient_sign", "fgsm", "basic_iterative_method", "_iterate"),
    "pgd": ("gradient_sign", "fgsm", "projected_gradient_descent", "_iterate"),
}
# The article's epsilon search, written as the plain loop it describes.
SEARCH_FUNCTIONS = ("plain_epsilon_loop",)

# --- text: escaping and number formats -----------------------------------------------------

_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
# Characters Python-Markdown treats as syntax and accepts a backslash escape for ("|" is
# added by the tables extension). Escaping others would leave a visible backslash.
_MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]()#+-.!|")


def escape_markdown(text: Any) -> str:
    """User text (class name, title, caption, file name) as Markdown that renders literally.

    HTML special characters become entities, Markdown punctuation gets a backslash, and runs of
    whitespace (newlines included) collapse to one space so a value can never end a table row,
    start a list or close a heading. Safe in paragraphs, headings, table cells, link text and
    image alt text.
    """
    flat = " ".join(str(text).split())
    return "".join(_HTML_ENTITIES.get(ch) or ("\\" + ch if ch in _MARKDOWN_PUNCTUATION else ch)
                   for ch in flat)


def escape_html(text: Any) -> str:
    """User text for a raw-HTML context that Markdown does not process (attributes, <code>)."""
    return "".join(_HTML_ENTITIES.get(ch, ch) for ch in " ".join(str(text).split()))


def format_percent(value: float | None, digits: int = 1) -> str:
    """0.9123 -> '91.2%'; None -> an em dash."""
    return "—" if value is None else f"{100.0 * float(value):.{digits}f}%"


def format_epsilon(value: float | None) -> str:
    """Epsilons always with four decimals (the search step is 0.0007): 0.0107 -> '0.0107'."""
    return "—" if value is None else f"{float(value):.4f}"


def format_number(value: float | None, digits: int = 3) -> str:
    """A measured quantity with ``digits`` significant digits: 0.012345 -> '0.0123'."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.{digits}g}"


def format_ratio(value: float | None) -> str:
    """How many times as large: 311.4 -> '311', 18.7 -> '19', 2.345 -> '2.3'."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):,.0f}" if value >= 10 else f"{float(value):.2g}"


def format_fixed(value: float | None, digits: int = 4) -> str:
    """A value with a fixed number of decimals (losses, seconds)."""
    return "—" if value is None else f"{float(value):.{digits}f}"


def format_int(value: int | None) -> str:
    """12345 -> '12,345'."""
    return "—" if value is None else f"{int(value):,}"


def format_shape(shape: Sequence[int] | None) -> str:
    """[26, 26, 10] -> '26 × 26 × 10'."""
    return "—" if not shape else " × ".join(str(int(n)) for n in shape)


# --- claims that must follow the data ------------------------------------------------------

def rising_steps(values: Sequence[float]) -> tuple[int, int]:
    """(steps that increase, all steps) between consecutive finite values of ``values``."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    steps = list(zip(finite, finite[1:]))
    return sum(1 for a, b in steps if b > a), len(steps)


def grows_with_depth(values: Sequence[float]) -> bool:
    """Does a per-layer change (input first, output last) grow with depth?

    True only when the last layer's change exceeds the first's AND most consecutive steps
    (strictly more than half) increase. Non-finite values are skipped; fewer than two finite
    values never grow.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(finite) < 2:
        return False
    up, steps = rising_steps(finite)
    return finite[-1] > finite[0] and 2 * up > steps


def attack_outcome(image: dict) -> str:
    """How the attack on one image ended: one of

    - ``"flipped"``: untargeted, the label changed within epsilon_max;
    - ``"not_fooled"``: untargeted, the label held up to epsilon_max;
    - ``"targeted_success"``: targeted, the prediction reached the target;
    - ``"targeted_failure"``: targeted, it did not (the label may still have changed).

    Whether the clean prediction was already wrong is separate: ``image["misclassified"]``.
    """
    attack = image["attack"]
    if attack["targeted"]:
        return "targeted_success" if attack["succeeded"] else "targeted_failure"
    return "flipped" if attack["fooled"] else "not_fooled"


def image_facts(image: dict, zoom_layer: str | None = None) -> dict:
    """What the templates say about one image, computed once from its manifest record.

    Keys: outcome, grows, rising (up, steps) for the adversarial curve,
    first/last/peak layer records, growth (last/first change or None), output_vs_noise (the
    attack's change at the last layer over the noise's, or None), zoom (the record of layer
    ``zoom_layer`` or None), grids (list of (layer record, figure record) in layer order, only
    layers with a ``grid_<name>`` figure).
    """
    layers = image["layers"]
    adversarial = [layer["adversarial"]["relative_l2"] for layer in layers]
    first, last = (layers[0], layers[-1]) if layers else (None, None)
    finite = [(v, layer) for v, layer in zip(adversarial, layers)
              if v is not None and math.isfinite(v)]
    peak = max(finite, key=lambda pair: pair[0])[1] if finite else None
    growth = output_vs_noise = None
    if first and last:
        growth = _ratio(last["adversarial"]["relative_l2"], first["adversarial"]["relative_l2"])
        output_vs_noise = _ratio(last["adversarial"]["relative_l2"], last["noise"]["relative_l2"])
    figures = image.get("figures") or {}
    grids = [(layer, figures["grid_" + layer["name"]]) for layer in layers
             if "grid_" + layer["name"] in figures]
    return {
        "outcome": attack_outcome(image),
        "grows": grows_with_depth(adversarial),
        "rising": rising_steps(adversarial),
        "first": first, "last": last, "peak": peak, "growth": growth,
        "output_vs_noise": output_vs_noise, "grids": grids,
        "zoom": next((layer for layer in layers if layer["name"] == zoom_layer), None),
    }


def model_facts(manifest: dict) -> dict:
    """What the pages say about the model, with or without a dataset in the manifest.

    Keys: imported (bool: the build did not train it), class_names (list of str, or None when
    no complete list is known), class_count (int or None), input_shape (list of int or None).
    Class names come from ``model.class_names``, else ``dataset.class_names``, else the
    predictions recorded for the images (each has a label and its index) when together they
    name every class. The input shape comes from the dataset, the model, or the first image's
    input layer.
    """
    model = manifest.get("model") or {}
    dataset = manifest.get("dataset") or {}
    images = manifest.get("images") or []
    count = _class_count(manifest)
    names = model.get("class_names") or dataset.get("class_names")
    if not names and count:
        names = _names_from_predictions(images, count)
    shape = dataset.get("input_shape") or model.get("input_shape")
    if not shape and images and images[0].get("layers"):
        shape = images[0]["layers"][0].get("shape")
    return {"imported": model.get("source") == "imported",
            "class_names": list(names) if names else None,
            "class_count": len(names) if names else count,
            "input_shape": list(shape) if shape else None}


def _class_count(manifest: dict) -> int | None:
    """Number of classes: the model's or dataset's list, else the length of a probability vector."""
    for record in (manifest.get("model") or {}, manifest.get("dataset") or {}):
        if record.get("class_names"):
            return len(record["class_names"])
    for image in manifest.get("images") or []:
        if image.get("clean", {}).get("probabilities"):
            return len(image["clean"]["probabilities"])
    return None


def _names_from_predictions(images: list[dict], count: int) -> list[str] | None:
    """The class list rebuilt from (index, label) pairs of every recorded prediction, or None
    unless each of the ``count`` indices appears, with one label only."""
    seen: dict[int, str] = {}
    for image in images:
        attack = image.get("attack") or {}
        for prediction in (image.get("clean"), attack.get("adversarial"), image.get("noise")):
            if not prediction or prediction.get("index") is None:
                continue
            index, label = int(prediction["index"]), str(prediction["label"])
            if seen.setdefault(index, label) != label:
                return None
    if sorted(seen) != list(range(count)):
        return None
    return [seen[i] for i in range(count)]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator when both are finite and the denominator is positive."""
    if numerator is None or denominator is None:
        return None
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return None
    return numerator / denominator


# --- the attack code shown on the site -----------------------------------------------------

def function_source(path: Path, name: str) -> dict:
    """Source text of the top-level function ``name`` in the Python file ``path``.

    Returns {"text", "first_line", "last_line"} (1-based, decorators included). Parsed with
    :mod:`ast`, never imported, so showing the code costs no TensorFlow import.
    """
    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read {path} to show its attack code: {error.strerror}") from None
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
    """The source excerpts of the functions ``names`` of generator/attack.py, in order.

    Each: {"name", "path", "text", "first_line", "last_line", "fence"}.
    """
    path = Path(repo_root) / ATTACK_SOURCE
    shown = []
    for name in names:
        excerpt = function_source(path, name)
        shown.append({**excerpt, "name": name, "path": ATTACK_SOURCE.as_posix(),
                      "fence": code_fence(excerpt["text"])})
    return shown


# --- rendering -----------------------------------------------------------------------------

def _environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined, autoescape=False,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=escape_markdown, html=escape_html, pct=format_percent,
                       eps=format_epsilon, num=format_number, fixed=format_fixed,
                       int=format_int, shape=format_shape, ratio=format_ratio,
                       tojson_str=_yaml_string, code_fence=code_fence, shell_quote=shlex.quote)
    return env


def _yaml_string(text: Any) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text), ensure_ascii=False)


def _page_helpers(page: str, lang: str) -> dict:
    """Path helpers bound to one page (``page`` relative to the language folder)."""
    page_dir = posixpath.dirname(posixpath.join(lang, page))

    def asset(docs_path: str) -> str:
        """Link from this page to a file given relative to the docs dir (figures, manifest)."""
        return quote(posixpath.relpath(docs_path, page_dir or "."), safe="/")

    def link(target: str) -> str:
        """Link from this page to another page of the same language."""
        return posixpath.relpath(posixpath.join(lang, target), page_dir or ".")

    return {"asset": asset, "link": link}


def _check(manifest: dict) -> None:
    if manifest.get("schema") != 1:
        raise UserError(f"manifest: schema {manifest.get('schema')!r} is not 1; rebuild with "
                        "this version of butterfly")
    languages = (manifest.get("site") or {}).get("languages") or list(LANGUAGES)
    unknown = [code for code in languages if code not in LANGUAGES]
    if unknown:
        raise UserError(f"site.languages: {unknown[0]!r} has no templates; "
                        f"choose from {', '.join(LANGUAGES)}")


def site_nav(manifest: dict) -> list:
    """The menu (MkDocs ``nav``): one section per language, the image pages after the gallery.

    Image pages carry no menu title here: MkDocs and Zensical take it from the page's own
    (escaped) title, so no user text is written unescaped into the theme.
    """
    images = manifest.get("images") or []
    nav = []
    for lang in LANGUAGES:
        titles, section = MENU_TITLES[lang], []
        for page in PAGES:
            section.append({titles[page]: f"{lang}/{page}"})
            if page == "gallery.md" and images:
                section.append({titles["examples"]: [f"{lang}/examples/{image['id']}.md"
                                                     for image in images]})
        nav.append({LANGUAGE_NAMES[lang]: section})
    return nav


def render_docs(manifest: dict, docs_dir: Path, repo_root: Path) -> list[Path]:
    """Write every Markdown page for every language under ``docs_dir``; return their paths.

    ``docs_dir`` already holds the figures (``images/...``) the manifest points at and
    ``manifest.json``; ``repo_root`` holds ``templates/`` and ``generator/attack.py``. Every
    language in LANGUAGES is written (the theme's language menu lists them all);
    ``site.languages[0]`` is the language the root page leads to. Also writes the menu,
    ``docs_dir/.nav.yml``, which mkdocs.yml inherits.
    """
    _check(manifest)
    docs_dir, repo_root = Path(docs_dir), Path(repo_root)
    env = _environment(repo_root / "templates")
    images = manifest.get("images") or []
    zoom_layer = manifest["attack_settings"].get("zoom_layer")
    facts = {image["id"]: image_facts(image, zoom_layer) for image in images}
    context = {
        "m": manifest, "site": manifest["site"], "images": images, "facts": facts,
        "example": images[0] if images else None,
        "ex": facts[images[0]["id"]] if images else None,
        "model_figures": manifest.get("figures") or {},
        "net": model_facts(manifest),
        "code": attack_code(repo_root, ATTACK_FUNCTIONS.get(manifest["attack_settings"]["method"],
                                                            ATTACK_FUNCTIONS["fgsm"])),
        "search_code": attack_code(repo_root, SEARCH_FUNCTIONS),
        "grows_count": sum(1 for f in facts.values() if f["grows"]),
        "fooled_count": sum(1 for image in images if image["attack"]["fooled"]),
        "succeeded_count": sum(1 for image in images if image["attack"]["succeeded"]),
    }
    languages = manifest["site"].get("languages") or list(LANGUAGES)
    written = []

    def write(relative: str, template: str, **extra: Any) -> None:
        lang = relative.split("/", 1)[0] if "/" in relative else ""
        page = relative.split("/", 1)[1] if lang else relative
        text = env.get_template(template).render(**context, **_page_helpers(page, lang), **extra)
        target = docs_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)

    write("index.md", "root.md.j2", default_language=languages[0])
    for lang in LANGUAGES:
        for page in PAGES:
            write(f"{lang}/{page}", f"{lang}/{page}.j2")
        for image in images:
            write(f"{lang}/examples/{image['id']}.md", f"{lang}/example.md.j2",
                  image=image, f=facts[image["id"]])
    nav_file = docs_dir / NAV_FILE
    nav_file.write_text("# Written by butterfly's pages stage; mkdocs.yml inherits it.\n"
                        + yaml.safe_dump({"nav": site_nav(manifest)}, allow_unicode=True,
                                         sort_keys=False), encoding="utf-8")
    written.append(nav_file)
    return written

