"""The bad-input corpus: every way a user can get a config, an image, a dataset or a model wrong,
run through the real command line against a small project that was built once successfully.

For each case, ``butterfly build`` must stop with exit status 2 and one error line that names the
offending input (key path, file or experiment), without a traceback and without an absolute
path of the project, and leave the previous site byte for byte as it was. ``butterfly check``
must catch the same problem with one line on stderr, wherever that is possible without
computing anything; the cases it cannot catch say why (``check_passes``).

Most cases fail while the config is read, before TensorFlow is imported; the project is tiny
(the small IDX data, one epoch, two images, English only), so the file runs in a few minutes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO

BAD_INPUTS = Path(__file__).resolve().parent / "bad_inputs"
GOOD_IMAGE = "images/ankle-boot-5420.png"
# Lines a build writes to stderr while it works; anything else on stderr is the error.
PROGRESS_LINE = re.compile(r"^butterfly: (\[|site is up to date|where the time went|  )")
LONGEST_ERROR_LINE = 1200


# --- the project --------------------------------------------------------------------------------

def base_config() -> dict:
    return {
        "site": {"languages": ["en"]},
        "data": {"source": "idx", "path": "data"},
        "training": {"epochs": 1, "batch_size": 32},
        "robustness": {"samples": 20, "epsilons": [0.0, 0.1]},
        "images": [{"path": GOOD_IMAGE, "label": "Ankle boot"},
                   {"path": "images/trouser-8183.png", "label": "Trouser"}],
    }


def butterfly(project: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m generator ARGS`` in ``project``, as a user would from its root."""
    environment = {key: value for key, value in os.environ.items() if key != "BUTTERFLY_SITE_URL"}
    environment.update({"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
                        # A download recipe must fail fast and offline: the mirror does not exist.
                        "BUTTERFLY_DOWNLOAD_URL": "file:///nonexistent-butterfly-mirror",
                        "BUTTERFLY_CACHE": str(project.parent / "download-cache"), **(env or {})})
    return subprocess.Popen([sys.executable, "-m", "generator", *args], cwd=project, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under ``folder``."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def make_project(root: Path, source_idx: Path) -> Path:
    shutil.copytree(source_idx, root / "data")
    (root / "images").mkdir(parents=True)
    for name in ("ankle-boot-5420.png", "trouser-8183.png"):
        shutil.copy(REPO / "content" / "images" / name, root / "images" / name)
    (root / "site_config").mkdir()
    (root / "site_config" / "site.yml").write_text(yaml.safe_dump(base_config(), sort_keys=False))
    return root


@pytest.fixture(scope="module")
def built_project(tmp_path_factory, small_idx_dir) -> Path:
    """A tiny project (small IDX data in data/, two images, one epoch, English), built once."""
    root = make_project(tmp_path_factory.mktemp("bad-inputs") / "project", small_idx_dir)
    result = finish(butterfly(root, "build", "--config", "site_config/site.yml"), timeout=900)
    assert result.returncode == 0, result.stderr
    assert (root / "site" / "index.html").is_file()
    return root


# --- bad files ----------------------------------------------------------------------------------

def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` 8-bit grey pixels and holds almost none of them."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
            + chunk(b"IEND", b""))


def write_file(name: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def truncated_png(folder: Path) -> None:
    (folder / "truncated.png").write_bytes((REPO / "content" / "images" / "trouser-8183.png").read_bytes()[:120])


def huge_png(folder: Path) -> None:
    # 9000 x 5000 = 45 megapixels; the header says so, the pixel data is never reached.
    (folder / "huge.png").write_bytes(png_header(9000, 5000))


def folder_as_image(folder: Path) -> None:
    (folder / "folder.png").mkdir()


def symlink_loop(folder: Path) -> None:
    os.symlink("loop-b.png", folder / "loop-a.png")
    os.symlink("loop-a.png", folder / "loop-b.png")


def text_as_model(folder: Path) -> None:
    (folder / "model.keras").write_text("this is not a Keras model\n")


def bad_shard_tfjs(folder: Path) -> None:
    source = REPO / "content" / "cnn-explainer"
    shutil.copy(source / "model.json", folder / "model.json")
    (folder / "group1-shard1of1.bin").write_bytes((source / "group1-shard1of1.bin").read_bytes()[:-4000])


def copy_fixture(name: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        shutil.copy(BAD_INPUTS / name, folder / name)
    return setup


def idx_folder(labels_from: Callable[[np.ndarray], np.ndarray] | None = None, truncate: str | None = None,
               drop: str | None = None) -> Callable[[Path], None]:
    """A copy of the project's IDX data in cases/<id>/idx, with labels rewritten, one file cut
    short or one file left out."""
    def setup(folder: Path) -> None:
        from generator.inputs.datasets import read_idx, write_idx

        source, target = folder.parents[1] / "data", folder / "idx"
        shutil.copytree(source, target)
        if labels_from is not None:
            for split in ("train", "t10k"):
                labels = target / f"{split}-labels-idx1-ubyte.gz"
                write_idx(labels, labels_from(read_idx(labels)))
        if truncate is not None:
            raw = gzip.decompress((target / truncate).read_bytes())
            (target / truncate).write_bytes(gzip.compress(raw[: len(raw) // 2]))
        if drop is not None:
            (target / drop).unlink()
    return setup


def class_folders(*classes: tuple[str, int]) -> Callable[[Path], None]:
    """cases/<id>/classes/<name>/ with ``count`` small PNGs each (0 makes an empty folder)."""
    def setup(folder: Path) -> None:
        for name, count in classes:
            (folder / "classes" / name).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (28, 28), 40 * i).save(folder / "classes" / name / f"{i}.png")
    return setup


# --- the corpus ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One bad input.

    ``config``: sections merged over the project's config (a section mapping key by key, other
    values replace, None removes); ``text``: the whole config file instead. ``files`` makes the
    case's files in cases/<id>/ (paths in the config are relative to the project, so they start
    with ``cases/<id>/``). ``names``: what the error line must contain. ``check_passes``: why
    ``butterfly check`` cannot catch it, if it cannot. ``needs``: what outside the input
    modules must change before the case passes (until then it is an expected failure).
    """

    id: str
    names: str | tuple[str, ...]
    config: dict = field(default_factory=dict)
    text: str | None = None
    files: Callable[[Path], None] | None = None
    config_arg: str | None = None
    env: dict = field(default_factory=dict)
    check_passes: str | None = None
    needs: str | None = None


def image(path: str, **entry) -> dict:
    return {"images": [{"path": path, **entry}]}


def case_image(case_id: str, name: str, **entry) -> dict:
    return image(f"cases/{case_id}/{name}", **entry)


BILLION_LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["images: [{path: x.png}]"])
MANY_ALIASES = "base: &b 1\nrefs: [" + ", ".join(["*b"] * 1200) + "]\nimages: [{path: x.png}]\n"
DEEP = "images: [{path: x.png}]\nsite: {title: " + "[" * 120 + "x" + "]" * 120 + "}\n"
DUPLICATE_SECTION = (f"attack: {{method: fgsm}}\nimages: [{{path: {GOOD_IMAGE}}}]\n"
                     "data: {source: idx, path: data}\nattack: {method: pgd}\n")
XSS = 'https://example.com/"><script>alert(1)</script>'
TEN_NAMES = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]

CASES = [
    # -- the config file itself
    Case("yaml-billion-laughs", "alias", text=BILLION_LAUGHS),
    Case("yaml-too-many-aliases", "alias", text=MANY_ALIASES),
    Case("yaml-nested-too-deep", "nested", text=DEEP),
    Case("yaml-duplicate-section", ("duplicate key 'attack'", "line 4"), text=DUPLICATE_SECTION),
    Case("yaml-syntax-error", "line 3, column 7", text="site:\n  title: [unclosed\nimages: []\n"),
    Case("yaml-python-tag", "line 1", text="images: !!python/object/apply:os.system ['echo hacked']\n"),
    Case("yaml-top-level-list", "mapping", text="- images\n- data\n"),
    Case("yaml-empty-file", "images", text=""),
    Case("yaml-not-utf8", "UTF-8", text="site: {title: caf\udce9}\n"),
    Case("yaml-tab-indent", "line 2", text="site:\n\ttitle: x\nimages: []\n"),
    Case("yaml-duplicate-image-key", ("duplicate key 'path'", "line 3"),
         text=f"images:\n  - path: {GOOD_IMAGE}\n    path: images/trouser-8183.png\n"),
    Case("config-oversized", "over the limit", text="# " + "x" * 1_100_000 + "\nimages: []\n"),
    Case("config-missing", "not found", config_arg="site_config/does-not-exist.yml"),
    Case("config-is-a-folder", "folder", config_arg="site_config"),
    Case("unknown-section", ("trainng", "did you mean 'training'"), config={"trainng": {"epochs": 1}}),
    Case("huge-value", "training.epochs", config={"training": {"epochs": "9" * 300_000}}),
    Case("huge-unknown-key", "unknown key", config={"attack": {"k" * 100_000: 1}}),
    # -- site
    Case("site-null", ("site:", "mapping"), text="site:\nimages: [{path: x.png}]\n"),
    Case("section-not-a-mapping", ("attack", "mapping"), config={"attack": 5}),
    Case("site-title-number", "site.title", config={"site": {"title": 5}}),
    Case("site-title-empty-mapping", "site.title", config={"site": {"title": {}}}),
    Case("site-title-unknown-language", "site.title", config={"site": {"title": {"fr": "titre"}}}),
    Case("site-language-unknown", "site.languages", config={"site": {"languages": ["fr"]}}),
    Case("site-language-twice", "site.languages", config={"site": {"languages": ["en", "en"]}}),
    Case("site-languages-empty", "site.languages", config={"site": {"languages": []}}),
    Case("site-unknown-key", ("site", "colour"), config={"site": {"colour": "red"}}),
    Case("repo-url-script", "site.repo_url", config={"site": {"repo_url": XSS}}),
    Case("repo-url-javascript", "site.repo_url",
         config={"site": {"repo_url": "javascript://example.com/%0Aalert(document.domain)"}}),
    Case("site-url-quote", "site.site_url", config={"site": {"site_url": 'https://example.com/">'}}),
    Case("site-url-ftp", "site.site_url", config={"site": {"site_url": "ftp://example.com/"}}),
    Case("site-url-env-script", "BUTTERFLY_SITE_URL", env={"BUTTERFLY_SITE_URL": XSS}),
    # -- data
    Case("data-source-unknown", "data.source", config={"data": {"source": "s3"}}),
    Case("data-path-missing-folder", "data.path", config={"data": {"path": "no-such-folder"}}),
    Case("data-path-missing-key", "data.path", config={"data": {"path": None}}),
    Case("data-path-is-a-file", "data.path", config={"data": {"path": GOOD_IMAGE}}),
    Case("data-validation-split-range", "data.validation_split",
         config={"data": {"source": "folder", "validation_split": 1.5}}),
    Case("data-seed-text", "data.seed", config={"data": {"seed": "0"}}),
    Case("data-seed-negative", "data.seed", config={"data": {"seed": -1}}),
    Case("data-class-names-twice", ("data.class_names", "twice"),
         config={"data": {"class_names": ["a", "b", "c", "d", "e", "f", "g", "h", "a", "j"]}}),
    Case("data-class-names-twice-in-chinese", ("data.class_names", "'鞋'", "twice"),
         config={"data": {"class_names": [{"en": name, "zh": "鞋" if name in "ab" else name} for name in TEN_NAMES]}}),
    Case("data-class-name-empty", ("data.class_names", "empty"),
         config={"data": {"class_names": ["", *TEN_NAMES[1:]]}}),
    Case("data-recipe-missing", "data.recipe", config={"data": {"source": "download", "path": None}}),
    Case("data-recipe-offline", ("fashion-mnist", "by hand"),
         config={"data": {"source": "download", "recipe": "fashion-mnist", "path": None}}),
    Case("data-class-names-count", "data.class_names", config={"data": {"class_names": ["a", "b", "c"]}}),
    Case("idx-one-class", ("cases/idx-one-class/idx", "one class"),
         config={"data": {"path": "cases/idx-one-class/idx"}}, files=idx_folder(lambda y: np.zeros_like(y))),
    Case("idx-truncated", ("cases/idx-truncated/idx", "t10k-images"),
         config={"data": {"path": "cases/idx-truncated/idx"}},
         files=idx_folder(truncate="t10k-images-idx3-ubyte.gz")),
    Case("idx-file-missing", ("cases/idx-file-missing/idx", "train-labels"),
         config={"data": {"path": "cases/idx-file-missing/idx"}},
         files=idx_folder(drop="train-labels-idx1-ubyte.gz")),
    Case("folder-one-class", ("cases/folder-one-class/classes", "one class"),
         config={"data": {"source": "folder", "path": "cases/folder-one-class/classes"}},
         files=class_folders(("cat", 3))),
    Case("folder-empty-class", ("cases/folder-empty-class/classes", "dog"),
         config={"data": {"source": "folder", "path": "cases/folder-empty-class/classes"}},
         files=class_folders(("cat", 3), ("dog", 0))),
    # -- model
    Case("model-source-unknown", "model.source", config={"model": {"source": "onnx"}}),
    Case("model-blocks-range", "model.blocks", config={"model": {"blocks": 9}}),
    Case("model-blocks-too-deep-for-input", "model.blocks", config={"model": {"blocks": 4}}),
    Case("model-filters-zero", "model.filters", config={"model": {"filters": 0}}),
    Case("model-input-range-reversed", "model.input_range", config={"model": {"input_range": [1, 0]}}),
    Case("model-path-missing-key", "model.path", config={"model": {"source": "file"}}),
    Case("model-path-missing-file", ("model.path", "nope.keras"),
         config={"model": {"source": "file", "path": "nope.keras"}}),
    Case("model-unsupported-suffix", ("model.path", "cases/model-unsupported-suffix/model.onnx", "unsupported"),
         config={"model": {"source": "file", "path": "cases/model-unsupported-suffix/model.onnx"}},
         files=write_file("model.onnx", "onnx")),
    Case("model-not-a-model", ("model.path", "cases/model-not-a-model/model.keras", "zip"),
         config={"model": {"source": "file", "path": "cases/model-not-a-model/model.keras"}},
         files=text_as_model),
    Case("model-h5-not-hdf5", ("model.path", "cases/model-h5-not-hdf5/model.h5", "HDF5"),
         config={"model": {"source": "file", "path": "cases/model-h5-not-hdf5/model.h5"}},
         files=write_file("model.h5", b"\x00" * 64)),
    Case("model-lambda-layer", ("model.path", "cases/model-lambda-layer/lambda_layer.keras", "doubled", "Lambda"),
         config={"model": {"source": "file", "path": "cases/model-lambda-layer/lambda_layer.keras"}},
         files=copy_fixture("lambda_layer.keras")),
    Case("model-single-class", ("cases/model-single-class/single_class.keras", "one output unit"),
         config={"data": {"source": "none", "path": None},
                 "model": {"source": "file", "path": "cases/model-single-class/single_class.keras",
                           "class_names": ["cat", "dog"]}, "robustness": {"samples": 0},
                 "images": [{"path": GOOD_IMAGE}]},
         files=copy_fixture("single_class.keras")),
    Case("model-single-class-name", "model.class_names",
         config={"data": {"source": "none", "path": None},
                 "model": {"source": "file", "path": GOOD_IMAGE, "class_names": ["cat"]}}),
    Case("tfjs-wrong-shard-size", ("model.path", "cases/tfjs-wrong-shard-size/model.json", "shard"),
         config={"data": {"source": "none", "path": None},
                 "model": {"source": "file", "path": "cases/tfjs-wrong-shard-size/model.json",
                           "class_names": TEN_NAMES}, "robustness": {"samples": 0},
                 "images": [{"path": GOOD_IMAGE}]},
         files=bad_shard_tfjs),
    Case("data-none-needs-model-file", "data.source", config={"data": {"source": "none", "path": None}}),
    # -- training
    Case("training-epochs-bool", "training.epochs", config={"training": {"epochs": True}}),
    Case("training-seed-too-large", "training.seed", config={"training": {"seed": 2**40}}),
    Case("training-batch-size-zero", "training.batch_size", config={"training": {"batch_size": 0}}),
    Case("training-learning-rate-text", "training.learning_rate", config={"training": {"learning_rate": "fast"}}),
    Case("training-probe-image-negative", "training.probe_image", config={"training": {"probe_image": -1}}),
    Case("training-probe-image-out-of-range", "training.probe_image", config={"training": {"probe_image": 100}}),
    # -- attack
    Case("attack-method-unknown", "attack.method", config={"attack": {"method": "cw"}}),
    Case("attack-epsilon-grid-too-fine", ("attack", "epsilon_step"), config={"attack": {"epsilon_step": 1e-9}}),
    Case("attack-start-above-max", ("attack", "epsilon_start"),
         config={"attack": {"epsilon_start": 0.5, "epsilon_max": 0.1}}),
    Case("attack-epsilon-nan", "attack.epsilon_max", config={"attack": {"epsilon_max": float("nan")}}),
    Case("attack-iterations-zero", "attack.iterations", config={"attack": {"iterations": 0}}),
    Case("attack-noise-draws-range", "attack.noise_draws", config={"attack": {"noise_draws": 1000}}),
    Case("attack-noise-seed-negative", "attack.noise_seed", config={"attack": {"noise_seed": -5}}),
    Case("attack-target-unknown", ("attack.target", "Zebra"), config={"attack": {"target": "Zebra"}}),
    Case("attack-unknown-key", ("attack", "epsilon"), config={"attack": {"epsilon": 0.1}}),
    # -- figures
    Case("figures-zoom-layer-unknown", ("figures.zoom_layer", "max_pool_9"),
         config={"figures": {"zoom_layer": "max_pool_9"}}),
    Case("figures-zoom-channel-out-of-range", "figures.zoom_channel", config={"figures": {"zoom_channel": 10}}),
    Case("figures-zoom-filter-and-channel", "zoom_channel",
         config={"figures": {"zoom_channel": 1, "zoom_filter": 2}}),
    Case("figures-gif-max-kb-range", "figures.gif_max_kb", config={"figures": {"gif_max_kb": 1}}),
    Case("figures-top-k-float", "figures.top_k", config={"figures": {"top_k": 2.5}}),
    # -- robustness
    Case("robustness-epsilons-empty", "robustness", config={"robustness": {"epsilons": []}}),
    Case("robustness-epsilon-out-of-range", "robustness.epsilons", config={"robustness": {"epsilons": [2]}}),
    Case("robustness-samples-negative", "robustness.samples", config={"robustness": {"samples": -1}}),
    Case("robustness-epsilon-twice", ("robustness.epsilons", "twice"),
         config={"robustness": {"epsilons": [0.1, 0.0, 0.1]}}),
    # -- images
    Case("images-empty", "images", config={"images": []}),
    Case("images-not-a-list", ("images", "list"), config={"images": {"path": GOOD_IMAGE}}),
    Case("image-path-empty", ("images[0].path", "empty"), config=image("")),
    Case("image-missing", ("images[0].path", "file not found: cases/image-missing/nope.png"),
         config=case_image("image-missing", "nope.png")),
    Case("image-zero-bytes", ("images[0]", "cases/image-zero-bytes/empty.png", "empty"),
         config=case_image("image-zero-bytes", "empty.png"), files=write_file("empty.png", b"")),
    Case("image-not-an-image", ("images[0]", "cases/image-not-an-image/notes.png"),
         config=case_image("image-not-an-image", "notes.png"), files=write_file("notes.png", "hello\n")),
    Case("image-truncated", ("images[0]", "cases/image-truncated/truncated.png"),
         config=case_image("image-truncated", "truncated.png"), files=truncated_png),
    Case("image-over-40-megapixels", ("images[0]", "cases/image-over-40-megapixels/huge.png", "megapixels"),
         config=case_image("image-over-40-megapixels", "huge.png"), files=huge_png),
    Case("image-is-a-folder", ("images[0]", "cases/image-is-a-folder/folder.png", "is a folder"),
         config=case_image("image-is-a-folder", "folder.png"), files=folder_as_image),
    Case("image-symlink-loop", ("images[0]", "cases/image-symlink-loop/loop-a.png", "loop of symbolic links"),
         config=case_image("image-symlink-loop", "loop-a.png"), files=symlink_loop),
    Case("image-path-too-long", ("images[0].path", "too long"), config=image("x" * 5000 + ".png")),
    Case("image-path-nul-byte", ("images[0].path", "not a valid file name"), config=image("images/a\x00b.png")),
    Case("image-listed-twice", ("images[1]", "twice"),
         config={"images": [{"path": GOOD_IMAGE}, {"path": "./" + GOOD_IMAGE}]}),
    Case("image-label-unknown", ("images[0]", "Zebra"), config=image(GOOD_IMAGE, label="Zebra")),
    Case("image-label-unknown-to-new-data", ("images[0]", "Ankle boot"),
         config={"data": {"class_names": TEN_NAMES}, **image(GOOD_IMAGE, label="Ankle boot")}),
    Case("image-label-number", "images[0].label", config=image(GOOD_IMAGE, label=5)),
    Case("image-id-not-a-slug", "images[0].id", config=image(GOOD_IMAGE, id="Bad ID")),
    Case("image-unknown-key", ("images[0]", "lable"), config=image(GOOD_IMAGE, lable="Trouser")),
    Case("image-as-plain-string", "images[0]", config={"images": [GOOD_IMAGE]}),
    Case("image-attack-target-unknown", ("images[0].attack.target", "Zebra"),
         config=image(GOOD_IMAGE, attack={"target": "Zebra"})),
    Case("image-attack-unknown-key", ("images[0].attack", "epsilon"),
         config=image(GOOD_IMAGE, attack={"epsilon": 0.1})),
    # -- experiments
    Case("experiments-duplicate-ids", ("experiments", "'one'", "twice"),
         config={"images": None, "experiments": [{"id": "one", "images": [{"path": GOOD_IMAGE}]},
                                                 {"id": "one", "images": [{"path": GOOD_IMAGE}]}]}),
    Case("experiments-beside-top-level-images", ("images", "experiments"),
         config={"experiments": [{"id": "one", "images": [{"path": GOOD_IMAGE}]}]}),
    Case("experiments-empty", "experiments", config={"images": None, "experiments": []}),
    Case("experiment-id-not-a-slug", ("experiments[0]", "id"),
         config={"images": None, "experiments": [{"id": "Bad_Id", "images": [{"path": GOOD_IMAGE}]}]}),
    Case("experiment-unknown-section", ("experiments[0] (one)", "modle"),
         config={"images": None, "experiments": [{"id": "one", "modle": {}, "images": [{"path": GOOD_IMAGE}]}]}),
    Case("experiment-zoom-layer-unknown", ("experiments[1] (two).figures.zoom_layer", "pool_7"),
         config={"images": None, "experiments": [
             {"id": "one", "images": [{"path": GOOD_IMAGE}]},
             {"id": "two", "figures": {"zoom_layer": "pool_7"}, "images": [{"path": GOOD_IMAGE}]}]}),
    Case("experiment-without-images", ("experiments[0] (one).images", "required"),
         config={"images": None, "experiments": [{"id": "one"}]}),
    Case("experiment-data-path-missing", ("experiments[1] (two).data.path", "elsewhere"),
         config={"images": None, "experiments": [
             {"id": "one", "images": [{"path": GOOD_IMAGE}]},
             {"id": "two", "data": {"path": "elsewhere"}, "images": [{"path": GOOD_IMAGE}]}]}),
    Case("experiment-class-names-count", ("experiment 'two'", "data.class_names", "3 class names"),
         config={"images": None, "experiments": [
             {"id": "one", "images": [{"path": GOOD_IMAGE}]},
             {"id": "two", "data": {"class_names": ["a", "b", "c"]}, "images": [{"path": GOOD_IMAGE}]}]}),
    Case("experiment-model-lambda-layer", ("experiments[1] (two).model.path", "Lambda"),
         config={"images": None, "experiments": [
             {"id": "one", "images": [{"path": GOOD_IMAGE}]},
             {"id": "two",
              "model": {"source": "file", "path": "cases/experiment-model-lambda-layer/lambda_layer.keras"},
              "images": [{"path": GOOD_IMAGE}]}]},
         files=copy_fixture("lambda_layer.keras")),
    Case("experiment-image-missing", ("experiments[1] (two).images[0]", "nope.png"),
         config={"images": None, "experiments": [
             {"id": "one", "images": [{"path": GOOD_IMAGE}]},
             {"id": "two", "images": [{"path": "nope.png"}]}]}),
]


def write_case_config(project: Path, case: Case) -> str:
    """The case's config as site_config/<id>.yml in the project; returns the --config argument."""
    if case.config_arg is not None:
        return case.config_arg
    target = project / "site_config" / f"{case.id}.yml"
    if case.text is not None:
        target.write_bytes(case.text.encode("utf-8", "surrogateescape"))
        return f"site_config/{case.id}.yml"
    config = base_config()
    for key, value in case.config.items():
        if value is None:
            config.pop(key, None)
        elif isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    target.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=10**9))
    return f"site_config/{case.id}.yml"


@dataclass
class Outcome:
    """What ``check`` and ``build`` did with one case, and whether the site was left alone."""

    project: Path
    check: subprocess.CompletedProcess
    build: subprocess.CompletedProcess
    site_unchanged: bool
    leftovers: list[str]


def run_case(project: Path, case: Case) -> Outcome:
    site_before = tree_digest(project / "site")
    folder = project / "cases" / case.id
    folder.mkdir(parents=True, exist_ok=True)
    if case.files:
        case.files(folder)
    config_arg = write_case_config(project, case)
    # check and build side by side: check never writes.
    check = butterfly(project, "check", "--config", config_arg, env=case.env)
    build = butterfly(project, "build", "--config", config_arg, env=case.env)
    checked, built = finish(check), finish(build)
    return Outcome(project, checked, built, tree_digest(project / "site") == site_before,
                   [p.name for p in project.iterdir() if p.name.startswith(".site")])


# Cases run in this many copies of the built project at once; each copy runs its cases one
# after the other, so every build sees the site the case before it left.
PROJECTS_AT_ONCE = 4


@pytest.fixture(scope="module")
def outcomes(built_project) -> dict[str, Outcome]:
    """Every case of the corpus, run once."""
    from concurrent.futures import ThreadPoolExecutor

    projects = [built_project]
    for number in range(1, PROJECTS_AT_ONCE):
        copy = built_project.with_name(f"project-{number}")
        shutil.copytree(built_project, copy, symlinks=True)
        projects.append(copy)

    def run_share(number: int) -> dict[str, Outcome]:
        return {case.id: run_case(projects[number], case) for case in CASES[number::PROJECTS_AT_ONCE]}

    results: dict[str, Outcome] = {}
    with ThreadPoolExecutor(PROJECTS_AT_ONCE) as pool:
        for share in pool.map(run_share, range(PROJECTS_AT_ONCE)):
            results.update(share)
    return results


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not PROGRESS_LINE.match(line)]


def assert_one_clean_error(result: subprocess.CompletedProcess, names, project: Path, command: str) -> str:
    assert "Traceback" not in result.stderr, f"{command}: {result.stderr}"
    assert result.returncode == 2, f"{command}: exit {result.returncode}: {result.stderr[-3000:]}"
    lines = error_lines(result.stderr)
    assert len(lines) == 1, f"{command}: expected one error line, got: {[line[:300] for line in lines[:10]]}"
    line = lines[0]
    assert line.startswith("butterfly: error: "), f"{command}: {line}"
    assert len(line) <= LONGEST_ERROR_LINE, f"{command}: error line of {len(line)} characters"
    for name in (names,) if isinstance(names, str) else names:
        assert name in line, f"{command}: {name!r} not named in: {line}"
    for root in {str(project), str(project.resolve())}:
        assert root not in line, f"{command}: absolute project path in: {line}"
    return line


@pytest.mark.parametrize("case", [
    pytest.param(case, id=case.id, marks=[pytest.mark.xfail(strict=True, reason=case.needs)] if case.needs else [])
    for case in CASES])
@pytest.mark.slow
def test_bad_input_is_one_line_and_leaves_the_site_alone(outcomes, case):
    outcome = outcomes[case.id]
    assert_one_clean_error(outcome.build, case.names, outcome.project, "build")
    assert "training Tiny VGG" not in outcome.build.stderr, "a model was trained before the input was refused"
    if case.check_passes:
        assert outcome.check.returncode == 0 and outcome.check.stderr == "", outcome.check.stderr
    else:
        assert_one_clean_error(outcome.check, case.names, outcome.project, "check")
        assert outcome.check.stderr.count("\n") == 1, outcome.check.stderr
    assert outcome.site_unchanged
    assert outcome.leftovers == []


def test_no_config_given_reads_the_current_folder(tmp_path):
    """Without --config, the config is site_config/site.yml of the folder the command runs in
    (never the one of the folder Butterfly is installed in)."""
    result = finish(butterfly(tmp_path, "check"))
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["butterfly: error: config file not found: site_config/site.yml"]


@pytest.mark.slow
def test_extreme_aspect_images_are_accepted(built_project):
    """A strip of one pixel either way is cropped to its middle pixel, not to nothing."""
    folder = built_project / "aspect"
    folder.mkdir()
    Image.fromarray(np.tile(np.arange(0, 250, 25, dtype=np.uint8), 300)[np.newaxis]).save(folder / "wide.png")
    Image.fromarray(np.tile(np.arange(0, 250, 25, dtype=np.uint8), 300)[:, np.newaxis]).save(folder / "tall.png")
    config = base_config()
    config["images"] = [{"path": "aspect/wide.png"}, {"path": "aspect/tall.png"}]
    (built_project / "site_config" / "aspect.yml").write_text(yaml.safe_dump(config))
    result = finish(butterfly(built_project, "check", "--config", "site_config/aspect.yml"))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "2 images" in result.stdout


# --- how messages show paths --------------------------------------------------------------------

def test_paths_are_shown_relative_to_their_project(tmp_path, monkeypatch):
    from generator.inputs.paths import shown_path

    (tmp_path / "project" / "site_config").mkdir(parents=True)
    assert shown_path(tmp_path / "project" / "images" / "a.png") == "images/a.png"
    assert shown_path(tmp_path / "project" / "images" / ".." / "b.png") == "b.png"
    assert shown_path("images/a.png") == "images/a.png"   # as the config wrote it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert shown_path(tmp_path / "home" / "data" / "x.png") == "~/data/x.png"
    assert shown_path("/elsewhere/x.png") == "/elsewhere/x.png"
    assert shown_path("a\nb\x1b.png") == "a?b?.png"
    assert len(shown_path("x" * 10_000)) == 200


def test_file_problems_say_what_is_wrong(tmp_path):
    from generator.inputs.paths import file_problem

    (tmp_path / "file.png").write_bytes(b"x")
    (tmp_path / "folder").mkdir()
    symlink_loop(tmp_path)
    os.symlink("gone.png", tmp_path / "dangling.png")
    os.symlink("file.png", tmp_path / "link.png")
    assert file_problem(tmp_path / "file.png") is None
    assert file_problem(tmp_path / "link.png") is None
    assert file_problem(tmp_path / "missing.png") == "not found"
    assert file_problem(tmp_path / "file.png" / "below.png") == "not found"
    assert file_problem(tmp_path / "folder") == "is a folder, not a file"
    assert file_problem(tmp_path / "loop-a.png") == "is a loop of symbolic links"
    assert file_problem(tmp_path / "dangling.png") == "is a broken symbolic link"
    assert file_problem(tmp_path / ("x" * 5000)) == "has a name too long for the file system"
    assert file_problem(tmp_path / "a\x00b") == "is not a valid file name"


# --- keep going -------------------------------------------------------------------------------

PAYLOAD = '<script>alert("title")</script>'


@pytest.fixture(scope="module")
def keep_going_build(built_project, tmp_path_factory):
    """A copy of the built project whose config lists one good image among bad ones (missing, a
    folder, a symbolic-link loop, a corrupt file), plus an extreme strip, built with --keep-going."""
    project = tmp_path_factory.mktemp("keep-going") / "project"
    shutil.copytree(built_project, project, symlinks=True, ignore=shutil.ignore_patterns("cases"))
    bad = project / "bad"
    bad.mkdir()
    (bad / "folder.png").mkdir()
    symlink_loop(bad)
    truncated_png(bad)
    Image.fromarray(np.tile(np.arange(0, 250, 25, dtype=np.uint8), 300)[np.newaxis]).save(bad / "strip.png")
    config = base_config()
    config["images"] = [
        {"path": GOOD_IMAGE, "label": "Ankle boot", "title": PAYLOAD, "caption": PAYLOAD},
        {"path": "bad/missing.png"}, {"path": "bad/folder.png"}, {"path": "bad/loop-a.png"},
        {"path": "bad/truncated.png"}, {"path": "bad/strip.png", "label": "Bag"},
    ]
    (project / "site_config" / "site.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    site_before = tree_digest(project / "site")
    plain = finish(butterfly(project, "build", "--config", "site_config/site.yml"))
    assert tree_digest(project / "site") == site_before
    result = finish(butterfly(project, "build", "--keep-going", "--config", "site_config/site.yml"), timeout=600)
    return project, plain, result


@pytest.mark.slow
def test_without_keep_going_the_first_bad_image_stops_the_build(keep_going_build):
    project, plain, _ = keep_going_build
    assert_one_clean_error(plain, ("images[1]", "bad/missing.png"), project, "build")


@pytest.mark.slow
def test_keep_going_builds_the_good_images_and_lists_every_bad_one(keep_going_build):
    project, _, result = keep_going_build
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 failed" in result.stdout
    manifest = json.loads((project / "build" / "manifest.json").read_text())
    (experiment,) = manifest["experiments"]
    assert [image["source"] for image in experiment["images"]] == [GOOD_IMAGE, "bad/strip.png"]
    failures = {failure["source"]: failure["message"] for failure in experiment["failures"]}
    assert sorted(failures) == ["bad/folder.png", "bad/loop-a.png", "bad/missing.png", "bad/truncated.png"]
    assert "images[1]" in failures["bad/missing.png"] and "not found" in failures["bad/missing.png"]
    assert "images[2]" in failures["bad/folder.png"] and "is a folder" in failures["bad/folder.png"]
    assert "images[3]" in failures["bad/loop-a.png"] and "loop of symbolic links" in failures["bad/loop-a.png"]
    assert "images[4]" in failures["bad/truncated.png"] and "cannot be decoded" in failures["bad/truncated.png"]
    published = (project / "site" / "manifest.json").read_text() + "".join(
        page.read_text(encoding="utf-8") for page in (project / "site").rglob("*.html"))
    assert str(project) not in published and str(project.resolve()) not in published
    for source in failures:
        assert source in (project / "site" / "en" / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_keep_going_site_shows_text_payloads_as_text(keep_going_build):
    project, _, result = keep_going_build
    assert result.returncode == 0
    pages = [page.read_text(encoding="utf-8") for page in (project / "site").rglob("*.html")]
    assert not [page for page in pages if PAYLOAD in page]
    assert any("&lt;script&gt;alert" in page for page in pages)
