"""A process that builds one language's MkDocs project on request, kept warm between builds.

Started by :func:`generator.site.mkdocs.start_workers` at the start of a build, it loads
MkDocs, Material and the Markdown extensions while the build computes, then reads requests from
stdin, one JSON object per line ({"config_file", "site_dir", "strict", "cwd", "env"}), builds
each as ``mkdocs build --clean`` would, and answers on stdout with one line: {"ok", "log",
"error"}, where "log" holds MkDocs' warnings and errors ("WARNING -  ..."). ``butterfly serve``
keeps its workers, so a rebuild pays for neither the imports nor, in Chinese, jieba's dictionary.

Each worker serves one language: jieba's dictionary is global to the process, and the languages
set different ones. Given the language's config of the previous build, a worker first builds a
one-page project with it and throws the result away: a first build loads much that later ones
reuse (Markdown extensions, Pygments' lexers, jieba's dictionary), about half a second, and more
in Chinese.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path


class _Collect(logging.Handler):
    """Keeps the text of every record it handles, as MkDocs' command line prints it."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname:<8}-  {record.getMessage()}")


def _build(config) -> None:
    """Build a loaded MkDocs config as its command line does (``--clean``)."""
    from mkdocs.commands.build import build

    config.plugins.on_startup(command="build", dirty=False)
    try:
        build(config, dirty=False)
    finally:
        config.plugins.on_shutdown()


def build_one(config_file: str, site_dir: str, strict: bool, cwd: str, env: dict) -> dict:
    """What ``mkdocs build --clean --config-file ... --site-dir ... [--strict]`` does, in this
    process. MkDocs counts the warnings of its own loggers and, strict, fails on any."""
    from mkdocs.config import load_config

    os.chdir(cwd)
    os.environ.update(env)
    collect = _Collect()
    logger = logging.getLogger("mkdocs")
    logger.addHandler(collect)
    error = None
    try:
        _build(load_config(config_file=config_file, site_dir=site_dir, strict=strict))
    except Exception as problem:  # Abort, a configuration error, a plugin's failure: all reported
        error = str(problem) or traceback.format_exc(limit=-3)
    finally:
        logger.removeHandler(collect)
    return {"ok": error is None, "log": collect.lines, "error": error}


# The warm-up page: a little of everything the site's pages use.
WARM_UP_PAGE = """# 蝴蝶效应 butterfly

!!! note "扰动 perturbation"
    Text.

??? info "Details"
    Text.

| a | b |
|---|---|
| 1 | 2 |

<figure markdown>
Text.
</figure>

```python
print("butterfly")
```
"""


def warm_up(config_file: str) -> None:
    """A throw-away build of the warm-up page with ``config_file`` (its nav left out); any
    failure is ignored: the real build reports its own."""
    from mkdocs.config import load_config

    logger = logging.getLogger("mkdocs")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with tempfile.TemporaryDirectory(prefix="butterfly-mkdocs-") as scratch:
            docs = Path(scratch) / "docs"
            docs.mkdir()
            (docs / "index.md").write_text(WARM_UP_PAGE, encoding="utf-8")
            os.chdir(Path(config_file).parent)  # where the config's relative paths start
            config = load_config(config_file=config_file, docs_dir=str(docs), site_dir=str(Path(scratch) / "site"))
            config["nav"] = None
            _build(config)
    except Exception:
        pass
    finally:
        logger.setLevel(level)


def main() -> None:
    # Ctrl-C reaches the whole process group; the build that started this worker stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Loading MkDocs must not slow down what the build does meanwhile (TensorFlow, the figures);
    # when the build waits for this process, nothing else competes with it.
    os.nice(5)
    # Answers go to the original stdout; anything else printed there goes to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # The imports a build needs, done before the first request arrives.
    import material.plugins.search.plugin  # noqa: F401
    import mkdocs.commands.build  # noqa: F401
    import mkdocs.config  # noqa: F401
    import pymdownx.superfences  # noqa: F401

    if len(sys.argv) > 1:
        warm_up(sys.argv[1])
    for line in sys.stdin:
        answers.write(json.dumps(build_one(**json.loads(line))) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
