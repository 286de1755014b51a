"""How fast the live explorer answers a slider move, in headless Chromium, and what it costs to load.

    python bench/bench_explorer.py [--moves 40] [--screenshots DIR]

Builds the explorer's test site (tests/test_explorer.py `build_harness`: CNN Explainer's Tiny VGG
when ../shared is there, and a Tiny VGG on 28x28 greyscale images), opens one image page of each
model and moves the slider back and forth. For each move it measures, inside the page, the time
from the input event to the redrawn panel (one forward pass of every layer, all maps painted),
and to the next frame the browser shows. Prints medians and the bytes a reader downloads (the
runtime once per site, each model once). With --screenshots, saves the panel at desktop and
phone width in both languages, and after an image of one's own was dropped in.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from generator.site import explorer  # noqa: E402
from test_explorer import build_harness, launch_chromium, open_page, serve  # noqa: E402

BUDGET_MS = 100.0
# Moves the slider between seeded random positions. cold: forget the cached forward passes
# before each move, so every move computes one (the first visit of a position); warm: the
# panel as a reader finds it a few seconds after loading, neighbours computed ahead.
MOVE_SCRIPT = """async ({moves, cold}) => {
  const panel = window.butterflyExplorer.panel;
  const slider = document.querySelector('.bx-slider');
  const max = Number(slider.max);
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const compute = [], shown = [];
  for (let i = 0; i < moves; i++) {
    let target = Math.floor(random() * (max + 1));
    if (target === Number(slider.value)) target = (target + 1) % (max + 1);
    if (cold) panel.runs.clear();
    const start = performance.now();
    slider.value = String(target);
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    compute.push(performance.now() - start);
    await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    shown.push(performance.now() - start);
  }
  return {compute, shown};
}"""
SETTLE_MS = 4000  # time for the panel to compute the positions near the slider ahead


def model_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def own_image(path: Path) -> Path:
    """A photo-like test picture: a red disc on a sky gradient, 120x90, made with Pillow."""
    import numpy as np
    from PIL import Image, ImageDraw

    rows = np.linspace(0, 1, 90)[:, None, None]
    sky = (np.array([70, 130, 220]) * (1 - rows) + np.array([230, 240, 250]) * rows).repeat(120, axis=1)
    image = Image.fromarray(sky.astype(np.uint8))
    ImageDraw.Draw(image).ellipse((35, 20, 85, 70), fill=(200, 40, 30))
    image.save(path)
    return path


def screenshots(browser, base_url: str, pages, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    page = next((p for p in pages if p.image == "panda-2"), pages[0])
    saved = []
    for lang in ("en", "zh"):
        for label, width, height in (("desktop", 1280, 900), ("phone", 360, 740)):
            tab, errors = open_page(browser, base_url + page.path(lang), width=width, height=height,
                                    is_mobile=width < 500)
            path = out / f"explorer-{page.image}-{lang}-{label}.png"
            tab.screenshot(path=str(path), full_page=True)
            saved.append(path)
            if errors:
                print(f"console errors on {lang} {label}: {errors}")
            if lang == "en" and label == "desktop":
                tab.locator(".bx-map").nth(3).click()
                zoom = out / f"explorer-{page.image}-zoom.png"
                tab.screenshot(path=str(zoom))
                saved.append(zoom)
                tab.keyboard.press("Escape")
            tab.close()
    with tempfile.TemporaryDirectory() as scratch:
        picture = own_image(Path(scratch) / "sky-and-disc.png")
        for lang, width in (("en", 1280), ("zh", 360)):
            tab, _ = open_page(browser, base_url + page.path(lang), width=width, height=900, is_mobile=width < 500)
            tab.set_input_files(".bx-file", str(picture))
            tab.wait_for_function("document.querySelector('.bx-panel').dataset.ownAnswer !== undefined", timeout=60000)
            path = out / f"explorer-own-image-{lang}-{width}.png"
            tab.screenshot(path=str(path), full_page=True)
            saved.append(path)
            tab.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=40, help="slider moves per page")
    parser.add_argument("--screenshots", type=Path, help="save screenshots of the panel into this folder")
    arguments = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        pages = build_harness(root, cnn_images=("panda_2",))
        base_url, server = serve(root)
        runtime = explorer.runtime_bytes()
        print(f"runtime (explorer.js, explorer.css, TensorFlow.js): {runtime / 1e3:.0f} kB")
        for folder in sorted((root / "assets" / "models").iterdir()):
            size = model_bytes(folder)
            print(f"model {folder.name}: {size / 1e3:.0f} kB; with the runtime {(runtime + size) / 1e6:.2f} MB "
                  f"(budget 2 MB)")
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                seen = set()
                for page in pages:
                    if page.experiment in seen:
                        continue
                    seen.add(page.experiment)
                    tab, errors = open_page(browser, base_url + page.path("en"))
                    tab.evaluate(MOVE_SCRIPT, {"moves": 4, "cold": True})  # warm-up: the first calls compile
                    for cold in (True, False):
                        if not cold:
                            tab.wait_for_timeout(SETTLE_MS)
                        timings = tab.evaluate(MOVE_SCRIPT, {"moves": arguments.moves, "cold": cold})
                        compute, shown = (statistics.median(timings[key]) for key in ("compute", "shown"))
                        verdict = "within" if shown <= BUDGET_MS else "OVER"
                        print(f"{page.experiment} ({'x'.join(map(str, page.x.shape))}), "
                              f"{'every move computes' if cold else 'as a reader finds it'}: median "
                              f"{compute:.1f} ms to redraw, {shown:.1f} ms to the next frame, max "
                              f"{max(timings['shown']):.1f} ms over {arguments.moves} moves "
                              f"({verdict} {BUDGET_MS:.0f} ms)")
                    if errors:
                        print(f"  console errors: {errors}")
                    tab.close()
                if arguments.screenshots:
                    for path in screenshots(browser, base_url, pages, arguments.screenshots):
                        print(f"screenshot: {path}")
                browser.close()
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
