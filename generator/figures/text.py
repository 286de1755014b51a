"""Text in figures: measuring, fitting, wrapping (at spaces, and between Chinese characters but
never before closing punctuation) and drawing through a cache of rendered glyph masks, with
formula symbols that CJK fonts draw too wide taken from DejaVu Sans."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from generator.figures.words import font, latin_font_file

INK = (30, 30, 30)  # the colour of text

# Symbols that CJK fonts draw full-width, which pulls a formula such as ‖f(x′) − f(x)‖ apart:
# in text written with another font they are drawn with DejaVu Sans of the same size.
FORMULA_SYMBOLS = frozenset("‖′")


def _symbol_runs(text: str, face) -> list[tuple[str, object]] | None:
    """`text` cut into runs of (text, face) when `face` is not DejaVu Sans and `text` holds a
    formula symbol; None when one face draws it all."""
    path = getattr(face, "path", None)
    if path is None or not FORMULA_SYMBOLS.intersection(text) or path in (latin_font_file(), latin_font_file(True)):
        return None
    symbols = font(int(face.size), bold="Bold" in (face.getname()[1] or ""))
    runs: list[tuple[str, object]] = []
    for character in text:
        chosen = symbols if character in FORMULA_SYMBOLS else face
        if runs and runs[-1][1] is chosen:
            runs[-1] = (runs[-1][0] + character, chosen)
        else:
            runs.append((character, chosen))
    return runs


@lru_cache(maxsize=8192)
def text_width(text: str, face) -> int:
    """Width in pixels of `text` drawn with `face` (cached: labels recur across frames and figures)."""
    runs = _symbol_runs(text, face)
    if runs:
        return int(np.ceil(sum(run_face.getlength(run) for run, run_face in runs)))
    return int(np.ceil(face.getlength(text)))


def line_height(face) -> int:
    """Height of one line of text (ascent + descent) for `face`."""
    ascent, descent = face.getmetrics()
    return ascent + descent


def fit_text(text: str, face, width: int) -> str:
    """`text`, shortened with an ellipsis if it is wider than `width` pixels."""
    if text_width(text, face) <= width:
        return text
    while text and text_width(text + "…", face) > width:
        text = text[:-1]
    return text + "…"


@lru_cache(maxsize=4096)
def _text_mask(text: str, face, anchor: str) -> tuple[Image.Image, int, int]:
    """The rendered coverage mask of `text` and its offset from the anchor point.

    Rendering glyphs is the slowest part of drawing a figure and the same labels recur in every
    frame and grid, so each (text, font, anchor) is rasterised once.
    """
    runs = _symbol_runs(text, face)
    if runs:
        return _runs_mask(runs, face, anchor)
    left, top, right, bottom = face.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, font=face, fill=255, anchor=anchor)
    return mask, left, top


def _runs_mask(runs: list[tuple[str, object]], face, anchor: str) -> tuple[Image.Image, int, int]:
    """Runs of several faces set on one baseline; the line's metrics are those of `face`."""
    ascent, descent = face.getmetrics()
    pad = ascent  # room for glyphs of the other faces that reach beyond `face`'s line
    width = sum(run_face.getlength(run) for run, run_face in runs)
    mask = Image.new("L", (int(np.ceil(width)) + 2, ascent + descent + 2 * pad), 0)
    draw, x = ImageDraw.Draw(mask), 0.0
    for run, run_face in runs:
        draw.text((x, pad + ascent), run, font=run_face, fill=255, anchor="ls")
        x += run_face.getlength(run)
    left = {"l": 0, "m": -width / 2, "r": -width}[anchor[0]]
    top = {"a": 0, "t": 0, "m": -(ascent + descent) / 2, "s": -ascent, "b": -(ascent + descent),
           "d": -(ascent + descent)}[anchor[1]] - pad
    box = mask.getbbox() or (0, 0, 1, 1)
    return mask.crop(box), int(round(left)) + box[0], int(round(top)) + box[1]


# Chinese characters and full-width punctuation: a line may break between any two of them.
_CJK = "\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"
_PIECES = re.compile(f"\\s+|[{_CJK}]|[^\\s{_CJK}]+")
# never at the start of a line / never at its end
_CLOSING = set("，。、；：！？）」』》〉】,.;:!?)]%")
_OPENING = set("（「『《〈【([")
_BINDING = set("=–")  # an equals sign or a range dash binds the words on both sides


def _unbreakable_pieces(text: str, break_cjk: bool = True) -> list[tuple[str, bool]]:
    """`text` cut where a line may break: [(piece, a space stood before it)]. Latin words stay
    whole, each Chinese character is a piece (with break_cjk False, a run of them and the words
    set beside them is, up to the next punctuation), closing punctuation sticks to what precedes
    it and opening punctuation to what follows."""
    pieces: list[tuple[str, bool]] = []
    space = False
    for match in _PIECES.finditer(text):
        piece = match.group()
        if piece.isspace():
            space = True
            continue
        # keeping Chinese words whole: only punctuation, or a space between two Latin words, breaks
        joins_run = (not break_cjk and pieces and (_is_cjk_letter(piece[0]) or _is_cjk_letter(pieces[-1][0][-1]))
                     and (space or _is_cjk_letter(piece[0]) and _is_cjk_letter(pieces[-1][0][-1])))
        # "ε = 0.01" and "0.2 – 1.5" stay on one line
        binds = pieces and (piece[0] in _BINDING or pieces[-1][0][-1] in _BINDING)
        if pieces and (piece[0] in _CLOSING or pieces[-1][0][-1] in _OPENING or joins_run or binds):
            previous, before = pieces[-1]
            pieces[-1] = (previous + (" " if space else "") + piece, before)
        else:
            pieces.append((piece, space))
        space = False
    return pieces


def _is_cjk_letter(character: str) -> bool:
    return bool(_PIECES.fullmatch(character)) and "\u3400" <= character <= "\u9fff"


def wrap_text(text: str, face, width: int, break_cjk: bool = True) -> list[str]:
    """Break `text` into lines no wider than `width` pixels: at spaces, and between Chinese
    characters (not before closing punctuation). A word wider than `width` stays whole. With
    break_cjk False, Chinese breaks only at spaces and punctuation (for short labels, where a
    word split over two lines would read badly)."""
    lines, current = [], ""
    for piece, space in _unbreakable_pieces(text, break_cjk):
        candidate = current + (" " if space and current else "") + piece
        if current and text_width(candidate, face) > width:
            lines.append(current)
            current = piece
        else:
            current = candidate
    lines.append(current)
    return lines


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, face, fill=INK,
              anchor: str = "la") -> None:
    """Draw one line of text; `anchor` as in Pillow ('la' top-left, 'ma' top-centre, 'ra' top-right,
    'rm' right-middle). Draws through a cache of rendered masks."""
    if not text:
        return
    mask, left, top = _text_mask(text, face, anchor)
    x, y = int(round(xy[0])) + left, int(round(xy[1])) + top
    draw.bitmap((x, y), mask, fill=fill)
