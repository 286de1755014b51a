"""Charts: probability bars (Pillow), and with matplotlib (Agg, imported lazily) the butterfly
curves, robustness and training curves."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .common import (
    ADVERSARIAL_COLOUR, BAR_TRACK, CLEAN_COLOUR, FRAME, INK, MUTED, draw_text, figure_record, fit_text, font,
    line_height, log_ticks, new_sheet, number, percent, save_png, text_width,
)

CLEAN = "#1f77b4"
ADVERSARIAL = "#d62728"
NOISE = "#7f7f7f"
DPI = 100


def _figure(width_in: float, height_in: float, rows: int = 1, cols: int = 1,
            margins: tuple[float, float, float, float] = (0.11, 0.14, 0.97, 0.9), wspace: float = 0.3):
    """A matplotlib Figure on the Agg canvas (no pyplot: no global state, no GUI) and its axes.

    margins: (left, bottom, right, top) as fractions of the figure. Fixed margins instead of a
    layout engine: the engine measures every label and costs more than the drawing itself.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    left, bottom, right, top = margins
    figure.subplots_adjust(left=left, bottom=bottom, right=right, top=top, wspace=wspace)
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def _log_axis(ax, values) -> None:
    """A log y axis with plain-number ticks at 1, 2, 5 x 10^k spanning the finite positive `values`."""
    from matplotlib.ticker import NullLocator

    ax.set_yscale("log")
    finite = np.asarray(values, float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size == 0:  # nothing changed anywhere: an empty log axis that says so
        ax.set_ylim(0.008, 1.2)
        ax.set_yticks([0.01, 0.1, 1], ["0.01", "0.1", "1"])
        ax.yaxis.set_minor_locator(NullLocator())
        ax.text(0.5, 0.5, "no change in any layer", transform=ax.transAxes, ha="center", color="#555555")
        return
    # The axis runs from the tick just below the smallest value to the tick just above the largest.
    ticks = log_ticks(float(finite.min()), float(finite.max()))
    bottom, top = ticks[0], ticks[-1]
    ax.set_ylim(bottom / 1.12, top * 1.12)
    ax.set_yticks(ticks, [number(t) for t in ticks])
    ax.yaxis.set_minor_locator(NullLocator())


def _save(figure, path, alt: str) -> dict:
    """Save as PNG at DPI with the alt text in the Description chunk; return the figure record."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png", metadata={"Description": alt}, pil_kwargs={"compress_level": 4})
    width, height = figure.canvas.get_width_height()
    return figure_record(path, alt, width, height, None)


def probability_bars(p_clean, p_adv, class_names: Sequence[str], path, k: int = 5, *,
                     title: str = "Prediction before and after the attack") -> dict:
    """Grouped horizontal bars: the k classes most probable in either prediction, clean vs adversarial.

    p_clean, p_adv: (n_classes,) probabilities. Classes are ordered by their larger probability.
    Drawn with Pillow (a chart this simple does not need matplotlib's layout machinery).
    """
    p_clean, p_adv = np.asarray(p_clean, float), np.asarray(p_adv, float)
    k = min(k, p_clean.size)
    classes = [int(i) for i in np.argsort(-np.maximum(p_clean, p_adv), kind="stable")[:k]]
    title_face, face, small_face = font(14, bold=True), font(12), font(11)
    margin, bar_h, pair_gap, row_gap = 14, 14, 2, 12
    label_w = max(text_width(class_names[c], face) for c in classes) + 10
    plot_w = 360
    value_w = text_width("100.0 %", small_face) + 8
    width = margin + label_w + plot_w + value_w + margin
    legend_y = margin + line_height(title_face) + 6
    top = legend_y + line_height(face) + 12
    row_h = 2 * bar_h + pair_gap + row_gap
    axis_y = top + k * row_h - row_gap + 6
    height = axis_y + 4 + line_height(small_face) + 4 + line_height(small_face) + margin
    sheet, draw = new_sheet(width, height)
    draw_text(draw, (margin, margin), fit_text(title, title_face, width - 2 * margin), title_face)
    x = margin + label_w
    for name, colour in (("clean", CLEAN_COLOUR), ("adversarial", ADVERSARIAL_COLOUR)):
        draw.rectangle((x, legend_y + 3, x + 11, legend_y + 14), fill=colour)
        draw_text(draw, (x + 16, legend_y), name, face)
        x += 16 + text_width(name, face) + 18
    x0 = margin + label_w
    for tick in (0, 25, 50, 75, 100):
        tx = x0 + int(round(tick / 100 * plot_w))
        draw.line((tx, top - 4, tx, axis_y), fill=BAR_TRACK if tick else FRAME)
        draw_text(draw, (tx, axis_y + 4), f"{tick}", small_face, MUTED, "ma")
    draw_text(draw, (x0 + plot_w // 2, axis_y + 4 + line_height(small_face) + 4), "probability (%)", small_face,
              MUTED, "ma")
    for row, cls in enumerate(classes):
        y = top + row * row_h
        draw_text(draw, (x0 - 8, y + bar_h + pair_gap // 2), class_names[cls], face, INK, "rm")
        for offset, (probability, colour) in enumerate(((p_clean[cls], CLEAN_COLOUR), (p_adv[cls], ADVERSARIAL_COLOUR))):
            by = y + offset * (bar_h + pair_gap)
            length = int(round(float(np.clip(probability, 0, 1)) * plot_w))
            if length > 0:
                draw.rectangle((x0, by, x0 + length - 1, by + bar_h - 1), fill=colour)
            draw_text(draw, (x0 + length + 4, by + bar_h // 2), percent(probability), small_face, INK, "lm")
    top_clean, top_adv = int(np.argmax(p_clean)), int(np.argmax(p_adv))
    alt = (f"Bar chart of the {k} most probable classes. Clean image: {class_names[top_clean]} "
           f"{percent(p_clean[top_clean])}; adversarial image: {class_names[top_adv]} {percent(p_adv[top_adv])}. "
           + "; ".join(f"{class_names[c]} {percent(p_clean[c])} → {percent(p_adv[c])}" for c in classes) + ".")
    return save_png(sheet, path, alt)


def _positive(values) -> np.ndarray:
    """Values for a log axis: non-positive and non-finite entries become NaN (not drawn)."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _layer_axis(ax, layer_names: Sequence[str], values) -> None:
    ax.set_xticks(np.arange(len(layer_names)), layer_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.4, len(layer_names) - 0.6)
    _log_axis(ax, values)
    ax.grid(True, which="major", axis="y", alpha=0.35)
    ax.spines[["top", "right"]].set_visible(False)


def butterfly_plot(layer_names: Sequence[str], adv_rel, noise_rel, path, title: str) -> dict:
    """Relative change ||changed - clean|| / ||clean|| per layer, adversarial vs random noise, log y axis."""
    adv_rel, noise_rel = _positive(adv_rel), _positive(noise_rel)
    figure, axes = _figure(6.4, 3.8, margins=(0.13, 0.25, 0.98, 0.91))
    ax = axes[0, 0]
    x = np.arange(len(layer_names))
    ax.plot(x, adv_rel, "o-", color=ADVERSARIAL, label="adversarial perturbation")
    ax.plot(x, noise_rel, "s--", color=NOISE, label="random noise of the same size")
    _layer_axis(ax, layer_names, np.concatenate([adv_rel, noise_rel]))
    ax.set_ylabel("relative change (log scale)")
    ax.set_title(title, fontsize=11)
    ax.legend(frameon=False, fontsize=9)
    alt = (f"{title}. Line chart, log scale: relative change of each layer's activations from "
           f"{layer_names[0]} to {layer_names[-1]}. Adversarial: {_ends(adv_rel)}. Random noise of the same "
           f"size: {_ends(noise_rel)}. Layers: {', '.join(layer_names)}.")
    return _save(figure, path, alt)


def butterfly_all(curves: Mapping[str, tuple[Sequence[str], Sequence[float]]], path,
                  title: str = "Relative change per layer, every attacked image") -> dict:
    """All images' adversarial relative-change curves on one log-scale chart.

    curves: {image title: (layer names, relative change per layer)}. The x axis uses the longest
    list of layer names.
    """
    if not curves:
        raise ValueError("butterfly_all needs at least one curve")
    names = max((names for names, _ in curves.values()), key=len)
    wide = len(curves) > 6
    figure, axes = _figure(8.0 if wide else 6.4, 3.9, margins=(0.13 if not wide else 0.1, 0.25, 0.78 if wide else 0.98, 0.91))
    ax = axes[0, 0]
    colours = _palette(len(curves))
    summary, everything = [], []
    for (image_title, (layer_names, rel)), colour in zip(curves.items(), colours):
        rel = _positive(rel)
        ax.plot(np.arange(len(layer_names)), rel, "o-", color=colour, markersize=4, linewidth=1.5, label=image_title)
        summary.append(f"{image_title}: {_ends(rel)}")
        everything.append(rel)
    _layer_axis(ax, names, np.concatenate(everything))
    ax.set_ylabel("relative change (log scale)")
    ax.set_title(title, fontsize=11)
    if wide:
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(frameon=False, fontsize=9)
    alt = f"{title}. Line chart, log scale, one line per image. " + "; ".join(summary) + "."
    return _save(figure, path, alt)


def robustness_plot(epsilons, fgsm_acc, noise_acc, path, *, method: str = "FGSM") -> dict:
    """Test accuracy against perturbation size: the attack vs random sign noise of the same size."""
    epsilons = np.asarray(epsilons, float)
    fgsm_acc, noise_acc = np.asarray(fgsm_acc, float), np.asarray(noise_acc, float)
    figure, axes = _figure(6.4, 3.6, margins=(0.13, 0.14, 0.98, 0.91))
    ax = axes[0, 0]
    ax.plot(epsilons, fgsm_acc * 100, "o-", color=ADVERSARIAL, label=f"{method} attack")
    ax.plot(epsilons, noise_acc * 100, "s--", color=NOISE, label="random sign noise")
    ax.set_xlabel("ε (largest change per pixel, pixel range 0–1)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 102)
    ax.grid(True, alpha=0.35)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False)
    ax.set_title("Accuracy as the perturbation grows", fontsize=11)
    alt = (f"Line chart of test accuracy against ε from {number(epsilons[0])} to {number(epsilons[-1])}: under the "
           f"{method} attack it goes from {percent(fgsm_acc[0])} to {percent(fgsm_acc[-1])}; with random sign noise "
           f"of the same size from {percent(noise_acc[0])} to {percent(noise_acc[-1])}.")
    return _save(figure, path, alt)


def training_curves(history: Mapping[str, Sequence[float]], path) -> dict:
    """Loss and accuracy per epoch, training and validation, side by side.

    history: lists keyed loss, accuracy, val_loss, val_accuracy (the validation keys may be missing).
    """
    figure, axes = _figure(7.6, 3.2, 1, 2, margins=(0.08, 0.15, 0.98, 0.95), wspace=0.28)
    parts = []
    for ax, key, label in ((axes[0, 0], "loss", "loss"), (axes[0, 1], "accuracy", "accuracy (%)")):
        scale = 100 if key == "accuracy" else 1
        for prefix, colour, style, name in (("", CLEAN, "o-", "training"), ("val_", ADVERSARIAL, "s--", "validation")):
            values = history.get(prefix + key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, np.asarray(values, float) * scale, style, color=colour, markersize=4, label=name)
                parts.append(f"{name} {key} {number(values[0] * scale)} → {number(values[-1] * scale)}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.35)
        ax.spines[["top", "right"]].set_visible(False)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(frameon=False, fontsize=9)
    epochs = len(history.get("loss", []))
    alt = f"Two line charts over {epochs} epochs, loss on the left and accuracy on the right: " + "; ".join(parts) + "."
    return _save(figure, path, alt)


def _ends(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "no change"
    return f"from {number(finite[0])} to {number(finite[-1])} (largest {number(finite.max())})"


def _palette(count: int) -> list:
    from matplotlib import colormaps

    name = "tab10" if count <= 10 else "tab20"
    table = colormaps[name]
    return [table(i % table.N) for i in range(count)]
