"""Feature-map grids: the network overview, the per-layer comparison grid, the first-layer filters.

Inputs are NumPy arrays: activations of one image at one layer have shape (h, w, c). The caller
chooses which channels are drawn (and says how it chose them); these functions only draw.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from generator.figures.common import (
    CLEAN_COLOUR, DIVERGING, MUTED, SEQUENTIAL, as_maps, colour_bar, diverging_colours, enlarge, enlargement,
    image_colours, new_sheet, number, paste_panel, percent, save_png, sequential_colours, shared_panels,
    symmetric_limit, topk_bars, topk_bars_size, value_range,
)
from generator.figures.text import INK, draw_text, fit_text, line_height, text_width, wrap_text
from generator.figures.words import ENGLISH, Words

MARGIN = 12
COLUMN_GAP = 8
ROW_GAP = 6
UNITS = ("filter", "channel")
# How the caller chose the channels it passes: every one, the first n, the n most changed (by the
# probe's measure), or some other choice of its own.
SELECTIONS = ("all", "first", "most_changed", "chosen")


def shared_scales(clean_layers: Sequence[tuple[str, np.ndarray]],
                  adv_layers: Sequence[tuple[str, np.ndarray]],
                  *more_layers: Sequence[tuple[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """One colour scale per layer covering every given version of it: {name: (lo, hi)}.

    Each argument is an ordered list of (layer name, activations). The scale of a layer is the
    min and max over all lists that contain it, so the clean and adversarial overviews colour the
    same value with the same colour.
    """
    scales: dict[str, tuple[float, float]] = {}
    for layer_list in (clean_layers, adv_layers, *more_layers):
        for name, array in layer_list:
            array = np.asarray(array)
            lo, hi = float(array.min()), float(array.max())
            if name in scales:
                lo, hi = min(lo, scales[name][0]), max(hi, scales[name][1])
            scales[name] = (lo, hi)
    return scales


def checked_channels(layer_name: str, total: int, channels: Sequence[int] | None, selection: str,
                     unit: str) -> list[int]:
    """The channel indices to draw, checked against the layer's `total` channels and the words
    that will describe them: 'all' must be every channel, 'first' must be 0, 1, ... n-1.

    channels None means every channel in index order (selection must then be 'all').
    """
    if unit not in UNITS:
        raise ValueError(f"{layer_name}: unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"{layer_name}: selection must be one of {', '.join(SELECTIONS)}, got {selection!r}")
    shown = list(range(total)) if channels is None else [int(c) for c in channels]
    if not shown:
        raise ValueError(f"{layer_name}: no channels to draw")
    if len(set(shown)) != len(shown) or not all(0 <= c < total for c in shown):
        raise ValueError(f"{layer_name}: channels {shown} are not distinct indices below {total}")
    if selection == "all" and sorted(shown) != list(range(total)):
        raise ValueError(f"{layer_name}: selection 'all' but {len(shown)} of {total} channels given")
    if selection == "first" and shown != list(range(len(shown))):
        raise ValueError(f"{layer_name}: selection 'first' but channels {shown} are not 0, 1, 2, ...")
    return shown


def selection_note(words: Words, selection: str, unit: str, shown: int, total: int) -> str:
    """'all 10 filters', 'first 8 of 64 channels', '8 most changed of 64 filters', ... in `words`."""
    return words.t(f"selection_{selection}", shown=shown, units=words.units(unit, total))


def network_overview(layers: Sequence[tuple[str, np.ndarray]], probabilities, class_names: Sequence[str],
                     scales: Mapping[str, tuple[float, float]], path, title: str, *,
                     image: np.ndarray | None = None, channels: Mapping[str, Sequence[int]] | None = None,
                     selection: Mapping[str, str] | None = None, units: Mapping[str, str] | None = None,
                     top_k: int = 5, panel: int = 56, words: Words = ENGLISH) -> dict:
    """Every layer's feature maps in one picture, input on the left, output probabilities on the right.

    layers: ordered (name, activations (h, w, c)). Each becomes a column with one map per drawn
    channel, coloured with scales[name] = (lo, hi) (use `shared_scales` so the clean and
    adversarial overviews agree). channels[name]: the indices drawn, in order (default: all);
    selection[name]: how they were chosen ('all', 'first', 'most_changed', 'chosen'; default
    'all'); units[name]: 'filter' for a convolution's maps, 'channel' otherwise (the default).
    image: the input (H, W, C) in [0, 1], drawn first. probabilities: (n_classes,); class_names
    in the words' language. The picture's size depends only on the shapes, the class names, the
    channel counts and top_k, so the clean and adversarial overviews have identical sizes.

    The record adds "layers": [{"layer", "channels", "unit", "selection"}] for each column drawn.
    """
    channels, selection, units = channels or {}, selection or {}, units or {}
    head_face, small_face, tag_face = words.face(12, bold=True), words.face(11), words.face(10)
    columns, drawn, alt_layers = [], [], []
    if image is not None:
        pixels = image_colours(image)
        factor = enlargement(pixels.shape[0], pixels.shape[1], panel)
        columns.append({"lines": [words.t("input"), _shape(image.shape), value_range(0, 1, words), ""],
                        "panels": [enlarge(pixels, factor)], "channels": None})
    for name, maps in layers:
        maps = as_maps(maps, name)
        h, w, c = maps.shape
        lo, hi = scales[name]
        unit, chosen_by = units.get(name, "channel"), selection.get(name, "all")
        shown = checked_channels(name, c, channels.get(name), chosen_by, unit)
        factor = enlargement(h, w, panel)

        def coloured_column(maps=maps, shown=shown, lo=lo, hi=hi, factor=factor):
            coloured = sequential_colours(maps[:, :, shown], lo, hi)
            return [enlarge(coloured[:, :, j], factor) for j in range(len(shown))]

        note = selection_note(words, chosen_by, unit, len(shown), c)
        columns.append({"lines": [name, _shape(maps.shape), value_range(lo, hi, words), note],
                        "panels": shared_panels(("overview", maps, tuple(shown), lo, hi, factor), coloured_column),
                        "channels": shown})
        drawn.append({"layer": name, "channels": shown, "unit": unit, "selection": chosen_by})
        alt_layers.append(words.t("overview_alt_layer", layer=name, shape=_shape(maps.shape), note=note,
                                  scale=value_range(lo, hi, words)))
    # Row labels at the left when every column draws its channels 0, 1, 2, ... in order;
    # otherwise each map carries its own index.
    uniform_rows = all(col["channels"] is None or col["channels"] == list(range(len(col["channels"])))
                       for col in columns)
    for col in columns:
        panel_w = max(p.shape[1] for p in col["panels"])
        lines = col["lines"]
        width = max(panel_w, max(text_width(line, head_face if i == 0 else small_face)
                                 for i, line in enumerate(lines[:3])))
        # the selection note takes at most about two lines, rather than widening the column to one
        note_full = text_width(lines[3], small_face)
        note_w = max(width, min(note_full, 100), note_full // 2 + 16)
        col["note"] = wrap_text(lines[3], small_face, note_w, break_cjk=False) if lines[3] else []
        col["width"] = max(width, max((text_width(line, small_face) for line in col["note"]), default=0))
    header_lines = 3 + max(len(col["note"]) for col in columns)
    rows = max(len(col["panels"]) for col in columns)
    cell_h = max(p.shape[0] for col in columns for p in col["panels"])
    row_header = words.t("row_index")
    row_label_w = max(text_width(row_header, small_face), text_width(str(rows - 1), small_face)) + 8 \
        if uniform_rows else 0

    probabilities = np.asarray(probabilities, dtype=np.float64)
    k = min(top_k, probabilities.size)
    label_w, bars_w, bars_h = topk_bars_size(class_names, k, small_face, 100)
    output_lines = [words.t("output"), words.t("output_top", k=k, total=probabilities.size)]
    bars_w = max(bars_w, max(text_width(line, small_face) for line in output_lines))

    title_face, sub_face = words.face(15, bold=True), words.face(12)
    # At least 640 px wide, so that titles of ordinary length fit on one line: the clean and the
    # adversarial overview must come out the same size whatever their titles.
    width = max(640, MARGIN + row_label_w + sum(col["width"] + COLUMN_GAP for col in columns) + 8 + bars_w + MARGIN)
    subtitle = wrap_text(words.t("overview_subtitle"), sub_face, width - 2 * MARGIN)
    line_h, sub_h = line_height(small_face) + 1, line_height(sub_face) + 2
    title_h = line_height(title_face) + 4 + len(subtitle) * sub_h + 8
    header_h = header_lines * line_h + 6
    grid_h = rows * (cell_h + ROW_GAP)
    legend = colour_bar(SEQUENTIAL, 0, 1, 160, words.t("overview_legend"), face=small_face,
                        ends=(words.t("low"), words.t("high")))
    height = MARGIN + title_h + header_h + max(grid_h, bars_h + 40) + legend.height + MARGIN

    sheet, draw = new_sheet(width, height)
    draw_text(draw, (MARGIN, MARGIN), fit_text(title, title_face, width - 2 * MARGIN), title_face)
    for i, line in enumerate(subtitle):
        draw_text(draw, (MARGIN, MARGIN + line_height(title_face) + 4 + i * sub_h), line, sub_face, MUTED)
    top = MARGIN + title_h
    grid_top = top + header_h
    if uniform_rows:
        draw_text(draw, (MARGIN, grid_top - line_height(small_face) - 4), row_header, small_face, MUTED)
        for r in range(rows):
            draw_text(draw, (MARGIN + row_label_w - 8, grid_top + r * (cell_h + ROW_GAP) + cell_h // 2), str(r),
                      small_face, MUTED, "rm")
    x = MARGIN + row_label_w
    for col in columns:
        for i, line in enumerate(col["lines"][:3] + col["note"]):
            draw_text(draw, (x + col["width"] // 2, top + i * line_h), line,
                      head_face if i == 0 else small_face, INK if i == 0 else MUTED, "ma")
        for r, pixels in enumerate(col["panels"]):
            ph, pw = pixels.shape[:2]
            px = x + (col["width"] - pw) // 2
            py = grid_top + r * (cell_h + ROW_GAP) + (cell_h - ph) // 2
            paste_panel(sheet, pixels, px, py)
            if col["channels"] is not None and not uniform_rows:
                draw_text(draw, (px + 2, py + 1), str(col["channels"][r]), tag_face, (255, 255, 255))
        x += col["width"] + COLUMN_GAP

    bars_x = x + 8
    for i, line in enumerate(output_lines):
        draw_text(draw, (bars_x + bars_w // 2, top + i * line_h), line, head_face if i == 0 else small_face,
                  INK if i == 0 else MUTED, "ma")
    bars_top = grid_top + max(0, (grid_h - bars_h) // 2)
    topk_bars(draw, bars_x, bars_top, probabilities, class_names, k, label_w, 100, small_face, CLEAN_COLOUR)
    sheet.paste(legend, (MARGIN, grid_top + max(grid_h, bars_h + 40)))

    ranked = np.argsort(-probabilities, kind="stable")[:k]
    prediction = words.join(f"{class_names[i]} {percent(probabilities[i])}" for i in ranked)
    inputs = [words.t("overview_alt_input", shape=_shape(image.shape))] if image is not None else []
    alt = words.t("overview_alt", title=title, layers=words.t("clause_separator").join(inputs + alt_layers), k=k,
                  prediction=prediction)
    record = save_png(sheet, path, alt)
    record["layers"] = drawn
    return record


def comparison_grid(layer_name: str, clean: np.ndarray, adv: np.ndarray, path, *, channels: Sequence[int],
                    selection: str, unit: str, words: Words = ENGLISH, columns: int = 5, panel: int = 80) -> dict:
    """Original, adversarial and difference maps of one layer, one column per drawn channel.

    clean, adv: activations (h, w, c). channels: the indices drawn, in the order given (the caller
    orders them); selection: how the caller chose them ('all', 'first', 'most_changed', 'chosen');
    unit: 'filter' (a convolution's maps) or 'channel'. More than `columns` channels wrap into
    further row groups. Original and adversarial share one sequential scale (min..max over both,
    whole layer); the difference adv - clean uses a diverging scale centred on zero with range
    ±max|diff| over the layer. Both are printed.

    The record adds {"layer": layer_name, "channels": [...], "unit": unit}.
    """
    clean, adv = as_maps(clean, layer_name), as_maps(adv, layer_name)
    if clean.shape != adv.shape:
        raise ValueError(f"{layer_name}: clean {clean.shape} and adversarial {adv.shape} differ in shape")
    h, w, c = clean.shape
    shown = checked_channels(layer_name, c, channels, selection, unit)
    diff = adv - clean
    lo, hi = float(min(clean.min(), adv.min())), float(max(clean.max(), adv.max()))
    limit = symmetric_limit(diff)
    factor = enlargement(h, w, panel)

    def coloured_rows():
        return [[enlarge(coloured[:, :, j], factor) for j in range(len(shown))]
                for coloured in (sequential_colours(clean[:, :, shown], lo, hi),
                                 sequential_colours(adv[:, :, shown], lo, hi),
                                 diverging_colours(diff[:, :, shown], limit))]

    panels = shared_panels(("comparison", clean, adv, tuple(shown), factor), coloured_rows)
    rows = [(label, row_panels, [value_range(maps[:, :, f].min(), maps[:, :, f].max(), words) for f in shown])
            for label, maps, row_panels in zip((words.t("original"), words.t("adversarial"), words.t("difference")),
                                               (clean, adv, diff), panels)]
    note = selection_note(words, selection, unit, len(shown), c)
    title = words.t("grid_title", layer=layer_name, shape=_shape(clean.shape))
    notes = [words.t("grid_note", selection=note, scale=value_range(lo, hi, words), limit=number(limit)),
             words.t("grid_captions")]
    small = words.face(12)
    legends = [colour_bar(SEQUENTIAL, lo, hi, 180, words.t("grid_legend_shared", layer=layer_name), face=small),
               colour_bar(DIVERGING, -limit, limit, 180, words.t("difference_legend"), diverging=True, face=small)]
    sheet = _row_grid(title, notes, rows, [words.unit(unit, f) for f in shown], columns, legends, words)
    alt = words.t("grid_alt", layer=layer_name, shape=_shape(clean.shape), selection=note,
                  units=words.t(f"unit_{unit}_plural"), indices=words.join(shown), scale=value_range(lo, hi, words),
                  diff=value_range(diff.min(), diff.max(), words), limit=number(limit))
    record = save_png(sheet, path, alt)
    record.update({"layer": layer_name, "channels": shown, "unit": unit})
    return record


def first_layer_filters(kernel: np.ndarray, path, *, layer_name: str = "conv_1_1", columns: int = 5,
                        panel: int = 64, words: Words = ENGLISH) -> dict:
    """The learned first-layer kernels: kernel (kh, kw, cin, cout), one column per filter, one row per input channel.

    All weights share one diverging scale centred on zero (±max|w|), printed in the legend.
    """
    kernel = np.asarray(kernel, dtype=np.float32)
    if kernel.ndim != 4:
        raise ValueError(f"expected a kernel of shape (kh, kw, cin, cout), got {kernel.shape}")
    kh, kw, cin, cout = kernel.shape
    limit = symmetric_limit(kernel)
    factor = enlargement(kh, kw, panel)
    if cin in (1, 3):
        channel_names = [words.t(key) for key in (("weights",) if cin == 1 else ("red", "green", "blue"))]
    else:
        channel_names = [words.unit("channel", i) for i in range(cin)]
    rows = []
    for ch in range(cin):
        weights = kernel[:, :, ch, :]
        coloured = diverging_colours(weights, limit)
        rows.append((channel_names[ch], [enlarge(coloured[:, :, j], factor) for j in range(cout)],
                     [value_range(weights[:, :, j].min(), weights[:, :, j].max(), words) for j in range(cout)]))
    title = words.t("kernels_title", layer=layer_name, count=cout, size=f"{kh}×{kw}")
    notes = [words.t("kernels_note", count=cin, limit=number(limit)), words.t("kernels_captions")]
    legends = [colour_bar(DIVERGING, -limit, limit, 180, words.t("weight"), diverging=True, face=words.face(12))]
    sheet = _row_grid(title, notes, rows, [words.unit("filter", j) for j in range(cout)], columns, legends, words)
    alt = words.t("kernels_alt", layer=layer_name, count=cout, size=f"{kh}×{kw}", channels=cin,
                  limit=number(limit), range=value_range(kernel.min(), kernel.max(), words))
    return save_png(sheet, path, alt)


# --- layout --------------------------------------------------------------------------------------

def _row_grid(title: str, notes: list[str], rows, headers: list[str], columns: int,
              legends: list[Image.Image], words: Words) -> Image.Image:
    """Lay out rows of panels: rows = [(row label, [panel pixels], [caption])], wrapping every `columns` panels."""
    title_face, note_face = words.face(15, bold=True), words.face(12)
    label_face, head_face, caption_face = words.face(12, bold=True), words.face(12), words.face(11)
    count = len(headers)
    columns = max(1, min(columns, count))
    panel_w = max(p.shape[1] for _, panels, _ in rows for p in panels)
    panel_h = max(p.shape[0] for _, panels, _ in rows for p in panels)
    cell_w = max(panel_w, max(text_width(h, head_face) for h in headers),
                 max(text_width(t, caption_face) for _, _, caps in rows for t in caps)) + 2
    label_w = max(text_width(label, label_face) for label, _, _ in rows) + 12
    head_h = line_height(head_face) + 4
    row_h = panel_h + 3 + line_height(caption_face) + ROW_GAP
    group_h = head_h + len(rows) * row_h + 8
    groups = -(-count // columns)
    grid_w = label_w + columns * (cell_w + COLUMN_GAP) - COLUMN_GAP
    legends_w = sum(l.width for l in legends) + 30 * (len(legends) - 1)
    legend_h = max(l.height for l in legends)
    width = MARGIN + max(grid_w, legends_w, 420) + MARGIN
    title_lines = wrap_text(title, title_face, width - 2 * MARGIN)
    notes = [line for note in notes for line in wrap_text(note, note_face, width - 2 * MARGIN)]
    title_h = len(title_lines) * (line_height(title_face) + 2) + 2
    top = MARGIN + title_h + len(notes) * (line_height(note_face) + 2) + 8
    height = top + groups * group_h + legend_h + MARGIN

    sheet, draw = new_sheet(width, height)
    for i, line in enumerate(title_lines):
        draw_text(draw, (MARGIN, MARGIN + i * (line_height(title_face) + 2)), line, title_face)
    for i, note in enumerate(notes):
        draw_text(draw, (MARGIN, MARGIN + title_h + i * (line_height(note_face) + 2)), note, note_face, MUTED)
    for g in range(groups):
        gy = top + g * group_h
        for slot, j in enumerate(range(g * columns, min(count, (g + 1) * columns))):
            cx = MARGIN + label_w + slot * (cell_w + COLUMN_GAP)
            draw_text(draw, (cx + cell_w // 2, gy), headers[j], head_face, INK, "ma")
            for r, (_, panels, captions) in enumerate(rows):
                ry = gy + head_h + r * row_h
                pixels = panels[j]
                paste_panel(sheet, pixels, cx + (cell_w - pixels.shape[1]) // 2, ry + (panel_h - pixels.shape[0]) // 2)
                draw_text(draw, (cx + cell_w // 2, ry + panel_h + 3), captions[j], caption_face, MUTED, "ma")
        for r, (label, _, _) in enumerate(rows):
            draw_text(draw, (MARGIN + label_w - 10, gy + head_h + r * row_h + panel_h // 2), label, label_face,
                      INK, "rm")
    x = MARGIN
    for legend in legends:
        sheet.paste(legend, (x, top + groups * group_h))
        x += legend.width + 30
    return sheet


def _shape(shape) -> str:
    return "×".join(str(int(s)) for s in shape)
