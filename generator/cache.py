"""Content-addressed stage cache with build-beside-then-swap writes.

A stage's output lives in ``build/cache/<stage>/<key>/`` where the key hashes everything the
output depends on. Outputs are written to a hidden scratch folder beside it and renamed into
place only when the stage succeeded, so an interrupted build never leaves a half-written entry.

Whole output folders (``build/docs``, ``site``) are replaced with :func:`swap_in`: on Linux one
``renameat2(RENAME_EXCHANGE)`` call, so at every instant the folder holds either the old or the
new version. Where the kernel or file system cannot exchange, two renames are used and a
process killed between them leaves ``.<name>.butterfly-old`` behind, which
:func:`recover_swaps` puts back at the next start.

Scratch folders of a killed process (``kill -9``, power loss) are removed by
:func:`sweep_scratch`. Both clean-ups assume no other build is running: call them while holding
the build lock (:mod:`generator.buildlock`).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PACKAGE_DIR = Path(__file__).resolve().parent

# Hidden siblings of a swapped folder; distinctive, so a scan never mistakes a user's folder for one.
SWAP_OLD_SUFFIX = ".butterfly-old"
SWAP_NEW_SUFFIX = ".butterfly-new"


def content_key(*parts) -> str:
    """A short stable hash of JSON-serialisable parts (dicts are hashed with sorted keys)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def code_version(*module_names: str) -> str:
    """Hash of the named source files under ``generator/`` (a file or a package folder each)."""
    digest = hashlib.sha256()
    for name in module_names:
        target = PACKAGE_DIR / name
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        for file in files:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:20]


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class StageCache:
    """``build/cache``: one folder per stage output, keyed by content."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        return self.path(stage, key).is_dir()

    @contextmanager
    def write(self, stage: str, key: str) -> Iterator[Path]:
        """Yield a scratch folder; it becomes the entry only if the block finishes without error.

        Any exception, including the one a SIGTERM handler raises (see
        :func:`generator.childproc.raise_on_sigterm`), removes the scratch folder.
        """
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
        try:
            yield scratch
            if not final.exists():
                os.replace(scratch, final)
            elif not exchange_folders(scratch, final):
                shutil.rmtree(final)
                os.replace(scratch, final)
            # After an exchange the scratch path holds the replaced entry; finally removes it.
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def link_or_copy(source: str, target: str) -> None:
    """Hard-link a cached file into an output folder (build/docs, then site/): no bytes copied.
    Copy it where the file system cannot link. Cache entries are never written again once made,
    and nothing writes into build/docs or site/ after they are made, so sharing the file is safe."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def template_cache(folder: Path):
    """Jinja's bytecode cache in ``folder`` (made if missing): templates compiled once are kept
    there, checked against each template's source. The pages stage and the MkDocs workers share
    one folder (Build.compiled_templates)."""
    import jinja2

    Path(folder).mkdir(parents=True, exist_ok=True)
    return jinja2.FileSystemBytecodeCache(str(folder))


def sweep_scratch(cache_root: Path) -> list[Path]:
    """Remove scratch folders that killed builds left in ``cache_root/<stage>/``; return them.

    Every hidden folder in a stage folder is scratch (entries are named by their key). Call it
    only while holding the build lock, or it could remove another build's work in progress.
    """
    cache_root = Path(cache_root)
    removed: list[Path] = []
    if not cache_root.is_dir():
        return removed
    for stage_dir in sorted(cache_root.iterdir()):
        if not stage_dir.is_dir() or stage_dir.is_symlink():
            continue
        for entry in sorted(stage_dir.iterdir()):
            if entry.name.startswith(".") and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
                removed.append(entry)
    return removed


# --- swapping whole folders -----------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# What renameat2 answers when the kernel or the file system cannot exchange: fall back.
_EXCHANGE_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM})


def _load_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2   # glibc 2.28 and later
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def exchange_folders(first: Path, second: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False, having changed nothing, where the platform or file system cannot do it;
    raises :class:`OSError` for any other failure (a path missing, another device).
    """
    if _renameat2 is None:
        return False
    result = _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _old_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}{SWAP_OLD_SUFFIX}")


def fresh_sibling(target: Path) -> Path:
    """Where to build the next version of folder ``target``: ``.<name>.butterfly-new`` beside it.

    Any stale folder of that name (an earlier build that died) is removed first; the returned
    path does not exist. A leftover of this name is also cleared by :func:`recover_swaps`.
    """
    fresh = Path(target).with_name(f".{Path(target).name}{SWAP_NEW_SUFFIX}")
    shutil.rmtree(fresh, ignore_errors=True)
    return fresh


def swap_in(new: Path, target: Path) -> None:
    """Replace folder ``target`` by the finished folder ``new``, then delete the old copy.

    On Linux the replacement is one atomic exchange; elsewhere (or when the file system
    refuses) two renames, whose crash window :func:`recover_swap` repairs.
    """
    new, target = Path(new), Path(target)
    _recover_old_copy(target)   # not recover_swap: `new` may be the `.butterfly-new` sibling itself
    if not target.exists() and not target.is_symlink():
        os.replace(new, target)   # nothing to keep: one rename is already atomic
        return
    if exchange_folders(new, target):
        shutil.rmtree(new)        # the exchange left the old copy at the new folder's path
        return
    old = _old_sibling(target)
    os.replace(target, old)
    os.replace(new, target)       # killed just before this line: recover_swap restores `old`
    shutil.rmtree(old)


def recover_swap(target: Path) -> list[str]:
    """Repair what a swap of ``target`` killed half-way left behind; one line per repair.

    ``.<name>.butterfly-old`` with ``target`` missing is the old copy, put back; with ``target``
    present it is a finished swap's leftover, removed. ``.<name>.butterfly-new`` is an unfinished
    or superseded build, removed.
    """
    target = Path(target)
    repairs = _recover_old_copy(target)
    fresh = target.with_name(f".{target.name}{SWAP_NEW_SUFFIX}")
    if fresh.is_dir() and not fresh.is_symlink():
        shutil.rmtree(fresh)
        repairs.append(f"removed {fresh}, left by an interrupted build")
    return repairs


def _recover_old_copy(target: Path) -> list[str]:
    old = _old_sibling(target)
    if not old.is_dir() or old.is_symlink():
        return []
    if not target.exists() and not target.is_symlink():
        os.replace(old, target)
        return [f"restored {target} from an interrupted build"]
    shutil.rmtree(old)
    return [f"removed {old}, left by an interrupted build"]


def recover_swaps(folder: Path) -> list[str]:
    """:func:`recover_swap` for every swapped folder in ``folder`` with leftovers; one line per repair.

    Only hidden ``.<name>.butterfly-old`` / ``.<name>.butterfly-new`` folders are looked at.
    Call it at the start of a build while holding the build lock.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    targets = []
    for entry in sorted(folder.iterdir()):
        for suffix in (SWAP_OLD_SUFFIX, SWAP_NEW_SUFFIX):
            name = entry.name
            if name.startswith(".") and name.endswith(suffix) and len(name) > len(suffix) + 1:
                target = folder / name[1:-len(suffix)]
                if target not in targets:
                    targets.append(target)
    repairs: list[str] = []
    for target in targets:
        repairs += recover_swap(target)
    return repairs
