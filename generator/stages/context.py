"""What the stages of one build share: paths, the cache, the log, timings; and per experiment,
its settings, class names and (loaded on first use) its Keras model."""

from __future__ import annotations

import gc
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from generator.cache import StageCache
from generator.inputs.config import Config, Experiment, localized


class Build:
    """One build of a site: its config, folders, cache, options, log and stage timings."""

    def __init__(self, config: Config, *, verbose: bool = False, keep_going: bool = False, jobs: int | None = None):
        self.config = config
        self.root = config.base_dir
        self.build_dir = self.root / "build"
        self.docs_dir = self.build_dir / "docs"
        self.site_dir = self.root / "site"
        self.cache = StageCache(self.build_dir / "cache")
        # Jinja's compiled templates, the pages' and the MkDocs theme's, kept between builds.
        self.compiled_templates = self.cache.root / "templates"
        self.verbose = verbose
        self.keep_going = keep_going
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.languages = list(config.site.languages)
        self.timings: dict[str, float] = {}
        # What the images stages did, for the end-of-build report (generator.progress).
        self.work = {"analysed": 0, "analysis_seconds": 0.0, "drawn": 0, "drawing_seconds": 0.0}
        self.warned: set[str] = set()
        # The build's figure jobs (generator.stages.drawing.Jobs), made by the pipeline, the
        # images whose jobs are still running, and the progress shown while it waits for them.
        self.drawings = None
        self.images_waiting = 0
        self.progress = None

    def log(self, message: str) -> None:
        print(f"butterfly: {message}", file=sys.stderr, flush=True)

    def image_done(self, line: str, waited: bool = False) -> None:
        """An image is analysed and drawn (``waited``: it had jobs to wait for): the progress
        bar moves, or the line is logged."""
        self.images_waiting -= waited
        if self.progress is not None and waited:
            self.progress.advance(1, line)
        else:
            self.log(line)

    def warn_once(self, message: str) -> None:
        if message not in self.warned:
            self.warned.add(message)
            self.log(f"warning: {message}")

    @contextmanager
    def stage(self, name: str):
        self.log(f"[{name}] ...")
        start = time.perf_counter()
        yield
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)
        self.log(f"[{name}] done in {time.perf_counter() - start:.1f} s")

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the project root when it lies inside it, else as given: the
        manifest and the pages are published and never show a local absolute path."""
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError):  # a loop of symbolic links has no real path
            resolved = Path(os.path.abspath(path))
        for root in (self.root.resolve(), Path(os.path.abspath(self.root))):
            try:
                return resolved.relative_to(root).as_posix()
            except ValueError:
                pass
        return str(path)

    def quiet_tensorflow(self):
        return quiet_tensorflow(self.verbose)


@dataclass
class ClassNames:
    """A model's classes in output order: the canonical names (labels, targets, the manifest)
    and each site language's names (text, captions, figures)."""

    canonical: list[str]
    by_language: dict[str, list[str]]

    @classmethod
    def from_config(cls, names: list, languages: list[str]) -> "ClassNames":
        """Names as a config gives them: strings, or mappings of language to name."""
        canonical = [localized(name, "en") for name in names]
        return cls(canonical, {lang: [localized(name, lang) for name in names] for lang in languages})

    def index_of(self, name: str) -> int | None:
        """The class a name given in any language stands for, or None."""
        for names in [self.canonical, *self.by_language.values()]:
            if name in names:
                return names.index(name)
        return None

    def all_names(self) -> list[str]:
        seen = dict.fromkeys(self.canonical)
        for names in self.by_language.values():
            seen.update(dict.fromkeys(names))
        return list(seen)


@dataclass
class ExperimentRun:
    """One experiment within a build: its settings, and what the stages learn about it."""

    build: Build
    experiment: Experiment
    classes: ClassNames | None = None
    dataset: object | None = None
    model_dir: Path | None = None
    model_key: str = ""
    model_loader: Callable | None = None
    cache_status: dict[str, str] = field(default_factory=dict)
    _model: object | None = None

    @property
    def id(self) -> str:
        return self.experiment.id

    def log(self, message: str) -> None:
        self.build.log(f"[{self.id}] {message}")

    def keras_model(self):
        """The experiment's Keras model, loaded on first use only (this is what imports TensorFlow).

        Loaded models are kept for the life of the process, keyed by their cache key, so that
        `butterfly serve` rebuilds without loading them again."""
        if self._model is None:
            self._model = LOADED_MODELS.get(self.model_key)
        if self._model is None:
            with self.build.quiet_tensorflow():
                self._model = self.model_loader()
        LOADED_MODELS[self.model_key] = self._model
        return self._model


# Models loaded in this process, by model cache key (see ExperimentRun.keras_model).
LOADED_MODELS: dict[str, object] = {}


@contextmanager
def quiet_tensorflow(verbose: bool = False):
    """Import TensorFlow, if it is not yet, with the notes its C++ core writes straight to stderr
    hidden (shown with --verbose); then run the block.

    TensorFlow writes them while it is imported, so only the import is muted: the progress bars
    and log lines of the block itself (the images stage) stay visible. Training, whose data
    pipeline writes more notes, is muted whole (see muted_stderr).
    """
    if "tensorflow" not in sys.modules:
        with muted_stderr(verbose), collector_paused():
            import tensorflow  # noqa: F401
    yield


@contextmanager
def collector_paused():
    """Run the block without Python's cyclic garbage collector, then exempt every object alive
    at its end from later collections (``gc.freeze``).

    Importing TensorFlow makes about a million long-lived objects and no garbage, yet the
    collector scans them all several times while it grows (0.4 s of a 2.8 s import), and again
    at every full collection of the build after it (about 0.15 s each)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def muted_stderr(verbose: bool = False):
    """Mute file descriptor 2 for the block (unless verbose): where TensorFlow's C++ core writes.

    Python exceptions still propagate; output to stdout stays visible."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
