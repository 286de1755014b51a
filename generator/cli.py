"""``butterfly``: build, train, check, serve, deploy or clean the tutorial site.

Exit status: 0 on success, 2 on a user error (one line, no traceback), 1 on an internal error.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from generator.errors import UserError

# TensorFlow prints pages of start-up notes; keep warnings and errors only, unless -v.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=None, metavar="PATH",
                        help="site configuration (default: site_config/site.yml)")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail, tracebacks on errors")

    parser = argparse.ArgumentParser(prog="butterfly", description=__doc__.split("\n")[0], parents=[common])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", parents=[common], help="run the whole pipeline and build the site")
    build.add_argument("--keep-going", action="store_true",
                       help="build the other images when one fails; list failures on the home page")
    commands.add_parser("train", parents=[common], help="train (or reuse) the model only")
    commands.add_parser("check", parents=[common], help="validate the config and its inputs; build nothing")
    serve = commands.add_parser("serve", parents=[common], help="build, then preview the site with live reload")
    serve.add_argument("--keep-going", action="store_true", help="as for build")
    serve.add_argument("--addr", default="127.0.0.1:8000", help="address to serve on (default %(default)s)")
    deploy = commands.add_parser("deploy", parents=[common], help="build, then publish to GitHub Pages (gh-pages)")
    deploy.add_argument("--remote", default="origin", help="git remote to push to (default %(default)s)")
    commands.add_parser("clean", parents=[common], help="remove build outputs (build/ and site/) only")
    return parser


def _check(args) -> int:
    from generator.pipeline import check_all
    from generator.inputs.config import load_config

    summary = check_all(load_config(args.config), verbose=args.verbose)
    print(summary)
    return 0


def _train(args) -> int:
    from generator.pipeline import run_train
    from generator.inputs.config import load_config

    manifest = run_train(load_config(args.config), verbose=args.verbose)
    training = manifest.get("training")
    if training:
        how = "reused from cache" if training["cached"] else f"trained in {training['seconds']:.1f} s"
        print(f"test accuracy {training['test_accuracy']:.2%} after {training['epochs']} epochs ({how})")
    else:
        print(f"model imported from {manifest['model']['file']}: nothing to train")
    return 0


def _build(args) -> int:
    from generator.pipeline import run_build
    from generator.inputs.config import load_config

    config = load_config(args.config)
    manifest = run_build(config, verbose=args.verbose, keep_going=args.keep_going)
    failures = manifest.get("failures") or []
    print(f"site built in {config.base_dir / 'site'} ({len(manifest['images'])} images"
          f"{f', {len(failures)} failed' if failures else ''})")
    return 0


def _serve(args) -> int:
    from generator.pipeline import run_build
    from generator.inputs.config import load_config
    from generator.site.mkdocs import serve

    from generator.inputs.config import REPO_ROOT

    config = load_config(args.config)
    run_build(config, verbose=args.verbose, keep_going=args.keep_going)
    serve(REPO_ROOT, config.base_dir / "build" / "docs", args.addr)
    return 0


def _deploy(args) -> int:
    from generator.pipeline import run_build
    from generator.inputs.config import load_config
    from generator.site.mkdocs import deploy

    from generator.inputs.config import REPO_ROOT

    config = load_config(args.config)
    run_build(config, verbose=args.verbose)
    deploy(REPO_ROOT, config.base_dir / "build" / "docs", remote=args.remote)
    print(f"published to the gh-pages branch of remote '{args.remote}'")
    return 0


def _clean(args) -> int:
    from generator.pipeline import clean
    from generator.inputs.config import DEFAULT_CONFIG, project_root

    removed = clean(project_root(args.config or DEFAULT_CONFIG))
    print("removed " + ", ".join(str(p) for p in removed) if removed else "nothing to remove")
    return 0


COMMANDS = {"check": _check, "train": _train, "build": _build, "serve": _serve, "deploy": _deploy, "clean": _clean}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as error:
        print(f"butterfly: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("butterfly: interrupted; earlier output is unchanged", file=sys.stderr)
        return 130
    except Exception as error:  # an internal error: say so, with the traceback when asked for
        if args.verbose:
            traceback.print_exc()
        print(f"butterfly: internal error: {type(error).__name__}: {error}"
              + ("" if args.verbose else " (run with -v for the traceback)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
