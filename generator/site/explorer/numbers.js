/* Numbers and colours computed exactly as the Python build computes them: float32 steps,
   numpy's rounding, the epsilon grid start + k * step, the figures' colour-table indices
   (generator/analysis/attack.py, generator/figures/common.py). */

export const f32 = Math.fround;

/** Round half to even, as numpy's rint. */
export function rint(v) {
  const floor = Math.floor(v);
  const rest = v - floor;
  if (rest > 0.5) return floor + 1;
  if (rest < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

function decodeBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

export function decodeFloat32(text) {
  const bytes = decodeBase64(text);
  const view = new DataView(bytes.buffer);
  const out = new Float32Array(bytes.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  return out;
}

export function decodeInt8(text) {
  return new Int8Array(decodeBase64(text).buffer);
}

/** Grid points of the search: as AttackSettings.grid_size (the 1e-9 keeps a max on the grid). */
export function gridSize(attack, upTo) {
  const top = upTo === undefined ? attack.epsilon_max : upTo;
  return Math.floor((top - attack.epsilon_start) / attack.epsilon_step + 1e-9) + 1;
}

/** The k-th epsilon: start + k * step, never a running sum (as AttackSettings.grid_epsilons). */
export function gridEpsilon(attack, k) {
  return attack.epsilon_start + k * attack.epsilon_step;
}

/** clip(x + float32(eps) * direction, lo, hi) in float32, element by element as numpy does. */
export function attackImage(x, direction, epsilon, lo, hi) {
  const e = f32(epsilon);
  const low = f32(lo);
  const high = f32(hi);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = f32(x[i] + e * direction[i]);
    out[i] = v < low ? low : v > high ? high : v;
  }
  return out;
}

export function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

export function formatEpsilon(v) {
  return v === null || v === undefined ? "—" : v.toFixed(4);
}

/** A probability: one decimal; two significant digits below 0.1 %; "<0.01%" below 0.01 % (it fits the bar's column). */
export function formatPercent(p) {
  const percent = 100 * p;
  if (percent > 0 && percent < 0.01) return "<0.01%";
  if (percent > 0 && percent < 0.1) return percent.toPrecision(2) + "%";
  return percent.toFixed(1) + "%";
}

export function formatNumber(v) {
  if (v === 0) return "0";
  if (!isFinite(v)) return "—";
  return Number(v.toPrecision(3)).toString().replace("-", "−");
}

export function formatFactor(v) {
  return Number(v.toPrecision(3)).toString();
}

// --- colours: the figures' tables and index rules (generator/figures/common.py) --------------

export function parseTable(hex) {
  const table = new Uint8Array(hex.length / 2);
  for (let i = 0; i < table.length; i++) table[i] = parseInt(hex.substr(2 * i, 2), 16);
  return table;
}

/** Table index of value v on lo..hi, as sequential_colours (float32 steps, rint, clip). */
export function sequentialIndex(v, lo, hi, size) {
  if (!(hi > lo)) return 0;
  const scaled = f32(f32(v - f32(lo)) * f32((size - 1) / (hi - lo)));
  const i = rint(scaled);
  return i < 0 ? 0 : i > size - 1 ? size - 1 : i;
}

/** Table index of a signed value on ±limit, as diverging_colours (zero is the middle entry). */
export function divergingIndex(v, limit, size) {
  const middle = (size - 1) >> 1;
  if (!(limit > 0)) return middle;
  const i = rint(f32(middle + f32(v * f32(middle / limit))));
  return i < 0 ? 0 : i > size - 1 ? size - 1 : i;
}

/** An image (H, W, C) in [0, 1] as RGBA bytes, as image_colours: rint(x * 255), clipped. */
export function imageRGBA(x, h, w, c, out) {
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) {
      const v = x[p * c + (c === 3 ? k : 0)];
      const byte = rint(f32(v * 255));
      out[4 * p + k] = byte < 0 ? 0 : byte > 255 ? 255 : byte;
    }
    out[4 * p + 3] = 255;
  }
}
