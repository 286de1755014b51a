"""Close-ups: one filter enlarged with its largest change boxed, and the perturbation picture."""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from .common import (
    DIVERGING, INK, MUTED, SEQUENTIAL, as_maps, colour_bar, diverging_colours, draw_text, enlarge,
    enlargement, fit_text, font, image_colours, line_height, new_sheet, number, paste_panel, save_png,
    sequential_colours, symmetric_limit, text_width, value_range, wrap_text,
)

MARGIN = 12
GAP = 18


def largest_change_window(difference: np.ndarray, size: int) -> tuple[int, int]:
    """(row, column) of the top-left corner of the size x size window with the largest summed |difference|.

    difference: (h, w). The window is clipped to the map; ties go to the first window in row order.
    """
    magnitude = np.abs(np.asarray(difference, dtype=np.float64))
    h, w = magnitude.shape
    size_r, size_c = min(size, h), min(size, w)
    integral = np.zeros((h + 1, w + 1))
    integral[1:, 1:] = magnitude.cumsum(0).cumsum(1)
    sums = (integral[size_r:, size_c:] - integral[:-size_r, size_c:]
            - integral[size_r:, :-size_c] + integral[:-size_r, :-size_c])
    row, col = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(row), int(col)


def zoom_crop(layer_name: str, filter_index: int, clean: np.ndarray, adv: np.ndarray, path, label: str, *,
              window: int | None = None, panel: int = 240) -> dict:
    """One filter of one layer enlarged: clean | adversarial | difference, the largest change boxed.

    clean, adv: the layer's activations (h, w, c). The colour scales are the layer's, as in
    `comparison_grid`: clean and adversarial share min..max over the whole layer; the difference
    adv - clean is on ±max|diff| of the whole layer, centred on zero. The box
    is the window x window region (default a quarter of the map's side, at least 2) with the largest
    summed |diff|. label: what this filter is, e.g. 'configured filter' or 'filter that changed
    most'; the heading reads 'Configured filter: max_pool_1, filter 2'.
    """
    clean, adv = as_maps(clean, layer_name), as_maps(adv, layer_name)
    h, w, c = clean.shape
    if not 0 <= filter_index < c:
        raise ValueError(f"{layer_name}: filter {filter_index} does not exist (the layer has {c} filters)")
    clean_map, adv_map = clean[:, :, filter_index], adv[:, :, filter_index]
    diff = adv_map - clean_map
    # The layer's scales, as in the comparison grid: the close-up shows the same colours as its
    # panel there, and a filter that barely changed looks pale rather than blown up.
    lo, hi = float(min(clean.min(), adv.min())), float(max(clean.max(), adv.max()))
    limit = symmetric_limit(adv - clean)
    size = window or max(2, int(round(min(h, w) / 4)))
    size = min(size, h, w)
    row, col = largest_change_window(diff, size)
    boxed = float(np.abs(diff[row:row + size, col:col + size]).sum())
    total = float(np.abs(diff).sum())
    share = boxed / total if total > 0 else 0.0

    factor = enlargement(h, w, panel)
    panels = [("clean", enlarge(sequential_colours(clean_map, lo, hi), factor), value_range(clean_map.min(), clean_map.max())),
              ("adversarial", enlarge(sequential_colours(adv_map, lo, hi), factor), value_range(adv_map.min(), adv_map.max())),
              ("difference (adv − clean)", enlarge(diverging_colours(diff, limit), factor), value_range(diff.min(), diff.max()))]
    title_face, note_face, label_face, caption_face = font(15, bold=True), font(12), font(13, bold=True), font(12)
    pw, ph = w * factor, h * factor
    cell_w = max(pw, max(text_width(p[0], label_face) for p in panels))
    heading = f"{label[:1].upper()}{label[1:]}: {layer_name}, filter {filter_index}"
    notes = [f"{h}×{w} map enlarged ×{factor}, each square one activation; colours on the layer's scales, "
             "as in its comparison grid",
             (f"box: the {size}×{size} window with the largest change (rows {row}–{row + size - 1}, "
              f"columns {col}–{col + size - 1}), {share * 100:.0f} % of the filter's total |difference|"
              if total > 0 else "no difference in this filter")]
    legends = [colour_bar(SEQUENTIAL, lo, hi, 200, f"clean & adversarial ({layer_name} scale)"),
               colour_bar(DIVERGING, -limit, limit, 200, f"difference ({layer_name} scale)", diverging=True)]
    width = MARGIN * 2 + 3 * cell_w + 2 * GAP
    width = max(width, MARGIN * 2 + sum(l.width for l in legends) + 30)
    notes = [line for note in notes for line in wrap_text(note, note_face, width - 2 * MARGIN)]
    top = MARGIN + line_height(title_face) + 4 + len(notes) * (line_height(note_face) + 2) + 10
    panel_top = top + line_height(label_face) + 4
    height = panel_top + ph + 4 + line_height(caption_face) + 12 + max(l.height for l in legends) + MARGIN

    sheet, draw = new_sheet(width, height)
    draw_text(draw, (MARGIN, MARGIN), fit_text(heading, title_face, width - 2 * MARGIN), title_face)
    for i, note in enumerate(notes):
        draw_text(draw, (MARGIN, MARGIN + line_height(title_face) + 4 + i * (line_height(note_face) + 2)),
                  fit_text(note, note_face, width - 2 * MARGIN), note_face, MUTED)
    for i, (name, pixels, caption) in enumerate(panels):
        x = MARGIN + i * (cell_w + GAP)
        px = x + (cell_w - pw) // 2
        draw_text(draw, (x + cell_w // 2, top), name, label_face, INK, "ma")
        paste_panel(sheet, pixels, px, panel_top)
        if total > 0:
            _draw_box(draw, px + col * factor, panel_top + row * factor, size * factor, size * factor)
        draw_text(draw, (x + cell_w // 2, panel_top + ph + 4), f"min – max: {caption}", caption_face, MUTED, "ma")
    x = MARGIN
    for legend in legends:
        sheet.paste(legend, (x, panel_top + ph + 4 + line_height(caption_face) + 12))
        x += legend.width + 30
    alt = (f"{heading} ({h}×{w}) enlarged, clean beside adversarial beside "
           f"their difference. Clean ranges {value_range(clean_map.min(), clean_map.max())}, adversarial "
           f"{value_range(adv_map.min(), adv_map.max())} on the layer's shared scale {value_range(lo, hi)}; the "
           f"difference ranges {value_range(diff.min(), diff.max())} on the layer's ±{number(limit)}. "
           + (f"The box marks the {size}×{size} region with the largest change, rows {row}–{row + size - 1} and "
              f"columns {col}–{col + size - 1}, holding {share * 100:.0f} % of the total change."
              if total > 0 else "The filter did not change."))
    return save_png(sheet, path, alt)


def perturbation_image(x: np.ndarray, x_adv: np.ndarray, path, amplification: float | None = None, *,
                       captions: tuple[str, str] | None = None, panel: int = 224) -> dict:
    """Original | amplified perturbation | adversarial, enlarged with nearest-neighbour sampling.

    x, x_adv: (H, W, C) in [0, 1], C=1 (grey) or 3 (colour). The perturbation is drawn as
    0.5 + factor * (x_adv - x): mid-grey means unchanged. factor defaults to 0.5 / max|x_adv - x|,
    so the largest change reaches black or white; it is printed. captions: optional text under the
    original and the adversarial image (e.g. their predictions).
    """
    x, x_adv = np.asarray(x, dtype=np.float32), np.asarray(x_adv, dtype=np.float32)
    if x.shape != x_adv.shape or x.ndim != 3:
        raise ValueError(f"expected two images of one shape (H, W, C), got {x.shape} and {x_adv.shape}")
    delta = x_adv - x
    largest = symmetric_limit(delta)
    factor = amplification if amplification is not None else (0.5 / largest if largest > 0 else 1.0)
    shown = np.clip(0.5 + factor * delta, 0.0, 1.0)
    h, w = x.shape[:2]
    scale = enlargement(h, w, panel)
    panels = [("original", image_colours(x)), (f"perturbation ×{number(factor)}", image_colours(shown)),
              ("adversarial", image_colours(x_adv))]
    under = [captions[0] if captions else "",
             f"grey = no change; max |δ| = {number(largest)} ({largest * 255:.1f}/255)",
             captions[1] if captions else ""]
    label_face, caption_face = font(13, bold=True), font(12)
    pw, ph = w * scale, h * scale
    cell_w = max(pw, max(text_width(t, caption_face) for t in under), 150)
    width = MARGIN * 2 + 3 * cell_w + 2 * GAP
    top = MARGIN + line_height(label_face) + 4
    height = top + ph + 4 + line_height(caption_face) + MARGIN
    sheet, draw = new_sheet(width, height)
    for i, (name, pixels) in enumerate(panels):
        cx = MARGIN + i * (cell_w + GAP)
        draw_text(draw, (cx + cell_w // 2, MARGIN), name, label_face, INK, "ma")
        paste_panel(sheet, enlarge(pixels, scale), cx + (cell_w - pw) // 2, top)
        draw_text(draw, (cx + cell_w // 2, top + ph + 4), fit_text(under[i], caption_face, cell_w), caption_face,
                  MUTED, "ma")
    kind = "colour" if x.shape[2] == 3 else "greyscale"
    if largest > 0:
        change = (f"the perturbation amplified ×{number(factor)} (mid-grey means no change; the largest change is "
                  f"{number(largest)}, {largest * 255:.1f} of 255 levels) and the adversarial image, which looks "
                  "almost the same as the original")
    else:
        change = "an all-grey perturbation and the adversarial image: the two images are identical"
    alt = (f"The original {h}×{w} {kind} image, {change}."
           + (f" Original: {captions[0]}. Adversarial: {captions[1]}." if captions else ""))
    return save_png(sheet, path, alt)


def _draw_box(draw: ImageDraw.ImageDraw, x: int, y: int, w: int, h: int) -> None:
    """A box visible on any colour: a black outline with a white line inside it."""
    draw.rectangle((x - 1, y - 1, x + w, y + h), outline=(0, 0, 0), width=2)
    draw.rectangle((x + 1, y + 1, x + w - 2, y + h - 2), outline=(255, 255, 255), width=1)
