/* Every layer's feature maps, live: the original image's, the adversarial image's and their
   difference, on the colour scales of the PNG figures; a map opens enlarged in a dialog. */

import { canvas, element } from "./dom.js";
import { divergingIndex, f32, formatEpsilon, formatNumber, sequentialIndex } from "./numbers.js";

const MAX_MAPS = 16; // maps drawn per layer; wider layers show their most changed ones
const KINDS = ["original", "adversarial", "difference"];

/** adversarial - clean, element by element in float32 (as the build's difference maps). */
function difference(clean, adversarial) {
  const out = new Float32Array(clean.length);
  for (let i = 0; i < clean.length; i++) out[i] = f32(adversarial[i] - clean[i]);
  return out;
}

export class LayerMaps {
  /** panel: the Panel (words, colours, view, runs); box: where the layers go; dialog: the enlarger. */
  constructor(panel, box, dialog) {
    this.panel = panel;
    this.box = box;
    this.dialog = dialog;
    this.views = [];
    this.zoomed = null;
    dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
    dialog.addEventListener("close", () => { this.zoomed = null; });
  }

  /** One section per layer with maps: three rows of maps and their scales, in the panel's language. */
  build() {
    this.box.textContent = "";
    this.views = [];
    for (const layer of this.panel.mapLayers) {
      const scale = this.panel.view.scales[layer.name];
      if (!scale) continue;
      const [h, w, c] = layer.shape;
      let channels = Array.from({ length: c }, (_, i) => i);
      let note = "";
      if (c > MAX_MAPS) {
        const order = scale.order || channels;
        channels = order.slice(0, MAX_MAPS).sort((a, b) => a - b);
        note = " · " + this.panel.t("shownMost", { n: MAX_MAPS, total: c, units: this.panel.t(layer.unit === "filter" ? "filters" : "channels") });
      }
      const size = Math.max(h, w);
      const section = element("section", { className: "bx-layer" });
      section.style.setProperty("--bx-aspect", String(w / h));
      // One row of up to 10 maps (two rows of 8 for 16): maps shrink to fit a phone's width.
      section.style.setProperty("--bx-columns", String(channels.length > 10 ? Math.ceil(channels.length / 2) : channels.length));
      section.append(element("p", { className: "bx-layer-name" }, [
        element("strong", { text: layer.name }),
        element("span", { text: " · " + h + " × " + w + " × " + c + " · " +
          this.panel.t("scale", { lo: formatNumber(scale.lo), hi: formatNumber(scale.hi) }) + " · " +
          this.panel.t("limit", { limit: formatNumber(scale.limit) }) + note }),
      ]));
      const rows = {};
      for (const kind of KINDS) {
        const maps = element("div", { className: "bx-maps" });
        rows[kind] = channels.map((channel) => {
          const map = canvas(w, h, "bx-map-canvas");
          const button = element("button", { type: "button", className: "bx-map",
            "aria-label": this.panel.t("enlarge", { layer: layer.name, unit: this.panel.unitWord(layer.unit), index: channel }) +
              this.panel.t("paren", { x: this.panel.t("row" + kind[0].toUpperCase() + kind.slice(1)) }) }, [map]);
          button.addEventListener("click", () => this.openZoom(layer, channel));
          maps.append(button);
          const context = map.getContext("2d");
          return { context, image: context.createImageData(w, h), channel };
        });
        section.append(element("div", { className: "bx-row" }, [
          element("span", { className: "bx-row-label", text: this.panel.t("row" + kind[0].toUpperCase() + kind.slice(1)) }), maps]));
      }
      this.roveFocus(section, channels.length);
      section.classList.toggle("bx-small", size <= 16);
      this.box.append(section);
      this.views.push({ layer, scale, rows });
    }
  }

  /**
   * One tab stop per layer, not one per map: the arrow keys move between a layer's maps
   * (left/right along a row, up/down between original, adversarial and difference).
   */
  roveFocus(section, columns) {
    const buttons = Array.from(section.querySelectorAll(".bx-map"));
    buttons.forEach((button, i) => { button.tabIndex = i === 0 ? 0 : -1; });
    section.addEventListener("keydown", (event) => {
      const from = buttons.indexOf(document.activeElement);
      if (from < 0) return;
      const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -from,
                      End: buttons.length - 1 - from };
      if (!(event.key in moves)) return;
      const to = from + moves[event.key];
      if (to < 0 || to >= buttons.length) return;
      event.preventDefault();
      buttons[from].tabIndex = -1;
      buttons[to].tabIndex = 0;
      buttons[to].focus();
    });
  }

  /** Map `values` (H*W*C, channel `channel`) into an ImageData with one of the tables. */
  paint(target, values, channels, kind, scale) {
    const size = this.panel.colours.size;
    const table = kind === "difference" ? this.panel.colours.diverging : this.panel.colours.sequential;
    const data = target.image.data;
    const n = values.length / channels;
    for (let p = 0; p < n; p++) {
      const v = values[p * channels + target.channel];
      const i = kind === "difference" ? divergingIndex(v, scale.limit, size) : sequentialIndex(v, scale.lo, scale.hi, size);
      data[4 * p] = table[3 * i];
      data[4 * p + 1] = table[3 * i + 1];
      data[4 * p + 2] = table[3 * i + 2];
      data[4 * p + 3] = 255;
    }
    target.context.putImageData(target.image, 0, 0);
  }

  /** Show one map of a layer enlarged: original, adversarial, difference, with their values. */
  openZoom(layer, channel) {
    this.zoomed = { layer, channel };
    this.drawZoom();
    if (!this.dialog.open) this.dialog.showModal();
  }

  drawZoom() {
    const { layer, channel } = this.zoomed;
    const scale = this.panel.view.scales[layer.name];
    const [h, w, c] = layer.shape;
    const clean = this.panel.cleanRun.layers[layer.name];
    const adversarial = this.panel.current.run.layers[layer.name];
    this.dialog.textContent = "";
    const close = element("button", { type: "button", className: "bx-button", text: this.panel.t("close") });
    close.addEventListener("click", () => this.dialog.close());
    const panels = [];
    for (const [kind, values] of [["original", clean], ["adversarial", adversarial], ["difference", difference(clean, adversarial)]]) {
      const map = canvas(w, h, "bx-zoom-canvas");
      const target = { context: map.getContext("2d"), image: null, channel };
      target.image = target.context.createImageData(w, h);
      this.paint(target, values, c, kind, scale);
      let lo = Infinity;
      let hi = -Infinity;
      for (let p = channel; p < values.length; p += c) { lo = Math.min(lo, values[p]); hi = Math.max(hi, values[p]); }
      const rowWord = this.panel.t("row" + kind[0].toUpperCase() + kind.slice(1));
      map.setAttribute("role", "img");
      map.setAttribute("aria-label", rowWord + ", " + this.panel.t("values", { lo: formatNumber(lo), hi: formatNumber(hi) }));
      panels.push(element("figure", {}, [map, element("figcaption", { text: rowWord + " · " +
        this.panel.t("values", { lo: formatNumber(lo), hi: formatNumber(hi) }) })]));
    }
    this.dialog.append(
      element("p", { className: "bx-title" }, [element("strong", { text: this.panel.t("zoomTitle", {
        layer: layer.name, unit: this.panel.unitWord(layer.unit), index: channel, eps: formatEpsilon(this.panel.current.epsilon) }) })]),
      element("p", { className: "bx-note", text: this.panel.t("scale", { lo: formatNumber(scale.lo), hi: formatNumber(scale.hi) }) +
        " · " + this.panel.t("limit", { limit: formatNumber(scale.limit) }) }),
      element("div", { className: "bx-zoom-maps" }, panels),
      close,
    );
  }

  /** Paint the original image's maps (once per view). */
  showOriginal() {
    for (const { layer, scale, rows } of this.views) {
      const values = this.panel.cleanRun.layers[layer.name];
      rows.original.forEach((target) => this.paint(target, values, layer.shape[2], "original", scale));
    }
  }

  /** Paint the adversarial maps and the differences at the current slider position. */
  showAttack() {
    for (const { layer, scale, rows } of this.views) {
      const clean = this.panel.cleanRun.layers[layer.name];
      const adversarial = this.panel.current.run.layers[layer.name];
      const change = difference(clean, adversarial);
      rows.adversarial.forEach((target) => this.paint(target, adversarial, layer.shape[2], "adversarial", scale));
      rows.difference.forEach((target) => this.paint(target, change, layer.shape[2], "difference", scale));
    }
    if (this.zoomed) this.drawZoom();
  }
}
