"""Drawing in parallel: figure jobs run in worker processes and are committed to the cache as
they finish.

Figures are drawn by pure functions (arrays in, files out) that never import TensorFlow, so
they run in worker processes while the main process keeps the model. The workers are forked
from a fork server that has already imported the figure code (and never held TensorFlow's
threads or the build lock), so a worker starts in milliseconds; the pool is made once per
process and ``butterfly serve`` keeps it between rebuilds. With ``--jobs 1`` the same functions
run in the main process, which gives the same bytes.

A job writes into a scratch folder of the stage cache (see :meth:`StageCache.write`); only a
job that finished is renamed into place, so an interrupted or failed build leaves no half-drawn
entry, and its workers are stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import itertools
import json
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from generator.childproc import die_with_parent

# Imported once by the fork server, so that every worker starts with them loaded: the jobs'
# modules, the figure code (generator.figures imports its modules on first use only) and the
# parts of matplotlib the plots use, which would otherwise cost each worker's first job 0.5 s.
PRELOAD = ["generator.stages.images", "generator.stages.extras", "generator.stages.docs", "generator.figures.sets",
           "matplotlib.backends.backend_agg", "matplotlib.figure", "matplotlib.ticker", "matplotlib.text"]
WAIT_POLL_SECONDS = 0.2
# Beside the files of a figure entry: their records, by name, with paths relative to the entry.
FIGURE_LIST = "figures.json"

_pool: tuple[int, ProcessPoolExecutor] | None = None
# Held while the pool starts or stops: a build starts it from a helper thread, and a stop that
# came first (a build that failed at once) must not leave it starting after the process ends.
_pool_lock = threading.RLock()
_closed = False  # stopped for good: the process is ending


def _start_worker() -> None:
    """Runs first in every worker."""
    # Ctrl-C reaches the whole process group; the main process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A worker must not outlive the build: it gets SIGTERM when its parent, the fork server,
    # ends. The fork server ends when the main process does, however that ends (kill -9 too),
    # because its liveness pipe is then closed: each worker is handed a copy of the pipe's
    # writing end, for processes of its own, which would keep it open, so it is closed here.
    die_with_parent()
    server = getattr(sys.modules.get("multiprocessing.forkserver"), "_forkserver", None)
    if getattr(server, "_forkserver_alive_fd", None) is not None:
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    # What the worker got from the fork server (the figure code, matplotlib) lives as long as
    # the worker: full collections need not scan it again and again.
    gc.freeze()


def _ready() -> int:
    return os.getpid()


def worker_pool(jobs: int) -> ProcessPoolExecutor | None:
    """This process's pool of ``jobs`` workers, started on first use (None when jobs is 1)."""
    global _pool
    if jobs <= 1:
        return None
    with _pool_lock:
        if _closed:
            return None
        if _pool is not None and _pool[0] == jobs:
            return _pool[1]
        stop_pool()
        if sys.platform.startswith("linux"):
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
        else:
            context = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker)
        # Start every worker now, so that they load while the main process computes.
        for _ in range(jobs):
            executor.submit(_ready)
        _pool = (jobs, executor)
        return executor


def running_pool(jobs: int) -> bool:
    """Whether this process already has its workers (``butterfly serve`` after its first build)."""
    return _pool is not None and _pool[0] == jobs


def stop_pool(final: bool = False) -> None:
    """Stop this process's workers at once (they may be mid-job) and forget the pool; waits for
    a start under way. ``final``: none starts after this (the process is ending)."""
    global _pool, _closed
    with _pool_lock:
        _closed = _closed or final
        if _pool is None:
            return
        executor = _pool[1]
        _pool = None
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


def write_figure_list(out: Path, made: dict) -> dict:
    """Store the records of the figures drawn into ``out`` beside them (paths made relative to
    ``out``) and return them."""
    for figure in made.values():
        figure["path"] = Path(figure["path"]).name
    (out / FIGURE_LIST).write_text(json.dumps(made, indent=1, ensure_ascii=False))
    return made


def read_figure_list(folder: Path | str) -> dict:
    """The records a figure entry stored with write_figure_list."""
    return json.loads((Path(folder) / FIGURE_LIST).read_text())


@dataclasses.dataclass
class _Entry:
    """A submitted cache entry: its scratch folder, and the results of its parts so far."""
    stack: ExitStack
    out: Path
    on_done: Callable
    figure_set: bool
    finish: Callable | None
    results: list
    missing: int
    low: bool


class Jobs:
    """The figure jobs of one build. ``submit`` starts a job writing into a new cache entry;
    ``wait`` commits entries as their jobs finish and calls each job's ``on_done`` in the main
    thread, in the order they finish. Figure sets drawn and the time from the first job to the
    last figure job are counted on ``build.work``.

    A job of low priority (one whose result nothing waits for soon, such as storing an
    analysis) goes to the workers only when one of them would otherwise be idle, so the figures
    submitted after it are drawn first."""

    def __init__(self, build):
        self.build = build
        self.pool: ProcessPoolExecutor | None = None
        self._finished: queue.Queue = queue.Queue()
        self._pending: dict[int, _Entry] = {}
        self._numbers = itertools.count()
        self._first: float | None = None
        self._starting: threading.Thread | None = None
        # Jobs of low priority not yet sent to the workers, and the jobs sent and not finished.
        self._held: list[Callable] = []
        self._running = 0
        self._lock = threading.RLock()  # a job may finish while it is being sent

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        """Start the workers, if any (idempotent): as soon as a build knows it will draw many
        figures, so that they load the figure code while it computes. A helper thread starts
        them: starting returns only once the fork server has loaded the figure code (half a
        second), which this thread spends computing instead."""
        if self.pool is None and self._starting is None and self.build.jobs > 1:
            self._starting = threading.Thread(target=worker_pool, args=(self.build.jobs,), daemon=True)
            self._starting.start()

    def _started(self) -> ProcessPoolExecutor | None:
        """The pool, once started (waiting for a start under way), or None."""
        if self._starting is not None:
            self._starting.join()
            self._starting = None
            self.pool = worker_pool(self.build.jobs)
        return self.pool

    def submit(self, stage: str, key: str, function: Callable, args: tuple, on_done: Callable,
               figure_set: bool = False, parts: int = 1, finish: Callable | None = None, low: bool = False) -> None:
        """Run ``function(*args, out)`` with ``out`` the scratch folder of cache entry
        (stage, key); when it returns, the entry is committed and ``on_done(result)`` runs.
        ``figure_set``: the job draws one image's figures in one language (counted).
        ``low``: the job has low priority (see the class).

        ``parts`` > 1 splits the job: ``function(*args, out, part=i)`` for each i runs as a job
        of its own, side by side, into the same folder; when all have returned,
        ``finish(out, [their results in part order])`` runs in this process before the entry is
        committed, and its return value is the result."""
        stack = ExitStack()
        out = stack.enter_context(self.build.cache.write(stage, key))
        number = next(self._numbers)
        self._pending[number] = _Entry(stack, out, on_done, figure_set, finish, [None] * parts, parts, low)
        if self._first is None:
            self._first = time.perf_counter()
        if self.pool is None and running_pool(self.build.jobs):
            self.start()
        pool = self._started()
        for part, extra in enumerate([{}] if parts == 1 else [{"part": part} for part in range(parts)]):
            # Without started workers (a few figures, say the comparison after a new title) this
            # process draws: starting workers would take longer than the drawing.
            if pool is None:
                try:
                    self._finished.put((number, part, True, function(*args, out, **extra)))
                except Exception as error:  # reported by wait(), like a worker's
                    self._finished.put((number, part, False, error))
                continue
            send = functools.partial(self._send, pool, number, part, function, (*args, out), extra)
            with self._lock:
                if low:
                    self._held.append(send)
                else:
                    send()
            self._send_held()

    def _send(self, pool: ProcessPoolExecutor, number: int, part: int, function: Callable, args: tuple,
              extra: dict) -> None:
        """Give one job to the workers (called with the lock held)."""
        def finished(done) -> None:
            with self._lock:
                self._running -= 1
            if not done.cancelled():
                self._finished.put((number, part, True, done.result()) if done.exception() is None
                                   else (number, part, False, done.exception()))
            self._send_held()

        try:
            future = pool.submit(function, *args, **extra)
        except Exception as error:  # a broken or stopped pool: reported by wait(), like a job's
            self._finished.put((number, part, False, error))
            return
        self._running += 1
        future.add_done_callback(finished)

    def _send_held(self) -> None:
        """Give held jobs of low priority to the workers that have nothing else to do."""
        with self._lock:
            while self._held and self._running < self.build.jobs:
                self._held.pop(0)()

    def wait(self, leave: int = 0, low: bool = True) -> None:
        """Commit entries as their jobs finish until at most ``leave`` are left (with ``low``
        False, not counting those of low priority). The first failure, Ctrl-C or SIGTERM stops
        the workers, removes every unfinished entry and propagates."""
        def left() -> int:
            return sum(low or not entry.low for entry in self._pending.values())

        try:
            while left() > leave or not self._finished.empty():
                try:
                    number, part, ok, value = self._finished.get(timeout=WAIT_POLL_SECONDS)
                except queue.Empty:
                    continue
                entry = self._pending[number]
                if ok:
                    entry.results[part] = value
                    entry.missing -= 1
                    if entry.missing:
                        continue
                    try:
                        value = entry.finish(entry.out, entry.results) if entry.finish else entry.results[0]
                    except Exception as error:
                        ok, value = False, error
                del self._pending[number]
                if not ok:
                    entry.stack.__exit__(type(value), value, value.__traceback__)
                    raise value
                entry.stack.close()
                if entry.figure_set:
                    self.build.work["drawn"] += 1
                entry.on_done(value)
                if self._first is not None and all(entry.low for entry in self._pending.values()):
                    self.build.work["drawing_seconds"] += time.perf_counter() - self._first
                    self._first = None
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        """Stop the workers (they may be writing) and remove every unfinished entry."""
        with self._lock:
            self._held.clear()
        if self._pending and self._started() is not None:
            stop_pool()
            self.pool = None
        error = RuntimeError("abandoned")
        for entry in self._pending.values():
            entry.stack.__exit__(RuntimeError, error, None)
        self._pending.clear()
