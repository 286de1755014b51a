"""Close-ups: one feature map enlarged with its largest change boxed, and the perturbation picture."""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from generator.figures.common import (
    DIVERGING, MUTED, SEQUENTIAL, SUBTLE_LEVELS, as_maps, colour_bar, diverging_colours, enlarge, enlargement,
    image_colours, image_kind, new_sheet, number, paste_panel, save_png, sequential_colours, symmetric_limit,
    value_range,
)
from generator.figures.text import INK, draw_text, fit_text, line_height, text_width, wrap_text
from generator.figures.words import ENGLISH, Words

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


ROLES = ("chosen", "most_changed")


def zoom_crop(layer_name: str, channel: int, clean: np.ndarray, adv: np.ndarray, path, *, unit: str, role: str,
              words: Words = ENGLISH, window: int | None = None, panel: int = 240) -> dict:
    """One map of one layer enlarged: original | adversarial | difference, its largest change boxed.

    clean, adv: the layer's activations (h, w, c); channel: the index drawn; unit: 'filter' (a
    convolution's map) or 'channel'; role: why the caller shows it, 'chosen' (configured) or
    'most_changed' (by the probe's measure). The colour scales are the layer's, as in
    `comparison_grid`: original and adversarial share min..max over the whole layer; the
    difference adv - clean is on ±max|diff| of the whole layer, centred on zero. The box marks the
    window x window region (default a quarter of the map's side, at least 2) of this map with the
    largest summed |diff|: where it changed most, not a choice among channels.

    The record adds {"layer", "channel", "unit", "role"}.
    """
    clean, adv = as_maps(clean, layer_name), as_maps(adv, layer_name)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if unit not in ("filter", "channel"):
        raise ValueError(f"unit must be 'filter' or 'channel', got {unit!r}")
    h, w, c = clean.shape
    if not 0 <= channel < c:
        raise ValueError(f"{layer_name}: {unit} {channel} does not exist (the layer has {c} channels)")
    clean_map, adv_map = clean[:, :, channel], adv[:, :, channel]
    diff = adv_map - clean_map
    # The layer's scales, as in the comparison grid: the close-up shows the same colours as its
    # panel there, and a map that barely changed looks pale rather than blown up.
    lo, hi = float(min(clean.min(), adv.min())), float(max(clean.max(), adv.max()))
    limit = symmetric_limit(adv - clean)
    size = window or max(2, int(round(min(h, w) / 4)))
    size = min(size, h, w)
    row, col = largest_change_window(diff, size)
    boxed = float(np.abs(diff[row:row + size, col:col + size]).sum())
    total = float(np.abs(diff).sum())
    share = boxed / total if total > 0 else 0.0

    factor = enlargement(h, w, panel)
    panels = [(words.t("original"), enlarge(sequential_colours(clean_map, lo, hi), factor),
               value_range(clean_map.min(), clean_map.max(), words)),
              (words.t("adversarial"), enlarge(sequential_colours(adv_map, lo, hi), factor),
               value_range(adv_map.min(), adv_map.max(), words)),
              (words.t("difference_panel"), enlarge(diverging_colours(diff, limit), factor),
               value_range(diff.min(), diff.max(), words))]
    title_face, note_face, label_face, caption_face = (words.face(15, bold=True), words.face(12),
                                                      words.face(13, bold=True), words.face(12))
    pw, ph = w * factor, h * factor
    captions = [words.t("min_max", range=caption) for _, _, caption in panels]
    cell_w = max(pw, max(text_width(p[0], label_face) for p in panels),
                 max(text_width(t, caption_face) for t in captions))
    which = words.t(f"unit_ordinal_{unit}", layer=layer_name, index=channel, number=channel + 1,
                    ordinal=words.ordinal(channel + 1))
    heading = words.t(f"zoom_heading_{role}", which=which)
    rows, columns = f"{row}–{row + size - 1}", f"{col}–{col + size - 1}"
    box = (words.t("zoom_box", size=f"{size}×{size}", rows=rows, columns=columns, share=f"{share * 100:.0f}")
           if total > 0 else words.t("zoom_no_change"))
    notes = [words.t("zoom_note", shape=f"{h}×{w}", factor=factor), box]
    small = words.face(12)
    legends = [colour_bar(SEQUENTIAL, lo, hi, 200, words.t("zoom_legend_shared", layer=layer_name), face=small),
               colour_bar(DIVERGING, -limit, limit, 200, words.t("zoom_legend_difference", layer=layer_name),
                          diverging=True, face=small)]
    width = MARGIN * 2 + 3 * cell_w + 2 * GAP
    width = max(width, MARGIN * 2 + sum(l.width for l in legends) + 30)
    headings = wrap_text(heading, title_face, width - 2 * MARGIN)
    notes = [line for note in notes for line in wrap_text(note, note_face, width - 2 * MARGIN)]
    heading_h = len(headings) * (line_height(title_face) + 2) + 2
    top = MARGIN + heading_h + len(notes) * (line_height(note_face) + 2) + 10
    panel_top = top + line_height(label_face) + 4
    height = panel_top + ph + 4 + line_height(caption_face) + 12 + max(l.height for l in legends) + MARGIN

    sheet, draw = new_sheet(width, height)
    for i, line in enumerate(headings):
        draw_text(draw, (MARGIN, MARGIN + i * (line_height(title_face) + 2)), line, title_face)
    for i, note in enumerate(notes):
        draw_text(draw, (MARGIN, MARGIN + heading_h + i * (line_height(note_face) + 2)), note, note_face, MUTED)
    for i, ((name, pixels, _), caption) in enumerate(zip(panels, captions)):
        x = MARGIN + i * (cell_w + GAP)
        px = x + (cell_w - pw) // 2
        draw_text(draw, (x + cell_w // 2, top), name, label_face, INK, "ma")
        paste_panel(sheet, pixels, px, panel_top)
        if total > 0:
            _draw_box(draw, px + col * factor, panel_top + row * factor, size * factor, size * factor)
        draw_text(draw, (x + cell_w // 2, panel_top + ph + 4), caption, caption_face, MUTED, "ma")
    x = MARGIN
    for legend in legends:
        sheet.paste(legend, (x, panel_top + ph + 4 + line_height(caption_face) + 12))
        x += legend.width + 30
    box_alt = (words.t("zoom_alt_box", size=f"{size}×{size}", rows=rows, columns=columns, share=f"{share * 100:.0f}")
               if total > 0 else words.t("zoom_alt_no_change"))
    alt = words.t("zoom_alt", heading=heading, shape=f"{h}×{w}",
                  clean=value_range(clean_map.min(), clean_map.max(), words),
                  adv=value_range(adv_map.min(), adv_map.max(), words), scale=value_range(lo, hi, words),
                  diff=value_range(diff.min(), diff.max(), words), limit=number(limit), box=box_alt)
    record = save_png(sheet, path, alt)
    record.update({"layer": layer_name, "channel": int(channel), "unit": unit, "role": role})
    return record


def perturbation_image(x: np.ndarray, x_adv: np.ndarray, path, *, amplification: float,
                       captions: tuple[str, str] | None = None, words: Words = ENGLISH, panel: int = 224) -> dict:
    """Original | amplified perturbation | adversarial, enlarged with nearest-neighbour sampling.

    x, x_adv: (H, W, C) in [0, 1], C=1 (grey) or 3 (colour). The perturbation is drawn as
    0.5 + amplification * (x_adv - x): mid-grey means unchanged. The caller gives the factor (one
    per image, the same the epsilon sweep uses); it is printed. captions: optional text under the
    original and the adversarial image (e.g. their predictions), in the words' language.
    """
    x, x_adv = np.asarray(x, dtype=np.float32), np.asarray(x_adv, dtype=np.float32)
    if x.shape != x_adv.shape or x.ndim != 3:
        raise ValueError(f"expected two images of one shape (H, W, C), got {x.shape} and {x_adv.shape}")
    if not amplification > 0:
        raise ValueError(f"amplification must be positive, got {amplification}")
    delta = x_adv - x
    largest = symmetric_limit(delta)
    shown = np.clip(0.5 + amplification * delta, 0.0, 1.0)
    h, w = x.shape[:2]
    scale = enlargement(h, w, panel)
    factor = number(amplification)
    panels = [(words.t("original"), image_colours(x)), (words.t("perturbation_times", factor=factor),
                                                        image_colours(shown)),
              (words.t("adversarial"), image_colours(x_adv))]
    under = [captions[0] if captions else "",
             words.t("perturbation_caption", largest=number(largest), levels=f"{largest * 255:.1f}"),
             captions[1] if captions else ""]
    label_face, caption_face = words.face(13, bold=True), words.face(12)
    pw, ph = w * scale, h * scale
    cell_w = max(pw, 150)
    lines = [wrap_text(text, caption_face, cell_w) if text else [] for text in under]
    width = MARGIN * 2 + 3 * cell_w + 2 * GAP
    top = MARGIN + line_height(label_face) + 4
    caption_h = max(len(l) for l in lines) * (line_height(caption_face) + 1)
    height = top + ph + 4 + caption_h + MARGIN
    sheet, draw = new_sheet(width, height)
    for i, (name, pixels) in enumerate(panels):
        cx = MARGIN + i * (cell_w + GAP)
        draw_text(draw, (cx + cell_w // 2, MARGIN), name, label_face, INK, "ma")
        paste_panel(sheet, enlarge(pixels, scale), cx + (cell_w - pw) // 2, top)
        for j, line in enumerate(lines[i]):
            draw_text(draw, (cx + cell_w // 2, top + ph + 4 + j * (line_height(caption_face) + 1)),
                      fit_text(line, caption_face, cell_w), caption_face, MUTED, "ma")
    kind = words.t(image_kind(x))
    if largest > 0:
        subtle = "subtle" if largest * 255 <= SUBTLE_LEVELS else "plain"
        change = words.t(f"perturbation_alt_change_{subtle}", factor=factor, largest=number(largest),
                         levels=f"{largest * 255:.1f}")
    else:
        change = words.t("perturbation_alt_same")
    alt = words.t("perturbation_alt", shape=f"{h}×{w}", kind=kind, change=change)
    if captions:
        alt += words.t("perturbation_alt_captions", clean=captions[0], adv=captions[1])
    record = save_png(sheet, path, alt)
    record["amplification"] = float(amplification)
    return record


def _draw_box(draw: ImageDraw.ImageDraw, x: int, y: int, w: int, h: int) -> None:
    """A box visible on any colour: a black outline with a white line inside it."""
    draw.rectangle((x - 1, y - 1, x + w, y + h), outline=(0, 0, 0), width=2)
    draw.rectangle((x + 1, y + 1, x + w - 2, y + h - 2), outline=(255, 255, 255), width=1)
