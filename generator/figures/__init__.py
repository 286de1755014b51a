"""Figures of the site: pure rendering functions, NumPy arrays in, one file out.

Every function writes its file and returns the record the manifest stores:
{"path", "alt", "width", "height", "frames", "bytes"}, plus what it drew (layer, channels, unit,
...), so captions can be read from the figure's own record. The caller chooses which channels
are drawn; no function here ranks them. Each takes `words` (`words_for('en')` or
`words_for('zh')`): the language of its labels and alt text. Nothing here imports TensorFlow.
"""

from generator.figures.gifs import epsilon_sweep_gif, propagation_gif, training_gif
from generator.figures.grids import comparison_grid, first_layer_filters, network_overview, shared_scales
from generator.figures.plots import (
    butterfly_plot, epsilon_strip, probability_bars, ratio_curves, robustness_plot, training_curves,
)
from generator.figures.words import Words, font_fingerprint, words_for
from generator.figures.zoom import largest_change_window, perturbation_image, zoom_crop

__all__ = [
    "Words", "butterfly_plot", "comparison_grid", "epsilon_strip", "epsilon_sweep_gif", "first_layer_filters",
    "font_fingerprint", "largest_change_window", "network_overview", "perturbation_image", "probability_bars",
    "propagation_gif", "ratio_curves", "robustness_plot", "shared_scales", "training_curves", "training_gif",
    "words_for", "zoom_crop",
]
