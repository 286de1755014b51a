"""Charts: probability bars (Pillow), and with matplotlib (Agg, imported lazily) the butterfly
measurement, the attack/noise ratios of an experiment, the epsilon strip, robustness and
training curves."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from generator.figures.common import (
    ADVERSARIAL_COLOUR, BAR_TRACK, CLEAN_COLOUR, FRAME, MUTED, figure_record, log_ticks, new_sheet, number,
    percent, save_png,
)
from generator.figures.text import INK, draw_text, fit_text, line_height, text_width, wrap_text
from generator.figures.words import ENGLISH, Words

CLEAN = "#1f77b4"
ADVERSARIAL = "#d62728"
NOISE = "#7f7f7f"
RATIO = "#6a3d9a"
BAR_HEX = "#e8e8e8"  # the rows of the epsilon strip
FORMULA = "formula"  # the gid of texts written symbols-first (see _use_font)
DPI = 100
DOT_BAND = 0.36  # the epsilon strip's dots stay within this distance of their row's line (rows are 1 apart)
DOT_SPACING_PX = 7  # least distance between stacked dots of the epsilon strip


def _figure(width_in: float, height_in: float, rows: int = 1, cols: int = 1,
            margins: tuple[float, float, float, float] = (0.11, 0.14, 0.97, 0.9), wspace: float = 0.3,
            hspace: float = 0.2, width_ratios=None, height_ratios=None):
    """A matplotlib Figure on the Agg canvas (no pyplot: no global state, no GUI) and its axes.

    margins: (left, bottom, right, top) as fractions of the figure. Fixed margins instead of a
    layout engine: the engine measures every label and costs more than the drawing itself.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    left, bottom, right, top = margins
    figure.subplots_adjust(left=left, bottom=bottom, right=right, top=top, wspace=wspace, hspace=hspace)
    axes = figure.subplots(rows, cols, squeeze=False,
                           gridspec_kw={"width_ratios": width_ratios, "height_ratios": height_ratios})
    return figure, axes


def _log_axis(ax, values, words: Words, axis: str = "y") -> None:
    """A log axis with plain-number ticks at 1, 2, 5 x 10^k spanning the finite positive `values`."""
    from matplotlib.ticker import NullLocator

    set_scale, set_lim, set_ticks = ((ax.set_yscale, ax.set_ylim, ax.set_yticks) if axis == "y"
                                     else (ax.set_xscale, ax.set_xlim, ax.set_xticks))
    target = ax.yaxis if axis == "y" else ax.xaxis
    set_scale("log")
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size == 0:  # nothing changed anywhere: an empty log axis that says so
        set_lim(0.008, 1.2)
        set_ticks([0.01, 0.1, 1], ["0.01", "0.1", "1"])
        target.set_minor_locator(NullLocator())
        ax.text(0.5, 0.5, words.t("no_change_anywhere"), transform=ax.transAxes, ha="center", color="#555555")
        return
    # The axis runs from the tick just below the smallest value to the tick just above the largest.
    ticks = log_ticks(float(finite.min()), float(finite.max()))
    set_lim(ticks[0] / 1.12, ticks[-1] * 1.12)
    set_ticks(ticks, [number(t) for t in ticks])
    target.set_minor_locator(NullLocator())


def _use_font(figure, words: Words) -> None:
    """Write every text of `figure` in the words' fonts (matplotlib's default is DejaVu Sans)."""
    families = words.families()
    if families == ["DejaVu Sans"]:
        return
    from matplotlib.text import Text

    for ax in figure.axes:  # ticks made later, at drawing time, copy these settings
        ax.tick_params(which="both", labelfontfamily=families)
    for text in figure.findobj(Text):
        text.set_fontfamily(words.families(symbols_first=True) if text.get_gid() == FORMULA else families)


def _save(figure, path, alt: str, words: Words) -> dict:
    """Save as PNG at DPI with the alt text in the Description chunk; return the figure record."""
    _use_font(figure, words)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png", metadata={"Description": alt}, pil_kwargs={"compress_level": 6})
    width, height = figure.canvas.get_width_height()
    return figure_record(path, alt, width, height, None)


def probability_bars(p_clean, p_adv, class_names: Sequence[str], path, k: int = 5, *, words: Words = ENGLISH,
                     title: str | None = None) -> dict:
    """Grouped horizontal bars: the k classes most probable in either prediction, original vs adversarial.

    p_clean, p_adv: (n_classes,) probabilities; class_names in the words' language. Classes are
    ordered by their larger probability. Drawn with Pillow (a chart this simple does not need
    matplotlib's layout machinery).
    """
    p_clean, p_adv = np.asarray(p_clean, float), np.asarray(p_adv, float)
    title = title or words.t("bars_title")
    k = min(k, p_clean.size)
    classes = [int(i) for i in np.argsort(-np.maximum(p_clean, p_adv), kind="stable")[:k]]
    title_face, face, small_face = words.face(14, bold=True), words.face(12), words.face(11)
    margin, bar_h, pair_gap, row_gap = 14, 14, 2, 12
    label_w = min(max(text_width(class_names[c], face) for c in classes), 220) + 10
    plot_w = 360
    value_w = text_width("99.999%", small_face) + 8
    width = margin + label_w + plot_w + value_w + margin
    legend_y = margin + line_height(title_face) + 6
    top = legend_y + line_height(face) + 12
    row_h = max(2 * bar_h + pair_gap, line_height(face)) + row_gap
    axis_y = top + k * row_h - row_gap + 6
    height = axis_y + 4 + line_height(small_face) + 4 + line_height(small_face) + margin
    sheet, draw = new_sheet(width, height)
    draw_text(draw, (margin, margin), fit_text(title, title_face, width - 2 * margin), title_face)
    x = margin + label_w
    for name, colour in ((words.t("original"), CLEAN_COLOUR), (words.t("adversarial"), ADVERSARIAL_COLOUR)):
        swatch_y = legend_y + line_height(face) // 2
        draw.rectangle((x, swatch_y - 6, x + 11, swatch_y + 5), fill=colour)
        draw_text(draw, (x + 16, swatch_y), name, face, INK, "lm")
        x += 16 + text_width(name, face) + 18
    x0 = margin + label_w
    for tick in (0, 25, 50, 75, 100):
        tx = x0 + int(round(tick / 100 * plot_w))
        draw.line((tx, top - 4, tx, axis_y), fill=BAR_TRACK if tick else FRAME)
        draw_text(draw, (tx, axis_y + 4), f"{tick}", small_face, MUTED, "ma")
    draw_text(draw, (x0 + plot_w // 2, axis_y + 4 + line_height(small_face) + 4), words.t("probability_percent"),
              small_face, MUTED, "ma")
    for row, cls in enumerate(classes):
        y = top + row * row_h
        draw_text(draw, (x0 - 8, y + bar_h + pair_gap // 2), fit_text(class_names[cls], face, label_w - 10), face,
                  INK, "rm")
        pair = ((p_clean[cls], CLEAN_COLOUR), (p_adv[cls], ADVERSARIAL_COLOUR))
        for offset, (probability, colour) in enumerate(pair):
            by = y + offset * (bar_h + pair_gap)
            length = int(round(float(np.clip(probability, 0, 1)) * plot_w))
            if length > 0:
                draw.rectangle((x0, by, x0 + length - 1, by + bar_h - 1), fill=colour)
            draw_text(draw, (x0 + length + 4, by + bar_h // 2), percent(probability), small_face, INK, "lm")
    top_clean, top_adv = int(np.argmax(p_clean)), int(np.argmax(p_adv))
    alt = words.t("bars_alt", k=k, clean=f"{class_names[top_clean]} {percent(p_clean[top_clean])}",
                  adv=f"{class_names[top_adv]} {percent(p_adv[top_adv])}",
                  rows=words.join(f"{class_names[c]} {percent(p_clean[c])} → {percent(p_adv[c])}" for c in classes))
    return save_png(sheet, path, alt)


def _positive(values) -> np.ndarray:
    """Values for a log axis: non-positive and non-finite entries become NaN (not drawn)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _ratio(attack, noise) -> np.ndarray:
    """attack / noise where both are finite and positive, NaN elsewhere."""
    attack, noise = _positive(attack), _positive(noise)
    with np.errstate(invalid="ignore", divide="ignore"):
        return attack / noise


def _layer_axis(ax, layer_names: Sequence[str], labels: bool = True) -> None:
    if labels:
        ax.set_xticks(np.arange(len(layer_names)), layer_names, rotation=45, ha="right", rotation_mode="anchor")
    else:  # no tick objects at all: they are the costliest part of drawing the chart
        ax.set_xticks([])
    ax.set_xlim(-0.4, len(layer_names) - 0.6)
    ax.grid(True, which="major", axis="y", alpha=0.35)
    ax.spines[["top", "right"]].set_visible(False)


def _reference_line(ax, words: Words, label: bool = True) -> None:
    """The line at ratio 1: the attack changes a layer as much as random noise of its size."""
    ax.axhline(1.0, color="#333333", linewidth=1, linestyle=":", zorder=1,
               label=words.t("ratio_reference") if label else None)


def butterfly_plot(layer_names: Sequence[str], attack, noise, path, title: str, *,
                   output: tuple[str, float, float] | None = None, words: Words = ENGLISH) -> dict:
    """The like-for-like measurement of one image: how much each feature-map layer changes under
    the attack and under random sign noise of the same size, and the ratio of the two.

    attack[i], noise[i]: relative changes ||f(x') - f(x)|| / ||f(x)|| of layer_names[i] (the input
    first) under the attack and under the noise. Top: both on a log axis; below: attack / noise
    with a line at 1 (as much as noise). output: (name, attack, noise) of the softmax output,
    drawn apart on its own small axes at the right (own scale, its ratio written under it), never
    on the feature maps' lines.

    The record adds {"layers": layer_names, "output": output name or None}.
    """
    layer_names = list(layer_names)
    if not (len(layer_names) == len(attack) == len(noise)) or not layer_names:
        raise ValueError(f"one attack and one noise value per layer: {len(layer_names)} layers, "
                         f"{len(attack)} attack, {len(noise)} noise values")
    attack, noise = _positive(attack), _positive(noise)
    ratio = _ratio(attack, noise)
    figure, axes = _figure(7.4 if output else 6.6, 5.4, 2, 1, margins=(0.12, 0.17, 0.8 if output else 0.97, 0.9),
                           hspace=0.12, height_ratios=[1.5, 1])
    changes, ratios = axes[0, 0], axes[1, 0]
    x = np.arange(len(layer_names))
    changes.plot(x, attack, "o-", color=ADVERSARIAL, label=words.t("attack_label"))
    changes.plot(x, noise, "s--", color=NOISE, label=words.t("noise_label"))
    _layer_axis(changes, layer_names, labels=False)
    _log_axis(changes, np.concatenate([attack, noise]), words)
    changes.set_ylabel(words.t("relative_change_axis"))
    changes.set_title(words.t("feature_maps_panel"), fontsize=10, loc="left")
    changes.set_title(words.t("relative_change_formula"), fontsize=9, loc="right", color="#444444", gid=FORMULA)
    changes.legend(frameon=False, fontsize=9)
    ratios.plot(x, ratio, "D-", color=RATIO, markersize=5, label=words.t("ratio_label"))
    _reference_line(ratios, words)
    _layer_axis(ratios, layer_names)
    _log_axis(ratios, np.concatenate([ratio, [1.0]]), words)
    ratios.set_ylabel(words.t("ratio_axis"))
    ratios.legend(frameon=False, fontsize=8, loc="upper left")
    output_alt = ""
    if output:
        # The output layer on its own tinted axes beside the feature maps' top panel, with its
        # own log scale; its ratio is written under it.
        name, out_attack, out_noise = output[0], *_positive([output[1], output[2]])
        out_ratio = _ratio([out_attack], [out_noise])[0]
        beside = changes.get_position()
        panel = figure.add_axes((0.875, beside.y0, 0.085, beside.height))
        panel.plot([0], [out_attack], "o", color=ADVERSARIAL, markersize=8)
        panel.plot([0], [out_noise], "s", color=NOISE, markersize=8)
        _log_axis(panel, [out_attack, out_noise], words)
        panel.set_xticks([])
        panel.set_xlim(-1, 1)
        panel.set_title(words.t("output_panel"), fontsize=10)
        panel.set_xlabel(words.t("output_ratio", name=name, ratio=number(out_ratio)), fontsize=8.5, color=RATIO)
        panel.grid(True, which="major", axis="y", alpha=0.35)
        panel.spines[["top", "right"]].set_visible(False)
        panel.set_facecolor("#f6f6f6")
        output_alt = words.t("butterfly_alt_output", name=name, attack=number(out_attack), noise=number(out_noise),
                             ratio=number(out_ratio))
    figure.suptitle(title, fontsize=11)
    alt = words.t("butterfly_alt", title=title, first=layer_names[0], last=layer_names[-1],
                  attack=_ends(attack, words), noise=_ends(noise, words), ratio=_ends(ratio, words),
                  layers=words.join(layer_names)) + output_alt
    record = _save(figure, path, alt, words)
    record.update({"layers": layer_names, "output": output[0] if output else None})
    return record


def ratio_curves(curves: Mapping[str, tuple[Sequence[str], Sequence[float]]], path, title: str, *,
                 words: Words = ENGLISH) -> dict:
    """The attack / noise ratio per feature-map layer for every image of one experiment.

    curves: {image title: (layer names, ratio per layer)}. One thin line per image, a bold line
    for the median over the images that have the layer, log axis, a line at 1 (as much as noise).
    The x axis uses the longest list of layer names. The record adds {"layers", "images"}.
    """
    if not curves:
        raise ValueError("ratio_curves needs at least one curve")
    names = list(max((list(names) for names, _ in curves.values()), key=len))
    table = np.full((len(curves), len(names)), np.nan)
    for row, (layer_names, ratios) in enumerate(curves.values()):
        for name, value in zip(layer_names, _positive(ratios)):
            if name in names:
                table[row, names.index(name)] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a layer no image has: an all-NaN column
        median = np.nanmedian(table, axis=0)
    labelled = len(curves) <= 10
    figure, axes = _figure(7.6 if labelled else 6.4, 4.0,
                           margins=(0.12, 0.24, 0.74 if labelled else 0.97, 0.9))
    ax = axes[0, 0]
    x = np.arange(len(names))
    colours = _palette(len(curves)) if labelled else ["#9a9a9a"] * len(curves)
    summary = []
    for row, (image_title, colour) in enumerate(zip(curves, colours)):
        # legend entries sit in the 26 % of the figure right of the axes: long titles are shortened
        ax.plot(x, table[row], "-", color=colour, linewidth=1, alpha=0.75,
                label=fit_text(image_title, words.face(11), 150) if labelled
                else (words.t("ratio_each_image") if row == 0 else None))
        summary.append(words.t("ratio_alt_image", image=image_title, ends=_ends(table[row], words)))
    ax.plot(x, median, "o-", color="#111111", linewidth=2.8, markersize=5,
            label=words.t("ratio_median", count=len(curves)))
    _reference_line(ax, words)
    _layer_axis(ax, names)
    _log_axis(ax, np.concatenate([table.ravel(), [1.0]]), words)
    ax.set_ylabel(words.t("ratio_axis"))
    ax.set_title(title, fontsize=11)
    if labelled:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(frameon=False, fontsize=9)
    alt = words.t("ratio_alt", title=title, count=len(curves), median=_ends(median, words),
                  images=words.t("clause_separator").join(summary))
    record = _save(figure, path, alt, words)
    record.update({"layers": names, "images": list(curves)})
    return record


def epsilon_strip(groups: Mapping[str, Sequence[tuple[str, float | None]]], path, *, epsilon_max: float,
                  title: str | None = None, words: Words = ENGLISH) -> dict:
    """How large epsilon must be, for each experiment: one row per group, one dot per image at
    the epsilon the search found; images not fooled up to `epsilon_max` (epsilon None) are drawn
    apart at the right. The record adds {"groups": {title: [{"image", "epsilon"}]}, "epsilon_max"}.
    """
    if not groups:
        raise ValueError("epsilon_strip needs at least one group")
    titles = list(groups)
    found = [e for entries in groups.values() for _, e in entries if e is not None and e > 0]
    # Row labels: long titles wrap onto two lines, after the title's colon when it has one (so
    # "Tiny VGG" is not split); the left margin is measured with the words' font at matplotlib's
    # size (10 pt at DPI 100 is about 14 px).
    label_face = words.face(14)
    labels = ["\n".join(_row_label_lines(group, label_face, 220)) for group in titles]
    label_w = max(text_width(line, label_face) for label in labels for line in label.split("\n"))
    # Dots at one epsilon stack in slots above and below their row's line. The stack stays inside
    # the row's band (DOT_BAND on either side), the slots at least DOT_SPACING_PX apart, so the
    # figure grows with its tallest stack rather than letting dots spill out of the axes.
    slots = {group: stack_slots(np.log10(sorted(e for _, e in entries if e is not None and e > 0)))
             for group, entries in groups.items()}
    tallest = max([float(np.abs(s).max()) for s in slots.values() if s.size] + [1.0])
    spread = min(0.12, DOT_BAND / tallest)
    axes_h_px = DOT_SPACING_PX / spread * (len(titles) + 0.4)  # the y axis spans rows + 0.4
    width_in, height_in = 7.6, max(1.6 + 0.6 * len(titles), 1.12 + axes_h_px / DPI)
    figure, axes = _figure(width_in, height_in, 1, 2,
                           margins=((label_w + 18) / (width_in * DPI), 0.62 / height_in, 0.97, 1 - 0.5 / height_in),
                           wspace=0.06, width_ratios=[5, 1])
    ax, apart = axes[0, 0], axes[0, 1]
    lo = min(found) if found else epsilon_max / 10
    _log_axis(ax, [lo, epsilon_max], words, axis="x")
    alt_groups = []
    for row, group in enumerate(titles):
        y = len(titles) - 1 - row
        entries = list(groups[group])
        fooled = sorted(e for _, e in entries if e is not None and e > 0)
        missed = [name for name, e in entries if e is None or not e > 0]
        ax.axhline(y, color=BAR_HEX, linewidth=0.8, zorder=0)
        if fooled:
            ax.scatter(fooled, y + spread * slots[group], s=36, color=ADVERSARIAL, edgecolor="white",
                       linewidth=0.6, zorder=3)
            middle = float(np.median(fooled))
            ax.plot([middle, middle], [y - DOT_BAND - 0.04, y + DOT_BAND + 0.04], color="#111111", linewidth=2,
                    zorder=2)
            # Beside the median's line, not centred on it: a median at the axis' left end (the
            # search's first ε) would put half the label over the axis.
            ax.annotate(words.t("median_short", value=number(middle)), (middle, y + DOT_BAND + 0.06),
                        xytext=(3, 0), textcoords="offset points", ha="left", va="bottom", fontsize=8,
                        color="#111111")
        apart.axhline(y, color=BAR_HEX, linewidth=0.8, zorder=0)
        if missed:  # up to five hollow dots side by side, and how many there are
            drawn = min(len(missed), 5)
            apart.scatter((np.arange(drawn) - (drawn - 1) / 2) * 0.2, np.full(drawn, float(y)), s=36,
                          facecolor="white", edgecolor=NOISE, linewidth=1.2, zorder=3)
            apart.annotate(f"{len(missed)}", (0.62, y), ha="center", va="center", fontsize=9, color="#333333")
        alt_groups.append(words.t("strip_alt_group", group=group, count=len(entries), fooled=len(fooled),
                                  range=(words.t("strip_alt_range", lo=number(fooled[0]), hi=number(fooled[-1]),
                                                 median=number(float(np.median(fooled)))) if fooled else ""),
                                  missed=len(missed)))
    ax.set_yticks(range(len(titles)), labels[::-1])
    ax.set_ylim(-0.7, len(titles) - 0.3)
    ax.set_xlabel(words.t("epsilon_axis"))
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, which="major", axis="x", alpha=0.35)
    apart.set_ylim(-0.7, len(titles) - 0.3)
    apart.set_xlim(-0.6, 0.8)
    apart.set_yticks([])
    apart.set_xticks([])
    apart.set_facecolor("#f6f6f6")
    apart.set_title(words.t("not_fooled_panel", epsilon=number(epsilon_max)), fontsize=8)
    for side in ("top", "right", "left"):
        apart.spines[side].set_visible(False)
    title = title or words.t("strip_title")
    ax.set_title(title, fontsize=11, loc="left")
    alt = words.t("strip_alt", title=title, epsilon=number(epsilon_max),
                  groups=words.t("clause_separator").join(alt_groups))
    record = _save(figure, path, alt, words)
    record.update({"groups": {group: [{"image": name, "epsilon": None if e is None else float(e)}
                                      for name, e in groups[group]] for group in titles},
                   "epsilon_max": float(epsilon_max)})
    return record



def _row_label_lines(title: str, face, width: int) -> list[str]:
    """`title` wrapped to `width` pixels at spaces; a title too wide for one line breaks after its
    first colon ('：' or ': ') when both parts then fit."""
    lines = wrap_text(title, face, width, break_cjk=False)
    if len(lines) > 1:
        for colon in ("：", ": "):
            head, found, tail = title.partition(colon)
            if found and tail and max(text_width(head + colon.strip(), face), text_width(tail, face)) <= width:
                return [head + colon.strip(), tail]
    return lines


def stack_slots(positions, near: float = 0.03) -> np.ndarray:
    """Slots that keep dots at (nearly) the same position apart: 0 on the line, then +1, -1, +2,
    -2, ... for the following neighbours of a run (positions sorted; neighbours closer than `near`)."""
    positions = np.asarray(positions, float)
    slots = np.zeros(positions.size)
    run = 0
    for i in range(1, positions.size):
        run = run + 1 if abs(positions[i] - positions[i - 1]) < near else 0
        slots[i] = ((run + 1) // 2) * (1 if run % 2 else -1)
    return slots


def robustness_plot(epsilons, attack_accuracy, noise_accuracy, path, *, samples: int, test_size: int,
                    method: str = "FGSM", words: Words = ENGLISH) -> dict:
    """Test accuracy against perturbation size: the attack vs random sign noise of the same size,
    measured on `samples` of the `test_size` test images (the title says which)."""
    epsilons = np.asarray(epsilons, float)
    attack_accuracy, noise_accuracy = np.asarray(attack_accuracy, float), np.asarray(noise_accuracy, float)
    figure, axes = _figure(6.4, 3.8, margins=(0.12, 0.14, 0.98, 0.86))
    ax = axes[0, 0]
    ax.plot(epsilons, attack_accuracy * 100, "o-", color=ADVERSARIAL, label=words.t("attack_method", method=method))
    ax.plot(epsilons, noise_accuracy * 100, "s--", color=NOISE, label=words.t("noise_short"))
    ax.set_xlabel(words.t("epsilon_axis"))
    ax.set_ylabel(words.t("test_accuracy_axis"))
    ax.set_ylim(0, 102)
    ax.grid(True, alpha=0.35)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False)
    subset = (words.t("subset_some", samples=f"{samples:,}", total=f"{test_size:,}") if samples < test_size
              else words.t("subset_all", total=f"{test_size:,}"))
    title = words.t("robustness_title")
    figure.suptitle(title, fontsize=11, y=0.97)
    ax.set_title(subset, fontsize=9, color="#555555")
    alt = words.t("robustness_alt", subset=subset, lo=number(epsilons[0]), hi=number(epsilons[-1]), method=method,
                  attack_from=percent(attack_accuracy[0]), attack_to=percent(attack_accuracy[-1]),
                  noise_from=percent(noise_accuracy[0]), noise_to=percent(noise_accuracy[-1]))
    record = _save(figure, path, alt, words)
    record.update({"samples": int(samples), "test_size": int(test_size)})
    return record


def training_curves(history: Mapping[str, Sequence[float]], path, *, words: Words = ENGLISH) -> dict:
    """Loss and accuracy per epoch, training and validation, side by side.

    history: lists keyed loss, accuracy, val_loss, val_accuracy (the validation keys may be missing).
    """
    figure, axes = _figure(7.6, 3.2, 1, 2, margins=(0.08, 0.15, 0.98, 0.95), wspace=0.28)
    parts = []
    for ax, key in ((axes[0, 0], "loss"), (axes[0, 1], "accuracy")):
        scale = 100 if key == "accuracy" else 1
        for prefix, colour, style, part in (("", CLEAN, "o-", "training"), ("val_", ADVERSARIAL, "s--", "validation")):
            values = history.get(prefix + key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, np.asarray(values, float) * scale, style, color=colour, markersize=4,
                        label=words.t(part))
                parts.append(words.t(f"curve_alt_{part}_{key}", first=number(values[0] * scale),
                                     last=number(values[-1] * scale)))
        ax.set_xlabel(words.t("epoch"))
        ax.set_ylabel(words.t(f"{key}_axis"))
        ax.grid(True, alpha=0.35)
        ax.spines[["top", "right"]].set_visible(False)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(frameon=False, fontsize=9)
    epochs = len(history.get("loss", []))
    alt = words.t("curves_alt", count=epochs, parts=words.t("clause_separator").join(parts))
    return _save(figure, path, alt, words)


def _ends(values: np.ndarray, words: Words) -> str:
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return words.t("no_change")
    return words.t("ends", first=number(finite[0]), last=number(finite[-1]), largest=number(finite.max()))


def _palette(count: int) -> list:
    from matplotlib import colormaps

    name = "tab10" if count <= 10 else "tab20"
    table = colormaps[name]
    return [table(i % table.N) for i in range(count)]
