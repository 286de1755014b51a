"""The live explorer: vendored runtime, payloads, the panel's HTML, and the model in a real browser.

The browser tests build a small static site in a temporary folder (CNN Explainer's Tiny VGG with
its photos when ../shared is there, a Tiny VGG trained briefly on 28x28 greyscale images, and a
functional model with the other exportable layers), serve it on localhost and drive the system
Chromium through Playwright (never a downloaded browser). For each page, the browser's search
must give the epsilon and label of the Python build's plain loop, and its probabilities must
match Keras' within 1e-4. `build_harness` is reused by bench/bench_explorer.py.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import re
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from generator.figures.common import DIVERGING, SEQUENTIAL, colour_table
from generator.site import explorer

REPO = Path(__file__).resolve().parents[1]
CNN_EXPLAINER = REPO / "content" / "cnn-explainer"
CNN_CLASSES = ["lifeboat", "ladybug", "pizza", "bell pepper", "school bus", "koala", "espresso", "red panda",
               "orange", "sport car"]
CNN_CLASSES_ZH = ["救生艇", "瓢虫", "披萨", "甜椒", "校车", "考拉", "意式浓缩咖啡", "小熊猫", "橙子", "跑车"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROBABILITY_TOLERANCE = 1e-4


# --- fast checks: runtime files, payload, HTML ---------------------------------------------------

def test_vendored_tfjs_matches_its_recorded_checksums_and_licence():
    record = explorer.vendor_record()
    assert record["version"] and record["load_order"][0] == "tf-core.es2017.min.js"
    assert set(record["load_order"]) == set(record["files"])
    for name, entry in record["files"].items():
        data = (explorer.VENDOR_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], f"{name} differs from its recorded checksum"
        assert len(data) == entry["bytes"]
    licence = (explorer.VENDOR_DIR / record["licence_file"]).read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0" in licence and "MIT-style license" in licence


def test_copy_runtime_writes_scripts_styles_vendor_and_licence(tmp_path):
    written = explorer.copy_runtime(tmp_path / "assets")
    names = {path.relative_to(tmp_path / "assets" / "explorer").as_posix() for path in written}
    record = explorer.vendor_record()
    assert names == {*explorer.RUNTIME_FILES, "vendor/LICENSE", "vendor/tfjs.json",
                     *(f"vendor/{name}" for name in record["load_order"])}
    assert {"explorer.js", "explorer.css"} <= names
    # Every module the entry point imports, directly or not, is copied.
    for path in written:
        if path.suffix == ".js" and path.parent.name == "explorer":
            for imported in re.findall(r'from "\./([\w.]+)"', path.read_text(encoding="utf-8")):
                assert imported in names, f"{path.name} imports {imported}, which is not copied"
    assert all(path.is_file() and path.stat().st_size > 0 for path in written)
    for name in record["load_order"]:
        copied = (tmp_path / "assets" / "explorer" / "vendor" / name).read_bytes()
        assert hashlib.sha256(copied).hexdigest() == record["files"][name]["sha256"]


def test_panel_html_escapes_urls_and_speaks_the_page_language():
    block = explorer.panel_html(lang="zh", payload_url='../x"><script>alert(1)</script>.json',
                                runtime_url="../../../assets/explorer")
    assert '<script>alert(1)' not in block and "&quot;&gt;&lt;script&gt;" in block
    assert 'data-lang="zh"' in block and "JavaScript" in block and "<noscript>" in block
    assert "交互式探索器" in block
    sources = [line.split('src="')[1].split('"')[0] for line in block.splitlines() if line.startswith("<script")]
    assert block.count('type="module"') == 1 and '<script type="module" src="../../../assets/explorer/explorer.js">' in block
    assert sources == [f"../../../assets/explorer/vendor/{name}" for name in explorer.vendor_record()["load_order"]] \
        + ["../../../assets/explorer/explorer.js"]
    assert "\n\n" not in block  # Markdown would end a raw HTML block at a blank line
    # Through the site's Markdown, the block arrives whole: no element wrapped in a paragraph.
    import markdown

    rendered = markdown.markdown("Text.\n\n" + block + "\nMore text.\n",
                                 extensions=["tables", "attr_list", "admonition", "md_in_html"])
    assert "<p><link" not in rendered and "<p><script" not in rendered
    assert rendered.count("<script") == len(sources) and '<div class="bx-panel"' in rendered
    english = explorer.panel_html(lang="en", payload_url="p.json", runtime_url="assets/explorer/")
    assert 'data-lang="en"' in english and "needs JavaScript" in english
    with pytest.raises(ValueError, match="lang"):
        explorer.panel_html(lang="fr", payload_url="p.json", runtime_url="a/")


def _small_payload(**overrides):
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (4, 5, 3)).astype(np.float32)
    arguments = dict(
        experiment_id="demo", image_id="one", titles={"en": "One", "zh": "一"}, pixels=x,
        class_names={"en": ["a", "b"], "zh": ["甲", "乙"]}, canonical_class_names=["a", "b"], true_index=None,
        clean_index=1, clean_probabilities=[0.25, 0.75],
        attack_settings={"method": "fgsm", "epsilon_start": 0.01, "epsilon_step": 0.0007, "epsilon_max": 0.3,
                         "target_index": None, "clip_min": 0.0, "clip_max": 1.0},
        grid_epsilon=0.0107, adversarial_index=0, threshold=0.0101,
        gradient_sign=np.sign(rng.normal(size=x.shape)).astype(np.float32), amplification=25.0,
        layers=[{"name": "input", "type": "InputLayer", "unit": "channel", "shape": [4, 5, 3]},
                {"name": "conv", "type": "Conv2D", "unit": "filter", "shape": [2, 3, 4], "scale": [-0.5, 2.0],
                 "difference_limit": 0.25, "channel_order": [3, 1, 0, 2], "attack": {"ignored": True}},
                {"name": "output", "type": "Dense", "unit": "channel", "shape": [2]}],
        model_url="../../models/demo/model.json")
    arguments.update(overrides)
    return x, arguments


def test_image_payload_carries_exact_pixels_direction_and_the_figures_colour_tables():
    x, arguments = _small_payload()
    payload = json.loads(json.dumps(explorer.image_payload(**arguments)))
    pixels = np.frombuffer(base64.b64decode(payload["input"]["data"]), dtype="<f4").reshape(payload["input"]["shape"])
    assert np.array_equal(pixels, x)
    direction = np.frombuffer(base64.b64decode(payload["direction"]["data"]), dtype="i1").reshape(x.shape)
    assert np.array_equal(direction, arguments["gradient_sign"])
    for kind, cmap in (("sequential", SEQUENTIAL), ("diverging", DIVERGING)):
        table = np.frombuffer(bytes.fromhex(payload["colours"][kind]["table"]), dtype=np.uint8).reshape(-1, 3)
        assert np.array_equal(table, colour_table(cmap)) and payload["colours"][kind]["name"] == cmap
    assert payload["colours"]["size"] == 255
    assert payload["classes"] == {"canonical": ["a", "b"], "en": ["a", "b"], "zh": ["甲", "乙"]}
    assert payload["layers"][1] == {"name": "conv", "type": "Conv2D", "unit": "filter", "shape": [2, 3, 4],
                                    "scale": [-0.5, 2.0], "difference_limit": 0.25, "channel_order": [3, 1, 0, 2]}
    assert payload["layers"][2] == {"name": "output", "type": "Dense", "unit": "channel", "shape": [2]}
    assert payload["attack"] == {"method": "fgsm", "target_index": None, "epsilon_start": 0.01,
                                 "epsilon_step": 0.0007, "epsilon_max": 0.3, "clip_min": 0.0, "clip_max": 1.0}
    assert payload["result"] == {"epsilon": 0.0107, "adversarial_index": 0, "threshold": 0.0101}
    assert payload["title"] == {"en": "One", "zh": "一"} and payload["model_url"] == "../../models/demo/model.json"


@pytest.mark.parametrize("override, message", [
    ({"pixels": np.zeros((4, 5), np.float32)}, "pixels"),
    ({"gradient_sign": np.full((4, 5, 3), 0.5, np.float32)}, "gradient_sign"),
    ({"class_names": {"en": ["a"]}}, "class_names"),
    ({"clean_index": 2}, "clean_index"),
    ({"attack_settings": {"method": "deepfool", "epsilon_start": 0.01, "epsilon_step": 0.0007,
                          "epsilon_max": 0.3, "clip_min": 0, "clip_max": 1}}, "method"),
])
def test_image_payload_refuses_inconsistent_input(override, message):
    _, arguments = _small_payload(**override)
    with pytest.raises(ValueError, match=message):
        explorer.image_payload(**arguments)


# --- the harness: a small static site with exported models and payloads -------------------------

@dataclass
class HarnessPage:
    """One image page of the harness and the Python build's answers for it."""

    experiment: str
    image: str
    model: object
    x: np.ndarray
    settings: object
    class_names: list[str]
    loop: object  # the EpsilonSearchResult of plain_epsilon_loop

    def path(self, lang: str) -> str:
        return f"{lang}/{self.experiment}/{self.image}/"


def _train_fashion_model():
    """Tiny VGG on 28x28x1, one quick epoch on part of the embedded Fashion-MNIST subset."""
    from generator.analysis.training import build_tiny_vgg, train
    from generator.inputs.datasets import load_embedded

    data = load_embedded()
    keep = slice(0, 3000)
    model = build_tiny_vgg((28, 28, 1), 10, seed=0)
    train(model, data.x_train[keep], data.y_train[keep], data.x_test[:200], data.y_test[:200], epochs=1,
          batch_size=64, learning_rate=0.004, seed=1, verbose=0)
    return model


def _layers_model():
    """A functional model with the exportable layers the Tiny VGGs lack (12x12x3 -> 4 classes)."""
    import keras
    from keras import layers

    pixels = keras.Input((12, 12, 3), name="pixels")
    x = layers.Rescaling(2.0, offset=-1.0, name="input_scaling")(pixels)
    x = layers.Conv2D(6, 3, padding="same", name="conv")(x)
    x = layers.BatchNormalization(name="batch_norm")(x)
    x = layers.ReLU(max_value=6.0, name="relu6")(x)
    x = layers.AveragePooling2D(2, name="average_pool")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    x = layers.Conv2D(8, 3, activation="tanh", name="conv_tanh")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dense(4, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    model = keras.Model(pixels, outputs, name="layers_demo")
    rng = np.random.default_rng(5)
    norm = model.get_layer("batch_norm")
    norm.set_weights([rng.uniform(0.5, 1.5, 6), rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 6), rng.uniform(0.5, 2, 6)])
    return model


def _page(root: Path, experiment: str, image: str, model, x: np.ndarray, class_names: list[str],
          names_zh: list[str], settings, model_url: str) -> HarnessPage:
    """Attack x as the build does, write its payload and one HTML page per language."""
    from generator.analysis.attack import plain_epsilon_loop, sign_noise
    from generator.analysis.probe import probe_image

    loop = plain_epsilon_loop(model, x, settings)
    x_noise = sign_noise(x, loop.attack_epsilon, 0)[None]
    layers, _ = probe_image(model, x, loop.x_adv, x_noise, 0.05)
    payload = explorer.image_payload(
        experiment_id=experiment, image_id=image, titles={"en": image.replace("_", " "), "zh": image},
        pixels=x, class_names={"en": class_names, "zh": names_zh}, canonical_class_names=class_names,
        true_index=None, clean_index=loop.clean_index, clean_probabilities=loop.clean_probabilities,
        attack_settings={"method": settings.method, "epsilon_start": settings.epsilon_start,
                         "epsilon_step": settings.epsilon_step, "epsilon_max": settings.epsilon_max,
                         "target_index": settings.target_index, "clip_min": settings.clip_min,
                         "clip_max": settings.clip_max, "iterations": settings.iterations,
                         "step_size": settings.step_size},
        grid_epsilon=loop.epsilon, adversarial_index=loop.adversarial_index, threshold=None,
        gradient_sign=loop.gradient_sign, amplification=0.5 / (2 * (loop.epsilon or settings.epsilon_max)),
        layers=layers, model_url=model_url)
    payload_path = explorer.write_payload(payload, root / "assets" / "payloads" / experiment / f"{image}.json")
    for lang in ("en", "zh"):
        page_dir = root / lang / experiment / image
        page_dir.mkdir(parents=True, exist_ok=True)
        block = explorer.panel_html(lang=lang, payload_url=f"../../../assets/payloads/{experiment}/{payload_path.name}",
                                    runtime_url="../../../assets/explorer/")
        (page_dir / "index.html").write_text(
            f'<!doctype html>\n<html lang="{"zh-Hans" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{image}</title></head><body><main><h1>{image}</h1>\n{block}</main></body></html>\n",
            encoding="utf-8")
    return HarnessPage(experiment, image, model, x, settings, class_names, loop)


def build_harness(root: Path, cnn_images=("panda_1", "panda_2", "koala_1", "white")) -> list[HarnessPage]:
    """Write a static site under root: runtime, exported models, payloads and pages. Returns the pages."""
    from generator.analysis.attack import AttackSettings
    from generator.inputs.images import load_image
    from generator.inputs.model_export import export_tfjs_layers

    explorer.copy_runtime(root / "assets")
    pages = []
    if (CNN_EXPLAINER / "model.json").is_file():
        from generator.inputs.model_import import load_model

        model = load_model(CNN_EXPLAINER / "model.json", CNN_CLASSES, (0, 1))
        export_tfjs_layers(model, root / "assets" / "models" / "cnn-explainer")
        for image in cnn_images:
            x = load_image(CNN_EXPLAINER / f"{image}.jpeg", (64, 64, 3))
            pages.append(_page(root, "cnn-explainer", image.replace("_", "-"), model, x, CNN_CLASSES, CNN_CLASSES_ZH,
                               AttackSettings(), "../../models/cnn-explainer/model.json"))
        x = load_image(CNN_EXPLAINER / "panda_2.jpeg", (64, 64, 3))
        pages.append(_page(root, "cnn-explainer", "panda-2-towards-koala", model, x, CNN_CLASSES, CNN_CLASSES_ZH,
                           AttackSettings(target_index=CNN_CLASSES.index("koala")),
                           "../../models/cnn-explainer/model.json"))
    fashion = _train_fashion_model()
    export_tfjs_layers(fashion, root / "assets" / "models" / "fashion")
    for name in ("ankle-boot-5420", "trouser-8183"):
        x = load_image(REPO / "content" / "images" / f"{name}.png", (28, 28, 1))
        pages.append(_page(root, "fashion", name, fashion, x, FASHION_CLASSES, FASHION_CLASSES,
                           AttackSettings(), "../../models/fashion/model.json"))
    # Searches that end without reaching their goal: never changed; a target missed.
    x = load_image(REPO / "content" / "images" / "trouser-8183.png", (28, 28, 1))
    pages.append(_page(root, "fashion", "trouser-small-budget", fashion, x, FASHION_CLASSES, FASHION_CLASSES,
                       AttackSettings(epsilon_max=0.05), "../../models/fashion/model.json"))
    x = load_image(REPO / "content" / "images" / "ankle-boot-5420.png", (28, 28, 1))
    pages.append(_page(root, "fashion", "ankle-boot-towards-bag", fashion, x, FASHION_CLASSES, FASHION_CLASSES,
                       AttackSettings(epsilon_max=0.12, target_index=FASHION_CLASSES.index("Bag")),
                       "../../models/fashion/model.json"))
    demo = _layers_model()
    export_tfjs_layers(demo, root / "assets" / "models" / "layers-demo")
    x = np.random.default_rng(7).uniform(0, 1, (12, 12, 3)).astype(np.float32)
    pages.append(_page(root, "layers-demo", "noise", demo, x, ["a", "b", "c", "d"], ["甲", "乙", "丙", "丁"],
                       AttackSettings(epsilon_max=0.1), "../../models/layers-demo/model.json"))
    return pages


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the browser closing a connection early is not a defect of the page


def serve(root: Path):
    """Serve root on http://127.0.0.1:<port>/; returns (base URL, server). Call server.shutdown()."""
    server = _QuietServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_page(browser, url: str, width: int = 1280, height: int = 900, **options):
    """A page at url with the explorer ready; returns (page, console errors)."""
    page = browser.new_page(viewport={"width": width, "height": height}, **options)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="load")
    page.evaluate("window.butterflyExplorer.ready")
    return page, errors


# --- browser checks ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("explorer-site")
    pages = build_harness(root)
    base_url, server = serve(root)
    yield root, base_url, pages
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(harness):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _probe_epsilons(page: HarnessPage) -> list[float]:
    """0, the grid's first points, the flip and its neighbours, twice the flip, a value off the grid."""
    s = page.settings
    flip = page.loop.epsilon if page.loop.epsilon is not None else s.epsilon_max
    k = page.loop.grid_index or 0
    points = {0.0, float(s.grid_epsilons([0])[0]), flip, 2 * flip, 0.5 * flip, 0.00123}
    points |= {float(e) for e in s.grid_epsilons([max(k - 1, 0), k + 1])}
    return sorted(points)


@pytest.mark.slow
def test_browser_reproduces_the_builds_search_probabilities_and_gradient(harness, browser):
    from generator.analysis.attack import gradient_sign, predict_probabilities

    _, base_url, pages = harness
    assert any(p.experiment == "fashion" for p in pages) and any(p.experiment == "layers-demo" for p in pages)
    for page in pages:
        tab, errors = open_page(browser, base_url + page.path("en"))
        found = tab.evaluate("window.butterflyExplorer.search()")
        assert found["epsilon"] == page.loop.epsilon, page.image  # the very float: start + k * step
        assert found["index"] == page.loop.adversarial_index, page.image
        assert found["label"] == page.class_names[page.loop.adversarial_index]
        assert found["succeeded"] == page.loop.succeeded
        assert tab.evaluate("window.butterflyExplorer.backend") == "cpu"
        epsilons = _probe_epsilons(page)
        direction = page.loop.gradient_sign
        s = page.settings
        images = np.clip(page.x[None] + np.asarray(epsilons, np.float32).reshape(-1, 1, 1, 1) * direction[None],
                         s.clip_min, s.clip_max)
        expected = np.stack([predict_probabilities(page.model, image[None])[0] for image in images])
        for epsilon, want in zip(epsilons, expected):
            got = tab.evaluate("e => window.butterflyExplorer.evaluate(e)", epsilon)
            assert np.max(np.abs(np.asarray(got["probabilities"]) - want)) < PROBABILITY_TOLERANCE, (page.image, epsilon)
            assert got["index"] == int(np.argmax(want)) and got["label"] == page.class_names[got["index"]]
        label = s.target_index if s.targeted else page.loop.clean_index
        browser_sign = np.asarray(tab.evaluate("window.butterflyExplorer.gradientSign()"), np.float32)
        python_sign = gradient_sign(page.model, page.x[None], [label], s.targeted)[0]
        assert np.array_equal(browser_sign.reshape(page.x.shape), python_sign), page.image
        assert tab.evaluate("document.querySelector('.bx-panel').dataset.label") == \
            page.class_names[page.loop.adversarial_index]  # the panel opens at the build's answer
        assert errors == [], (page.image, errors)
        tab.close()


@pytest.mark.slow
def test_slider_is_keyboard_operable_and_shows_the_flip(harness, browser):
    _, base_url, pages = harness
    # A page that flips at the first grid point (CNN Explainer's), else a Fashion-MNIST one.
    page = next((p for p in pages if p.loop.grid_index == 0),
                next(p for p in pages if p.experiment == "fashion" and p.loop.epsilon is not None))
    tab, errors = open_page(browser, base_url + page.path("en"))
    slider = tab.locator(".bx-slider")
    output = tab.locator(".bx-value")
    assert output.inner_text() == f"ε = {page.loop.epsilon:.4f}"
    assert tab.locator(".bx-flip-mark").count() == 1
    assert tab.locator(".bx-badge-changed").count() == 1
    slider.focus()
    tab.keyboard.press("Home")
    assert output.inner_text() == "ε = 0.0000" and slider.get_attribute("aria-valuetext") == "ε = 0.0000"
    assert tab.locator(".bx-badge-changed").count() == 0
    clean = page.class_names[page.loop.clean_index]
    assert tab.evaluate("document.querySelector('.bx-panel').dataset.label") == clean
    tab.keyboard.press("ArrowRight")
    assert output.inner_text() == f"ε = {page.settings.epsilon_start:.4f}"
    tab.keyboard.press("End")
    top = float(tab.evaluate("Number(document.querySelector('.bx-panel').dataset.epsilon)"))
    assert page.loop.epsilon < top <= 2 * page.loop.epsilon + 1e-12
    # Every layer with maps is drawn three times (original, adversarial, difference).
    map_layers = sum(1 for layer in json.loads(
        (harness[0] / "assets" / "payloads" / page.experiment / f"{page.image}.json").read_text())["layers"]
        if len(layer["shape"]) == 3 and layer["type"] != "InputLayer")
    assert tab.locator(".bx-layer").count() == map_layers
    # One tab stop per layer; arrows move between its maps; Enter enlarges one, Escape closes it.
    first_layer = tab.locator(".bx-layer").first
    assert first_layer.locator(".bx-map[tabindex='0']").count() == 1
    first_layer.locator(".bx-map").first.focus()
    tab.keyboard.press("ArrowRight")
    tab.keyboard.press("ArrowDown")
    focused = tab.evaluate("document.activeElement.getAttribute('aria-label')")
    assert " 1: enlarge (adversarial)" in focused, focused
    tab.keyboard.press("Enter")
    assert tab.locator("dialog.bx-zoom[open] canvas").count() == 3
    assert ", filter 1, " in tab.locator("dialog.bx-zoom .bx-title").inner_text()
    tab.keyboard.press("Escape")
    assert tab.locator("dialog.bx-zoom[open]").count() == 0
    tab.locator(".bx-map").nth(2).click()
    assert tab.locator("dialog.bx-zoom[open]").count() == 1
    tab.keyboard.press("Escape")
    assert errors == []
    tab.close()


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_a_picked_or_dropped_image_is_classified_in_the_browser(harness, browser, tmp_path):
    from PIL import Image

    from generator.analysis.attack import predict_probabilities
    from generator.inputs.images import load_image

    _, base_url, pages = harness
    page = next(p for p in pages if p.experiment == "fashion")
    # A file already of the model's size is not resampled: the browser must see the build's pixels.
    exact = tmp_path / "exact.png"
    Image.fromarray((np.random.default_rng(1).uniform(0, 1, (28, 28, 3)) * 255).astype(np.uint8)).save(exact)
    want = page.class_names[int(np.argmax(predict_probabilities(page.model, load_image(exact, (28, 28, 1))[None])[0]))]
    tab, errors = open_page(browser, base_url + page.path("zh"))
    tab.set_input_files(".bx-file", str(exact))
    tab.wait_for_function("document.querySelector('.bx-panel').dataset.ownAnswer !== undefined", timeout=20000)
    assert tab.evaluate("document.querySelector('.bx-panel').dataset.ownAnswer") == want
    assert tab.locator(".bx-view").inner_text() == "你的图片：exact.png"
    assert tab.locator(".bx-own-status").inner_text().startswith(f"exact.png：模型的预测是“{want}”")
    # A wide, partly transparent picture, dropped onto the drop zone.
    wide = Image.new("RGBA", (90, 40), (0, 0, 0, 0))
    wide.paste((40, 40, 40, 255), (30, 5, 60, 35))
    data = base64.b64encode(_png_bytes(wide)).decode("ascii")
    tab.evaluate("""data => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'wide.png', {type: 'image/png'}));
        document.querySelector('.bx-drop').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
    }""", data)
    tab.wait_for_function("document.querySelector('.bx-panel').dataset.ownImage === 'wide.png'"
                          " && document.querySelector('.bx-panel').dataset.ownAnswer !== undefined", timeout=20000)
    assert tab.locator(".bx-view").inner_text().endswith("wide.png")
    tab.get_by_role("button", name="回到本页的图片").click()
    assert tab.locator(".bx-view").inner_text().startswith("本页的图片")
    assert errors == []
    tab.close()


@pytest.mark.slow
def test_chinese_page_speaks_chinese_and_fits_a_phone(harness, browser):
    _, base_url, pages = harness
    tab, errors = open_page(browser, base_url + pages[0].path("zh"), width=360, height=740, is_mobile=True)
    text = tab.locator(".bx-panel").inner_text()
    for word in ("交互式探索器", "扰动", "对抗样本", "特征图", "概率最高"):
        assert word in text, word
    overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a 360 px phone"
    assert errors == []
    tab.close()


@pytest.mark.slow
def test_a_missing_payload_is_said_on_the_page_and_rejects_ready(harness, browser):
    root, base_url, _ = harness
    page_dir = root / "zh" / "broken"
    page_dir.mkdir(parents=True, exist_ok=True)
    block = explorer.panel_html(lang="zh", payload_url="missing.json", runtime_url="../../assets/explorer/")
    (page_dir / "index.html").write_text('<!doctype html><html lang="zh-Hans"><head><meta charset="utf-8">'
                                         '<link rel="icon" href="data:,"></head><body>' + block + "</body></html>",
                                         encoding="utf-8")
    tab = browser.new_page()
    tab.goto(base_url + "zh/broken/", wait_until="load")
    message = tab.evaluate("window.butterflyExplorer.ready.then(() => 'ready', error => error.message)")
    assert message.startswith("交互式探索器无法启动") and "missing.json" in message and "404" in message
    assert tab.locator(".bx-panel.bx-failed .bx-status").inner_text() == message
    tab.close()


@pytest.mark.slow
def test_a_bim_page_runs_fgsm_live_and_says_so(harness, browser):
    from generator.analysis.attack import AttackSettings, plain_epsilon_loop

    root, base_url, pages = harness
    demo = next(p for p in pages if p.experiment == "layers-demo")
    bim = AttackSettings(method="bim", epsilon_max=0.1, iterations=3)
    page = _page(root, "layers-demo", "noise-bim", demo.model, demo.x, demo.class_names, ["甲", "乙", "丙", "丁"], bim,
                 "../../models/layers-demo/model.json")
    assert page.settings.method == "bim"
    fgsm = plain_epsilon_loop(demo.model, demo.x, AttackSettings(epsilon_max=0.1))
    tab, errors = open_page(browser, base_url + page.path("en"))
    assert tab.locator(".bx-status").inner_text().startswith("This page's attack is BIM; the live panel runs")
    assert f"where the search in this browser stopped: ε = {fgsm.epsilon:.4f}" in tab.locator(".bx-flip-note").inner_text()
    found = tab.evaluate("window.butterflyExplorer.search()")
    assert found["epsilon"] == fgsm.epsilon and found["index"] == fgsm.adversarial_index
    assert errors == []
    tab.close()
