/* The explorer panel: the slider over epsilon, the original, perturbation and adversarial images,
   the answer and the top-5 probabilities, every layer's maps (maps.js), and the reader's own
   image. It shows what `Network` computes, for the page's image or another. */

import { element, canvas } from "./dom.js";
import { LayerMaps } from "./maps.js";
import { epsilonSearch, prepareImage } from "./model.js";
import {
  argmax, attackImage, decodeFloat32, decodeInt8, f32, formatEpsilon, formatFactor, formatPercent, gridEpsilon,
  gridSize, imageRGBA, parseTable,
} from "./numbers.js";
import { fill } from "./words.js";

// Forward passes of slider positions kept, so moving back and forth only repaints. Positions
// near the current one are computed ahead while the page is idle. 48 positions of CNN
// Explainer's Tiny VGG hold about 30 MB.
const CACHED_POSITIONS = 48;

export class Panel {
  constructor(root, payload, network, words, lang) {
    this.root = root;
    this.payload = payload;
    this.network = network;
    this.words = words;
    this.lang = lang;
    this.classes = payload.classes[lang] || payload.classes.canonical;
    this.colours = {
      size: payload.colours.size,
      sequential: parseTable(payload.colours.sequential.table),
      diverging: parseTable(payload.colours.diverging.table),
    };
    [this.h, this.w, this.c] = payload.input.shape;
    this.mapLayers = payload.layers.filter((layer) => layer.shape.length === 3 && layer.type !== "InputLayer"
                                                    && network.layerNames.includes(layer.name));
    this.lastRenderMs = null;
  }

  t(key, values) {
    return fill(this.words[key], values || {});
  }

  unitWord(unit) {
    return this.t(unit === "filter" ? "filter" : "channel");
  }

  // The state one view shows: the page's image, or the reader's.
  setView(view) {
    this.view = view;
    this.runs = new Map();
    this.generation = (this.generation || 0) + 1;
    this.cleanRun = this.network.activations(view.x);
    this.buildSlider();
    this.maps.build();
    this.drawStatic();
    this.slider.value = String(view.startPosition);
    this.render();
    this.prefetch();
  }

  build() {
    const t = (key, values) => this.t(key, values);
    // Everything the page wrote into the panel goes, but its style sheet.
    for (const child of Array.from(this.root.childNodes)) if (child.nodeName !== "LINK") child.remove();
    this.root.classList.add("bx-ready");
    this.status = element("p", { className: "bx-status", role: "status", "aria-live": "polite" });
    this.slider = element("input", { type: "range", id: this.id("slider"), min: "0", max: "1", step: "1",
                                     className: "bx-slider" });
    this.sliderOutput = element("output", { className: "bx-value", for: this.id("slider") });
    this.marks = element("div", { className: "bx-marks", "aria-hidden": "true" });
    this.flipNote = element("p", { className: "bx-flip-note" });
    this.targetSelect = element("select", { id: this.id("target"), className: "bx-target" });
    this.targetSelect.append(element("option", { value: "", text: t("untargeted") }));
    this.classes.forEach((name, i) => this.targetSelect.append(element("option", { value: String(i),
                                                                          text: t("towards", { name }) })));
    this.canvasOriginal = canvas(this.w, this.h, "bx-image", t("original"));
    this.canvasPerturbation = canvas(this.w, this.h, "bx-image", t("perturbation", { factor: "" }));
    this.canvasAdversarial = canvas(this.w, this.h, "bx-image", t("adversarial", { eps: "" }));
    this.captionOriginal = element("figcaption");
    this.captionPerturbation = element("figcaption");
    this.captionAdversarial = element("figcaption");
    this.answer = element("p", { className: "bx-answer", "aria-live": "polite" });
    // Plain elements with list roles: the theme's own list and <details> styles would restyle them.
    this.bars = element("div", { className: "bx-bars", role: "list" });
    this.barsTitle = element("p", { className: "bx-bars-title" });
    this.layerBox = element("div", { className: "bx-layers" });
    this.viewTitle = element("p", { className: "bx-view" });
    this.backButton = element("button", { type: "button", className: "bx-button", hidden: true, text: t("ownBack") });
    this.fileInput = element("input", { type: "file", accept: "image/*", id: this.id("file"), className: "bx-file" });
    this.ownStatus = element("p", { className: "bx-own-status", role: "status", "aria-live": "polite" });
    const drop = element("label", { className: "bx-drop", for: this.id("file") }, [
      element("span", { text: t("ownDrop") }), this.fileInput,
      element("span", { className: "bx-button bx-choose", text: t("ownChoose") })]);
    const colour = this.c === 1 ? t("ownGrey") : t("ownColour");
    const gcd = (a, b) => (b ? gcd(b, a % b) : a);
    const divisor = gcd(this.w, this.h);
    this.dialog = element("dialog", { className: "bx-zoom" });

    this.root.append(
      element("p", { className: "bx-title" }, [element("strong", { text: t("title") })]),
      element("p", { className: "bx-intro", text: t("intro") }),
      this.viewTitle,
      element("div", { className: "bx-controls" }, [
        element("label", { for: this.id("slider"), className: "bx-slider-label", text: t("slider") }),
        element("div", { className: "bx-slider-row" }, [element("div", { className: "bx-track" }, [this.slider, this.marks]),
                                                        this.sliderOutput]),
        this.flipNote,
        element("div", { className: "bx-target-row" }, [
          element("label", { for: this.id("target"), text: t("attackLabel") }), this.targetSelect]),
        this.status,
      ]),
      element("div", { className: "bx-images" }, [
        element("figure", {}, [this.canvasOriginal, this.captionOriginal]),
        element("figure", {}, [this.canvasPerturbation, this.captionPerturbation]),
        element("figure", {}, [this.canvasAdversarial, this.captionAdversarial]),
      ]),
      element("div", { className: "bx-prediction" }, [this.answer, this.barsTitle, this.bars]),
      element("div", { className: "bx-layers-box" }, [
        element("p", { className: "bx-subtitle" }, [element("strong", { text: t("layers") })]),
        element("p", { className: "bx-note", text: t("layersNote") }),
        this.layerBox,
      ]),
      element("div", { className: "bx-own" }, [
        element("p", { className: "bx-own-title" }, [element("strong", { text: t("ownTitle") })]),
        drop,
        element("p", { className: "bx-note", text: [t("ownPrivacy"), t("ownPolicy", { colour, w: this.w, h: this.h,
                       rw: this.w / divisor, rh: this.h / divisor }), t("ownDiffers", { w: this.w, h: this.h })]
                       .join(t("sentence")) }),
        this.ownStatus,
        this.backButton,
      ]),
      this.dialog,
    );

    this.slider.addEventListener("input", () => this.render());
    this.slider.addEventListener("change", () => this.prefetch());
    this.targetSelect.addEventListener("change", () => this.changeTarget());
    this.fileInput.addEventListener("change", () => {
      if (this.fileInput.files && this.fileInput.files[0]) this.useFile(this.fileInput.files[0]);
    });
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("bx-over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("bx-over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("bx-over");
      const file = event.dataTransfer && event.dataTransfer.files[0];
      if (file) this.useFile(file);
    });
    this.backButton.addEventListener("click", () => this.showPage());
    this.maps = new LayerMaps(this, this.layerBox, this.dialog);
  }

  id(name) {
    if (!this.idPrefix) this.idPrefix = "bx-" + Math.random().toString(36).slice(2, 8);
    return this.idPrefix + "-" + name;
  }

  /** The page's own image, with the build's direction, answer and colour scales. */
  pageView() {
    const p = this.payload;
    const x = decodeFloat32(p.input.data);
    const scales = {};
    p.layers.forEach((layer) => {
      if (layer.scale) scales[layer.name] = { lo: layer.scale[0], hi: layer.scale[1], limit: layer.difference_limit,
                                              order: layer.channel_order || null };
    });
    const fgsm = p.attack.method === "fgsm";
    return { source: "page", title: p.title[this.lang] || p.title.en, x,
             direction: Float32Array.from(decodeInt8(p.direction.data)),
             cleanIndex: p.clean_index, targetIndex: p.attack.target_index, scales, amplification: p.amplification,
             flipEpsilon: fgsm ? p.result.epsilon : null, fromBuild: fgsm };
  }

  showPage() {
    this.searchToken = (this.searchToken || 0) + 1; // a search still running for another view is dropped
    delete this.root.dataset.ownImage;
    delete this.root.dataset.ownAnswer;
    this.backButton.hidden = true;
    this.ownStatus.textContent = "";
    this.fileInput.value = "";
    const view = this.pageView();
    this.targetSelect.value = view.targetIndex === null ? "" : String(view.targetIndex);
    this.markPageSetting(view.targetIndex);
    if (view.fromBuild) {
      this.status.textContent = "";
      this.finishView(view);
      return Promise.resolve();
    }
    // BIM or PGD: the build's epsilon belongs to another attack; FGSM's is searched here.
    const note = this.t("methodNote", { method: this.payload.attack.method.toUpperCase() });
    this.status.textContent = note;
    return this.searchView(view).then((shown) => {
      if (shown) this.status.textContent = note + this.t("sentence") + this.status.textContent;
    });
  }

  markPageSetting(targetIndex) {
    const value = targetIndex === null || targetIndex === undefined ? "" : String(targetIndex);
    for (const option of this.targetSelect.options) {
      const base = option.value === "" ? this.t("untargeted") : this.t("towards", { name: this.classes[Number(option.value)] });
      option.textContent = option.value === value ? base + " " + this.t("pageSettings") : base;
    }
  }

  /** Slider positions: 0, then the grid up to twice the flip epsilon (or up to epsilon_max). */
  finishView(view) {
    const attack = this.payload.attack;
    const top = view.flipEpsilon === null ? attack.epsilon_max : 2 * view.flipEpsilon;
    const count = Math.max(1, Math.min(gridSize(attack, top), gridSize(attack)));
    const epsilons = attack.epsilon_start > 0 ? [0] : [];
    for (let k = 0; k < count; k++) epsilons.push(gridEpsilon(attack, k));
    view.epsilons = epsilons;
    // The flip is a grid point, computed like the build's (start + k * step): found exactly.
    view.flipPosition = view.flipEpsilon === null ? null
      : epsilons.reduce((best, e, i) => (Math.abs(e - view.flipEpsilon) < Math.abs(epsilons[best] - view.flipEpsilon) ? i : best), 0);
    view.startPosition = view.flipPosition === null ? epsilons.length - 1 : view.flipPosition;
    if (!view.scales) view.scales = this.measureScales(view);
    if (!view.amplification) view.amplification = 0.5 / epsilons[epsilons.length - 1];
    this.setView(view);
  }

  /** For a view the build did not see: scales over the original and the attack's answer, as the probe. */
  measureScales(view) {
    const attack = this.payload.attack;
    const answer = view.flipEpsilon === null ? view.epsilons[view.epsilons.length - 1] : view.flipEpsilon;
    const clean = this.network.activations(view.x).layers;
    const adversarial = this.network.activations(attackImage(view.x, view.direction, answer, attack.clip_min,
                                                             attack.clip_max)).layers;
    const scales = {};
    for (const layer of this.mapLayers) {
      const a = clean[layer.name];
      const b = adversarial[layer.name];
      let lo = Infinity;
      let hi = -Infinity;
      let limit = 0;
      const channels = layer.shape[2];
      const change = new Float64Array(channels);
      for (let i = 0; i < a.length; i++) {
        lo = Math.min(lo, a[i], b[i]);
        hi = Math.max(hi, a[i], b[i]);
        const d = Math.abs(f32(b[i] - a[i]));
        limit = Math.max(limit, d);
        change[i % channels] += d;
      }
      const order = Array.from(change.keys()).sort((i, j) => change[j] - change[i] || i - j);
      scales[layer.name] = { lo, hi, limit, order };
    }
    return scales;
  }

  /** A view whose direction or answer is computed here: the reader's image, another target. */
  async searchView(view) {
    const attack = this.payload.attack;
    const token = (this.searchToken = (this.searchToken || 0) + 1);
    const targeted = view.targetIndex !== null && view.targetIndex !== undefined;
    view.direction = Float32Array.from(this.network.gradientSign(view.x, targeted ? view.targetIndex : view.cleanIndex,
                                                                  targeted));
    const found = await epsilonSearch(this.network, view.x, view.direction, view.cleanIndex, attack, view.targetIndex,
      (eps, step, total) => {
        if (token === this.searchToken) this.status.textContent = this.t("searching", { eps: formatEpsilon(eps), step, total });
      });
    if (token !== this.searchToken) return false; // another image or target was chosen meanwhile
    view.flipEpsilon = found.epsilon;
    view.fromBuild = false; // the flip mark and the colour scales are this browser's own
    view.scales = null;
    view.amplification = null;
    const label = this.classes[found.index];
    if (found.epsilon === null) this.status.textContent = this.t("searchNever", { eps: formatEpsilon(attack.epsilon_max) });
    else if (targeted && !found.succeeded) this.status.textContent = this.t("searchMissed", { eps: formatEpsilon(found.epsilon) });
    else this.status.textContent = this.t("searchDone", { eps: formatEpsilon(found.epsilon), label });
    this.finishView(view);
    return true;
  }

  async changeTarget() {
    const value = this.targetSelect.value;
    const targetIndex = value === "" ? null : Number(value);
    const page = this.pageView();
    const base = this.view.source === "page" ? page : Object.assign({}, this.view);
    base.targetIndex = targetIndex;
    if (base.source === "page" && targetIndex === page.targetIndex && page.fromBuild) {
      this.status.textContent = "";
      this.finishView(page);
      return;
    }
    if (targetIndex === base.cleanIndex) {
      // As the build: a target that is already the answer is no attack.
      this.status.textContent = this.t("alreadyAnswer", { name: this.classes[targetIndex] });
      this.targetSelect.value = this.view.targetIndex === null || this.view.targetIndex === undefined ? ""
        : String(this.view.targetIndex);
      return;
    }
    this.targetSelect.disabled = true;
    try {
      await this.searchView(base);
    } finally {
      this.targetSelect.disabled = false;
    }
  }

  async useFile(file) {
    const name = file.name || "image";
    this.ownStatus.textContent = this.t("ownWorking", { name });
    let x;
    try {
      x = await prepareImage(file, this.h, this.w, this.c);
    } catch (error) {
      this.ownStatus.textContent = error.megapixels ? this.t("ownTooLarge", { mp: error.megapixels })
        : this.t("ownError", { reason: error.message || String(error) });
      return;
    }
    const probabilities = this.network.probabilities([x])[0];
    const cleanIndex = argmax(probabilities);
    const value = this.targetSelect.value;
    let targetIndex = value === "" ? null : Number(value);
    if (targetIndex === cleanIndex) {
      targetIndex = null; // already the answer: attack away from it instead
      this.targetSelect.value = "";
    }
    this.ownStatus.textContent = this.t("ownAnswer", { name, label: this.classes[cleanIndex],
                                                        p: formatPercent(probabilities[cleanIndex]) });
    this.backButton.hidden = false;
    const still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    this.viewTitle.scrollIntoView({ behavior: still ? "auto" : "smooth", block: "start" });
    this.root.dataset.ownImage = name;
    const shown = await this.searchView({ source: "own", title: name, x, cleanIndex, targetIndex, scales: null,
                                          amplification: null, flipEpsilon: null });
    if (shown) this.root.dataset.ownAnswer = this.payload.classes.canonical[cleanIndex];
  }

  buildSlider() {
    const view = this.view;
    const last = view.epsilons.length - 1;
    this.slider.max = String(last);
    this.marks.textContent = "";
    if (view.flipPosition !== null && view.flipPosition >= 0) {
      const mark = element("span", { className: "bx-flip-mark" });
      mark.style.setProperty("--bx-at", String(last > 0 ? view.flipPosition / last : 0));
      this.marks.append(mark);
      this.flipNote.textContent = "▲ " + this.t(view.fromBuild ? "flipMark" : "flipFound",
                                                { eps: formatEpsilon(view.flipEpsilon) });
    } else {
      this.flipNote.textContent = this.t("flipNone", { eps: formatEpsilon(view.epsilons[last]) });
    }
    this.viewTitle.textContent = view.source === "page" ? this.t("pageImage") + this.t("colon") + view.title
      : this.t("ownShowing", { name: view.title });
  }

  drawImage(target, x) {
    const context = target.getContext("2d");
    const image = context.createImageData(this.w, this.h);
    imageRGBA(x, this.h, this.w, this.c, image.data);
    context.putImageData(image, 0, 0);
  }

  drawStatic() {
    this.drawImage(this.canvasOriginal, this.view.x);
    const clean = this.cleanRun.probabilities;
    this.captionOriginal.textContent = this.t("original") + this.t("colon") + this.classes[this.view.cleanIndex] +
      this.t("paren", { x: formatPercent(clean[this.view.cleanIndex]) });
    this.maps.showOriginal();
  }

  /** The attacked image and its forward pass at slider position `position`, cached. */
  runAt(position) {
    let entry = this.runs.get(position);
    if (entry) {
      this.runs.delete(position); // re-inserted below: the map's order is the eviction order
    } else {
      const attack = this.payload.attack;
      const epsilon = this.view.epsilons[position];
      const xAdv = attackImage(this.view.x, this.view.direction, epsilon, attack.clip_min, attack.clip_max);
      entry = { epsilon, xAdv, run: this.network.activations(xAdv) };
    }
    this.runs.set(position, entry);
    while (this.runs.size > CACHED_POSITIONS) this.runs.delete(this.runs.keys().next().value);
    return entry;
  }

  /** Compute the positions nearest the slider ahead of time, one per idle moment. */
  prefetch() {
    const generation = this.generation;
    const idle = window.requestIdleCallback || ((callback) => setTimeout(callback, 50));
    const step = () => {
      if (generation !== this.generation) return; // another view or target since
      const here = Number(this.slider.value);
      const last = this.view.epsilons.length - 1;
      for (let distance = 1; distance <= Math.min(last, CACHED_POSITIONS / 2 - 1); distance++) {
        for (const position of [here + distance, here - distance]) {
          if (position >= 0 && position <= last && !this.runs.has(position)) {
            this.runAt(position);
            this.runAt(here); // keeps the shown position the most recently used
            idle(step);
            return;
          }
        }
      }
    };
    idle(step);
  }

  /** Redraw everything that depends on epsilon: one forward pass (or none, if cached), then the pictures. */
  render() {
    const started = performance.now();
    const view = this.view;
    const position = Number(this.slider.value);
    this.current = this.runAt(position);
    const { epsilon, xAdv, run } = this.current;
    const text = "ε = " + formatEpsilon(epsilon);
    this.sliderOutput.textContent = text;
    this.slider.setAttribute("aria-valuetext", text);

    this.drawImage(this.canvasAdversarial, xAdv);
    const amplification = view.amplification;
    const shown = new Float32Array(xAdv.length);
    const factor = f32(amplification);
    for (let i = 0; i < shown.length; i++) {
      const v = f32(f32(0.5) + f32(factor * f32(xAdv[i] - view.x[i])));
      shown[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    this.drawImage(this.canvasPerturbation, shown);
    const factorText = formatFactor(amplification);
    this.captionPerturbation.textContent = this.t("perturbation", { factor: factorText });
    this.canvasPerturbation.setAttribute("aria-label", this.t("perturbationNote", { factor: factorText }));

    const probabilities = run.probabilities;
    const index = argmax(probabilities);
    const changed = index !== view.cleanIndex;
    this.captionAdversarial.textContent = this.t("adversarial", { eps: formatEpsilon(epsilon) }) + this.t("colon") +
      this.classes[index] + this.t("paren", { x: formatPercent(probabilities[index]) });
    this.answer.textContent = "";
    this.answer.append(this.t("answer") + this.t("colon"), element("strong", { text: this.classes[view.cleanIndex] }));
    if (changed) this.answer.append(" → ", element("strong", { className: "bx-flipped", text: this.classes[index] }));
    this.answer.append(element("span", { className: changed ? "bx-badge bx-badge-changed" : "bx-badge",
                                         text: changed ? this.t("changed") : this.t("unchanged") }));
    this.root.dataset.label = this.payload.classes.canonical[index];
    this.root.dataset.epsilon = String(epsilon);
    this.drawBars(probabilities, epsilon);

    this.maps.showAttack();
    this.lastRenderMs = performance.now() - started;
    this.root.dispatchEvent(new CustomEvent("bx-rendered", { detail: { epsilon, ms: this.lastRenderMs } }));
  }

  drawBars(probabilities, epsilon) {
    const order = Array.from(probabilities.keys()).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const k = Math.min(5, order.length);
    this.barsTitle.textContent = this.t("top", { k, eps: formatEpsilon(epsilon) });
    this.bars.textContent = "";
    for (const i of order.slice(0, k)) {
      const notes = [];
      if (i === this.view.cleanIndex) notes.push(this.t("originalAnswer"));
      if (this.view.targetIndex !== null && this.view.targetIndex !== undefined && i === this.view.targetIndex) {
        notes.push(this.t("target"));
      }
      const bar = element("span", { className: "bx-bar" });
      bar.style.width = (100 * probabilities[i]).toFixed(2) + "%";
      const item = element("div", { role: "listitem",
                                    className: "bx-bar-row" + (i === this.view.cleanIndex ? " bx-clean" : (i === order[0] ? " bx-top" : "")) }, [
        element("span", { className: "bx-bar-label", text: this.classes[i] +
          (notes.length ? this.t("paren", { x: notes.join(this.t("comma")) }) : "") }),
        element("span", { className: "bx-bar-track" }, [bar]),
        element("span", { className: "bx-bar-value", text: formatPercent(probabilities[i]) }),
      ]);
      this.bars.append(item);
    }
  }
}
