"""The live explorer: an image page runs the model in the reader's browser, with TensorFlow.js.

Three things for the site stage:

- :func:`copy_runtime` copies the browser runtime (TensorFlow.js, vendored under
  ``explorer/vendor/`` with its licence and checksums, plus the explorer's scripts and style
  sheet) into the site's assets folder; nothing is ever loaded from another server.
- :func:`image_payload` builds the JSON one image page needs: the exact input pixels, the
  build's attack direction and answer, the class names in each language, the attack settings,
  per-layer colour scales as the PNG figures use them, the colour tables, and the model's URL.
- :func:`panel_html` is the HTML block an image page includes under its sweep GIF.

The model itself is exported by :func:`generator.inputs.model_export.export_tfjs_layers`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from generator.figures.common import DIVERGING, SEQUENTIAL, colour_table

RUNTIME_DIR = Path(__file__).resolve().parent / "explorer"
VENDOR_DIR = RUNTIME_DIR / "vendor"
VENDOR_RECORD = VENDOR_DIR / "tfjs.json"
# The panel's script is an ES module (explorer.js) with its parts; then its style sheet.
RUNTIME_FILES = ("explorer.js", "words.js", "numbers.js", "dom.js", "model.js", "panel.js", "maps.js", "explorer.css")
PAYLOAD_SCHEMA = 1
LANGUAGES = ("en", "zh")
METHODS = ("fgsm", "bim", "pgd")

# Shown where scripts do not run; the live panel writes all its other words itself.
NOSCRIPT_TEXT = {
    "en": "The live explorer needs JavaScript. The pictures and animations above show the same experiment.",
    "zh": "交互式探索器需要启用 JavaScript。上面的图片和动画展示的是同一个实验。",
}
LOADING_TEXT = {
    "en": "Loading the live explorer: the model runs in this page, nothing is uploaded…",
    "zh": "正在加载交互式探索器：模型在本页面中运行，不会上传任何数据……",
}


def vendor_record() -> dict:
    """The vendored TensorFlow.js: {"version", "licence", "load_order": [files], "files": {name: {sha256, ...}}}."""
    return json.loads(VENDOR_RECORD.read_text(encoding="utf-8"))


def copy_runtime(assets_dir: str | Path) -> list[Path]:
    """Copy the explorer's runtime into ``assets_dir/explorer/``; returns the files written.

    assets_dir is the site's assets folder (site/assets or build/docs/assets). The result holds
    the explorer's modules (explorer.js and its parts), explorer.css and vendor/ with
    TensorFlow.js, its LICENSE and tfjs.json.
    """
    target = Path(assets_dir) / "explorer"
    (target / "vendor").mkdir(parents=True, exist_ok=True)
    record = vendor_record()
    written = []
    for name in RUNTIME_FILES:
        written.append(Path(shutil.copyfile(RUNTIME_DIR / name, target / name)))
    for name in [*record["load_order"], record["licence_file"], VENDOR_RECORD.name]:
        written.append(Path(shutil.copyfile(VENDOR_DIR / name, target / "vendor" / name)))
    return written


def runtime_bytes() -> int:
    """Bytes a reader downloads for the runtime: the explorer's scripts and styles and TensorFlow.js."""
    record = vendor_record()
    return (sum((RUNTIME_DIR / name).stat().st_size for name in RUNTIME_FILES)
            + sum(entry["bytes"] for entry in record["files"].values()))


# --- the payload ----------------------------------------------------------------------------

def _base64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _hex_table(cmap: str) -> str:
    """A colour table (255 RGB entries) as one hex string, 6 digits per entry."""
    return colour_table(cmap).tobytes().hex()


def _finite(value: Any, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return number


def _optional_index(value: Any, classes: int, what: str) -> int | None:
    if value is None:
        return None
    index = int(value)
    if not 0 <= index < classes:
        raise ValueError(f"{what} {value!r} is not a class index below {classes}")
    return index


def _attack_settings(settings: Mapping[str, Any], classes: int) -> dict:
    method = settings["method"]
    if method not in METHODS:
        raise ValueError(f"attack method must be one of {', '.join(METHODS)}, got {method!r}")
    entry = {"method": method, "target_index": _optional_index(settings.get("target_index"), classes, "target_index")}
    for key in ("epsilon_start", "epsilon_step", "epsilon_max", "clip_min", "clip_max"):
        entry[key] = _finite(settings[key], key)
    if entry["epsilon_step"] <= 0 or entry["epsilon_max"] < entry["epsilon_start"]:
        raise ValueError(f"attack grid needs epsilon_step > 0 and epsilon_max >= epsilon_start, got {entry}")
    if method != "fgsm":
        entry["iterations"] = int(settings["iterations"])
        step = settings.get("step_size")
        entry["step_size"] = None if step is None else _finite(step, "step_size")
    return entry


def _layer_entry(layer: Mapping[str, Any]) -> dict:
    entry = {"name": str(layer["name"]), "type": str(layer["type"]), "unit": str(layer["unit"]),
             "shape": [int(d) for d in layer["shape"]]}
    # Feature maps need their scales; the input is drawn as an image and may come without.
    if len(entry["shape"]) == 3 and (entry["type"] != "InputLayer" or "scale" in layer):
        lo, hi = (_finite(v, f"{entry['name']} scale") for v in layer["scale"])
        entry["scale"] = [lo, hi]
        entry["difference_limit"] = _finite(layer["difference_limit"], f"{entry['name']} difference_limit")
        if layer.get("channel_order") is not None:
            entry["channel_order"] = [int(c) for c in layer["channel_order"]]
    return entry


def image_payload(*, experiment_id: str, image_id: str, titles: Mapping[str, str], pixels: np.ndarray,
                  class_names: Mapping[str, Sequence[str]], canonical_class_names: Sequence[str],
                  true_index: int | None, clean_index: int, clean_probabilities: Sequence[float],
                  attack_settings: Mapping[str, Any], grid_epsilon: float | None, adversarial_index: int,
                  threshold: float | None, gradient_sign: np.ndarray, amplification: float,
                  layers: Sequence[Mapping[str, Any]], model_url: str) -> dict:
    """The JSON (a dict) one image page's explorer loads.

    pixels: the exact model input (H, W, C) float32 in [0, 1]; gradient_sign: the build's attack
    direction at it (H, W, C) in {-1, 0, 1} (away from the clean prediction, or towards the
    target). class_names: {lang: names in output order}; canonical_class_names: the manifest's.
    attack_settings: method, epsilon_start, epsilon_step, epsilon_max, target_index (None for
    untargeted), clip_min, clip_max (and iterations, step_size for bim/pgd). grid_epsilon: the
    article search's answer (None: the label never changed up to epsilon_max), adversarial_index
    the label there (or at the largest grid epsilon), threshold the bisected epsilon where the
    label really changes (or None). amplification: the factor the perturbation pictures use.
    layers: the probe's layer records, input first: {name, type, unit, shape, and for feature
    maps scale [lo, hi], difference_limit, optional channel_order}. model_url: the exported
    model.json relative to the payload's own URL.
    """
    x = np.asarray(pixels, dtype=np.float32)
    direction = np.asarray(gradient_sign, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] not in (1, 3):
        raise ValueError(f"pixels must have shape (H, W, 1 or 3), got {x.shape}")
    if direction.shape != x.shape or not np.isin(direction, (-1.0, 0.0, 1.0)).all():
        raise ValueError(f"gradient_sign must be {x.shape} with values -1, 0, 1")
    if not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError("pixels must lie in [0, 1]")
    canonical = [str(name) for name in canonical_class_names]
    names = {lang: [str(name) for name in class_names.get(lang, canonical)] for lang in LANGUAGES}
    for lang, listed in names.items():
        if len(listed) != len(canonical):
            raise ValueError(f"class_names[{lang!r}] has {len(listed)} names, the model {len(canonical)} classes")
    probabilities = [float(p) for p in clean_probabilities]
    if len(probabilities) != len(canonical):
        raise ValueError(f"clean_probabilities has {len(probabilities)} entries for {len(canonical)} classes")
    return {
        "schema": PAYLOAD_SCHEMA,
        "experiment": str(experiment_id),
        "image": str(image_id),
        "title": {lang: str(titles.get(lang) or titles.get("en") or image_id) for lang in LANGUAGES},
        "model_url": str(model_url),
        "input": {"shape": list(x.shape), "dtype": "float32", "encoding": "base64 little-endian",
                  "data": _base64(x, "<f4")},
        "direction": {"shape": list(x.shape), "dtype": "int8", "encoding": "base64",
                      "data": _base64(direction.astype(np.int8), "i1")},
        "classes": {"canonical": canonical, **names},
        "true_index": _optional_index(true_index, len(canonical), "true_index"),
        "clean_index": _optional_index(clean_index, len(canonical), "clean_index"),
        "clean_probabilities": probabilities,
        "attack": _attack_settings(attack_settings, len(canonical)),
        "result": {"epsilon": None if grid_epsilon is None else _finite(grid_epsilon, "grid_epsilon"),
                   "adversarial_index": _optional_index(adversarial_index, len(canonical), "adversarial_index"),
                   "threshold": None if threshold is None else _finite(threshold, "threshold")},
        "amplification": _finite(amplification, "amplification"),
        "layers": [_layer_entry(layer) for layer in layers],
        "colours": {"size": int(colour_table(SEQUENTIAL).shape[0]),
                    "sequential": {"name": SEQUENTIAL, "table": _hex_table(SEQUENTIAL)},
                    "diverging": {"name": DIVERGING, "table": _hex_table(DIVERGING)}},
    }


def write_payload(payload: dict, path: str | Path) -> Path:
    """Write a payload as compact UTF-8 JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    return path


# --- the page's block ------------------------------------------------------------------------

def panel_html(*, lang: str, payload_url: str, runtime_url: str) -> str:
    """The HTML block an image page includes (under its sweep GIF) to get the live explorer.

    lang: 'en' or 'zh', the page's language. payload_url: the image's payload JSON, relative
    to the page. runtime_url: the folder copy_runtime filled (site/assets/explorer/), relative
    to the page. Only pages that include this block load the scripts: TensorFlow.js as deferred
    classic scripts (they define the global `tf`), then the explorer as a module, which runs
    after them. One line per element and no blank line, so Markdown passes the block through.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    base = runtime_url if runtime_url.endswith("/") else runtime_url + "/"
    attribute = lambda text: html.escape(text, quote=True)  # noqa: E731
    scripts = [f'<script src="{attribute(f"{base}vendor/{name}")}" defer></script>'
               for name in vendor_record()["load_order"]]
    scripts.append(f'<script type="module" src="{attribute(base + "explorer.js")}"></script>')
    # The style sheet sits inside the panel's <div>: Markdown would wrap a lone <link> in a <p>.
    lines = [
        f'<div class="bx-panel" data-lang="{lang}" data-payload="{attribute(payload_url)}" '
        f'lang="{"zh-Hans" if lang == "zh" else "en"}">',
        f'<link rel="stylesheet" href="{attribute(base + "explorer.css")}">',
        f'<p class="bx-status" role="status">{html.escape(LOADING_TEXT[lang])}</p>',
        f'<noscript><p class="bx-message">{html.escape(NOSCRIPT_TEXT[lang])}</p></noscript>',
        "</div>",
        *scripts,
    ]
    return "\n".join(lines) + "\n"
