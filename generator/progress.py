"""Progress of long stages, and where a build's time went.

When stderr is a terminal a long stage shows one tqdm bar with its rate and the time left;
otherwise it writes one line per finished item, which is what a log file wants. At the end of
every build :func:`timing_lines` says how long each stage took and how many images per second
were analysed and drawn (the same numbers go to ``build/timings.json``).
"""

from __future__ import annotations

import sys
import time
from typing import Callable

# Without a terminal, a stage that counts many small steps (grid points of a search) writes a
# status line at most this often.
STATUS_INTERVAL_SECONDS = 5.0


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress over ``total`` items of one stage.

    ``advance(count, line)``: ``count`` more items are done; on a terminal the bar moves, else
    ``line`` is logged (or, without a line, a status line at most every STATUS_INTERVAL_SECONDS).
    ``note(line)`` is always shown (above the bar on a terminal).
    """

    def __init__(self, description: str, total: int, unit: str, log: Callable[[str], None], *,
                 bar: bool | None = None):
        self.description, self.total, self.unit, self.log = description, total, unit, log
        self.done = 0
        self._last_status = time.monotonic()
        self._bar = None
        if bar if bar is not None else stderr_is_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"butterfly: {description}", unit=unit, file=sys.stderr,
                             dynamic_ncols=True, leave=True, smoothing=0.1)

    def advance(self, count: int = 1, line: str | None = None) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif line is not None:
            self.log(line)
        elif time.monotonic() - self._last_status >= STATUS_INTERVAL_SECONDS:
            self._last_status = time.monotonic()
            self.log(f"{self.description}: {self.done:,}/{self.total:,} {self.unit}")

    def note(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(f"butterfly: {line}", file=sys.stderr)
        else:
            self.log(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.1f}/s" if seconds > 0 else "-"


def timing_lines(timings: dict) -> list[str]:
    """The end-of-build report: one line per stage with its seconds, plus what the images stage
    did. ``timings``: {"stages": {name: seconds}, "total": seconds, "images": {"analysed",
    "analysis_seconds", "drawn", "drawing_seconds", "processes"}} (build/timings.json)."""
    stages, total = timings["stages"], timings["total"]
    lines = [f"where the time went ({total:.1f} s):"]
    width = max([len(name) for name in stages] + [5])
    work = timings.get("images") or {}
    for name, seconds in stages.items():
        detail = ""
        if name == "images" and work:
            parts = []
            if work.get("analysed"):
                parts.append(f"{work['analysed']} analysed in {work['analysis_seconds']:.1f} s "
                             f"({rate(work['analysed'], work['analysis_seconds'])})")
            if work.get("drawn"):
                parts.append(f"{work['drawn']} figure sets drawn in {work['drawing_seconds']:.1f} s "
                             f"({rate(work['drawn'], work['drawing_seconds'])}, "
                             f"{work['processes']} process{'es' if work['processes'] != 1 else ''})")
            detail = "   " + "; ".join(parts) if parts else "   all cached"
        lines.append(f"  {name:<{width}} {seconds:6.1f} s{detail}")
    return lines
