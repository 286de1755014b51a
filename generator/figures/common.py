"""Shared drawing pieces: colour scales, enlarging, colour bars, probability bars, saving with alt text.

Every figure function in this package takes NumPy arrays and writes one file. The helpers here
keep the rules of the site in one place:

- activations of a layer are coloured with one sequential scale (viridis) given as (lo, hi);
- a difference is coloured with a diverging scale (RdBu reversed: red = higher, blue = lower)
  centred on zero with the symmetric range ±limit, so 0 is always the neutral light grey;
- maps are enlarged by an integer factor with nearest-neighbour sampling, so pixels stay pixels;
- Latin text uses DejaVu Sans (shipped with matplotlib) for its symbols, else Pillow's default
  font; the faces of each language come from `words.Words.face`;
- text is measured, wrapped and drawn by `generator.figures.text`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

from generator.figures.text import INK, draw_text, fit_text, line_height, text_width
from generator.figures.words import font

SEQUENTIAL = "viridis"
DIVERGING = "RdBu_r"

BACKGROUND = (255, 255, 255)
MUTED = (105, 105, 105)
FRAME = (150, 150, 150)
CLEAN_COLOUR = (31, 119, 180)
ADVERSARIAL_COLOUR = (214, 39, 40)
FLIP_COLOUR = (220, 20, 20)
ANSWER_COLOUR = (235, 140, 0)  # the frame where the article's epsilon search stops
BAR_TRACK = (232, 232, 232)

# An odd table length puts a table entry exactly on the middle of the scale, so a difference
# of exactly zero gets the colormap's own neutral colour rather than a neighbour of it.
TABLE_SIZE = 255


@lru_cache(maxsize=None)
def colour_table(cmap: str) -> np.ndarray:
    """The colormap `cmap` sampled at TABLE_SIZE evenly spaced points: uint8 (TABLE_SIZE, 3)."""
    from matplotlib import colormaps  # lazily: importing matplotlib costs ~0.3 s

    rgba = colormaps[cmap](np.linspace(0.0, 1.0, TABLE_SIZE))
    table = np.round(rgba[:, :3] * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def neutral_colour(cmap: str = DIVERGING) -> tuple[int, int, int]:
    """The colour a diverging colormap gives to zero (the middle of the table)."""
    return tuple(int(v) for v in colour_table(cmap)[TABLE_SIZE // 2])


def sequential_colours(values: np.ndarray, lo: float, hi: float, cmap: str = SEQUENTIAL) -> np.ndarray:
    """Colour `values` (any shape) on the scale lo..hi: uint8 array of shape values.shape + (3,).

    Values outside lo..hi are clipped to the ends. A degenerate scale (hi <= lo) maps to the low end.
    """
    values = np.asarray(values, dtype=np.float32)
    if not hi > lo:
        index = np.zeros(values.shape, dtype=np.intp)
    else:
        scaled = (values - lo) * ((TABLE_SIZE - 1) / (hi - lo))
        index = np.clip(np.rint(scaled), 0, TABLE_SIZE - 1).astype(np.intp)
    return colour_table(cmap)[index]


def diverging_colours(values: np.ndarray, limit: float, cmap: str = DIVERGING) -> np.ndarray:
    """Colour signed `values` on the symmetric scale -limit..+limit; zero is the neutral colour.

    Returns uint8 of shape values.shape + (3,). With limit <= 0 everything is neutral.
    """
    values = np.asarray(values, dtype=np.float32)
    middle = (TABLE_SIZE - 1) // 2
    if not limit > 0:
        index = np.full(values.shape, middle, dtype=np.intp)
    else:
        scaled = middle + values * (middle / limit)
        index = np.clip(np.rint(scaled), 0, TABLE_SIZE - 1).astype(np.intp)
    return colour_table(cmap)[index]


def symmetric_limit(difference: np.ndarray) -> float:
    """max |difference|, the half-range of a diverging scale centred on zero."""
    return float(np.max(np.abs(difference))) if np.size(difference) else 0.0


def image_colours(x: np.ndarray) -> np.ndarray:
    """An input image (H, W, C) with values in [0, 1] as uint8 RGB (H, W, 3).

    C=1 is shown in grey, C=3 as colour; other channel counts show their first channel in grey.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W, C), got {x.shape}")
    if x.shape[2] == 3:
        rgb = x
    else:
        rgb = np.repeat(x[:, :, :1], 3, axis=2)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor: every pixel becomes a factor x factor block."""
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


# --- panels shared between languages ------------------------------------------------------------
# Each figure is drawn once per site language from the same arrays. Colouring and enlarging its
# panels does not depend on the language, so the last few results are kept, keyed by the arrays'
# content (the arrays are read again from disk for every language, so identity would not do).
PANEL_CACHE_ENTRIES = 24
_panels: OrderedDict = OrderedDict()


def _content_key(part):
    if isinstance(part, np.ndarray):
        data = np.ascontiguousarray(part)
        return (hashlib.blake2b(data.view(np.uint8).ravel(), digest_size=16).hexdigest(), data.shape, data.dtype.str)
    return part


def shared_panels(key: tuple, make):
    """make() -> panels, or the panels made before for an equal `key` (arrays compare by content).

    The result is shared: callers only read it (paste it into their sheet)."""
    key = tuple(_content_key(part) for part in key)
    if key in _panels:
        _panels.move_to_end(key)
        return _panels[key]
    value = make()
    _panels[key] = value
    while len(_panels) > PANEL_CACHE_ENTRIES:
        _panels.popitem(last=False)
    return value


def clear_shared_panels() -> None:
    """Forget the kept panels (the benchmark starts every image afresh)."""
    _panels.clear()


def enlargement(height: int, width: int, target: int) -> int:
    """An integer enlargement factor that brings a height x width map close to `target` pixels.

    Normally the largest factor that stays within target; if that leaves the map much smaller
    (below 0.8 x target, e.g. 62 px for a target of 80), the next factor up when it stays
    below 1.6 x target. At least 1: maps larger than the target are shown 1:1.
    """
    side = max(height, width, 1)
    factor = max(1, target // side)
    if side * factor < 0.8 * target and side * (factor + 1) <= 1.6 * target:
        factor += 1
    return factor


def as_maps(array: np.ndarray, what: str) -> np.ndarray:
    """Check a layer's activations are (h, w, c) and return them as float32."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"{what}: expected activations of shape (h, w, c), got {array.shape}")
    return array


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2, 5 x 10^k (only 1 x 10^k beyond three decades) from the tick at or below `lo`
    to the tick at or above `hi` (both > 0): the ends of a log axis that covers lo..hi."""
    decades = range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 2)
    steps = (1, 2, 5) if np.log10(hi / lo) <= 3 else (1,)
    candidates = [m * 10.0 ** k for k in decades for m in steps]
    bottom = max(t for t in candidates if t <= lo * 1.0001)
    top = min(t for t in candidates if t >= hi * 0.9999)
    if bottom == top:  # a single value: widen to the neighbouring ticks so the axis has a span
        index = candidates.index(bottom)
        bottom, top = candidates[index - 1], candidates[index + 1]
    return [t for t in candidates if bottom <= t <= top]


# --- numbers -------------------------------------------------------------------------------------

def number(value: float) -> str:
    """A short, honest rendering of a value: three significant digits, a real minus sign; from
    1,000 on, the whole number with thousands separators, as the pages print it (1,492, not 1.49e3)."""
    value = float(value)
    if value == 0:
        return "0"
    if not np.isfinite(value):
        return "∞" if value > 0 else ("−∞" if value < 0 else "nan")
    text = f"{value:,.0f}" if 1000 <= abs(value) < 1e15 else f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text.replace("-", "−")


def threshold_text(value: float) -> str:
    """A threshold found by bisection between grid points: five decimals, one more than the grid's
    epsilons, so it never prints as the grid point beside it (0.01912, not 0.0191); below 0.001,
    three significant digits (0.0000367, not 0.00004)."""
    value = float(value)
    if value == 0 or abs(value) >= 0.001 or not np.isfinite(value):
        return f"{value:.5f}"
    return f"{value:.{2 - int(np.floor(np.log10(abs(value))))}f}"


def image_kind(x: np.ndarray) -> str:
    """The words key for what an image (H, W, C) shows: 'greyscale' for one channel or three
    equal ones (a black-and-white photo saved as RGB), else 'colour'."""
    grey = x.shape[2] == 1 or bool(np.all(x[:, :, :1] == x[:, :, 1:]))
    return "greyscale" if grey else "colour"


# The largest change, in 8-bit levels (of 255), that an alt text calls hard to see: a
# perturbation of at most this many levels per pixel looks, beside the original, almost the same.
SUBTLE_LEVELS = 4


def value_range(lo: float, hi: float, words) -> str:
    """'lo – hi' (in Chinese 'lo 至 hi') with short numbers."""
    return words.t("value_range", lo=number(lo), hi=number(hi))


def percent(p: float) -> str:
    """A probability as a percentage with one decimal (two below 1%), never 100.0% for a
    probability below 1 (see percent_digits); written as the pages write it: 49.2%."""
    p = float(p) * 100
    if 0 < p < 0.01:
        return "<0.01%"
    return f"{p:.{percent_digits(p, 2 if 0 < p < 1 else 1)}f}%"


def percent_digits(p: float, digits: int) -> int:
    """Decimals for the percentage ``p``: ``digits``, or more when fewer would round a value
    below 100 up to 100 (99.97%, not 100.0%: certainty the model did not express)."""
    while p < 100 and round(p, digits) >= 100 and digits < 6:
        digits += 1
    return digits


# --- panels and colour bars ----------------------------------------------------------------------

def paste_panel(sheet: Image.Image, pixels: np.ndarray, x: int, y: int, frame=FRAME) -> None:
    """Paste an RGB uint8 array at (x, y) with a 1-pixel frame around it (outside the pixels)."""
    height, width = pixels.shape[:2]
    if frame is not None:
        ImageDraw.Draw(sheet).rectangle((x - 1, y - 1, x + width, y + height), outline=frame)
    sheet.paste(Image.fromarray(np.ascontiguousarray(pixels)), (x, y))


def colour_bar(cmap: str, lo: float, hi: float, width: int, caption: str, diverging: bool = False,
               face=None, ends: tuple[str, str] | None = None) -> Image.Image:
    """A horizontal colour bar `width` pixels wide with its end values (and 0 if diverging) and a caption.

    `ends` replaces the printed end values with words (e.g. ('low', 'high')); `face` is the font
    of the caption's language (DejaVu Sans 12 px by default).
    """
    face = face or font(12)
    bar_height = 10
    ramp = colour_table(cmap)[np.linspace(0, TABLE_SIZE - 1, width).round().astype(np.intp)]
    strip = np.repeat(ramp[None, :, :], bar_height, axis=0)
    text_h = line_height(face)
    total_w = max(width + 2, text_width(caption, face) + 2)
    image = Image.new("RGB", (total_w, 1 + text_h + 3 + bar_height + 2 + text_h + 1), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw_text(draw, (1, 0), caption, face, MUTED)
    top = text_h + 3
    paste_panel(image, strip, 1, top)
    ticks_y = top + bar_height + 2
    left, right = ends or (number(lo), number(hi))
    draw_text(draw, (1, ticks_y), left, face, INK, "la")
    draw_text(draw, (width + 1, ticks_y), right, face, INK, "ra")
    if diverging:
        middle = 1 + width // 2
        draw.line((middle, top + bar_height, middle, top + bar_height + 1), fill=INK)
        draw_text(draw, (middle, ticks_y), "0", face, INK, "ma")
    return image


def new_sheet(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A white RGB canvas and a drawing context on it."""
    sheet = Image.new("RGB", (int(width), int(height)), BACKGROUND)
    return sheet, ImageDraw.Draw(sheet)


def topk_bars(draw: ImageDraw.ImageDraw, x: int, y: int, probabilities, class_names, k: int,
              label_width: int, bar_width: int, face, highlight=CLEAN_COLOUR,
              classes: list[int] | None = None) -> int:
    """Draw the top-k probabilities (or the given `classes`, in order) as labelled bars.

    Returns the height used. The most probable class drawn gets `highlight`, the others grey.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if classes is None:
        classes = [int(i) for i in np.argsort(-probabilities, kind="stable")[:k]]
    top = int(np.argmax(probabilities))
    row = line_height(face) + 6
    for i, cls in enumerate(classes):
        row_y = y + i * row
        name = fit_text(class_names[cls], face, label_width - 6)
        draw_text(draw, (x + label_width - 6, row_y + 2), name, face, INK, "ra")
        bar_x = x + label_width
        draw.rectangle((bar_x, row_y + 3, bar_x + bar_width, row_y + row - 4), fill=BAR_TRACK)
        length = int(round(bar_width * float(np.clip(probabilities[cls], 0, 1))))
        if length > 0:
            colour = highlight if cls == top else (150, 150, 150)
            draw.rectangle((bar_x, row_y + 3, bar_x + length - 1, row_y + row - 4), fill=colour)
        draw_text(draw, (bar_x + bar_width + 5, row_y + 2), percent(probabilities[cls]), face, INK)
    return len(classes) * row


def topk_bars_size(class_names, k: int, face, bar_width: int) -> tuple[int, int, int]:
    """(label_width, total_width, height) for topk_bars over any k of `class_names`."""
    label_width = min(max(text_width(n, face) for n in class_names), 150) + 8
    total = label_width + bar_width + 5 + text_width("99.999%", face)
    return label_width, total, k * (line_height(face) + 6)


# --- saving --------------------------------------------------------------------------------------

def figure_record(path, alt: str, width: int, height: int, frames: int | None) -> dict:
    """The record every figure function returns, as the manifest stores it."""
    return {"path": str(path), "alt": alt, "width": int(width), "height": int(height),
            "frames": frames, "bytes": os.path.getsize(path)}


def colour_keys(image: Image.Image) -> np.ndarray:
    """Each pixel's colour as one integer 0xBBGGRR, read straight from its RGBX bytes: (H * W,) uint32."""
    return np.frombuffer(image.convert("RGBX").tobytes(), dtype="<u4") & 0xFFFFFF


def key_colours(keys: np.ndarray) -> np.ndarray:
    """The colours of 0xBBGGRR keys: (N, 3) uint8."""
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack([keys & 255, (keys >> 8) & 255, keys >> 16], axis=1).astype(np.uint8)


def compact_image(image: Image.Image) -> Image.Image:
    """`image` as a palette ('P') image when it has at most 256 colours, each kept exactly (the
    file is about half the size); otherwise as RGB. A figure's colours are data: none is ever
    replaced by a neighbour, which would, for one, show a colour bar's rare ends and a map's
    largest changes in another scale's colours."""
    rgb = image.convert("RGB")
    if rgb.getcolors(maxcolors=256) is None:
        return rgb
    colours, indices = np.unique(colour_keys(rgb), return_inverse=True)
    indexed = Image.fromarray(indices.astype(np.uint8).reshape(rgb.height, rgb.width), "P")
    indexed.putpalette(key_colours(colours).ravel().tolist())
    return indexed


def save_png(image: Image.Image, path, alt: str) -> dict:
    """Write `image` as a PNG (see compact_image) with `alt` stored in its Description text
    chunk; return the record."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_itxt("Description", alt)
    # Level 4: files about 4 % larger than level 9's, in half the time of level 6 (zlib's default).
    compact_image(image).save(path, format="PNG", pnginfo=info, compress_level=4)
    return figure_record(path, alt, image.width, image.height, None)


TRANSPARENT_INDEX = 255  # left free by the 255-colour palette; marks "unchanged since the last frame"


# Colours covering at least this share of the sampled frames get a palette entry of their own.
EXACT_COLOUR_SHARE = 1e-4


def shared_palette(frames: list[Image.Image], colours: int = 255) -> tuple[Image.Image, np.ndarray]:
    """One palette for all frames (no colour flicker between frames), as a 'P' image, and the keys
    (see colour_keys) of the colours it holds exactly, which are its first entries.

    Built from up to 8 frames spread over the animation. The most frequent colours (up to half
    the palette) are kept exactly: the colour scales, the marks and a perturbation's few pure hues
    are data, and quantising them together with a photo's thousands of colours moved them by up
    to 55 of 255 levels. The other colours share the remaining entries (maximum coverage).
    """
    picks = frames if len(frames) <= 8 else [frames[i] for i in np.linspace(0, len(frames) - 1, 8).round().astype(int)]
    width = max(f.width for f in picks)
    montage = Image.new("RGB", (width, sum(f.height for f in picks)), BACKGROUND)
    top = 0
    for frame in picks:
        montage.paste(frame, (0, top))
        top += frame.height
    keys = colour_keys(montage)
    unique, counts = np.unique(keys, return_counts=True)
    if len(unique) <= colours:
        exact = unique
    else:
        frequent = np.argsort(-counts, kind="stable")[: colours // 2]
        exact = unique[frequent[counts[frequent] >= EXACT_COLOUR_SHARE * len(keys)]]
    table = key_colours(exact).ravel().tolist()
    is_exact = np.zeros(1 << 24, dtype=bool)  # allocated lazily: only the used entries are touched
    is_exact[exact] = True
    rest = np.asarray(montage).reshape(-1, 3)[~is_exact[keys]]
    free = colours - len(exact)
    if free > 0 and len(rest):
        quantised = Image.fromarray(rest[None, :, :]).quantize(colors=free, method=Image.Quantize.MAXCOVERAGE,
                                                              dither=Image.Dither.NONE)
        used = len(quantised.getcolors(maxcolors=256))
        table += quantised.getpalette()[: 3 * used]
    palette = Image.new("P", (1, 1))
    palette.putpalette(table)  # no more than `colours` entries: index 255 stays free for transparency
    return palette, exact


def palette_indices(frames: list[Image.Image], palette: Image.Image, exact: np.ndarray) -> list[np.ndarray]:
    """Each RGB frame as (H, W) uint8 palette indices: a colour the palette holds exactly (its
    first len(exact) entries, keys `exact`) gets its own entry; any other the nearest Pillow finds.
    Pillow's lookup alone is coarse: it gave (145, 145, 145) the entry (144, 144, 144) although the
    palette held the colour itself."""
    exact_index = np.full(1 << 24, -1, dtype=np.int16)
    exact_index[exact] = np.arange(len(exact))
    indexed = []
    for frame in frames:
        nearest = np.asarray(frame.quantize(palette=palette, dither=Image.Dither.NONE))
        own = exact_index[colour_keys(frame)].reshape(nearest.shape)
        indexed.append(np.where(own >= 0, own, nearest).astype(np.uint8))
    return indexed


def save_gif(frames: list[Image.Image], path, alt: str, durations_ms: list[int]) -> dict:
    """Write RGB `frames` as a looping GIF with one shared adaptive palette; return the record.

    `durations_ms[i]` is how long frame i shows. Each frame after the first stores only the pixels
    that changed (the rest are transparent over the previous frame), which keeps GIFs small. The
    alt text is stored as the GIF comment. The record's `frames` counts frames in the file
    (identical consecutive frames are merged by the writer, their durations added).
    """
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    if len(durations_ms) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(durations_ms)} durations")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    palette, exact = shared_palette(frames)
    colours = palette.getpalette()[: 3 * 255]
    colours += [255, 255, 255] * (256 - len(colours) // 3)
    indexed = palette_indices(frames, palette, exact)
    coded = []
    for i, current in enumerate(indexed):
        if i:
            current = np.where(current == indexed[i - 1], TRANSPARENT_INDEX, current).astype(np.uint8)
        image = Image.fromarray(current, "P")
        image.putpalette(colours)
        coded.append(image)
    buffer = io.BytesIO()
    coded[0].save(buffer, format="GIF", save_all=True, append_images=coded[1:],
                  duration=[int(d) for d in durations_ms], loop=0, optimize=False, disposal=1,
                  transparency=TRANSPARENT_INDEX, comment=alt.encode("utf-8")[:255])
    Path(path).write_bytes(buffer.getvalue())
    buffer.seek(0)
    with Image.open(buffer) as written:
        count = written.n_frames
    return figure_record(path, alt, frames[0].width, frames[0].height, count)
