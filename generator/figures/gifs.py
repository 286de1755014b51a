"""Animations: the epsilon sweep, the change travelling through the layers, training epoch by epoch.

Frames are composed with NumPy and Pillow and written as looping GIFs with one adaptive palette.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import ImageDraw

from generator.figures.common import (
    ADVERSARIAL_COLOUR, ANSWER_COLOUR, BAR_TRACK, CLEAN_COLOUR, FLIP_COLOUR, FRAME, MUTED, as_maps,
    diverging_colours, enlarge, enlargement, image_colours, log_ticks, new_sheet, number, paste_panel,
    percent, save_gif, sequential_colours, shared_panels, symmetric_limit, threshold_text, topk_bars,
    topk_bars_size, value_range,
)
from generator.figures.text import INK, draw_text, fit_text, line_height, text_width, wrap_text
from generator.figures.words import ENGLISH, Words

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


def _pick_frames(count: int, max_frames: int, keep: Sequence[int] = ()) -> list[int]:
    """At most max_frames indices spread evenly over range(count), always with 0, count-1 and `keep`."""
    if count <= max_frames:
        return list(range(count))
    picks = set(np.linspace(0, count - 1, max(max_frames, 2)).round().astype(int).tolist())
    kept = {0, count - 1} | {k for k in keep if 0 <= k < count}
    for index in sorted(kept - picks):
        removable = [p for p in picks if p not in kept]
        if len(picks) >= max_frames and removable:
            picks.discard(min(removable, key=lambda p: abs(p - index)))
        picks.add(index)
    return sorted(picks)


# Ways to shrink a GIF that came out over its byte budget, mildest first: (panel scale, frame stride).
SHRINK_STEPS = ((1.0, 1), (0.75, 1), (0.75, 2), (0.55, 2), (0.55, 3), (0.4, 4))


def _within_budget(render, max_bytes: int | None, thin: bool = True) -> dict:
    """Call render(panel_scale, stride) -> record with ever smaller settings until the file fits max_bytes.

    Returns the first record that fits, or the smallest attempt's, marked with "over_budget":
    max_bytes (its size is in the record).
    """
    steps = SHRINK_STEPS if thin else tuple(dict.fromkeys((scale, 1) for scale, _ in SHRINK_STEPS))
    record = None
    for scale, stride in steps:
        record = render(scale, stride)
        if max_bytes is None or record["bytes"] <= max_bytes:
            return record
    return {**record, "over_budget": max_bytes}


def _frame_border(draw: ImageDraw.ImageDraw, width: int, height: int, colours: Sequence[tuple]) -> None:
    """A FLIP_BORDER-wide frame around the picture; two colours split it into outer and inner halves."""
    step = FLIP_BORDER // len(colours)
    for i, colour in enumerate(colours):
        draw.rectangle((i * step, i * step, width - 1 - i * step, height - 1 - i * step), outline=colour,
                       width=step if i < len(colours) - 1 else FLIP_BORDER - i * step)


def epsilon_sweep_gif(images: np.ndarray, x: np.ndarray, epsilons, probabilities, labels, path, *,
                      flip_index: int, answer_index: int, amplification: float, class_names: Sequence[str],
                      fps: float = 4, k: int = 5, max_frames: int = 60, max_bytes: int | None = 500_000,
                      epsilon_start: float | None = None, epsilon_step: float | None = None, panel: int = 168,
                      words: Words = ENGLISH) -> dict:
    """The attack as epsilon grows: image, perturbation and top-k probabilities, one frame per epsilon.

    images: (K, H, W, C) the attacked image of each frame (computed by the caller with its attack);
    x: (H, W, C) the original; epsilons: (K,) non-decreasing from 0; probabilities: (K, n_classes);
    labels: (K,) predicted class indices; class_names in the words' language. flip_index: the first
    frame whose label differs from frame 0's, or -1 ("not fooled"): red border, 'label changes here'
    and its epsilon as given. answer_index: the frame at the epsilon the article's search (from
    epsilon_start in steps of epsilon_step) answers, or -1: orange border, 'the search stops here'.
    Both frames (they may be one) are held longer and survive thinning. The perturbation is
    (image - x) * amplification + 0.5 with the caller's factor, printed.
    More than max_frames epsilons are thinned evenly (first, last, flip and answer frames kept); if
    the file would exceed max_bytes the panels shrink and then frames are thinned further.

    The record adds {"flip": {"frame", "epsilon"} or None, "answer": {"frame", "epsilon"} or None,
    "amplification"}; "frame" counts frames of the file from 0.
    """
    images, x = np.asarray(images, np.float32), np.asarray(x, np.float32)
    epsilons = np.asarray(epsilons, float)
    probabilities = np.asarray(probabilities, float)
    labels = np.asarray(labels, int)
    steps = len(epsilons)
    if not (steps == len(images) == len(probabilities) == len(labels)) or steps == 0:
        raise ValueError(f"images, epsilons, probabilities and labels must have one equal, non-zero length, got "
                         f"{len(images)}, {steps}, {len(probabilities)}, {len(labels)}")
    if images.shape[1:] != x.shape:
        raise ValueError(f"frames {images.shape[1:]} and the original {x.shape} differ in shape")
    if np.any(np.diff(epsilons) < 0):
        raise ValueError("epsilons must not decrease")
    flip_index, answer_index = int(flip_index), int(answer_index)
    for name, index in (("flip_index", flip_index), ("answer_index", answer_index)):
        if not -1 <= index < steps:
            raise ValueError(f"{name} {index} is outside the {steps} sweep steps")
    if not amplification > 0:
        raise ValueError(f"amplification must be positive, got {amplification}")
    k = min(k, probabilities.shape[1])
    by_peak = np.argsort(-probabilities.max(axis=0), kind="stable")[:k]
    classes = sorted((int(c) for c in by_peak), key=lambda c: -probabilities[0, c])
    if int(labels[0]) not in classes:
        classes = [int(labels[0])] + classes[:-1]
    original = class_names[int(labels[0])]
    head_face, text_face, small_face = words.face(14, bold=True), words.face(12), words.face(11)
    label_w, bars_w, bars_h = topk_bars_size(class_names, len(classes), text_face, 120)
    factor = number(amplification)
    perturbation_title = words.t("perturbation_times", factor=factor)
    # The flip frame sits at a bisected threshold between grid points: printed as thresholds are.
    flip_epsilon = threshold_text(epsilons[flip_index]) if flip_index >= 0 else None
    flip_text = (words.t("sweep_flip", before=original, after=class_names[int(labels[flip_index])],
                         epsilon=flip_epsilon) if flip_index >= 0 else "")
    if answer_index < 0:
        answer_text = ""
    elif epsilon_start is not None and epsilon_step is not None:
        answer_text = words.t("sweep_answer", start=f"{epsilon_start:.4f}", step=f"{epsilon_step:.4f}",
                              epsilon=f"{epsilons[answer_index]:.4f}")
    else:
        answer_text = words.t("sweep_answer_plain", epsilon=f"{epsilons[answer_index]:.4f}")

    def frame_panels(indices: tuple[int, ...], scale: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{frame: (image, perturbation)} enlarged, for the frames drawn."""
        chosen = images[list(indices)]
        perturbations = np.clip((chosen - x) * amplification + 0.5, 0.0, 1.0)
        return {i: (enlarge(image_colours(image), scale), enlarge(image_colours(moved), scale))
                for i, image, moved in zip(indices, chosen, perturbations)}

    def render(panel_scale: float, stride: int) -> dict:
        count = min(max_frames, -(-steps // stride))
        frames_idx = _pick_frames(steps, count, [i for i in (flip_index, answer_index) if i >= 0])
        h, w = x.shape[:2]
        scale = enlargement(h, w, int(panel * panel_scale))
        pw, ph = w * scale, h * scale
        cell_w = max(pw, text_width(perturbation_title, text_face), text_width(words.t("grey_no_change"), small_face))
        left = MARGIN + FLIP_BORDER
        width = 2 * left + 2 * cell_w + 2 * GAP + bars_w
        note_lines = [wrap_text(text, text_face, width - 2 * left) for text in (flip_text, answer_text)]
        notes_h = max(2, sum(len(lines) for lines in note_lines)) * (line_height(text_face) + 2)
        top = left + line_height(head_face) + 4 + notes_h + 6
        strip_top = top + line_height(text_face) + 4 + max(ph, bars_h) + 4 + line_height(small_face) + 10
        height = strip_top + _strip_height(small_face) + left
        panels = shared_panels(("sweep", images, x, float(amplification), tuple(frames_idx), scale),
                               lambda: frame_panels(tuple(frames_idx), scale))
        frames = []
        for i in frames_idx:
            eps = float(epsilons[i])
            sheet, draw = new_sheet(width, height)
            fooled = int(labels[i]) != int(labels[0])
            label = class_names[int(labels[i])]
            draw_text(draw, (left, left), f"ε = {flip_epsilon if i == flip_index else f'{eps:.4f}'}", head_face)
            status = words.t("sweep_prediction", label=label, probability=percent(probabilities[i, labels[i]]))
            draw_text(draw, (width - left, left), status, head_face, FLIP_COLOUR if fooled else INK, "ra")
            notes = []
            if i == flip_index:
                notes.append((note_lines[0], FLIP_COLOUR))
            if i == answer_index:
                notes.append((note_lines[1], ANSWER_COLOUR))
            if not notes:
                if flip_index < 0:
                    text, colour = words.t("sweep_not_fooled", label=original,
                                           epsilon=f"{epsilons[-1]:.4f}"), MUTED
                elif fooled:
                    text, colour = words.t("sweep_fooled", epsilon=flip_epsilon), FLIP_COLOUR
                else:
                    text, colour = words.t("sweep_unchanged", label=original), MUTED
                notes.append((wrap_text(text, text_face, width - 2 * left), colour))
            y = left + line_height(head_face) + 4
            for lines, colour in notes:
                for line in lines:
                    draw_text(draw, (left, y), fit_text(line, text_face, width - 2 * left), text_face, colour)
                    y += line_height(text_face) + 2
            borders = [c for c, marked in ((FLIP_COLOUR, i == flip_index), (ANSWER_COLOUR, i == answer_index))
                       if marked]
            if borders:
                _frame_border(draw, width, height, borders)
            for slot, (name, pixels) in enumerate(zip((words.t("image"), perturbation_title), panels[i])):
                cx = left + slot * (cell_w + GAP)
                draw_text(draw, (cx + cell_w // 2, top), name, text_face, INK, "ma")
                paste_panel(sheet, pixels, cx + (cell_w - pw) // 2, top + line_height(text_face) + 4)
            draw_text(draw, (left + cell_w + GAP + cell_w // 2, top + line_height(text_face) + 4 + ph + 4),
                      words.t("grey_no_change"), small_face, MUTED, "ma")
            bars_x = left + 2 * (cell_w + GAP)
            draw_text(draw, (bars_x, top), words.t("top_classes", k=len(classes)), text_face, INK)
            topk_bars(draw, bars_x, top + line_height(text_face) + 4, probabilities[i], class_names, k, label_w, 120,
                      text_face, ADVERSARIAL_COLOUR if fooled else CLEAN_COLOUR, classes=classes)
            _sweep_strip(draw, left, strip_top, width - 2 * left, epsilons, i, flip_index, answer_index,
                         small_face, words)
            frames.append(sheet)

        marks = {}
        for key, index in (("flip", flip_index), ("answer", answer_index)):
            marks[key] = ({"frame": frames_idx.index(index), "epsilon": float(epsilons[index])} if index >= 0
                          else None)
        held = [mark["frame"] for mark in marks.values() if mark]
        if marks["flip"]:
            outcome = words.t("sweep_alt_flip", before=original, after=class_names[int(labels[flip_index])],
                              epsilon=flip_epsilon, frame=marks["flip"]["frame"] + 1)
        else:
            outcome = words.t("sweep_alt_not_fooled", label=original)
        if marks["answer"]:
            outcome += words.t("sweep_alt_answer", epsilon=f"{epsilons[answer_index]:.4f}",
                               frame=marks["answer"]["frame"] + 1)
        alt = words.t("sweep_alt", count=len(frames), factor=factor, k=len(classes), lo=f"{epsilons[0]:.4f}",
                      hi=f"{epsilons[-1]:.4f}", outcome=outcome)
        record = save_gif(frames, path, alt, _durations(len(frames), fps, held))
        record.update(marks)
        record["amplification"] = float(amplification)
        return record

    return _within_budget(render, max_bytes)


def _strip_height(face) -> int:
    """Height of the epsilon strip: two label rows above the track, the track, the end labels."""
    return 2 * (line_height(face) + 2) + 18 + line_height(face)


def _sweep_strip(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, epsilons, current: int, flip_index: int,
                 answer_index: int, face, words: Words) -> None:
    """A horizontal ε axis with the current ε marked, the flip ε as a red tick and the search's
    answer as an orange one, each labelled on its own row above the track."""
    lo, hi = float(epsilons[0]), float(epsilons[-1])
    span = hi - lo if hi > lo else 1.0

    def at(eps: float) -> int:
        return x + int(round((eps - lo) / span * (width - 1)))

    def label(text: str, centre: int, row_y: int, colour) -> None:
        half = text_width(text, face) // 2
        draw_text(draw, (min(max(centre, x + half), x + width - half), row_y), text, face, colour, "ma")

    row = line_height(face) + 2
    track = y + 2 * row + 6
    draw.rectangle((x, track, x + width - 1, track + 4), fill=BAR_TRACK)
    draw.rectangle((x, track, at(float(epsilons[current])), track + 4), fill=CLEAN_COLOUR)
    for row_index, (index, colour, key) in enumerate(((flip_index, FLIP_COLOUR, "strip_flip"),
                                                      (answer_index, ANSWER_COLOUR, "strip_answer"))):
        if index >= 0:
            mark = at(float(epsilons[index]))
            draw.rectangle((mark - 1, y + row_index * row + line_height(face), mark + 1, track + 10), fill=colour)
            digits = 5 if key == "strip_flip" else 4  # the threshold lies between grid points
            label(words.t(key, epsilon=f"{epsilons[index]:.{digits}f}"), mark, y + row_index * row, colour)
    cx = at(float(epsilons[current]))
    draw.ellipse((cx - 5, track - 3, cx + 5, track + 7), fill=INK)
    draw_text(draw, (x, track + 12), f"ε {lo:.4f}", face, MUTED)
    draw_text(draw, (x + width, track + 12), f"{hi:.4f}", face, MUTED, "ra")


def propagation_gif(layers: Sequence[tuple[str, np.ndarray, np.ndarray, int, str, float]], path, *,
                    fps: float = 1.5, max_bytes: int | None = 500_000, role: str | None = None, panel: int = 150,
                    words: Words = ENGLISH) -> dict:
    """The change travelling through the network: one frame per layer, input to output.

    layers: (name, clean (h, w, c), adversarial (h, w, c), channel, unit, relative change) in
    network order: the caller chooses the channel shown per layer ('filter' or 'channel') and
    gives the layer's relative change ||f(x') - f(x)|| / ||f(x)|| (the probe's measure). role:
    'most_changed' or 'chosen' says why those channels are shown (None says nothing). Each frame
    shows the channel (original, adversarial on a shared scale, difference on one scale relative to
    each map's range, the same share in every frame, so a larger change looks stronger), the
    relative change, and a small log-scale chart of all layers' relative changes so far.
    Panels shrink if the file would exceed max_bytes.

    The record adds "layers": [{"layer", "channel", "unit", "relative_change"}].
    """
    if not layers:
        raise ValueError("propagation_gif needs at least one layer")
    if role not in (None, "chosen", "most_changed"):
        raise ValueError(f"role must be 'chosen', 'most_changed' or None, got {role!r}")
    checked = []
    for name, clean, adv, channel, unit, change in layers:
        clean, adv = as_maps(clean, name), as_maps(adv, name)
        if clean.shape != adv.shape:
            raise ValueError(f"{name}: clean {clean.shape} and adversarial {adv.shape} differ in shape")
        if not 0 <= int(channel) < clean.shape[2]:
            raise ValueError(f"{name}: channel {channel} does not exist (the layer has {clean.shape[2]} channels)")
        if unit not in ("filter", "channel"):
            raise ValueError(f"{name}: unit must be 'filter' or 'channel', got {unit!r}")
        checked.append((name, clean, adv, int(channel), unit, float(change)))
    changes = [entry[5] for entry in checked]
    names = [entry[0] for entry in checked]
    # One difference scale for the whole animation, relative to each map's own range: a frame's
    # limit is `share` x (max - min of its map), `share` the largest max|diff| / range of all
    # frames. Scaling each frame to its own max|diff| painted the first layer's small change as
    # boldly as the last layer's large one, hiding the growth the animation is there to show.
    spans, reaches = [], []
    for _, clean, adv, channel, _, _ in checked:
        cm, am = clean[:, :, channel], adv[:, :, channel]
        span = float(max(cm.max(), am.max()) - min(cm.min(), am.min()))
        spans.append(span)
        reaches.append(symmetric_limit(am - cm) / span if span > 0 else 0.0)
    share = max(reaches)
    head_face, text_face, small_face = words.face(14, bold=True), words.face(12, bold=True), words.face(11)
    difference = words.t("difference_panel")
    suffix = words.t(f"propagation_role_{role}") if role else ""

    def render(panel_scale: float, _stride: int) -> dict:
        target = int(panel * panel_scale)
        factors = [enlargement(c.shape[0], c.shape[1], target) for _, c, *_ in checked]
        slot_h = max(c.shape[0] * f for (_, c, *_), f in zip(checked, factors))
        slot_w = max(c.shape[1] * f for (_, c, *_), f in zip(checked, factors))
        cell_w = max(slot_w, text_width(difference, text_face),
                     text_width(words.t("scale_range", range=words.t("value_range", lo="−0.000", hi="−0.000")),
                                small_face))
        width = 2 * MARGIN + 3 * cell_w + 2 * GAP
        headings = [words.t("propagation_heading", index=i + 1, count=len(checked), layer=name,
                            shape="×".join(map(str, clean.shape)), which=words.unit(unit, channel), role=suffix)
                    for i, (name, clean, _, channel, unit, _) in enumerate(checked)]
        heading_lines = max(len(wrap_text(h, head_face, width - 2 * MARGIN)) for h in headings)
        top = MARGIN + (heading_lines + 1) * (line_height(head_face) + 4) + 6
        panel_top = top + line_height(text_face) + 4
        difference_notes = [words.t("scale_limit_share", limit=number(share * span), share=f"{share * 100:.2g}")
                            for span in spans]
        note_lines = max(len(wrap_text(note, small_face, cell_w)) for note in difference_notes)
        strip_top = panel_top + slot_h + 4 + note_lines * line_height(small_face) + 16
        strip_h = 80
        height = strip_top + line_height(small_face) + 6 + strip_h + 5 + line_height(small_face) + MARGIN
        frames = []
        for index, ((name, clean, adv, channel, unit, rel), factor) in enumerate(zip(checked, factors)):
            cm, am = clean[:, :, channel], adv[:, :, channel]
            diff = am - cm
            lo, hi = float(min(cm.min(), am.min())), float(max(cm.max(), am.max()))
            limit = share * spans[index]
            sheet, draw = new_sheet(width, height)
            y = MARGIN
            for line in wrap_text(headings[index], head_face, width - 2 * MARGIN):
                draw_text(draw, (MARGIN, y), line, head_face)
                y += line_height(head_face) + 4
            draw_text(draw, (MARGIN, y), words.t("propagation_change", value=number(rel)), head_face,
                      ADVERSARIAL_COLOUR)
            panels = [(words.t("original"), sequential_colours(cm, lo, hi),
                       words.t("scale_range", range=value_range(lo, hi, words))),
                      (words.t("adversarial"), sequential_colours(am, lo, hi), words.t("same_scale")),
                      (difference, diverging_colours(diff, limit), difference_notes[index])]
            for slot, (title, pixels, note) in enumerate(panels):
                cx = MARGIN + slot * (cell_w + GAP)
                big = enlarge(pixels, factor)
                draw_text(draw, (cx + cell_w // 2, top), title, text_face, INK, "ma")
                paste_panel(sheet, big, cx + (cell_w - big.shape[1]) // 2, panel_top + (slot_h - big.shape[0]) // 2)
                for row, line in enumerate(wrap_text(note, small_face, cell_w)):
                    draw_text(draw, (cx + cell_w // 2, panel_top + slot_h + 4 + row * line_height(small_face)),
                              line, small_face, MUTED, "ma")
            _change_strip(draw, MARGIN, strip_top, width - 2 * MARGIN, strip_h, names, changes, index, small_face,
                          words)
            frames.append(sheet)
        alt = words.t("propagation_alt", count=len(frames), first=names[0], last=names[-1],
                      shown=words.join(f"{name} {words.unit(unit, channel)}"
                                       for name, _, _, channel, unit, _ in checked),
                      changes=words.join(f"{n} {number(r)}" for n, r in zip(names, changes)))
        record = save_gif(frames, path, alt, _durations(len(frames), fps))
        record["layers"] = [{"layer": name, "channel": channel, "unit": unit, "relative_change": rel}
                            for name, _, _, channel, unit, rel in checked]
        return record

    return _within_budget(render, max_bytes, thin=False)


def _change_strip(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, height: int, names: list[str],
                  changes: list[float], current: int, face, words: Words) -> None:
    """A small log-scale line chart of relative change per layer, drawn up to layer `current`."""
    draw_text(draw, (x, y), words.t("change_strip_title"), face, MUTED)
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
                 path, fps: float = 2, *, max_filters: int = 10, panel: int = 48, accuracy_label: str | None = None,
                 max_frames: int = 60, max_bytes: int | None = 500_000, words: Words = ENGLISH) -> dict:
    """The probe image's feature maps epoch by epoch, with the accuracy so far.

    epoch_maps: [(epoch, [(layer name, activations (h, w, c))])], one entry per frame, layers
    in network order (entries are put in epoch order); accuracies: one value in [0, 1] per
    entry, in the same order as epoch_maps; accuracy_label: what they are (default: validation
    accuracy, in the words' language). Each layer keeps one colour scale over all epochs (so
    a colour change is a real change); at most max_filters maps (the first ones) are shown
    per layer. More than max_frames epochs, or a file over max_bytes, make the panels shrink and
    the epochs thin out evenly (first and last kept); the accuracy chart always has every epoch.
    """
    if not epoch_maps or len(epoch_maps) != len(accuracies):
        raise ValueError(f"need one accuracy per epoch: {len(epoch_maps)} epochs, {len(accuracies)} accuracies")
    accuracy_label = accuracy_label or words.t("validation_accuracy")
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
    head_face, name_face, small_face = words.face(14, bold=True), words.face(11, bold=True), words.face(10)
    first = dict(epoch_maps[0][1])
    shapes = {n: as_maps(first[n], n).shape for n in names}
    rows = max(min(shapes[n][2], max_filters) for n in names)
    more_filters = any(shapes[n][2] > max_filters for n in names)

    def render(panel_scale: float, stride: int) -> dict:
        picks = _pick_frames(len(epoch_maps), min(max_frames, -(-len(epoch_maps) // stride)))
        # one target for every layer, at least the largest map's side, so the columns look alike in size
        target = int(max(panel, max(max(shapes[n][:2]) for n in names)) * panel_scale)
        factors = {n: enlargement(shapes[n][0], shapes[n][1], target) for n in names}
        col_w = {n: max(shapes[n][1] * factors[n], text_width(n, name_face),
                        text_width(value_range(*scales[n], words), small_face)) for n in names}
        cell_h = max(shapes[n][0] * factors[n] for n in names)
        top = MARGIN + line_height(head_face) + 8
        grid_top = top + 2 * (line_height(small_face) + 2) + 4
        row_label_w = text_width(str(rows - 1), small_face) + 8
        grid_w = row_label_w + sum(col_w[n] + 8 for n in names) - 8
        chart_w, chart_h = 220, 150
        width = 2 * MARGIN + grid_w + 20 + chart_w
        footer = wrap_text(words.t("training_footer", count=max_filters) if more_filters
                           else words.t("training_footer_all"), small_face, grid_w)
        footer_h = len(footer) * (line_height(small_face) + 2)
        height = max(grid_top + rows * (cell_h + 4) + footer_h + 4 + MARGIN, grid_top + chart_h + 40)
        frames = []
        for index in picks:
            epoch, layers = epoch_maps[index]
            sheet, draw = new_sheet(width, height)
            draw_text(draw, (MARGIN, MARGIN), words.t("training_heading", epoch=epoch, last=epochs[-1],
                                                      label=accuracy_label, value=percent(accuracies[index])),
                      head_face)
            for r in range(rows):
                draw_text(draw, (MARGIN + row_label_w - 8, grid_top + r * (cell_h + 4) + cell_h // 2), str(r),
                          small_face, MUTED, "rm")
            x = MARGIN + row_label_w
            for name, maps in layers:
                maps = as_maps(maps, name)
                lo, hi = scales[name]
                count = min(maps.shape[2], max_filters)
                draw_text(draw, (x + col_w[name] // 2, top), name, name_face, INK, "ma")
                draw_text(draw, (x + col_w[name] // 2, top + line_height(small_face) + 2), value_range(lo, hi, words),
                          small_face, MUTED, "ma")
                coloured = sequential_colours(maps[:, :, :count], lo, hi)
                for r in range(count):
                    big = enlarge(coloured[:, :, r], factors[name])
                    paste_panel(sheet, big, x + (col_w[name] - big.shape[1]) // 2,
                                grid_top + r * (cell_h + 4) + (cell_h - big.shape[0]) // 2)
                x += col_w[name] + 8
            for i, line in enumerate(footer):
                draw_text(draw, (MARGIN, grid_top + rows * (cell_h + 4) + i * (line_height(small_face) + 2)), line,
                          small_face, MUTED)
            _accuracy_chart(draw, MARGIN + grid_w + 20, grid_top, chart_w, chart_h, epochs, accuracies, index,
                            accuracy_label, small_face, words)
            frames.append(sheet)
        shown = ("" if len(picks) == len(epochs)
                 else words.t("training_alt_thinned", shown=len(picks), total=len(epochs)))
        alt = words.t("training_alt", count=len(frames), first=epochs[0], last=epochs[-1], thinned=shown,
                      layers=words.join(names), label=accuracy_label, start=percent(accuracies[0]),
                      end=percent(accuracies[-1]))
        return save_gif(frames, path, alt, _durations(len(frames), fps))

    return _within_budget(render, max_bytes)


def _accuracy_chart(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, height: int, epochs: list[int],
                    accuracies: list[float], current: int, label: str, face, words: Words) -> None:
    """A small line chart of accuracy (0-100 %) per epoch, drawn up to `current`."""
    draw_text(draw, (x, y), fit_text(label, face, width), face, MUTED)
    top = y + line_height(face) + 4
    axis_x = x + text_width("100%", face) + 4
    plot_w = width - (axis_x - x)
    draw.rectangle((axis_x, top, axis_x + plot_w, top + height), outline=FRAME)
    for value in (0, 50, 100):
        gy = top + height - int(round(value / 100 * height))
        draw.line((axis_x, gy, axis_x + plot_w, gy), fill=BAR_TRACK)
        draw_text(draw, (axis_x - 4, gy), f"{value}%", face, MUTED, "rm")
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
    draw_text(draw, (axis_x, top + height + 3), words.t("epoch_number", epoch=epochs[0]), face, MUTED)
    draw_text(draw, (axis_x + plot_w, top + height + 3), f"{epochs[-1]}", face, MUTED, "ra")
