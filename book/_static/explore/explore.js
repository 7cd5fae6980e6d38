/* Explore the generator in your browser: the shipped class-conditional generators, exported to ONNX by
 * `python -m condgan_lib.export`, run here with onnxruntime-web (WebAssembly, one thread). Every slider change runs
 * the real generator once on a batch of 13 latents: the sample, its class walk, its seed walk and all ten classes.
 *
 * The page sets data-state ("loading", "ready", "error"), data-renders (generator runs so far) and data-drawn (the
 * control values of the images on screen) on #cg-explore; the site's browser test reads them.
 */
(function () {
  "use strict";

  const root = document.getElementById("cg-explore");
  if (!root) return;
  const here = new URL(".", document.currentScript.src);                  // .../_static/explore/
  const wasmPath = new URL("../vendor/onnxruntime-web/", here).href;       // ort-wasm.wasm lives here
  const status = root.querySelector("#cg-status");
  const controls = {};
  root.querySelectorAll("[data-control]").forEach((el) => { controls[el.dataset.control] = el; });

  // Seeded noise: mulberry32 for uniform numbers, Box-Muller for Gaussians, redraws beyond |z| > t for truncation.
  // The same seed always gives the same latent here; it is not the latent PyTorch draws for that seed.
  function mulberry32(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function gaussian(rand) {
    let u = 0;
    while (u === 0) u = rand();           // log(0) is -infinity
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }

  function latent(seed, dim, truncation) {
    const rand = mulberry32(seed + 1);
    const z = new Float32Array(dim);
    for (let i = 0; i < dim; i++) {
      let x = gaussian(rand);
      while (truncation !== null && Math.abs(x) > truncation) x = gaussian(rand);
      z[i] = x;
    }
    return z;
  }

  function slerp(a, b, t) {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb))));
    const out = new Float32Array(a.length);
    const s = Math.sin(omega);
    for (let i = 0; i < a.length; i++) {
      out[i] = s < 1e-6 ? (1 - t) * a[i] + t * b[i]
                        : (Math.sin((1 - t) * omega) * a[i] + Math.sin(t * omega) * b[i]) / s;
    }
    return out;
  }

  function classWeights(nClasses, a, b, alpha) {   // one row: (1 - alpha) e_a + alpha e_b
    const w = new Float32Array(nClasses);
    w[a] += 1 - alpha;
    w[b] += alpha;
    return w;
  }

  function drawImage(canvas, data, offset) {       // 28x28 values in [0, 1], drawn white on black
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, data[offset + i])));
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  const sessions = {};
  let index = null;

  async function session(name) {
    if (!sessions[name]) {
      sessions[name] = ort.InferenceSession.create(new URL(index[name].file, here).href,
                                                   { executionProviders: ["wasm"] });
    }
    return sessions[name];
  }

  let state = {};                       // the control values of the run in progress, as strings
  function value(name) { return Number(state[name]); }

  function showValues(info) {
    const names = info.classes;
    const t = value("truncation");
    root.querySelector("[data-show=class]").textContent = names[value("class")];
    root.querySelector("[data-show=to_class]").textContent = names[value("to_class")];
    root.querySelector("[data-show=seed]").textContent = value("seed");
    root.querySelector("[data-show=to_seed]").textContent = value("to_seed");
    root.querySelector("[data-show=truncation]").textContent = t >= 3 ? "none" : t.toFixed(2);
    root.querySelector("[data-show=alpha]").textContent = value("alpha").toFixed(2);
    root.querySelector("[data-show=beta]").textContent = value("beta").toFixed(2);
    root.querySelectorAll("[data-sweep-label]").forEach((el) => { el.textContent = names[Number(el.dataset.sweepLabel)]; });
  }

  async function renderOnce() {
    state = {};
    Object.entries(controls).forEach(([key, el]) => { state[key] = el.value; });
    const name = state.model;
    const info = index[name];
    const dim = info.z_dim, k = info.classes.length;
    showValues(info);
    const t = value("truncation") >= 3 ? null : value("truncation");
    const zA = latent(value("seed"), dim, t), zB = latent(value("to_seed"), dim, t);
    const c = value("class");
    const rows = [
      [zA, classWeights(k, c, c, 0)],                                    // the sample
      [zA, classWeights(k, c, value("to_class"), value("alpha"))],       // the class walk
      [slerp(zA, zB, value("beta")), classWeights(k, c, c, 0)],          // the seed walk
    ];
    for (let j = 0; j < k; j++) rows.push([zA, classWeights(k, j, j, 0)]);   // every class, same noise
    const n = rows.length;
    const z = new Float32Array(n * dim), w = new Float32Array(n * k);
    rows.forEach(([zi, wi], i) => { z.set(zi, i * dim); w.set(wi, i * k); });
    const start = performance.now();
    const out = await (await session(name)).run({
      z: new ort.Tensor("float32", z, [n, dim]),
      class_weights: new ort.Tensor("float32", w, [n, k]),
    });
    const images = out.images.data;
    const canvases = root.querySelectorAll("canvas[data-slot]");
    canvases.forEach((canvas) => drawImage(canvas, images, 784 * Number(canvas.dataset.slot)));
    root.dataset.renders = String(Number(root.dataset.renders || 0) + 1);
    root.dataset.drawn = JSON.stringify(state);
    status.textContent = `${name}: ${n} images generated in your browser in ${(performance.now() - start).toFixed(0)} ms.`;
  }

  let busy = false, pending = false;
  async function render() {          // one generator run at a time; slider moves during a run are merged
    if (busy) { pending = true; return; }
    busy = true;
    try {
      do { pending = false; await renderOnce(); } while (pending);
      root.dataset.state = "ready";
    } catch (err) {
      root.dataset.state = "error";
      status.textContent = `The generator could not run in this browser: ${err.message || err}`;
    } finally {
      busy = false;
    }
  }

  async function start() {
    root.dataset.state = "loading";
    try {
      if (typeof ort === "undefined") throw new Error("onnxruntime-web did not load");
      ort.env.wasm.wasmPaths = wasmPath;
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.simd = false;     // the single-threaded, non-SIMD build, ort-wasm.wasm: the smallest one
      index = await (await fetch(new URL("models.json", here))).json();
    } catch (err) {
      root.dataset.state = "error";
      status.textContent = `The generator could not be loaded: ${err.message || err}`;
      return;
    }
    Object.values(controls).forEach((el) => el.addEventListener("input", render));
    await render();
  }

  start();
})();
