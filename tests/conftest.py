"""Shared fixtures: small real inputs made on the fly, the repository's own paths, and helpers for
tests that start processes."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# CNN Explainer's model and photos, as the project ships them (content/cnn-explainer).
CNN_EXPLAINER = REPO / "content" / "cnn-explainer"
SHARED_CNN_EXPLAINER = SHARED / "fixtures" / "cnn-explainer"


@pytest.fixture(scope="session")
def small_idx_dir(tmp_path_factory) -> Path:
    """An IDX directory with 30 training and 10 test images per class, cut from the embedded subset."""
    from generator.inputs.datasets import IDX_FILES, read_idx, write_idx

    source = REPO / "content" / "fashion-mnist"
    out = tmp_path_factory.mktemp("idx")
    for split, per_class in (("train", 30), ("t10k", 10)):
        images = read_idx(source / f"{split}-images-idx3-ubyte.gz")
        labels = read_idx(source / f"{split}-labels-idx1-ubyte.gz")
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
        write_idx(out / f"{split}-images-idx3-ubyte.gz", images[keep])
        write_idx(out / f"{split}-labels-idx1-ubyte.gz", labels[keep])
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.gz" for s in IDX_FILES.values())
    return out


@pytest.fixture
def project(tmp_path, small_idx_dir):
    """A throw-away project folder: site_config/site.yml on the small IDX data, two images, 1 epoch.

    Returns a function ``write(**sections)`` that (re)writes the config with the given sections
    merged over the defaults and returns its path.
    """
    images = tmp_path / "images"
    images.mkdir()
    for name in ("ankle-boot-5420.png", "trouser-8183.png"):
        shutil.copy(REPO / "content" / "images" / name, images / name)
    (tmp_path / "site_config").mkdir()

    def write(**sections) -> Path:
        config = {
            "data": {"source": "idx", "path": str(small_idx_dir)},
            "training": {"epochs": 1, "batch_size": 32},
            "images": [{"path": "images/ankle-boot-5420.png", "label": "Ankle boot"},
                       {"path": "images/trouser-8183.png", "label": "Trouser"}],
        }
        for key, value in sections.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "site_config" / "site.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


def copy_config(source: Path, root: Path) -> Path:
    """``source`` rewritten into ``root/site_config/site.yml`` with absolute paths, so it builds in ``root``."""
    config = yaml.safe_load(source.read_text())
    base = REPO
    for experiment in config.get("experiments") or [config]:
        for entry in experiment["images"]:
            entry["path"] = str((base / entry["path"]).resolve())
        if (experiment.get("model") or {}).get("path"):
            experiment["model"]["path"] = str((base / experiment["model"]["path"]).resolve())
    (root / "site_config").mkdir(parents=True, exist_ok=True)
    target = root / "site_config" / "site.yml"
    target.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return target


def scratch_project(root: Path, config: str = "site.yml") -> Path:
    """A copy of the project's content and one of its configs in ``root`` (as site_config/site.yml),
    so that a build there sees the same relative paths as in the repository."""
    shutil.copytree(REPO / "content", root / "content", dirs_exist_ok=True)
    (root / "site_config").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "site_config" / config, root / "site_config" / "site.yml")
    return root / "site_config" / "site.yml"


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The default site, built for real from site_config/site.yml in a scratch copy; returns its root."""
    from generator.inputs.config import load_config
    from generator.pipeline import run_build

    root = tmp_path_factory.mktemp("default-site")
    run_build(load_config(scratch_project(root)))
    return root


def processes_with(marker: str) -> dict[int, bytes]:
    """The running processes whose environment holds ``marker``: their command lines by pid."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def default_sigint() -> None:
    """A ``preexec_fn``: SIGINT stops the child as Ctrl-C would, also when the tests themselves
    run with SIGINT ignored (started in the background by a shell, or under nohup)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
