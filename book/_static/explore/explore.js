/* Explore the generator in your browser: the shipped generators, exported to ONNX by `python -m condgan_lib.export`,
 * run here with tinyonnx.js (plain JavaScript, loaded before this script). Two widgets share this script:
 *
 * - #cg-explore, a class-conditional generator: every slider change runs it once on 13 latents (the sample, its
 *   class walk, its seed walk, and the same noise with each of the ten classes);
 * - #cg-walk, an unconditional DCGAN: the two end points, the point at t on the chosen path, and ten points along
 *   the straight line and along the great circle (23 latents per run).
 *
 * Each widget sets data-state ("waiting", "loading", "ready", "error"), data-renders (generator runs so far) and
 * data-drawn (the control values of the images on screen) on its root element; the site's browser test reads them.
 *
 * Weight: a model is fetched when a widget first needs it. The first widget starts at once with its default model;
 * the second starts when it comes near the screen (or when one of its controls is touched); the other models load
 * when chosen in a menu.
 */
(function () {
  "use strict";

  const here = new URL(".", document.currentScript.src);                  // .../_static/explore/

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

  function lerp(a, b, t) {
    return a.map((ai, i) => (1 - t) * ai + t * b[i]);
  }

  function slerp(a, b, t) {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
    const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb))));
    const s = Math.sin(omega);
    if (s < 1e-6) return lerp(a, b, t);
    return a.map((ai, i) => (Math.sin((1 - t) * omega) * ai + Math.sin(t * omega) * b[i]) / s);
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

  let index = null;                                  // models.json: file, classes and z_dim of each model
  const sessions = {};
  function session(name) {                           // the model, fetched and parsed on first use
    if (!sessions[name]) {
      sessions[name] = tinyonnx.load(new URL(index[name].file, here).href);
      sessions[name].catch(() => { delete sessions[name]; });   // a failed download is tried again next time
    }
    return sessions[name];
  }

  const megabytes = (name) => `${(index[name].bytes / 1e6).toFixed(1)} MB`;

  // The class-conditional widget: rows of (latent, class weights).
  function conditionalBatch(state, info) {
    const dim = info.z_dim, k = info.classes.length, num = (key) => Number(state[key]);
    const t = num("truncation") >= 3 ? null : num("truncation");
    const zA = latent(num("seed"), dim, t), zB = latent(num("to_seed"), dim, t);
    const c = num("class");
    const rows = [
      [zA, classWeights(k, c, c, 0)],                                 // the sample
      [zA, classWeights(k, c, num("to_class"), num("alpha"))],        // the class walk
      [slerp(zA, zB, num("beta")), classWeights(k, c, c, 0)],         // the seed walk
    ];
    for (let j = 0; j < k; j++) rows.push([zA, classWeights(k, j, j, 0)]);   // every class, same noise
    const n = rows.length, z = new Float32Array(n * dim), w = new Float32Array(n * k);
    rows.forEach(([zi, wi], i) => { z.set(zi, i * dim); w.set(wi, i * k); });
    return { z: tinyonnx.tensor(z, [n, dim]), class_weights: tinyonnx.tensor(w, [n, k]) };
  }

  function conditionalLabels(root, state, info) {
    const names = info.classes, show = (key, text) => { root.querySelector(`[data-show=${key}]`).textContent = text; };
    const t = Number(state.truncation);
    show("class", names[state.class]);
    show("to_class", names[state.to_class]);
    show("seed", state.seed);
    show("to_seed", state.to_seed);
    show("truncation", t >= 3 ? "none" : t.toFixed(2));
    show("alpha", Number(state.alpha).toFixed(2));
    show("beta", Number(state.beta).toFixed(2));
    root.querySelectorAll("[data-sweep-label]").forEach((el) => { el.textContent = names[Number(el.dataset.sweepLabel)]; });
  }

  // The unconditional widget: the ends, the point at t on the chosen path, then ten points on each path.
  function walkBatch(state, info) {
    const dim = info.z_dim, t = Number(state.t);
    const zA = latent(Number(state.seed_a), dim, null), zB = latent(Number(state.seed_b), dim, null);
    const path = state.path === "lerp" ? lerp : slerp;
    const rows = [zA, path(zA, zB, t), zB];
    for (const f of [lerp, slerp]) for (let i = 0; i < 10; i++) rows.push(f(zA, zB, i / 9));
    const z = new Float32Array(rows.length * dim);
    rows.forEach((zi, i) => z.set(zi, i * dim));
    return { z: tinyonnx.tensor(z, [rows.length, dim]) };
  }

  function walkLabels(root, state) {
    root.querySelector("[data-show=seed_a]").textContent = state.seed_a;
    root.querySelector("[data-show=seed_b]").textContent = state.seed_b;
    root.querySelector("[data-show=t]").textContent = Number(state.t).toFixed(2);
    root.querySelector("[data-show=path_name]").textContent = state.path;
  }

  function widget(root, makeBatch, showLabels) {
    const status = root.querySelector("[role=status]");
    const controls = {};
    root.querySelectorAll("[data-control]").forEach((el) => { controls[el.dataset.control] = el; });

    async function renderOnce() {
      const state = {};                              // the control values of this run, as strings
      Object.entries(controls).forEach(([key, el]) => { state[key] = el.value; });
      const info = index[state.model];
      showLabels(root, state, info);
      const feeds = makeBatch(state, info);
      if (!sessions[state.model]) status.textContent = `Loading ${state.model} (${megabytes(state.model)})...`;
      const model = await session(state.model);
      const start = performance.now();
      const out = model.run(feeds);
      const images = out.images.data;
      root.querySelectorAll("canvas[data-slot]").forEach((canvas) => {
        drawImage(canvas, images, 784 * Number(canvas.dataset.slot));
      });
      root.dataset.renders = String(Number(root.dataset.renders || 0) + 1);
      root.dataset.drawn = JSON.stringify(state);
      status.textContent = `${state.model}: ${feeds.z.dims[0]} images generated in your browser in ` +
                           `${(performance.now() - start).toFixed(0)} ms.`;
    }

    let busy = false, pending = false;
    async function render() {        // one generator run at a time; slider moves during a run are merged
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

    Object.values(controls).forEach((el) => el.addEventListener("input", render));
    return render;
  }

  // Run ``start`` once, when ``root`` comes within half a screen of the viewport or a control in it is touched.
  function whenNear(root, start) {
    let started = false;
    const go = () => { if (!started) { started = true; start(); } };
    root.addEventListener("focusin", go);
    root.addEventListener("pointerdown", go);
    if (!("IntersectionObserver" in window)) { go(); return; }
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) { observer.disconnect(); go(); }
    }, { rootMargin: "50% 0px" });
    observer.observe(root);
  }

  async function start() {
    const roots = [["cg-explore", conditionalBatch, conditionalLabels], ["cg-walk", walkBatch, walkLabels]]
      .map(([id, batch, labels]) => [document.getElementById(id), batch, labels])
      .filter(([root]) => root);
    try {
      if (typeof tinyonnx === "undefined") throw new Error("tinyonnx.js did not load");
      index = await (await fetch(new URL("models.json", here))).json();
    } catch (err) {
      const hint = location.protocol === "file:"
        ? " Browsers do not load it from a file: serve the site, e.g. `python -m http.server -d _build/html`." : "";
      for (const [root] of roots) {
        root.dataset.state = "error";
        root.querySelector("[role=status]").textContent = `The generator could not be loaded: ${err.message || err}.${hint}`;
      }
      return;
    }
    // The first widget draws at once; each later one when the reader gets near it.
    roots.forEach(([root, batch, labels], i) => {
      const render = widget(root, batch, labels);
      if (i === 0) render();
      else {
        root.dataset.state = "waiting";
        whenNear(root, render);
      }
    });
  }

  start();
})();
