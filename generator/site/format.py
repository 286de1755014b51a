"""How text and numbers appear on the pages: escaping user text for Markdown and HTML, and the
one format of each kind of number (epsilon, percentage, ratio, ...), as Jinja2 filters."""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from generator.figures.common import percent_digits, threshold_text

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
    return "".join(_HTML_ENTITIES.get(ch) or ("\\" + ch if ch in _MARKDOWN_PUNCTUATION else ch) for ch in flat)


def escape_html(text: Any) -> str:
    """User text for a raw-HTML context that Markdown does not process (attributes, <code>)."""
    return "".join(_HTML_ENTITIES.get(ch, ch) for ch in " ".join(str(text).split()))


def format_percent(value: float | None, digits: int = 1) -> str:
    """0.9123 -> '91.2%'; None -> an em dash. Below 0.1 % (and above 0) two significant digits,
    so a small probability never shows as 0.0%, and near 1 as many decimals as keep it below
    100% (0.99967 -> '99.97%')."""
    if value is None:
        return "—"
    percent = 100.0 * float(value)
    if 0 < percent < 10 ** -digits:
        return f"{percent:.2g}%"
    return f"{percent:.{percent_digits(percent, digits)}f}%"


def format_epsilon(value: float | None) -> str:
    """Epsilons always with four decimals (the search step is 0.0007): 0.0107 -> '0.0107'."""
    return "—" if value is None else f"{float(value):.4f}"


def format_number(value: float | None, digits: int = 3) -> str:
    """A measured quantity with ``digits`` significant digits: 0.012345 -> '0.0123'."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.{digits}g}"


def format_ratio(value: float | None) -> str:
    """How many times as large: 311.4 -> '311', 18.7 -> '18.7', 1.98 -> '1.98' (three significant
    digits below 100, so a ratio just under a rule's bound never prints as the bound)."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):,.0f}" if value >= 100 else f"{float(value):.3g}"


def format_threshold(value: float | None) -> str:
    """A threshold, as the figures print it (figures.common.threshold_text)."""
    return "—" if value is None else threshold_text(value)


def format_fixed(value: float | None, digits: int = 4) -> str:
    """A value with a fixed number of decimals (losses)."""
    return "—" if value is None else f"{float(value):.{digits}f}"


def format_int(value: int | None) -> str:
    """12345 -> '12,345'."""
    return "—" if value is None else f"{int(value):,}"


def format_shape(shape: Sequence[int] | None) -> str:
    """[26, 26, 10] -> '26 × 26 × 10'."""
    return "—" if not shape else " × ".join(str(int(n)) for n in shape)


def yaml_string(text: Any) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text), ensure_ascii=False)


FILTERS = {"md": escape_markdown, "html": escape_html, "pct": format_percent, "eps": format_epsilon,
           "num": format_number, "fixed": format_fixed, "int": format_int, "shape": format_shape,
           "ratio": format_ratio, "thr": format_threshold, "tojson_str": yaml_string}
