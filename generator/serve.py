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
        _load_for_rebuilds(config, manifest, verbose)
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


def _load_for_rebuilds(config, manifest: dict, verbose: bool) -> None:
    from generator.pipeline import load_for_rebuilds

    try:
        loaded = load_for_rebuilds(config, manifest, verbose=verbose)
    except Exception as error:  # a rebuild loads what it needs itself, and reports what fails
        print(f"butterfly: could not load for rebuilds ({error}); a rebuild will load what it needs", flush=True)
        return
    if loaded:
        print(f"butterfly: ready to rebuild ({loaded} model{'s' if loaded != 1 else ''} loaded)", flush=True)
