/*
 * Butterfly's live explorer: the page's model runs in the reader's browser (TensorFlow.js, CPU
 * backend) on the page's image or on an image of the reader's own. Nothing is uploaded.
 *
 * This file is the entry point (an ES module; words.js, numbers.js, dom.js, model.js, panel.js
 * and maps.js are its parts); the vendored TensorFlow.js scripts before it define `tf`.
 * The page holds one <div class="bx-panel" data-lang="en|zh" data-payload="URL"> (written by
 * generator/site/explorer.py `panel_html`); the payload JSON (`image_payload`) carries the exact
 * input pixels, the build's attack direction and answer, the settings of the article's epsilon
 * search, per-layer colour scales and the colour tables of the PNG figures.
 *
 * Public interface, for readers' own scripts and for the tests:
 *
 *   window.butterflyExplorer.ready
 *       Promise: resolves when the model is loaded and the panel drawn; rejects (with the
 *       message the panel shows) when the explorer cannot start.
 *   window.butterflyExplorer.evaluate(epsilon)
 *       Promise of {label, index, probabilities}: the model's answer for the page's image
 *       attacked with FGSM at `epsilon`, x_adv = clip(x + float32(epsilon) * direction,
 *       clip_min, clip_max), with the build's direction (the sign of the gradient of
 *       log(sum p) - log(p_label): away from the clean prediction, or towards the target).
 *       label is the canonical class name, probabilities a plain array. On a page attacked with
 *       BIM or PGD the build's direction is still FGSM's (the gradient sign at the clean image),
 *       and evaluate and search run FGSM, the single-step form the panel shows.
 *   window.butterflyExplorer.search()
 *       Promise of {epsilon, label, index, succeeded, steps}: the article's search on the page's
 *       image: epsilon_start + k * epsilon_step for k = 0, 1, ... (computed so, never summed)
 *       until the label changes (targeted: becomes the target) or epsilon_max is passed.
 *       epsilon is null when the label never changes; a targeted search that misses its target
 *       reports the first change of label with succeeded false, as the Python build does.
 *   window.butterflyExplorer.gradientSign()
 *       Promise of an array (H*W*C, row-major) of -1/0/1: the direction computed here, in the
 *       browser, at the page's image; equal to the build's when the runtime is exact.
 *   window.butterflyExplorer.backend
 *       The TensorFlow.js backend in use ("cpu", see BACKEND).
 *   window.butterflyExplorer.lastRenderMs
 *       Milliseconds the last slider move took, from the event to the redrawn panel.
 */

import { element } from "./dom.js";
import { Network, epsilonSearch } from "./model.js";
import { argmax, attackImage } from "./numbers.js";
import { Panel } from "./panel.js";
import { WORDS, fill } from "./words.js";

// The CPU backend for everything, not WebGL: in Chromium, WebGL's gradient of CNN Explainer's
// Tiny VGG differed in sign from TensorFlow's in 2.8 % of the pixels (tiny values where the
// exact gradient is zero), which changes the adversarial image; the CPU backend matched every
// sign and every probability within 4e-6. The models are tiny, so the CPU is fast enough, and
// the WebGL backend is not shipped at all (generator/site/explorer/refresh_tfjs.py).
const BACKEND = "cpu";

let resolveReady;
let rejectReady;
const api = {
  ready: new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; }),
  backend: BACKEND,
  get lastRenderMs() {
    return api.panel ? api.panel.lastRenderMs : null;
  },
  evaluate: async (epsilon) => {
    await api.ready;
    const panel = api.panel;
    const view = panel.pageView();
    const attack = panel.payload.attack;
    const probabilities = panel.network.probabilities([attackImage(view.x, view.direction, Number(epsilon),
                                                                   attack.clip_min, attack.clip_max)])[0];
    const index = argmax(probabilities);
    return { label: panel.payload.classes.canonical[index], index, probabilities: Array.from(probabilities) };
  },
  search: async () => {
    await api.ready;
    const panel = api.panel;
    const view = panel.pageView();
    const attack = panel.payload.attack;
    const found = await epsilonSearch(panel.network, view.x, view.direction, view.cleanIndex, attack, attack.target_index);
    return { epsilon: found.epsilon, label: panel.payload.classes.canonical[found.index], index: found.index,
             succeeded: found.succeeded, steps: found.steps };
  },
  gradientSign: async () => {
    await api.ready;
    const panel = api.panel;
    const view = panel.pageView();
    const targeted = view.targetIndex !== null && view.targetIndex !== undefined;
    return Array.from(panel.network.gradientSign(view.x, targeted ? view.targetIndex : view.cleanIndex, targeted));
  },
};
api.ready.catch(() => {}); // a failed start is shown in the panel; no unhandled rejection
window.butterflyExplorer = api;

async function start(root) {
  const lang = root.dataset.lang === "zh" ? "zh" : "en";
  const words = WORDS[lang];
  const status = root.querySelector(".bx-status");
  if (status) status.textContent = words.loading;
  try {
    if (typeof tf === "undefined" || !tf.loadLayersModel) throw new Error(words.noRuntime);
    if (location.protocol === "file:") throw new Error(words.failedFile);
    await tf.setBackend(BACKEND);
    await tf.ready();
    const payloadUrl = new URL(root.dataset.payload, document.baseURI);
    const response = await fetch(payloadUrl);
    if (!response.ok) throw new Error(payloadUrl.pathname + ": HTTP " + response.status);
    const payload = await response.json();
    const model = await tf.loadLayersModel(new URL(payload.model_url, payloadUrl).href);
    const network = new Network(model, payload.layers.filter((layer) => layer.shape.length === 3)
                                                      .map((layer) => layer.name));
    const panel = new Panel(root, payload, network, words, lang);
    panel.build();
    api.panel = panel;
    await panel.showPage();
    resolveReady();
  } catch (error) {
    root.classList.add("bx-failed");
    const message = fill(words.failed, { reason: error && error.message ? error.message : String(error) });
    const shown = root.querySelector(".bx-status") || root.appendChild(element("p", { className: "bx-status" }));
    shown.textContent = message;
    rejectReady(new Error(message));
  }
}

function boot() {
  const root = document.querySelector(".bx-panel");
  if (root) start(root);
  else rejectReady(new Error("no .bx-panel on this page"));
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
