"""Content-addressed stage cache with build-beside-then-swap writes.

A stage's output lives in ``build/cache/<stage>/<key>/`` where the key hashes everything the
output depends on. Outputs are written to a temporary sibling directory and renamed into place
only when the stage succeeded, so an interrupted build never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PACKAGE_DIR = Path(__file__).resolve().parent


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
        """Yield a scratch folder; it becomes the entry only if the block finishes without error."""
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
        try:
            yield scratch
            if final.exists():
                shutil.rmtree(final)
            os.replace(scratch, final)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def swap_in(new: Path, target: Path) -> None:
    """Replace folder ``target`` by the finished folder ``new`` (old copy removed afterwards)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
