"""Animations: the epsilon sweep, the change travelling through the layers, training epoch by epoch.

Frames are composed with NumPy and Pillow and written as looping GIFs with one adaptive palette.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import ImageDraw

from .common import (
    ADVERSARIAL_COLOUR, BAR_TRACK, CLEAN_COLOUR, FLIP_COLOUR, FRAME, INK, MUTED, as_maps,
    diverging_colours, draw_text, enlarge, enlargement, fit_text, font, image_colours, line_height,
    log_ticks, most_changed_filters, new_sheet, number, paste_panel, percent, relative_change, save_gif,
    sequential_colours, symmetric_limit, text_width, topk_bars, topk_bars_size, value_range,
)

MARGIN = 12
GAP = 16
FLIP_BORDER = 6


def _durations(count: int, fps: float, held: Sequence[int] = (), hold_ms: int = 2000) -> list[int]:
    """Per-frame durations in ms: 1000/fps each, `held` frames and the last frame shown longer."""
    base = int(round(1000 / max(fps, 0.1)))
    durations = [base] * count
    for index in held:
        durations[index] = max(hold_ms, 4 * base)
    durations[-1] = max(durations[-1], 1500, 3 * base)
    return durations


def _pick_frames(count: int, max_frames: int, keep: int | None) -> list[int]:
    """At most max_frames indices spread evenly over range(count), always with 0, count-1 and `keep`."""
    if count <= max_frames:
        return list(range(count))
    picks = set(np.linspace(0, count - 1, max(max_frames, 2)).round().astype(int).tolist())
    if keep is not None and 0 <= keep < count and keep not in picks:
        removable = [p for p in picks if p not in (0, count - 1)]
        if len(picks) >= max_frames and removable:
            picks.discard(min(removable, key=lambda p: abs(p - keep)))
        picks.add(keep)
    return sorted(picks)


# Ways to shrink a GIF that came out over its byte budget, mildest first: (panel scale, frame stride).
SHRINK_STEPS = ((1.0, 1), (0.75, 1), (0.75, 2), (0.55, 2), (0.55, 3), (0.4, 4))


def _within_budget(render, max_bytes: int | None, thin: bool = True) -> dict:
    """Call render(panel_scale, stride) -> record with ever smaller settings until the file fits max_bytes.

    Returns the first record that fits, or the smallest attempt's (its size is in the record).
    """
    steps = SHRINK_STEPS if thin else tuple(dict.fromkeys((scale, 1) for scale, _ in SHRINK_STEPS))
    record = None
    for scale, stride in steps:
        record = render(scale, stride)
        if max_bytes is None or record["bytes"] <= max_bytes:
            break
    return record


def epsilon_sweep_gif(x: np.ndarray, gradient_sign: np.ndarray, epsilons, probabilities, labels, flip_index: int,
                      class_names: Sequence[str], path, fps: float = 6, *, k: int = 5, max_frames: int = 60,
                      panel: int = 168, max_bytes: int | None = 500_000) -> dict:
    """The attack as epsilon grows: image, perturbation and top-k probabilities, one frame per epsilon.

    x, gradient_sign: (H, W, C); the frame for epsilon e shows clip(x + e * gradient_sign, 0, 1).
    epsilons (K,), probabilities (K, n_classes), labels (K,) predicted class indices. flip_index:
    the first frame whose label differs from frame 0's, or -1 if the label never flips ("not
    fooled"). The flip frame gets a red border and 'label flips here' and is held longer. The
    perturbation is amplified by one factor for all frames (so it visibly grows), printed.
    More than max_frames epsilons are thinned evenly, keeping the first, last and flip frames; if
    the file would exceed max_bytes the panels shrink and then frames are thinned further.
    """
    x, gradient_sign = np.asarray(x, np.float32), np.asarray(gradient_sign, np.float32)
    epsilons = np.asarray(epsilons, float)
    probabilities = np.asarray(probabilities, float)
    labels = np.asarray(labels, int)
    if not (len(epsilons) == len(probabilities) == len(labels)) or len(epsilons) == 0:
        raise ValueError(f"epsilons, probabilities and labels must have one equal, non-zero length, got "
                         f"{len(epsilons)}, {len(probabilities)}, {len(labels)}")
    flip_index = int(flip_index)
    if flip_index >= len(epsilons):
        raise ValueError(f"flip_index {flip_index} is outside the {len(epsilons)} sweep steps")
    eps_max = float(np.max(np.abs(epsilons)))
    factor = 0.5 / eps_max if eps_max > 0 else 1.0
    k = min(k, probabilities.shape[1])
    by_peak = np.argsort(-probabilities.max(axis=0), kind="stable")[:k]
    classes = sorted((int(c) for c in by_peak), key=lambda c: -probabilities[0, c])
    if int(labels[0]) not in classes:
        classes = [int(labels[0])] + classes[:-1]
    original = class_names[int(labels[0])]
    head_face, text_face, small_face = font(14, bold=True), font(12), font(11)
    label_w, bars_w, bars_h = topk_bars_size(class_names, len(classes), text_face, 120)

    def render(panel_scale: float, stride: int) -> dict:
        count = min(max_frames, -(-len(epsilons) // stride))
        frames_idx = _pick_frames(len(epsilons), count, flip_index)
        h, w = x.shape[:2]
        scale = enlargement(h, w, int(panel * panel_scale))
        pw, ph = w * scale, h * scale
        cell_w = max(pw, text_width(f"perturbation ×{number(factor)}", text_face))
        left = MARGIN + FLIP_BORDER
        top = left + 2 * (line_height(head_face) + 4) + 4
        width = 2 * left + 2 * cell_w + 2 * GAP + bars_w
        strip_top = top + line_height(text_face) + 4 + max(ph, bars_h) + 4 + line_height(small_face) + 12
        height = strip_top + 24 + line_height(small_face) + left
        frames = []
        for i in frames_idx:
            eps = float(epsilons[i])
            moved = np.clip(x + eps * gradient_sign, 0.0, 1.0)
            shown = np.clip(0.5 + factor * (moved - x), 0.0, 1.0)
            sheet, draw = new_sheet(width, height)
            fooled = int(labels[i]) != int(labels[0])
            label = class_names[int(labels[i])]
            draw_text(draw, (left, left), f"ε = {eps:.4f}", head_face)
            status = f"prediction: {label} {percent(probabilities[i, labels[i]])}"
            draw_text(draw, (width - left, left), status, head_face, FLIP_COLOUR if fooled else INK, "ra")
            if i == flip_index:
                draw.rectangle((0, 0, width - 1, height - 1), outline=FLIP_COLOUR, width=FLIP_BORDER)
                note, colour = f"label flips here: {original} → {label}", FLIP_COLOUR
            elif flip_index < 0:
                note, colour = f"not fooled: the label stays {original} up to ε = {eps_max:.4f}", MUTED
            elif fooled:
                note, colour = f"fooled: the label first changed at ε = {epsilons[flip_index]:.4f}", FLIP_COLOUR
            else:
                note, colour = f"label unchanged ({original})", MUTED
            draw_text(draw, (left, left + line_height(head_face) + 4), fit_text(note, text_face, width - 2 * left),
                      text_face, colour)
            for slot, (name, pixels) in enumerate((("image", image_colours(moved)),
                                                   (f"perturbation ×{number(factor)}", image_colours(shown)))):
                cx = left + slot * (cell_w + GAP)
                draw_text(draw, (cx + cell_w // 2, top), name, text_face, INK, "ma")
                paste_panel(sheet, enlarge(pixels, scale), cx + (cell_w - pw) // 2, top + line_height(text_face) + 4)
            draw_text(draw, (left + cell_w + GAP + cell_w // 2, top + line_height(text_face) + 4 + ph + 4),
                      "grey = no change", small_face, MUTED, "ma")
            bars_x = left + 2 * (cell_w + GAP)
            draw_text(draw, (bars_x, top), f"top {len(classes)} classes", text_face, INK)
            topk_bars(draw, bars_x, top + line_height(text_face) + 4, probabilities[i], class_names, k, label_w, 120,
                      text_face, ADVERSARIAL_COLOUR if fooled else CLEAN_COLOUR, classes=classes)
            _sweep_strip(draw, left, strip_top, width - 2 * left, epsilons, i, flip_index, small_face)
            frames.append(sheet)

        held = [frames_idx.index(flip_index)] if flip_index >= 0 else []
        if flip_index >= 0:
            outcome = (f"the label flips from {original} to {class_names[int(labels[flip_index])]} at "
                       f"ε = {epsilons[flip_index]:.4f} (frame {held[0] + 1}, marked with a red border and held)")
        else:
            outcome = f"the label stays {original} throughout: not fooled"
        alt = (f"Animation of {len(frames)} frames: the image, the perturbation (amplified ×{number(factor)}) and the "
               f"top {len(classes)} class probabilities as ε grows from {epsilons[0]:.4f} to {epsilons[-1]:.4f}; "
               f"{outcome}.")
        return save_gif(frames, path, alt, _durations(len(frames), fps, held))

    return _within_budget(render, max_bytes)


def _sweep_strip(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, epsilons, current: int, flip_index: int,
                 face) -> None:
    """A horizontal ε axis with the current ε marked and the flip ε as a red tick."""
    lo, hi = float(epsilons[0]), float(epsilons[-1])
    span = hi - lo if hi > lo else 1.0

    def at(eps: float) -> int:
        return x + int(round((eps - lo) / span * (width - 1)))

    draw.rectangle((x, y + 8, x + width - 1, y + 12), fill=BAR_TRACK)
    draw.rectangle((x, y + 8, at(float(epsilons[current])), y + 12), fill=CLEAN_COLOUR)
    if flip_index >= 0:
        fx = at(float(epsilons[flip_index]))
        draw.rectangle((fx - 1, y + 2, fx + 1, y + 18), fill=FLIP_COLOUR)
        draw_text(draw, (fx, y + 20), f"flip at {epsilons[flip_index]:.4f}", face, FLIP_COLOUR, "ma")
    cx = at(float(epsilons[current]))
    draw.ellipse((cx - 5, y + 5, cx + 5, y + 15), fill=INK)
    draw_text(draw, (x, y + 20), f"ε {lo:.4f}", face, MUTED)
    draw_text(draw, (x + width, y + 20), f"{hi:.4f}", face, MUTED, "ra")


def propagation_gif(layers: Sequence[tuple[str, np.ndarray, np.ndarray]], path, fps: float = 1.5, *,
                    panel: int = 150, max_bytes: int | None = 500_000) -> dict:
    """The change travelling through the network: one frame per layer, input to output.

    layers: (name, clean (h, w, c), adversarial (h, w, c)) in network order. Each frame shows that
    layer's most changed filter (clean, adversarial on a shared scale, difference on ±max|diff|),
    the layer's relative change ||adv - clean|| / ||clean||, and a small log-scale chart of all
    layers' relative changes so far. Panels shrink if the file would exceed max_bytes.
    """
    if not layers:
        raise ValueError("propagation_gif needs at least one layer")
    checked = []
    for name, clean, adv in layers:
        clean, adv = as_maps(clean, name), as_maps(adv, name)
        if clean.shape != adv.shape:
            raise ValueError(f"{name}: clean {clean.shape} and adversarial {adv.shape} differ in shape")
        checked.append((name, clean, adv, relative_change(clean, adv)))
    changes = [rel for *_, rel in checked]
    names = [name for name, *_ in checked]
    head_face, text_face, small_face = font(14, bold=True), font(12, bold=True), font(11)

    def render(panel_scale: float, _stride: int) -> dict:
        target = int(panel * panel_scale)
        factors = [enlargement(c.shape[0], c.shape[1], target) for _, c, _, _ in checked]
        slot_h = max(c.shape[0] * f for (_, c, _, _), f in zip(checked, factors))
        slot_w = max(c.shape[1] * f for (_, c, _, _), f in zip(checked, factors))
        cell_w = max(slot_w, text_width("difference (adv − clean)", text_face), text_width("scale −0.000 – −0.000", small_face))
        width = 2 * MARGIN + 3 * cell_w + 2 * GAP
        top = MARGIN + 2 * (line_height(head_face) + 4) + 6
        panel_top = top + line_height(text_face) + 4
        strip_top = panel_top + slot_h + 4 + line_height(small_face) + 16
        strip_h = 80
        height = strip_top + line_height(small_face) + 6 + strip_h + 5 + line_height(small_face) + MARGIN
        frames = []
        for index, ((name, clean, adv, rel), factor) in enumerate(zip(checked, factors)):
            f = most_changed_filters(clean, adv, 1)[0]
            unit = "channel" if name == "input" else "filter"
            cm, am = clean[:, :, f], adv[:, :, f]
            diff = am - cm
            lo, hi = float(min(cm.min(), am.min())), float(max(cm.max(), am.max()))
            limit = symmetric_limit(diff)
            sheet, draw = new_sheet(width, height)
            heading = f"Layer {index + 1} of {len(checked)}: {name} ({'×'.join(map(str, clean.shape))}), {unit} {f} (most changed)"
            draw_text(draw, (MARGIN, MARGIN), fit_text(heading, head_face, width - 2 * MARGIN), head_face)
            draw_text(draw, (MARGIN, MARGIN + line_height(head_face) + 4),
                      f"relative change ‖adv − clean‖ / ‖clean‖ = {number(rel)}", head_face, ADVERSARIAL_COLOUR)
            panels = [("clean", sequential_colours(cm, lo, hi), f"scale {value_range(lo, hi)}"),
                      ("adversarial", sequential_colours(am, lo, hi), "same scale"),
                      ("difference (adv − clean)", diverging_colours(diff, limit), f"scale ±{number(limit)}")]
            for slot, (title, pixels, note) in enumerate(panels):
                cx = MARGIN + slot * (cell_w + GAP)
                big = enlarge(pixels, factor)
                draw_text(draw, (cx + cell_w // 2, top), title, text_face, INK, "ma")
                paste_panel(sheet, big, cx + (cell_w - big.shape[1]) // 2, panel_top + (slot_h - big.shape[0]) // 2)
                draw_text(draw, (cx + cell_w // 2, panel_top + slot_h + 4), note, small_face, MUTED, "ma")
            _change_strip(draw, MARGIN, strip_top, width - 2 * MARGIN, strip_h, names, changes, index, small_face)
            frames.append(sheet)
        alt = (f"Animation of {len(frames)} frames, one per layer from {names[0]} to {names[-1]}: the most changed "
               f"filter of each layer, clean beside adversarial beside their difference, with the layer's relative "
               f"change, which goes " + ", ".join(f"{n} {number(r)}" for n, r in zip(names, changes)) + ".")
        return save_gif(frames, path, alt, _durations(len(frames), fps))

    return _within_budget(render, max_bytes, thin=False)


def _change_strip(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, height: int, names: list[str],
                  changes: list[float], current: int, face) -> None:
    """A small log-scale line chart of relative change per layer, drawn up to layer `current`."""
    draw_text(draw, (x, y), "relative change per layer (log scale), input → output", face, MUTED)
    y += line_height(face) + 6
    positive = [c for c in changes if c > 0 and math.isfinite(c)]
    ticks = log_ticks(min(positive), max(positive)) if positive else [0.01, 0.1, 1.0]
    if len(ticks) > 4:  # keep the small chart legible: its ends and the powers of ten between
        ticks = [ticks[0]] + [t for t in ticks[1:-1] if math.log10(t).is_integer()] + [ticks[-1]]
    lo, hi = math.log10(ticks[0]), math.log10(ticks[-1])
    span = max(hi - lo, 1e-9)
    axis_x = x + max(text_width(number(t), face) for t in ticks) + 6
    plot_w = x + width - axis_x
    slot = plot_w / len(names)

    def at(i: int, value: float) -> tuple[int, int]:
        fraction = (math.log10(value) - lo) / span if value > 0 and math.isfinite(value) else 0.0
        return axis_x + int((i + 0.5) * slot), y + height - int(round(fraction * height))

    for tick in ticks:
        ty = at(0, tick)[1]
        draw.line((axis_x, ty, x + width, ty), fill=BAR_TRACK)
        draw_text(draw, (axis_x - 5, ty), number(tick), face, MUTED, "rm")
    points = [at(i, changes[i]) for i in range(current + 1)]
    for i in range(current + 1, len(names)):
        cx = axis_x + int((i + 0.5) * slot)
        draw.line((cx, y + height - 2, cx, y + height + 2), fill=FRAME)
    if len(points) > 1:
        draw.line(points, fill=(235, 150, 150), width=2)
    for px, py in points[:-1]:
        draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=(235, 150, 150))
    px, py = points[-1]
    draw.ellipse((px - 5, py - 5, px + 5, py + 5), fill=ADVERSARIAL_COLOUR)
    label = f"{names[current]}: {number(changes[current])}"
    half = text_width(label, face) // 2
    centre = min(max(px, axis_x + half), x + width - half)
    draw_text(draw, (centre, y + height + 5), label, face, INK, "ma")


def training_gif(epoch_maps: Sequence[tuple[int, Sequence[tuple[str, np.ndarray]]]], accuracies: Sequence[float],
                 path, fps: float = 2, *, max_filters: int = 10, panel: int = 48,
                 accuracy_label: str = "validation accuracy", max_frames: int = 60,
                 max_bytes: int | None = 500_000) -> dict:
    """The probe image's feature maps epoch by epoch, with the accuracy so far.

    epoch_maps: [(epoch, [(layer name, activations (h, w, c))])], one entry per frame, layers
    in network order (entries are put in epoch order); accuracies: one value in [0, 1] per
    entry, in the same order as epoch_maps. Each layer keeps one colour scale over all epochs (so
    a colour change is a real change); at most max_filters filters (the first ones) are shown
    per layer. More than max_frames epochs, or a file over max_bytes, make the panels shrink and
    the epochs thin out evenly (first and last kept); the accuracy chart always has every epoch.
    """
    if not epoch_maps or len(epoch_maps) != len(accuracies):
        raise ValueError(f"need one accuracy per epoch: {len(epoch_maps)} epochs, {len(accuracies)} accuracies")
    order = sorted(range(len(epoch_maps)), key=lambda i: int(epoch_maps[i][0]))
    epoch_maps = [epoch_maps[i] for i in order]
    accuracies = [float(accuracies[i]) for i in order]
    epochs = [int(e) for e, _ in epoch_maps]
    names = [name for name, _ in epoch_maps[0][1]]
    scales = {}
    for _, layers in epoch_maps:
        for name, maps in layers:
            maps = np.asarray(maps)
            lo, hi = float(maps.min()), float(maps.max())
            old = scales.get(name, (lo, hi))
            scales[name] = (min(lo, old[0]), max(hi, old[1]))
    head_face, name_face, small_face = font(14, bold=True), font(11, bold=True), font(10)
    first = dict(epoch_maps[0][1])
    shapes = {n: as_maps(first[n], n).shape for n in names}
    rows = max(min(shapes[n][2], max_filters) for n in names)
    more_filters = any(shapes[n][2] > max_filters for n in names)

    def render(panel_scale: float, stride: int) -> dict:
        picks = _pick_frames(len(epoch_maps), min(max_frames, -(-len(epoch_maps) // stride)), None)
        # one target for every layer, at least the largest map's side, so the columns look alike in size
        target = int(max(panel, max(max(shapes[n][:2]) for n in names)) * panel_scale)
        factors = {n: enlargement(shapes[n][0], shapes[n][1], target) for n in names}
        col_w = {n: max(shapes[n][1] * factors[n], text_width(n, name_face), text_width(value_range(*scales[n]), small_face))
                 for n in names}
        cell_h = max(shapes[n][0] * factors[n] for n in names)
        top = MARGIN + line_height(head_face) + 8
        grid_top = top + 2 * (line_height(small_face) + 2) + 4
        row_label_w = text_width(str(rows - 1), small_face) + 8
        grid_w = row_label_w + sum(col_w[n] + 8 for n in names) - 8
        chart_w, chart_h = 220, 150
        width = 2 * MARGIN + grid_w + 20 + chart_w
        height = max(grid_top + rows * (cell_h + 4) + line_height(small_face) + 4 + MARGIN, grid_top + chart_h + 40)
        footer = ("rows: filters 0, 1, …" + (f" (the first {max_filters})" if more_filters else "")
                  + "; each layer keeps one colour scale for all epochs (printed under its name)")
        frames = []
        for index in picks:
            epoch, layers = epoch_maps[index]
            sheet, draw = new_sheet(width, height)
            draw_text(draw, (MARGIN, MARGIN),
                      f"Epoch {epoch} of {epochs[-1]} · {accuracy_label} {percent(accuracies[index])}", head_face)
            for r in range(rows):
                draw_text(draw, (MARGIN + row_label_w - 8, grid_top + r * (cell_h + 4) + cell_h // 2), str(r),
                          small_face, MUTED, "rm")
            x = MARGIN + row_label_w
            for name, maps in layers:
                maps = as_maps(maps, name)
                lo, hi = scales[name]
                count = min(maps.shape[2], max_filters)
                draw_text(draw, (x + col_w[name] // 2, top), name, name_face, INK, "ma")
                draw_text(draw, (x + col_w[name] // 2, top + line_height(small_face) + 2), value_range(lo, hi),
                          small_face, MUTED, "ma")
                coloured = sequential_colours(maps[:, :, :count], lo, hi)
                for r in range(count):
                    big = enlarge(coloured[:, :, r], factors[name])
                    paste_panel(sheet, big, x + (col_w[name] - big.shape[1]) // 2,
                                grid_top + r * (cell_h + 4) + (cell_h - big.shape[0]) // 2)
                x += col_w[name] + 8
            draw_text(draw, (MARGIN, grid_top + rows * (cell_h + 4)), fit_text(footer, small_face, grid_w), small_face,
                      MUTED)
            _accuracy_chart(draw, MARGIN + grid_w + 20, grid_top, chart_w, chart_h, epochs, accuracies, index,
                            accuracy_label, small_face)
            frames.append(sheet)
        shown = "" if len(picks) == len(epochs) else f" ({len(picks)} of the {len(epochs)} epochs shown)"
        alt = (f"Animation of {len(frames)} frames, epochs {epochs[0]} to {epochs[-1]}{shown}: the probe image's "
               f"feature maps in layers {', '.join(names)} as the network trains, beside the {accuracy_label}, "
               f"which goes from {percent(accuracies[0])} to {percent(accuracies[-1])}.")
        return save_gif(frames, path, alt, _durations(len(frames), fps))

    return _within_budget(render, max_bytes)


def _accuracy_chart(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, height: int, epochs: list[int],
                    accuracies: list[float], current: int, label: str, face) -> None:
    """A small line chart of accuracy (0-100 %) per epoch, drawn up to `current`."""
    draw_text(draw, (x, y), label, face, MUTED)
    top = y + line_height(face) + 4
    axis_x = x + text_width("100 %", face) + 4
    plot_w = width - (axis_x - x)
    draw.rectangle((axis_x, top, axis_x + plot_w, top + height), outline=FRAME)
    for value in (0, 50, 100):
        gy = top + height - int(round(value / 100 * height))
        draw.line((axis_x, gy, axis_x + plot_w, gy), fill=BAR_TRACK)
        draw_text(draw, (axis_x - 4, gy), f"{value} %", face, MUTED, "rm")
    span = max(epochs[-1] - epochs[0], 1)

    def point(i: int) -> tuple[int, int]:
        px = axis_x + int(round((epochs[i] - epochs[0]) / span * plot_w))
        py = top + height - int(round(np.clip(accuracies[i], 0, 1) * height))
        return px, py

    points = [point(i) for i in range(current + 1)]
    if len(points) > 1:
        draw.line(points, fill=CLEAN_COLOUR, width=2)
    px, py = points[-1]
    draw.ellipse((px - 4, py - 4, px + 4, py + 4), fill=CLEAN_COLOUR)
    draw_text(draw, (axis_x, top + height + 3), f"epoch {epochs[0]}", face, MUTED)
    draw_text(draw, (axis_x + plot_w, top + height + 3), f"{epochs[-1]}", face, MUTED, "ra")
