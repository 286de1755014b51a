/* The model in the page: forward passes, the attack direction, the article's epsilon search, and
   the reader's own image prepared as the build prepares its images. TensorFlow.js is the global
   `tf` of the vendored scripts the page loads first. */

import { argmax, attackImage, f32, gridEpsilon, gridSize, rint } from "./numbers.js";

const LOSS_FLOOR = 1e-37; // as gradient_sign in generator/analysis/attack.py
const MAX_IMAGE_PIXELS = 40e6; // as the build's image policy (generator/inputs/images.py)

/** The loaded model, its layers in order, and the arithmetic the panel needs. */
export class Network {
  constructor(model, layerNames) {
    this.model = model;
    const shape = model.inputs[0].shape;
    this.shape = [shape[1], shape[2], shape[3]];
    this.size = shape[1] * shape[2] * shape[3];
    // Exported models are chains of single-input layers (generator/inputs/model_export.py), so
    // applying the layers in order is the model's own forward pass. It is 4x faster than a
    // multi-output tf.model tapping every layer, which re-plans its execution on each call.
    this.layers = model.layers.filter((layer) => layer.getClassName() !== "InputLayer");
    const present = new Set(this.layers.map((layer) => layer.name));
    this.layerNames = layerNames.filter((name) => present.has(name));
  }

  batch(images) {
    const data = new Float32Array(images.length * this.size);
    images.forEach((image, i) => data.set(image, i * this.size));
    return tf.tensor4d(data, [images.length].concat(this.shape));
  }

  /** Probabilities (one Float32Array per image) of images (Float32Array H*W*C each). */
  probabilities(images) {
    return tf.tidy(() => {
      const output = this.model.predict(this.batch(images));
      const values = output.dataSync();
      const n = values.length / images.length;
      return images.map((_, i) => values.slice(i * n, (i + 1) * n));
    });
  }

  /** {layers: {name: Float32Array}, probabilities} of one image, in one forward pass. */
  activations(image) {
    return tf.tidy(() => {
      const wanted = new Set(this.layerNames);
      const layers = {};
      let hidden = this.batch([image]);
      for (const layer of this.layers) {
        hidden = layer.apply(hidden, { training: false });
        if (wanted.has(layer.name)) layers[layer.name] = hidden.dataSync().slice();
      }
      return { layers, probabilities: hidden.dataSync().slice() };
    });
  }

  /** The sign of the gradient of log(sum p) - log(p_label) (negated when targeted): Int8Array. */
  gradientSign(image, label, targeted) {
    return tf.tidy(() => {
      const loss = (input) => {
        const p = this.model.apply(input, { training: false });
        const pLabel = tf.maximum(tf.gather(p, [label], 1), LOSS_FLOOR);
        const value = tf.sum(tf.sub(tf.log(tf.sum(p, 1)), tf.log(pLabel)));
        return targeted ? tf.neg(value) : value;
      };
      const gradient = tf.grad(loss)(this.batch([image]));
      return Int8Array.from(tf.sign(gradient).dataSync());
    });
  }
}

/** The article's search on one image: one model call per grid point, as plain_epsilon_loop. */
export async function epsilonSearch(network, x, direction, cleanIndex, attack, targetIndex, progress) {
  const total = gridSize(attack);
  const targeted = targetIndex !== null && targetIndex !== undefined;
  let firstChange = null;
  let last = null;
  for (let k = 0; k < total; k++) {
    const epsilon = gridEpsilon(attack, k);
    const probabilities = network.probabilities([attackImage(x, direction, epsilon, attack.clip_min, attack.clip_max)])[0];
    const index = argmax(probabilities);
    last = { epsilon, index, k };
    if (firstChange === null && index !== cleanIndex) firstChange = last;
    if (targeted ? index === targetIndex : index !== cleanIndex) {
      return { epsilon, index, k, succeeded: true, steps: k + 1 };
    }
    if (k % 8 === 7) {
      if (progress) progress(epsilon, k + 1, total);
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the page breathe
    }
  }
  const shown = firstChange || last;
  return { epsilon: firstChange ? shown.epsilon : null, index: shown.index, k: firstChange ? shown.k : null,
           succeeded: false, steps: total };
}

// --- reading the reader's own image -------------------------------------------------------------

/** The box of centre_crop_box, in whole pixels (Python's round: half to even). */
function centreCrop(width, height, targetWidth, targetHeight) {
  const ratio = targetWidth / targetHeight;
  let box;
  if (width / height > ratio) {
    const cropWidth = height * ratio;
    const left = (width - cropWidth) / 2;
    box = [left, 0, left + cropWidth, height];
  } else {
    const cropHeight = width / ratio;
    const top = (height - cropHeight) / 2;
    box = [0, top, width, top + cropHeight];
  }
  return box.map(rint);
}

/**
 * An image file as the model's input (Float32Array H*W*C in [0, 1]), following the build's
 * policy (generator/inputs/images.py): EXIF orientation (the browser applies it), transparency
 * onto white, grey by ITU-R 601 luma as Pillow's "L" (before resizing, as there), centre crop,
 * resize. ICC profiles are ignored, as Pillow ignores them.
 */
export async function prepareImage(file, h, w, c) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image", colorSpaceConversion: "none",
                                                 premultiplyAlpha: "none" });
  if (bitmap.width * bitmap.height > MAX_IMAGE_PIXELS) {
    const mp = (bitmap.width * bitmap.height / 1e6).toFixed(0);
    bitmap.close();
    throw Object.assign(new Error("too large"), { megapixels: mp });
  }
  const full = document.createElement("canvas");
  full.width = bitmap.width;
  full.height = bitmap.height;
  const fullContext = full.getContext("2d", { willReadFrequently: true });
  fullContext.fillStyle = "#ffffff";
  fullContext.fillRect(0, 0, full.width, full.height);
  fullContext.drawImage(bitmap, 0, 0);
  bitmap.close();
  if (c === 1) {
    const pixels = fullContext.getImageData(0, 0, full.width, full.height);
    const d = pixels.data;
    for (let i = 0; i < d.length; i += 4) {
      // Pillow's L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16
      const grey = (d[i] * 19595 + d[i + 1] * 38470 + d[i + 2] * 7471 + 0x8000) >> 16;
      d[i] = d[i + 1] = d[i + 2] = grey;
    }
    fullContext.putImageData(pixels, 0, 0);
  }
  const [left, top, right, bottom] = centreCrop(full.width, full.height, w, h);
  const small = document.createElement("canvas");
  small.width = w;
  small.height = h;
  const context = small.getContext("2d", { willReadFrequently: true });
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(full, left, top, right - left, bottom - top, 0, 0, w, h);
  const data = context.getImageData(0, 0, w, h).data;
  const x = new Float32Array(h * w * c);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < c; k++) x[p * c + k] = f32(data[4 * p + k] / 255);
  }
  return x;
}
