"""Figures of the site: pure rendering functions, NumPy arrays in, one file out.

Every function writes its file and returns the record the manifest stores:
{"path", "alt", "width", "height", "frames", "bytes"}, plus what it drew (layer, channels, unit,
...), so captions can be read from the figure's own record. The caller chooses which channels
are drawn; no function here ranks them. Each takes `words` (`words_for('en')` or
`words_for('zh')`): the language of its labels and alt text. Nothing here imports TensorFlow.
"""

import importlib

# Which module holds each public function. They are imported on first use, so that a build
# with nothing to draw (a no-op rebuild) does not pay for importing the drawing code.
_HOMES = {
    "epsilon_sweep_gif": "gifs", "propagation_gif": "gifs", "training_gif": "gifs",
    "comparison_grid": "grids", "first_layer_filters": "grids", "network_overview": "grids", "shared_scales": "grids",
    "butterfly_plot": "plots", "epsilon_strip": "plots", "probability_bars": "plots", "ratio_curves": "plots",
    "robustness_plot": "plots", "training_curves": "plots",
    "Words": "words", "font_fingerprint": "words", "words_for": "words",
    "largest_change_window": "zoom", "perturbation_image": "zoom", "zoom_crop": "zoom",
}
__all__ = sorted(_HOMES)

# An image's figure set is drawn in this many parts of about equal time, which may run side by
# side (see sets.image_figures).
SET_PARTS = 2


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"generator.figures.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'generator.figures' has no attribute {name!r}")
