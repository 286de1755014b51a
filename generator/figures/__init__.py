"""Figures of the site: pure rendering functions, NumPy arrays in, one file out.

Every function writes its file and returns the record the manifest stores:
{"path", "alt", "width", "height", "frames", "bytes"}. Nothing here imports TensorFlow.
"""

from .gifs import epsilon_sweep_gif, propagation_gif, training_gif
from .grids import comparison_grid, first_layer_filters, network_overview, select_filters, shared_scales
from .common import most_changed_filters, relative_change
from .plots import butterfly_all, butterfly_plot, probability_bars, robustness_plot, training_curves
from .zoom import largest_change_window, perturbation_image, zoom_crop

__all__ = [
    "butterfly_all", "butterfly_plot", "comparison_grid", "epsilon_sweep_gif", "first_layer_filters",
    "largest_change_window", "most_changed_filters", "network_overview", "perturbation_image",
    "probability_bars", "propagation_gif", "relative_change", "robustness_plot", "select_filters",
    "shared_scales", "training_curves", "training_gif", "zoom_crop",
]
