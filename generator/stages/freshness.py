"""Is the site up to date? A fingerprint of everything a build reads, checked before any work.

A build whose config, input files (images, model files, data), code, templates, mkdocs.yml,
fonts, library versions, environment and options are those of the last successful build, and
whose ``site/`` is as that build left it, has nothing to do: it says so and stops, without
importing TensorFlow, rendering pages or running MkDocs.

File contents are compared by SHA-256. A file whose size and modification time are those seen
last time is not read again: ``build/fingerprint.json`` keeps the digests, the fingerprint of
the inputs and the listing (path, size, modification time) of the ``site/`` that build made.

`quickly_up_to_date` answers the same question before the config is even parsed: when the
config file, every file the last build read (by size and modification time), the folders it
walked, its options, environment, Python packages and fonts are as they were, and the site is
as it left it, there is nothing to do. Anything it cannot confirm sends the build the long way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat as file_modes
import subprocess
import sys
import sysconfig
from pathlib import Path

from generator.cache import PACKAGE_DIR, content_key, file_digest
from generator.inputs.paths import project_root

REPO_ROOT = PACKAGE_DIR.parent

FINGERPRINT_FILE = "fingerprint.json"
# Environment variables a build reads that change what it writes.
ENVIRONMENT = ("SOURCE_DATE_EPOCH", "BUTTERFLY_SITE_URL", "BUTTERFLY_CJK_FONT", "BUTTERFLY_CACHE",
               "BUTTERFLY_DOWNLOAD_URL")
# Everything of the project itself that a build reads: code (with the explorer's assets),
# page templates and theme overrides, MkDocs' shared config, embedded data, images and scripts.
PROJECT_FILES = (PACKAGE_DIR, REPO_ROOT / "templates", REPO_ROOT / "mkdocs.yml", REPO_ROOT / "content")


def _tree(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else every file below it (caches of Python excluded)."""
    if not path.is_dir():
        return [path]
    files = []
    for folder, subfolders, names in os.walk(path):
        subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
        files += [Path(folder) / name for name in sorted(names) if not name.endswith(".pyc")]
    return files


def input_files(config) -> tuple[list[Path], list[Path]]:
    """(every file a build of ``config`` reads, in a stable order; the folders walked to find
    them, whose listings tell when a file appears or goes)."""
    from generator.inputs.download import cache_root

    files = [Path(config.config_file)]
    roots = [Path(root) for root in PROJECT_FILES]
    for experiment in config.experiments:
        files += [experiment.resolve(entry.path) for entry in experiment.images]
        if experiment.model.source == "file" and experiment.model.path:
            path = experiment.resolve(experiment.model.path)
            files += sorted(path.parent.glob("*.bin")) + [path] if path.suffix == ".json" else [path]
            if path.suffix == ".json":
                roots.append(path.parent)
        data = experiment.data
        if data.source in ("idx", "folder") and data.path:
            roots.append(experiment.resolve(data.path))
        elif data.source == "download" and data.recipe:
            roots.append(cache_root() / "downloads" / data.recipe)
    for root in roots:
        files += _tree(root) if root.is_dir() or root.is_file() else []
    absolute = lambda paths: list(dict.fromkeys(Path(os.path.abspath(f)) for f in paths))  # noqa: E731
    return absolute(files), absolute(root for root in roots if root.is_dir())


def tree_listing(folder: Path) -> list[str]:
    """The files below ``folder`` (as _tree finds them), relative to it."""
    return [path.relative_to(folder).as_posix() for path in _tree(folder)]


def surroundings(options: dict) -> str:
    """What besides files decides a build, read without importing anything heavy: the options,
    the environment variables a build reads, the Python and its installed packages (the folder
    of installed packages changes when one is added, removed or upgraded), and the fonts a
    Chinese figure could use (fc-match's answer and the well-known font files)."""
    from generator.figures.words import FONT_VARIABLE, WELL_KNOWN_CJK_FONTS

    fonts = []
    if shutil.which("fc-match"):
        answer = subprocess.run(["fc-match", "-f", "%{file}", ":lang=zh-cn"], capture_output=True, text=True)
        fonts.append(answer.stdout)
    for path in [os.environ.get(FONT_VARIABLE) or "", *WELL_KNOWN_CJK_FONTS, *fonts]:
        try:
            stat = os.stat(path)
            fonts.append([path, stat.st_size, stat.st_mtime_ns])
        except OSError:
            fonts.append([path, None])
    packages = [os.stat(folder).st_mtime_ns for folder in {sysconfig.get_paths()["purelib"],
                                                           sysconfig.get_paths()["platlib"]}]
    return content_key("surroundings", options, {name: os.environ.get(name) for name in ENVIRONMENT},
                       sys.executable, sorted(packages), fonts, str(REPO_ROOT))


def quickly_up_to_date(config_file: Path, options: dict) -> bool:
    """True when, without parsing the config, nothing a build would read can have changed
    since the last successful build and the site is as it left it (see the module's notes)."""
    root = project_root(config_file)
    try:
        recorded = json.loads((root / "build" / FINGERPRINT_FILE).read_text(encoding="utf-8"))
        quick = recorded["quick"]
        if (quick["config"] != os.path.abspath(config_file) or not (root / "build" / "manifest.json").is_file()
                or quick["surroundings"] != surroundings(options)):
            return False
        for path, seen in recorded["files"].items():
            try:
                stat = os.stat(path)
            except OSError:
                if seen != "missing":
                    return False
                continue
            if seen == "missing" or not file_modes.S_ISREG(stat.st_mode) or seen[:2] != [stat.st_size,
                                                                                        stat.st_mtime_ns]:
                return False
        if any(tree_listing(Path(folder)) != names for folder, names in quick["trees"].items()):
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded.get("site") is not None and recorded["site"] == site_listing(root / "site")


def file_digests(files: list[Path], known: dict) -> dict[str, list]:
    """{path: [size, modification time (ns), SHA-256]} of ``files`` ("missing" for a path that is
    not a readable file: the build will say what is wrong with it); a digest in ``known`` is
    reused while its size and time are unchanged."""
    digests = {}
    for path in files:
        key = str(path)
        try:
            stat = path.stat()
        except (OSError, RuntimeError):  # missing, or a loop of symbolic links
            digests[key] = "missing"
            continue
        if not file_modes.S_ISREG(stat.st_mode):  # a folder where a file should be
            digests[key] = "missing"
            continue
        seen = known.get(key)
        if isinstance(seen, list) and seen[:2] == [stat.st_size, stat.st_mtime_ns]:
            digests[key] = seen
        else:
            try:
                digests[key] = [stat.st_size, stat.st_mtime_ns, file_digest(path)]
            except OSError:  # unreadable
                digests[key] = "missing"
    return digests


def site_listing(site_dir: Path) -> str | None:
    """A digest of every file under ``site_dir`` (relative path, size, modification time), or
    None when there is no site."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        return None
    digest = hashlib.sha256()
    for path in _tree(site_dir):
        stat = path.stat()
        digest.update(f"{path.relative_to(site_dir).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _contents(files: dict) -> dict[str, str]:
    """{path: SHA-256 or "missing"} of file_digests' records."""
    return {path: seen if seen == "missing" else seen[2] for path, seen in files.items()}


class Fingerprint:
    """What a build of ``config`` depends on, taken before it reads anything.

    ``settings``: the build's own determinants (options, library versions, fonts, ...), any
    JSON-serialisable values."""

    def __init__(self, config, build_dir: Path, settings: dict, options: dict):
        self.path = Path(build_dir) / FINGERPRINT_FILE
        self.config_file, self.options = os.path.abspath(config.config_file), options
        known = self._read().get("files", {})
        files, self.trees = input_files(config)
        self.files = file_digests(files, known)
        environment = {name: os.environ.get(name) for name in ENVIRONMENT}
        self.settings = content_key("settings", environment, settings, str(config.base_dir), str(REPO_ROOT))
        self.inputs = content_key("inputs", sorted(_contents(self.files).items()), self.settings)

    def _read(self) -> dict:
        try:
            recorded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def site_is_current(self, site_dir: Path) -> bool:
        """True if the last successful build had these very inputs and ``site_dir`` is as it left it."""
        recorded = self._read()
        return (recorded.get("inputs") == self.inputs and recorded.get("site") is not None
                and recorded.get("site") == site_listing(site_dir))

    def changes(self, site_dir: Path, limit: int = 3) -> list[str]:
        """Why the site is not current: what differs from the last successful build."""
        recorded = self._read()
        if not recorded:
            return ["no earlier build"]
        reasons = []
        if recorded.get("settings") != self.settings:
            reasons.append("options, library versions, fonts or environment")
        before, now = _contents(recorded.get("files", {})), _contents(self.files)
        changed = [path for path in sorted(set(before) | set(now)) if before.get(path) != now.get(path)]
        reasons += [f"{path} changed" for path in changed[:limit]]
        if len(changed) > limit:
            reasons.append(f"{len(changed) - limit} more files changed")
        if recorded.get("site") is None or recorded.get("site") != site_listing(site_dir):
            reasons.append(f"{site_dir} is not as the last build left it")
        return reasons

    def record(self, site_dir: Path) -> None:
        """Note, after a successful build, the inputs it was made from and the site it made."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.tmp")
        quick = {"config": self.config_file, "surroundings": surroundings(self.options),
                 "trees": {str(folder): tree_listing(folder) for folder in self.trees}}
        scratch.write_text(json.dumps({"inputs": self.inputs, "settings": self.settings, "site": site_listing(site_dir),
                                       "files": self.files, "quick": quick}, indent=0), encoding="utf-8")
        scratch.replace(self.path)
