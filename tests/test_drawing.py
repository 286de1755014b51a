"""Drawing in worker processes: the bytes of a serial run, and nothing left behind on failure."""

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from generator.cache import StageCache
from generator.stages import drawing
from generator.stages.drawing import Jobs

keras = pytest.importorskip("keras")


def fake_build(root: Path, jobs: int):
    return SimpleNamespace(jobs=jobs, cache=StageCache(root / "cache"),
                           work={"drawn": 0, "drawing_seconds": 0.0})


def scratch_left(cache_root: Path) -> list[Path]:
    return [p for p in cache_root.glob("*/.*") if p.is_dir()]


def write_then_fail(out: Path) -> None:
    (out / "half.png").write_bytes(b"half")
    raise ValueError("cannot draw this")


def sleep_long(out: Path) -> None:
    (out / "started").write_text("yes")
    time.sleep(60)


@pytest.mark.slow
def test_figures_drawn_by_workers_are_the_bytes_of_a_serial_run(tmp_path):
    from generator.analysis.attack import AttackSettings
    from generator.analysis.record import analyse_image
    from generator.inputs.config import FiguresSection
    from generator.figures import SET_PARTS
    from generator.stages.images import draw_image_figures, write_figure_set

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="conv_1_1"),
                              keras.layers.MaxPooling2D(name="max_pool_1"), keras.layers.Flatten(name="flatten"),
                              keras.layers.Dense(3, activation="softmax", name="output")])
    x = np.random.default_rng(0).uniform(0.2, 0.8, (16, 16, 3)).astype(np.float32)
    names = ["cat", "dog", "fish"]
    settings = AttackSettings(epsilon_max=0.5)
    record, arrays = analyse_image(model, x, 0, settings, names, noise_draws=2, frames=8)
    record.update(title={"en": "A cat", "zh": "一只猫"})
    record["attack"]["settings"] = {"epsilon_start": settings.epsilon_start, "epsilon_step": settings.epsilon_step}
    made = {}
    for jobs in (1, 2):
        build = fake_build(tmp_path / f"jobs{jobs}", jobs)
        queue = Jobs(build)
        for lang in ("en", "zh"):
            queue.submit("figures", lang, draw_image_figures,
                         (record, arrays, names, record["title"][lang], FiguresSection(zoom_channel=0), lang),
                         lambda result, lang=lang: made.setdefault((jobs, lang), result), figure_set=True,
                         parts=SET_PARTS, finish=write_figure_set)
        queue.wait()
        assert build.work["drawn"] == 2
    for lang in ("en", "zh"):
        assert made[(1, lang)] == made[(2, lang)]
        # The parts together drew the whole set, in page order.
        whole = draw_image_figures(record, arrays, names, record["title"][lang], FiguresSection(zoom_channel=0),
                                   lang, tmp_path / f"whole-{lang}")
        assert list(made[(1, lang)]) == list(whole) and made[(1, lang)] == whole
        serial, parallel = (tmp_path / f"jobs{jobs}" / "cache" / "figures" / lang for jobs in (1, 2))
        files = sorted(p.name for p in serial.iterdir())
        assert len(files) > 10 and files == sorted(p.name for p in parallel.iterdir())
        for name in files:
            assert (serial / name).read_bytes() == (parallel / name).read_bytes(), name


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_failed_job_leaves_no_entry_and_stops_the_others(tmp_path, jobs):
    build = fake_build(tmp_path, jobs)
    queue = Jobs(build)
    done = []
    queue.submit("figures", "good", lambda_free_touch, (), done.append)
    queue.submit("figures", "bad", write_then_fail, (), done.append)
    with pytest.raises(ValueError, match="cannot draw this"):
        queue.wait()
    assert not build.cache.has("figures", "bad")
    assert scratch_left(build.cache.root) == [] and queue.pending == 0


def part_fails(out: Path, part: int) -> str:
    (out / f"part{part}.png").write_bytes(b"part")
    if part == 1:
        raise ValueError("cannot draw part 1")
    return f"part {part}"


def joined(out: Path, results: list) -> str:
    (out / "joined.txt").write_text(" + ".join(results))
    return " + ".join(results)


@pytest.mark.parametrize("jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_a_split_job_is_committed_once_with_its_parts_joined(tmp_path, jobs):
    build = fake_build(tmp_path, jobs)
    queue = Jobs(build)
    done = []
    queue.submit("figures", "split", touch_part, (), done.append, figure_set=True, parts=2, finish=joined)
    queue.wait()
    assert done == ["part 0 + part 1"] and build.work["drawn"] == 1
    entry = build.cache.path("figures", "split")
    assert sorted(p.name for p in entry.iterdir()) == ["joined.txt", "part0.png", "part1.png"]
    queue.submit("figures", "broken", part_fails, (), done.append, parts=2, finish=joined)
    with pytest.raises(ValueError, match="cannot draw part 1"):
        queue.wait()
    assert not build.cache.has("figures", "broken") and done == ["part 0 + part 1"]
    assert scratch_left(build.cache.root) == [] and queue.pending == 0


def touch_part(out: Path, part: int) -> str:
    (out / f"part{part}.png").write_bytes(b"part")
    return f"part {part}"


def lambda_free_touch(out: Path) -> str:
    (out / "fine.png").write_bytes(b"fine")
    return "fine"


@pytest.mark.slow
def test_interrupting_stops_the_workers_and_removes_their_scratch(tmp_path):
    build = fake_build(tmp_path, 2)
    queue = Jobs(build)
    queue.start()  # as a stage does when it knows many figures are coming
    queue.submit("figures", "slow", sleep_long, (), lambda result: None)
    deadline = time.monotonic() + 30
    while not list(build.cache.root.glob("figures/.*/started")) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = list(queue.pool._processes.values())
    assert workers and any(worker.is_alive() for worker in workers)
    queue.abandon()  # what wait() does on Ctrl-C or SIGTERM
    assert scratch_left(build.cache.root) == []
    assert not any(worker.is_alive() for worker in workers)
    # The next build gets a new pool.
    assert drawing.worker_pool(2) is not None and drawing.worker_pool(2) is drawing.worker_pool(2)


def started_at(seconds: float, out: Path) -> float:
    start = time.monotonic()  # one clock for every process of the machine
    time.sleep(seconds)
    return start


@pytest.mark.slow
def test_a_job_of_low_priority_runs_when_a_worker_would_be_idle_and_is_waited_for_apart(tmp_path):
    build = fake_build(tmp_path, 2)
    queue = Jobs(build)
    queue.start()
    started = {}
    for name, seconds, low in [("first", 0.6, False), ("second", 0.3, False), ("store", 0.3, True),
                               ("comparison", 0.1, False)]:
        queue.submit("figures", name, started_at, (seconds,), lambda start, name=name: started.__setitem__(name, start),
                     figure_set=not low, low=low)
    queue.wait(low=False)  # the figures only: the stored analysis may still be running
    assert set(started) >= {"first", "second", "comparison"} and build.work["drawn"] == 3
    queue.wait()
    # The comparison, submitted after the store, started first, as soon as "second" was done.
    assert started["second"] < started["comparison"] < started["store"]
    assert queue.pending == 0 and all(build.cache.has("figures", name) for name in started)


@pytest.mark.slow
def test_a_pool_still_starting_when_the_process_ends_is_stopped_or_never_starts(monkeypatch):
    """A build that fails at once (a bad model file) ends while its helper thread may still be
    starting the workers: the final stop waits for that start and stops them, or comes first and
    no pool starts after it. Before, a pool could start after the stop, and the ending process left
    its semaphores behind (a warning on stderr after the one-line error)."""
    monkeypatch.setattr(drawing, "_closed", False)
    starting = threading.Thread(target=drawing.worker_pool, args=(2,))
    starting.start()
    drawing.stop_pool(final=True)
    starting.join()
    assert drawing._pool is None and drawing.worker_pool(2) is None
