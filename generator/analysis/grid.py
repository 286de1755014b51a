"""The article's grid of epsilons: start, start + step, start + 2 * step, ... up to a maximum.

Plain arithmetic (no NumPy), so that the configuration can check a grid before any work.
"""

from __future__ import annotations

import math

# Keep the grid of the epsilon search within what one build can try.
MAX_GRID_POINTS = 1_000_000


def grid_size(start: float, step: float, maximum: float) -> int:
    """Points of the grid start, start + step, ... <= maximum; the 1e-9 keeps a maximum that
    lies on the grid."""
    return int(math.floor((maximum - start) / step + 1e-9)) + 1


def grid_problem(start: float, step: float, maximum: float) -> str | None:
    """Why the epsilon grid from `start` by `step` up to `maximum` cannot be searched, or None."""
    if start > maximum:
        return f"epsilon_start ({start}) is larger than epsilon_max ({maximum})"
    points = grid_size(start, step, maximum)
    if points > MAX_GRID_POINTS:
        return (f"epsilon_step {step} is too small: {points:,} grid points from {start} to {maximum} "
                f"(limit {MAX_GRID_POINTS:,})")
    return None
