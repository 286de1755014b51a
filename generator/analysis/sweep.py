"""The attack as epsilon grows: the frames of the sweep animation and the exact flip threshold.

The article's loop answers with a grid epsilon (start + k * step). Where the label really
changes lies below that answer; this module finds it on the same line of attacked images the
animation shows, so the animation, the text and the manifest print one threshold:

1. scan: the attack at evenly spaced epsilons from 0 to a little past the answer;
2. the first scanned frame that reaches the goal (or changes the label) and the frame before
   it bracket the threshold; bisection narrows that bracket;
3. the threshold becomes a frame of the sweep, so the first frame with the new label is
   exactly the threshold, and the answer is a frame too.

Every frame, the threshold and the bisection points are evaluated with the search's exact
evaluation, so a label seen here is the label a one-image loop sees.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from generator.analysis.attack import ImageSearch
from generator.analysis.batching import Routine, run_routine

OVERSHOOT = 0.25  # the sweep runs to (1 + OVERSHOOT) x the answer, to show the new label settle


@dataclasses.dataclass
class Sweep:
    """Frames along epsilon (K frames) and where the label changes.

    epsilons (K,) float64 increasing from 0; images (K, H, W, C) the attacked images;
    probabilities (K, n_classes); labels (K,). flip_index: the first frame meeting the test
    (its epsilon is `threshold`), or -1. answer_index: the frame at the search's answer
    epsilon, or -1. threshold: the smallest epsilon known to meet the test (to within
    bracket / 2**bisection_steps), or None.
    """

    epsilons: np.ndarray
    images: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    flip_index: int
    answer_index: int
    threshold: float | None

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays as stored beside the image's record (npz names)."""
        return {"sweep_epsilons": self.epsilons, "sweep_images": self.images,
                "sweep_probabilities": self.probabilities, "sweep_labels": self.labels}


def epsilon_sweep(search: ImageSearch, answer: float | None, test, frames: int = 60,
                  bisection_steps: int = 12) -> Sweep:
    """Sweep the attack of `search` from epsilon 0 past `answer` and locate the threshold.

    answer: the search's reported epsilon (goal reached, or for a targeted miss the first
    change of label), or None when nothing happened up to epsilon_max (the sweep then spans
    0 .. epsilon_max and has no threshold). test(label) -> bool: the outcome being located
    (goal met, or label changed). frames: at most this many frames (>= 4).
    """
    return run_routine(search.model, sweep_steps(search, answer, test, frames, bisection_steps))


def sweep_steps(search: ImageSearch, answer: float | None, test, frames: int = 60,
                bisection_steps: int = 12) -> Routine:
    """Routine of `epsilon_sweep` (same arguments); returns the Sweep."""
    settings = search.settings
    frames = max(4, int(frames))
    top = settings.epsilon_max if answer is None else min(1.0, (1.0 + OVERSHOOT) * answer)
    # Two frames are kept free for the threshold and the answer.
    scan = np.linspace(0.0, top, frames - 2)
    if answer is not None:
        scan = np.unique(np.append(scan, answer))
    images, probabilities = yield from search.evaluate_steps(scan)
    labels = probabilities.argmax(axis=1)
    met = np.flatnonzero([test(int(label)) for label in labels])
    if answer is None or met.size == 0 or met[0] == 0:
        # Nothing to locate (or the clean image itself meets the test: no threshold above 0).
        answer_index = -1 if answer is None else int(np.searchsorted(scan, answer))
        return Sweep(scan, images, probabilities, labels, -1, answer_index, None)
    first = int(met[0])
    threshold = yield from bisect_steps(search, float(scan[first - 1]), float(scan[first]), test, bisection_steps)
    if threshold < scan[first]:
        scan = np.insert(scan, first, threshold)
        extra_images, extra_probabilities = yield from search.evaluate_steps(np.array([threshold]))
        images = np.insert(images, first, extra_images[0], axis=0)
        probabilities = np.insert(probabilities, first, extra_probabilities[0], axis=0)
        labels = probabilities.argmax(axis=1)
    return Sweep(scan, images, probabilities, labels, first, int(np.searchsorted(scan, answer)), float(threshold))


def bisect(search: ImageSearch, below: float, above: float, test, steps: int) -> float:
    """Shrink [below, above] (test false at below, true at above) `steps` times by two.

    Each model call tries 2**b - 1 interior points at once, i.e. does b halvings. Returns the
    upper end: the smallest epsilon known to pass the test."""
    return run_routine(search.model, bisect_steps(search, below, above, test, steps))


def bisect_steps(search: ImageSearch, below: float, above: float, test, steps: int) -> Routine:
    """Routine of `bisect` (same arguments); returns the upper end."""
    bits_per_call = max(1, int(math.log2(search.settings.chunk + 1)))
    while steps > 0:
        bits = min(steps, bits_per_call)
        points = below + (above - below) * np.arange(1, 2 ** bits) / 2 ** bits
        _, probabilities = yield from search.evaluate_steps(points)
        passed = np.flatnonzero([test(int(label)) for label in probabilities.argmax(axis=1)])
        if passed.size:
            j = int(passed[0])
            below, above = (float(points[j - 1]) if j > 0 else below), float(points[j])
        else:
            below = float(points[-1])
        steps -= bits
    return above
