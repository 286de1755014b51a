"""``butterfly``: build, train, check, serve, deploy or clean the tutorial site.

Exit status: 0 on success, 2 on a user error (one line, no traceback), 1 on an internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from generator.childproc import Terminated, raise_on_sigterm
from generator.errors import UserError

# TensorFlow prints pages of start-up notes; keep warnings and errors only, unless -v.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=None, metavar="PATH",
                        help="site configuration (default: site_config/site.yml)")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail, tracebacks on errors")
    common.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="if another build of this project is running, wait this long for it (default: stop at once)")

    parser = argparse.ArgumentParser(prog="butterfly", description=__doc__.split("\n")[0], parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", parents=[common], help="run the whole pipeline and build the site")
    build.add_argument("--keep-going", action="store_true",
                       help="build the other images when one fails; list failures on the home pages")
    build.add_argument("--jobs", type=_positive, default=None, metavar="N",
                       help="processes drawing figures in parallel (default: the number of cores)")
    commands.add_parser("train", parents=[common], help="train (or reuse) the model only")
    commands.add_parser("check", parents=[common], help="validate the config and its inputs; build nothing")
    serve = commands.add_parser("serve", parents=[common], help="build, then preview the site with live reload")
    serve.add_argument("--keep-going", action="store_true", help="as for build")
    serve.add_argument("--addr", default="127.0.0.1:8000", help="address to serve on (default %(default)s)")
    deploy = commands.add_parser("deploy", parents=[common], help="build, then publish to GitHub Pages (gh-pages)")
    deploy.add_argument("--remote", default="origin", help="git remote to push to (default %(default)s)")
    commands.add_parser("clean", parents=[common], help="remove build outputs (build/ and site/) only")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _check(args) -> int:
    from generator.pipeline import check_all
    from generator.inputs.config import load_config

    summary = check_all(load_config(args.config), verbose=args.verbose)
    print(summary)
    return 0


def _train(args) -> int:
    from generator.pipeline import run_train
    from generator.inputs.config import load_config

    for record in run_train(load_config(args.config), verbose=args.verbose, wait=args.wait):
        training = record["training"]
        if training:
            print(f"{record['id']}: test accuracy {training['test_accuracy']:.2%} on {training['test_size']:,} "
                  f"test images after {training['epochs']} epochs")
        else:
            print(f"{record['id']}: model imported from {record['model']['file']}: nothing to train")
    return 0


def _build(args) -> int:
    from generator.stages.freshness import quickly_up_to_date

    config_file = Path(args.config or "site_config/site.yml")
    if config_file.is_file() and quickly_up_to_date(config_file, {"keep_going": args.keep_going}):
        print("butterfly: site is up to date: nothing to do", file=sys.stderr)
        return 0

    from generator.inputs.config import load_config
    from generator.pipeline import run_build

    config = load_config(args.config, keep_going=args.keep_going)
    manifest = run_build(config, verbose=args.verbose, keep_going=args.keep_going, jobs=args.jobs, wait=args.wait)
    experiments = manifest["experiments"]
    images = sum(len(e["images"]) for e in experiments)
    failures = sum(len(e["failures"]) for e in experiments)
    print(f"site in {config.base_dir / 'site'} ({len(experiments)} experiment"
          f"{'s' if len(experiments) != 1 else ''}, {images} images{f', {failures} failed' if failures else ''})")
    return 0


def _serve(args) -> int:
    from generator.serve import serve

    serve(args.config, addr=args.addr, verbose=args.verbose, keep_going=args.keep_going)
    return 0


def _deploy(args) -> int:
    from generator.inputs.config import load_config
    from generator.pipeline import run_build
    from generator.site.mkdocs import deploy

    config = load_config(args.config)
    run_build(config, verbose=args.verbose, wait=args.wait)
    deploy(config.base_dir / "site", config.base_dir, remote=args.remote)
    print(f"published to the gh-pages branch of remote '{args.remote}'")
    return 0


def _clean(args) -> int:
    from generator.pipeline import clean
    from generator.inputs.config import DEFAULT_CONFIG, project_root

    config_file = Path(args.config or DEFAULT_CONFIG)
    # The project is found through its config: without one, this folder may not be a project.
    if not config_file.is_file():
        raise UserError(f"config file not found: {config_file}; run clean in the project's folder or give --config")
    removed = clean(project_root(config_file), wait=args.wait)
    print("removed " + ", ".join(str(p) for p in removed) if removed else "nothing to remove")
    return 0


COMMANDS = {"check": _check, "train": _train, "build": _build, "serve": _serve, "deploy": _deploy, "clean": _clean}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM (kill, a closed terminal, CI cancelling) unwinds like Ctrl-C: scratch folders are
    # removed and child processes stopped on the way out.
    raise_on_sigterm()
    try:
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"butterfly: error: {error}", file=sys.stderr)
        return 2
    except Terminated:
        print("butterfly: terminated; earlier output is unchanged", file=sys.stderr)
        return Terminated.exit_status
    except KeyboardInterrupt:
        print("butterfly: interrupted; earlier output is unchanged", file=sys.stderr)
        return 130
    except Exception as error:  # an internal error: say so, with the traceback when asked for
        if args.verbose:
            traceback.print_exc()
        print(f"butterfly: internal error: {type(error).__name__}: {error}"
              + ("" if args.verbose else " (run with -v for the traceback)"), file=sys.stderr)
        return 1


def run() -> None:
    """The ``butterfly`` command: main(), then the process ends at once. By then every file is
    written and closed; the drawing workers and MkDocs processes are stopped here, and what is
    skipped is the interpreter's teardown, which takes about a second once TensorFlow is loaded.
    Under a profiler or a tracer (coverage), which write their results at exit, it exits as usual."""
    from generator.site.mkdocs import stop_workers
    from generator.stages.drawing import stop_pool

    code = main()
    stop_pool(final=True)  # also one a failed build's stage was still starting
    stop_workers()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
