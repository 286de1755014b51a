"""Progress lines and bars, and the end-of-build report of where the time went."""

import io
import sys

from generator import progress
from generator.progress import Progress, timing_lines


def test_without_a_terminal_each_item_is_one_line():
    lines = []
    with Progress("[images]", 3, "image", lines.append, bar=False) as bar:
        for number in (1, 2, 3):
            bar.advance(1, f"[images] {number}/3 done")
        bar.note("a failure, always shown")
    assert lines == ["[images] 1/3 done", "[images] 2/3 done", "[images] 3/3 done", "a failure, always shown"]


def test_counted_steps_write_a_status_line_at_most_every_few_seconds(monkeypatch):
    clock = iter(range(0, 1000, 2))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines = []
    bar = Progress("searching", 100, "grid points", lines.append, bar=False)
    for _ in range(10):
        bar.advance(10)
    assert lines and len(lines) < 10
    assert lines[-1].startswith("searching: ") and lines[-1].endswith("/100 grid points")


def test_on_a_terminal_a_bar_shows_rate_and_time_left(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    lines = []
    with Progress("[figures]", 4, "image", lines.append, bar=True) as bar:
        for _ in range(4):
            bar.advance(1, "not printed: the bar moves instead")
    assert lines == []
    text = stream.getvalue()
    assert "[figures]" in text and "4/4" in text and "image/s" in text


def test_timing_report_names_every_stage_and_the_image_rates():
    lines = timing_lines({"total": 30.5, "stages": {"model": 3.2, "images": 5.0, "figures": 14.0, "site": 2.8},
                          "images": {"analysed": 21, "analysis_seconds": 4.2, "drawn": 42, "drawing_seconds": 16.8,
                                     "processes": 2}})
    assert lines[0] == "where the time went (30.5 s):"
    assert [line.split()[0] for line in lines[1:]] == ["model", "images", "figures", "site"]
    images = next(line for line in lines if line.split()[0] == "images")
    assert "21 analysed in 4.2 s (5.0/s)" in images and "42 figure sets drawn in 16.8 s (2.5/s, 2 processes)" in images
    cached = timing_lines({"total": 1.0, "stages": {"images": 0.1}, "images": {"analysed": 0, "drawn": 0,
                                                                              "processes": 2}})
    assert "all cached" in cached[1]
