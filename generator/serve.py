"""``butterfly serve``: build, serve the site on a local address, and rebuild what changed.

The server is Python's own static file server over ``site/``. A watcher polls the config
files and the images they list; on a change it rebuilds in this same process, so models
already loaded stay loaded and only changed images are computed again. When the first build had
nothing to do, what a rebuild uses (models, drawing workers, MkDocs) is loaded once the site is
served.
"""

from __future__ import annotations

import functools
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from generator.errors import UserError
from generator.inputs.config import DEFAULT_CONFIG, load_config

POLL_SECONDS = 0.5


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def watched_files(config_file: Path, keep_going: bool = False) -> dict[Path, float]:
    """Modification times of the config files beside ``config_file`` and of the images it lists."""
    files = list(Path(config_file).parent.glob("*.yml"))
    try:
        config = load_config(config_file, keep_going=keep_going)
        files += [experiment.resolve(entry.path) for experiment in config.experiments for entry in experiment.images]
    except UserError:
        pass  # a config being edited may be invalid for a moment; the rebuild will say why
    times = {}
    for path in files:
        try:
            times[path] = path.stat().st_mtime
        except OSError:
            times[path] = -1.0
    return times


def serve(config_file: Path | None, *, addr: str = "127.0.0.1:8000", verbose: bool = False,
          keep_going: bool = False) -> None:
    from generator.pipeline import run_build

    config_file = Path(config_file or DEFAULT_CONFIG)
    config = load_config(config_file, keep_going=keep_going)
    manifest = run_build(config, verbose=verbose, keep_going=keep_going)
    host, _, port = addr.rpartition(":")
    try:
        server = ThreadingHTTPServer((host or "127.0.0.1", int(port)),
                                     functools.partial(_QuietHandler, directory=str(config.base_dir / "site")))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot serve on {addr}: {error}") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"butterfly: serving http://{host or '127.0.0.1'}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    seen = watched_files(config_file, keep_going)  # an edit made while loading is seen right after
    try:
        # Not in a helper thread: the MkDocs processes would stop when it ends (see childproc).
        try:
            loaded = load_for_rebuilds(config, manifest, verbose=verbose)
            if loaded:
                print(f"butterfly: ready to rebuild ({loaded} model{'s' if loaded != 1 else ''} loaded)", flush=True)
        except Exception as error:  # a rebuild loads what it needs itself, and reports what fails
            print(f"butterfly: could not load for rebuilds ({error}); a rebuild will load what it needs", flush=True)
        while True:
            time.sleep(POLL_SECONDS)
            now = watched_files(config_file, keep_going)
            if now == seen:
                continue
            seen = now
            start = time.perf_counter()
            try:
                run_build(load_config(config_file, keep_going=keep_going), verbose=verbose, keep_going=keep_going)
                print(f"butterfly: rebuilt in {time.perf_counter() - start:.1f} s", flush=True)
            except UserError as error:
                print(f"butterfly: error: {error} (still serving the previous site)", flush=True)
    finally:
        server.shutdown()
        server.server_close()


def load_for_rebuilds(config, manifest: dict, *, verbose: bool = False) -> int:
    """Load what a rebuild of this site uses, as a build that computed leaves it: the MkDocs
    processes, each experiment's model (which imports TensorFlow) with its analysis traced, and
    the drawing workers, which draw one throw-away figure set to load their fonts and caches.
    ``butterfly serve`` calls it once it serves, so that its first rebuild after a build that had
    nothing to do is as quick as later ones. Returns how many models it loaded."""
    from generator.stages.context import LOADED_MODELS, Build, ExperimentRun
    from generator.stages.drawing import worker_pool
    from generator.stages.model import load_saved
    from generator.stages.publish import prepare_site

    build = Build(config, verbose=verbose)
    prepare_site(build)
    pool = worker_pool(build.jobs)
    settings = {experiment.id: experiment for experiment in config.experiments}
    loaded = 0
    for experiment in manifest["experiments"]:
        model_dir = Path(experiment["model_dir"])  # the model's cache entry, named by its key
        if model_dir.name in LOADED_MODELS or not (model_dir / "model.keras").is_file():
            continue
        run = ExperimentRun(build, settings[experiment["id"]])
        with build.quiet_tensorflow():
            model = load_saved(model_dir / "model.keras")
            analysed = trace_analysis(model, run, experiment["model"])
        LOADED_MODELS[model_dir.name] = model
        loaded += 1
        if pool is not None and not isinstance(analysed, UserError):
            draw_throw_away(pool, analysed, experiment["model"], run.experiment.figures, build.languages)
    return loaded


def trace_analysis(model, run, model_record: dict):
    """Analyse a mid-grey image with the experiment's attack settings (its target left out):
    this traces the model calls an analysis makes, which the model keeps. Returns the analysis
    ((record, arrays), or the UserError that stopped it)."""
    import numpy as np

    from generator.analysis.record import analyse_images
    from generator.stages.images import attack_settings

    experiment = run.experiment
    settings = attack_settings(run, {"target": None}, experiment.key("attack"))
    grey = np.full(model_record["input_shape"], 0.5, dtype=np.float32)
    return analyse_images(model, [(grey, None, settings)], model_record["class_names"],
                          change_threshold=experiment.attack.change_threshold,
                          noise_draws=experiment.attack.noise_draws, frames=experiment.figures.gif_max_frames)[0]


def draw_throw_away(pool, analysed: tuple, model_record: dict, figure_settings, languages: list[str]) -> None:
    """Draw the figures of an analysed image in every language and part by the drawing workers,
    into a folder then removed: a worker's first set costs it about half a second more."""
    import tempfile
    from concurrent.futures import wait

    from generator.figures import SET_PARTS
    from generator.stages.images import draw_image_figures

    record, arrays = analysed
    with tempfile.TemporaryDirectory(prefix="butterfly-warm-up-") as scratch:
        jobs = []
        for lang in languages:
            out = Path(scratch) / lang
            out.mkdir()
            jobs += [pool.submit(draw_image_figures, record, arrays, model_record["class_labels"][lang],
                                 "", figure_settings, lang, out, part) for part in range(SET_PARTS)]
        wait(jobs)
