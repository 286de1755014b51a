"""Feature-map grids: the network overview, the per-layer comparison grid, the first-layer filters.

Inputs are NumPy arrays: activations of one image at one layer have shape (h, w, c).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from .common import (
    CLEAN_COLOUR, DIVERGING, INK, MUTED, SEQUENTIAL, as_maps, colour_bar, diverging_colours,
    draw_text, enlarge, enlargement, fit_text, font, image_colours, line_height,
    most_changed_filters, new_sheet, number, paste_panel, percent, save_png, sequential_colours,
    symmetric_limit, text_width, topk_bars, topk_bars_size, value_range, wrap_text,
)

MARGIN = 12
COLUMN_GAP = 8
ROW_GAP = 6


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


def select_filters(clean_layers: Sequence[tuple[str, np.ndarray]],
                   adv_layers: Sequence[tuple[str, np.ndarray]],
                   max_filters: int = 10) -> dict[str, list[int]]:
    """For layers with more than `max_filters` channels, the `max_filters` most changed filters.

    Returns {name: sorted filter indices} (layers with few channels are left out: they show all).
    Pass the result as `filter_indices` to both overviews so they show the same filters.
    """
    adv = dict(adv_layers)
    chosen = {}
    for name, clean in clean_layers:
        clean = np.asarray(clean)
        if clean.ndim == 3 and clean.shape[2] > max_filters and name in adv:
            chosen[name] = sorted(most_changed_filters(clean, adv[name], max_filters))
    return chosen


def network_overview(layers: Sequence[tuple[str, np.ndarray]], probabilities, class_names: Sequence[str],
                     scales: Mapping[str, tuple[float, float]], path, title: str, *,
                     image: np.ndarray | None = None, max_filters: int = 10,
                     filter_indices: Mapping[str, Sequence[int]] | None = None, top_k: int = 5,
                     panel: int = 56) -> dict:
    """Every layer's feature maps in one picture, input on the left, output probabilities on the right.

    layers: ordered (name, activations (h, w, c)) for the 4-D layers. Each becomes a column with
    one map per filter, coloured with scales[name] = (lo, hi) (use `shared_scales` so the clean and
    adversarial overviews agree). A layer with more than `max_filters` channels shows
    filter_indices[name] (meant to be the most changed, see `select_filters`) or else its first
    `max_filters`; the column says which. image: the input (H, W, C) in [0, 1], drawn first.
    probabilities: (n_classes,). The picture's size depends only on the shapes, the class names,
    max_filters and top_k, so the clean and adversarial overviews have identical sizes.
    """
    filter_indices = filter_indices or {}
    head_face, small_face, tag_face = font(12, bold=True), font(11), font(10)
    columns = []
    if image is not None:
        pixels = image_colours(image)
        factor = enlargement(pixels.shape[0], pixels.shape[1], panel)
        columns.append({"lines": ["input", _shape(image.shape), "0 – 1"], "panels": [enlarge(pixels, factor)],
                        "filters": None})
    uniform_rows = True
    alt_layers = []
    for name, maps in layers:
        maps = as_maps(maps, name)
        h, w, c = maps.shape
        lo, hi = scales[name]
        if name in filter_indices and c > len(filter_indices[name]):
            shown = [int(i) for i in filter_indices[name]]
            note = f"{len(shown)} most changed of {c}"
        elif c > max_filters:
            shown = list(range(max_filters))
            note = f"first {max_filters} of {c}"
        else:
            shown = list(range(c))
            note = None
        uniform_rows &= shown == list(range(len(shown)))
        factor = enlargement(h, w, panel)
        coloured = sequential_colours(maps[:, :, shown], lo, hi)
        columns.append({"lines": [name, _shape(maps.shape), value_range(lo, hi)] + ([note] if note else []),
                        "panels": [enlarge(coloured[:, :, j], factor) for j in range(len(shown))],
                        "filters": shown})
        alt_layers.append(f"{name} {_shape(maps.shape)}" + (f" ({note})" if note else "")
                          + f", scale {value_range(lo, hi)}")

    header_lines = max(len(col["lines"]) for col in columns)
    for col in columns:
        col["width"] = max(max(p.shape[1] for p in col["panels"]),
                           max(text_width(line, head_face if i == 0 else small_face) for i, line in enumerate(col["lines"])))
    rows = max(len(col["panels"]) for col in columns)
    cell_h = max(p.shape[0] for col in columns for p in col["panels"])
    row_label_w = text_width("filter", small_face) + 8 if uniform_rows else 0

    probabilities = np.asarray(probabilities, dtype=np.float64)
    k = min(top_k, probabilities.size)
    label_w, bars_w, bars_h = topk_bars_size(class_names, k, small_face, 100)

    title_face, sub_face = font(15, bold=True), font(12)
    # At least 640 px wide, so that titles of ordinary length fit on one line: the clean and the
    # adversarial overview must come out the same size whatever their titles.
    width = max(640, MARGIN + row_label_w + sum(col["width"] + COLUMN_GAP for col in columns) + 8 + bars_w + MARGIN)
    subtitle = wrap_text("Columns: layers from input to output. Rows: filters. Each layer has one colour scale "
                         "(printed under its name).", sub_face, width - 2 * MARGIN)
    title_h = line_height(title_face) + 4 + len(subtitle) * (line_height(sub_face) + 2) + 8
    header_h = header_lines * (line_height(small_face) + 1) + 6
    grid_h = rows * (cell_h + ROW_GAP)
    legend = colour_bar(SEQUENTIAL, 0, 1, 160, "colour: each layer's own scale", ends=("low", "high"))
    height = MARGIN + title_h + header_h + max(grid_h, bars_h + 40) + legend.height + MARGIN

    sheet, draw = new_sheet(width, height)
    draw_text(draw, (MARGIN, MARGIN), fit_text(title, title_face, width - 2 * MARGIN), title_face)
    for i, line in enumerate(subtitle):
        draw_text(draw, (MARGIN, MARGIN + line_height(title_face) + 4 + i * (line_height(sub_face) + 2)), line,
                  sub_face, MUTED)
    top = MARGIN + title_h
    grid_top = top + header_h
    if uniform_rows:
        draw_text(draw, (MARGIN, grid_top - line_height(small_face) - 4), "filter", small_face, MUTED)
        for r in range(rows):
            draw_text(draw, (MARGIN + row_label_w - 8, grid_top + r * (cell_h + ROW_GAP) + cell_h // 2), str(r),
                      small_face, MUTED, "rm")
    x = MARGIN + row_label_w
    for col in columns:
        for i, line in enumerate(col["lines"]):
            draw_text(draw, (x + col["width"] // 2, top + i * (line_height(small_face) + 1)), line,
                      head_face if i == 0 else small_face, INK if i == 0 else MUTED, "ma")
        for r, pixels in enumerate(col["panels"]):
            ph, pw = pixels.shape[:2]
            px = x + (col["width"] - pw) // 2
            py = grid_top + r * (cell_h + ROW_GAP) + (cell_h - ph) // 2
            paste_panel(sheet, pixels, px, py)
            if col["filters"] is not None and not uniform_rows:
                draw_text(draw, (px + 2, py + 1), str(col["filters"][r]), tag_face, (255, 255, 255))
        x += col["width"] + COLUMN_GAP

    bars_x = x + 8
    draw_text(draw, (bars_x + bars_w // 2, top), "output", head_face, INK, "ma")
    draw_text(draw, (bars_x + bars_w // 2, top + line_height(small_face) + 1),
              f"top {k} of {probabilities.size} classes", small_face, MUTED, "ma")
    bars_top = grid_top + max(0, (grid_h - bars_h) // 2)
    topk_bars(draw, bars_x, bars_top, probabilities, class_names, k, label_w, 100, small_face, CLEAN_COLOUR)
    sheet.paste(legend, (MARGIN, grid_top + max(grid_h, bars_h + 40)))

    ranked = np.argsort(-probabilities, kind="stable")[:k]
    prediction = ", ".join(f"{class_names[i]} {percent(probabilities[i])}" for i in ranked)
    inputs = f"input {_shape(image.shape)}; " if image is not None else ""
    alt = (f"{title}. Feature maps of every layer from input to output, one column per layer and one map per "
           f"filter: " + inputs + "; ".join(alt_layers) + f". Output top {k}: {prediction}.")
    return save_png(sheet, path, alt)


def comparison_grid(layer_name: str, clean: np.ndarray, adv: np.ndarray, path, max_filters: int | None = 10,
                    order: str = "index", *, columns: int = 5, panel: int = 80) -> dict:
    """Clean, adversarial and difference maps of one layer, one column per filter.

    clean, adv: activations (h, w, c). Shows min(c, max_filters) filters (all if max_filters is
    None): the first ones (order='index') or the most changed, largest change first
    (order='change'); more than `columns` filters wrap into further row groups. Clean and
    adversarial share one sequential scale (min..max over both, whole layer); the difference
    adv - clean uses a diverging scale centred on zero with range ±max|diff|. Both are printed.
    """
    clean, adv = as_maps(clean, layer_name), as_maps(adv, layer_name)
    if clean.shape != adv.shape:
        raise ValueError(f"{layer_name}: clean {clean.shape} and adversarial {adv.shape} differ in shape")
    if order not in ("index", "change"):
        raise ValueError(f"order must be 'index' or 'change', got {order!r}")
    h, w, c = clean.shape
    count = c if max_filters is None else min(c, max_filters)
    shown = list(range(count)) if order == "index" else most_changed_filters(clean, adv, count)
    diff = adv - clean
    lo, hi = float(min(clean.min(), adv.min())), float(max(clean.max(), adv.max()))
    limit = symmetric_limit(diff)
    factor = enlargement(h, w, panel)

    rows = []
    for label, maps, colour in (("clean", clean, lambda v: sequential_colours(v, lo, hi)),
                                ("adversarial", adv, lambda v: sequential_colours(v, lo, hi)),
                                ("difference", diff, lambda v: diverging_colours(v, limit))):
        coloured = colour(maps[:, :, shown])
        rows.append((label, [enlarge(coloured[:, :, j], factor) for j in range(count)],
                     [value_range(maps[:, :, f].min(), maps[:, :, f].max()) for f in shown]))
    if order == "change":
        headers = [f"filter {f}" for f in shown]
        note = (f"{count} most changed of {c} filters, largest change first" if count < c
                else "filters ordered by change, largest first")
    else:
        headers = [f"filter {f}" for f in shown]
        note = f"first {count} of {c} filters" if count < c else f"all {c} filters"
    title = f"{layer_name} ({_shape(clean.shape)}): clean vs adversarial"
    notes = [f"{note}; clean and adversarial share one scale {value_range(lo, hi)}; "
             f"difference = adversarial − clean on ±{number(limit)} (red higher, blue lower)",
             "under each map: its own min – max"]
    legends = [colour_bar(SEQUENTIAL, lo, hi, 180, f"{layer_name}: clean & adversarial"),
               colour_bar(DIVERGING, -limit, limit, 180, "difference (adv − clean)", diverging=True)]
    sheet = _row_grid(title, notes, rows, headers, columns, legends)
    changed = most_changed_filters(clean, adv, 1)[0] if c else 0
    alt = (f"{layer_name} ({_shape(clean.shape)}), {note}: rows show the clean maps, the adversarial maps and "
           f"their difference for filters {', '.join(str(f) for f in shown)}. Clean and adversarial share the "
           f"scale {value_range(lo, hi)}; the difference ranges {value_range(diff.min(), diff.max())} on a "
           f"red-blue scale of ±{number(limit)}. The most changed filter is {changed}.")
    return save_png(sheet, path, alt)


def first_layer_filters(kernel: np.ndarray, path, *, layer_name: str = "conv_1_1", columns: int = 5,
                        panel: int = 64) -> dict:
    """The learned first-layer kernels: kernel (kh, kw, cin, cout), one column per filter, one row per input channel.

    All weights share one diverging scale centred on zero (±max|w|), printed in the legend.
    """
    kernel = np.asarray(kernel, dtype=np.float32)
    if kernel.ndim != 4:
        raise ValueError(f"expected a kernel of shape (kh, kw, cin, cout), got {kernel.shape}")
    kh, kw, cin, cout = kernel.shape
    limit = symmetric_limit(kernel)
    factor = enlargement(kh, kw, panel)
    channel_names = {1: ["weights"], 3: ["red", "green", "blue"]}.get(cin, [f"channel {i}" for i in range(cin)])
    rows = []
    for ch in range(cin):
        weights = kernel[:, :, ch, :]
        coloured = diverging_colours(weights, limit)
        rows.append((channel_names[ch], [enlarge(coloured[:, :, j], factor) for j in range(cout)],
                     [value_range(weights[:, :, j].min(), weights[:, :, j].max()) for j in range(cout)]))
    title = f"{layer_name}: the {cout} learned {kh}×{kw} filters"
    notes = [f"{cin} input channel{'s' if cin > 1 else ''}; one scale ±{number(limit)} for all weights "
             "(red positive, blue negative, near-white zero)", "under each filter: its own min – max"]
    legends = [colour_bar(DIVERGING, -limit, limit, 180, "weight", diverging=True)]
    sheet = _row_grid(title, notes, rows, [f"filter {j}" for j in range(cout)], columns, legends)
    alt = (f"The {cout} learned {kh}×{kw} filters of {layer_name} over {cin} input channel"
           f"{'s' if cin > 1 else ''}, coloured red for positive and blue for negative weights on one scale of "
           f"±{number(limit)}; weights range {value_range(kernel.min(), kernel.max())}.")
    return save_png(sheet, path, alt)


# --- layout --------------------------------------------------------------------------------------

def _row_grid(title: str, notes: list[str], rows, headers: list[str], columns: int,
              legends: list[Image.Image]) -> Image.Image:
    """Lay out rows of panels: rows = [(row label, [panel pixels], [caption])], wrapping every `columns` panels."""
    title_face, note_face = font(15, bold=True), font(12)
    label_face, head_face, caption_face = font(12, bold=True), font(12), font(11)
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
    width = MARGIN + max(grid_w, legends_w) + MARGIN
    notes = [line for note in notes for line in wrap_text(note, note_face, width - 2 * MARGIN)]
    top = MARGIN + line_height(title_face) + 4 + len(notes) * (line_height(note_face) + 2) + 8
    height = top + groups * group_h + legend_h + MARGIN

    sheet, draw = new_sheet(width, height)
    draw_text(draw, (MARGIN, MARGIN), fit_text(title, title_face, width - 2 * MARGIN), title_face)
    for i, note in enumerate(notes):
        draw_text(draw, (MARGIN, MARGIN + line_height(title_face) + 4 + i * (line_height(note_face) + 2)),
                  fit_text(note, note_face, width - 2 * MARGIN), note_face, MUTED)
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
