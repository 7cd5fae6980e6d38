/* tinyonnx: runs the book's exported generators (small ONNX graphs) in plain JavaScript, with no WebAssembly.
 *
 * The page "Explore the generator in your browser" needs only the operators that `python -m condgan_lib.export`
 * writes for these generators: MatMul, Reshape, BatchNormalization (inference), ConvTranspose, Relu, Tanh, Add, Mul,
 * Div, the shape bookkeeping around them (Shape, Gather, Unsqueeze, Concat, Constant), and Slice and ArgMax, with
 * which the DCGANs read their latent code from z. This file reads the .onnx
 * file (a protocol buffer) and evaluates its graph in order, in float32 storage with float64 sums. A graph with an
 * operator or attribute this file does not handle is refused with an error that names it, so a change of the export
 * shows up in the site's browser test, which also compares this file's images with onnxruntime's.
 *
 * It replaces onnxruntime-web here because of weight: its WebAssembly runtime is 9.7 MB (2.7 MB gzipped), ten times
 * the generator it runs; this file is 18 kB.
 *
 * API: `const model = await tinyonnx.load(url)`; `model.run({z: tinyonnx.tensor(data, [n, 64]), ...})` returns
 * `{images: {data: Float32Array, dims: [n, 1, 28, 28]}}`.
 */
(function (global) {
  "use strict";

  // --- protocol buffers ------------------------------------------------------------------------------------------
  // Each message is read into a list of [field number, wire type, value]; value is a number (varint), a Uint8Array
  // (length-delimited) or a DataView over 4 or 8 bytes (fixed32, fixed64).
  function fields(bytes) {
    const out = [];
    let p = 0;
    function varint() {
      let lo = 0, shift = 0, b, big = null;
      do {
        b = bytes[p++];
        if (shift < 49) lo += (b & 0x7f) * 2 ** shift;
        else {                                   // beyond 2^53: negative int64 values, read exactly with BigInt
          if (big === null) big = BigInt(lo);
          big += BigInt(b & 0x7f) << BigInt(shift);
        }
        shift += 7;
      } while (b & 0x80);
      return big === null ? lo : Number(BigInt.asIntN(64, big));
    }
    while (p < bytes.length) {
      const key = varint(), field = Math.floor(key / 8), wire = key & 7;
      let value;
      if (wire === 0) value = varint();
      else if (wire === 2) { const n = varint(); value = bytes.subarray(p, p + n); p += n; }
      else if (wire === 5) { value = new DataView(bytes.buffer, bytes.byteOffset + p, 4); p += 4; }
      else if (wire === 1) { value = new DataView(bytes.buffer, bytes.byteOffset + p, 8); p += 8; }
      else throw new Error(`tinyonnx: unsupported protobuf wire type ${wire}`);
      out.push([field, wire, value]);
    }
    return out;
  }

  const utf8 = new TextDecoder();
  const text = (v) => utf8.decode(v);

  function varints(value, wire) {             // a repeated integer field, packed or not
    if (wire === 0) return [value];
    const out = [];
    let p = 0;
    const bytes = value;
    while (p < bytes.length) {
      let lo = 0, shift = 0, b, big = null;
      do {
        b = bytes[p++];
        if (shift < 49) lo += (b & 0x7f) * 2 ** shift;
        else { if (big === null) big = BigInt(lo); big += BigInt(b & 0x7f) << BigInt(shift); }
        shift += 7;
      } while (b & 0x80);
      out.push(big === null ? lo : Number(BigInt.asIntN(64, big)));
    }
    return out;
  }

  function floats(value, wire) {              // a repeated float field, packed or not
    if (wire === 5) return [value.getFloat32(0, true)];
    const view = new DataView(value.buffer, value.byteOffset, value.byteLength), out = [];
    for (let i = 0; i < value.byteLength; i += 4) out.push(view.getFloat32(i, true));
    return out;
  }

  // --- tensors ----------------------------------------------------------------------------------------------------
  // {data, dims}: data is a Float32Array for float tensors and a Float64Array holding whole numbers for int tensors.
  function tensor(data, dims) {
    return { data, dims: dims.map(Number) };
  }
  const size = (dims) => dims.reduce((a, b) => a * b, 1);
  const isInt = (t) => t.data instanceof Float64Array;

  const FLOAT = 1, INT32 = 6, INT64 = 7, DOUBLE = 11;

  function readTensor(bytes) {
    let dims = [], type = FLOAT, raw = null, name = "";
    const lists = { 4: [], 5: [], 7: [], 10: [] };
    for (const [field, wire, value] of fields(bytes)) {
      if (field === 1) dims = dims.concat(varints(value, wire));
      else if (field === 2) type = value;
      else if (field === 4) lists[4] = lists[4].concat(floats(value, wire));
      else if (field === 5 || field === 7) lists[field] = lists[field].concat(varints(value, wire));
      else if (field === 8) name = text(value);
      else if (field === 9) raw = value;
      else if (field === 10) {
        const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
        for (let i = 0; i < value.byteLength; i += 8) lists[10].push(view.getFloat64(i, true));
      } else if (field === 13 || field === 14) throw new Error(`tinyonnx: tensor ${name} stores its data outside the file`);
    }
    const n = size(dims);
    let data;
    if (type === FLOAT) {
      data = raw ? new Float32Array(raw.slice().buffer, 0, n) : Float32Array.from(lists[4]);
    } else if (type === DOUBLE) {
      data = Float32Array.from(raw ? new Float64Array(raw.slice().buffer, 0, n) : lists[10]);
    } else if (type === INT64 || type === INT32) {
      data = new Float64Array(n);
      if (raw) {
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        for (let i = 0; i < n; i++) data[i] = type === INT64 ? Number(view.getBigInt64(8 * i, true)) : view.getInt32(4 * i, true);
      } else data.set(type === INT64 ? lists[7] : lists[5]);
    } else throw new Error(`tinyonnx: tensor ${name} has data type ${type}, which this runtime does not handle`);
    if (data.length !== n) throw new Error(`tinyonnx: tensor ${name} holds ${data.length} values for shape [${dims}]`);
    return { name, t: tensor(data, dims) };
  }

  function readAttribute(bytes) {
    const a = { name: "", ints: [], floats: [] };
    for (const [field, wire, value] of fields(bytes)) {
      if (field === 1) a.name = text(value);
      else if (field === 2) a.f = value.getFloat32(0, true);
      else if (field === 3) a.i = value;
      else if (field === 4) a.s = text(value);
      else if (field === 5) a.t = readTensor(value).t;
      else if (field === 7) a.floats = a.floats.concat(floats(value, wire));
      else if (field === 8) a.ints = a.ints.concat(varints(value, wire));
    }
    return a;
  }

  function readNode(bytes) {
    const node = { inputs: [], outputs: [], op: "", name: "", domain: "", attrs: {} };
    for (const [field, , value] of fields(bytes)) {
      if (field === 1) node.inputs.push(text(value));
      else if (field === 2) node.outputs.push(text(value));
      else if (field === 3) node.name = text(value);
      else if (field === 4) node.op = text(value);
      else if (field === 5) { const a = readAttribute(value); node.attrs[a.name] = a; }
      else if (field === 7) node.domain = text(value);
    }
    return node;
  }

  function readModel(bytes) {
    let graph = null;
    for (const [field, , value] of fields(bytes)) if (field === 7) graph = value;
    if (!graph) throw new Error("tinyonnx: the file holds no graph");
    const model = { nodes: [], initializers: {}, inputs: [], outputs: [] };
    const valueName = (v) => { for (const [f, , x] of fields(v)) if (f === 1) return text(x); return ""; };
    for (const [field, , value] of fields(graph)) {
      if (field === 1) model.nodes.push(readNode(value));
      else if (field === 5) { const { name, t } = readTensor(value); model.initializers[name] = t; }
      else if (field === 11) model.inputs.push(valueName(value));
      else if (field === 12) model.outputs.push(valueName(value));
    }
    model.inputs = model.inputs.filter((name) => !(name in model.initializers));
    for (const node of model.nodes) {
      if (node.domain && node.domain !== "ai.onnx") throw new Error(`tinyonnx: operator domain ${node.domain}`);
      if (!OPS[node.op]) throw new Error(`tinyonnx: operator ${node.op} is not supported by this runtime`);
    }
    return model;
  }

  // --- operators --------------------------------------------------------------------------------------------------
  const attrInt = (node, name, fallback) => (node.attrs[name] && node.attrs[name].i !== undefined ? node.attrs[name].i : fallback);
  const attrInts = (node, name, fallback) => (node.attrs[name] ? node.attrs[name].ints : fallback);
  const axisOf = (axis, rank) => (axis < 0 ? axis + rank : axis);

  function refuse(node, what) {
    throw new Error(`tinyonnx: ${node.op} with ${what} is not supported by this runtime`);
  }

  function broadcast(a, b, f) {              // numpy-style broadcasting of a binary elementwise operator
    const rank = Math.max(a.dims.length, b.dims.length);
    const da = Array(rank - a.dims.length).fill(1).concat(a.dims), db = Array(rank - b.dims.length).fill(1).concat(b.dims);
    const dims = da.map((x, i) => {
      if (x === db[i] || db[i] === 1) return x;
      if (x === 1) return db[i];
      throw new Error(`tinyonnx: shapes [${a.dims}] and [${b.dims}] do not broadcast`);
    });
    const strides = (d) => { const s = Array(rank).fill(0); let k = 1; for (let i = rank - 1; i >= 0; i--) { s[i] = d[i] === 1 ? 0 : k; k *= d[i]; } return s; };
    const sa = strides(da), sb = strides(db), n = size(dims);
    const out = isInt(a) && isInt(b) ? new Float64Array(n) : new Float32Array(n);
    const idx = Array(rank).fill(0);
    let ia = 0, ib = 0;
    for (let i = 0; i < n; i++) {
      out[i] = f(a.data[ia], b.data[ib]);
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++; ia += sa[d]; ib += sb[d];
        if (idx[d] < dims[d]) break;
        ia -= sa[d] * dims[d]; ib -= sb[d] * dims[d]; idx[d] = 0;
      }
    }
    return tensor(out, dims);
  }

  const unary = (f) => (node, [x]) => [tensor(x.data.map(f), x.dims)];

  const OPS = {
    Constant(node) {
      const a = node.attrs.value;
      if (!a || !a.t) refuse(node, "a value other than a tensor");
      return [a.t];
    },
    Identity: (node, [x]) => [x],
    Add: (node, [a, b]) => [broadcast(a, b, (x, y) => x + y)],
    Sub: (node, [a, b]) => [broadcast(a, b, (x, y) => x - y)],
    Mul: (node, [a, b]) => [broadcast(a, b, (x, y) => x * y)],
    Div: (node, [a, b]) => [broadcast(a, b, isInt(a) && isInt(b) ? (x, y) => Math.trunc(x / y) : (x, y) => x / y)],
    Relu: unary((x) => (x > 0 ? x : 0)),
    Tanh: unary(Math.tanh),
    Sigmoid: unary((x) => 1 / (1 + Math.exp(-x))),
    Shape(node, [x]) {
      const rank = x.dims.length;
      const start = axisOf(attrInt(node, "start", 0), rank), end = axisOf(attrInt(node, "end", rank), rank);
      const dims = x.dims.slice(Math.max(0, start), Math.min(rank, end));
      return [tensor(Float64Array.from(dims), [dims.length])];
    },
    Gather(node, [x, indices]) {
      const axis = axisOf(attrInt(node, "axis", 0), x.dims.length);
      const outer = size(x.dims.slice(0, axis)), inner = size(x.dims.slice(axis + 1)), n = x.dims[axis];
      const dims = x.dims.slice(0, axis).concat(indices.dims, x.dims.slice(axis + 1));
      const out = new x.data.constructor(size(dims));
      let p = 0;
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < indices.data.length; j++) {
          const i = indices.data[j] < 0 ? indices.data[j] + n : indices.data[j];
          if (i < 0 || i >= n) throw new Error(`tinyonnx: Gather index ${indices.data[j]} out of range`);
          out.set(x.data.subarray((o * n + i) * inner, (o * n + i + 1) * inner), p);
          p += inner;
        }
      }
      return [tensor(out, dims)];
    },
    Slice(node, [x, starts, ends, axesTensor, stepsTensor]) {
      const rank = x.dims.length;
      const axes = axesTensor ? Array.from(axesTensor.data, (a) => axisOf(a, rank)) : starts.data.map((_, i) => i);
      if (stepsTensor && Array.from(stepsTensor.data).some((s) => s !== 1)) refuse(node, "steps other than 1");
      const lo = x.dims.map(() => 0), dims = x.dims.slice();
      axes.forEach((a, i) => {
        const n = x.dims[a], clamp = (v) => Math.min(n, Math.max(0, v < 0 ? v + n : v));
        lo[a] = clamp(starts.data[i]);
        dims[a] = Math.max(0, clamp(ends.data[i]) - lo[a]);
      });
      const out = new x.data.constructor(size(dims)), idx = dims.map(() => 0);
      const strides = x.dims.map((_, d) => size(x.dims.slice(d + 1)));
      for (let p = 0; p < out.length; p++) {
        let q = 0;
        for (let d = 0; d < rank; d++) q += (lo[d] + idx[d]) * strides[d];
        out[p] = x.data[q];
        for (let d = rank - 1; d >= 0 && ++idx[d] === dims[d]; d--) idx[d] = 0;
      }
      return [tensor(out, dims)];
    },
    ArgMax(node, [x]) {
      if (attrInt(node, "select_last_index", 0)) refuse(node, "select_last_index=1");
      const axis = axisOf(attrInt(node, "axis", 0), x.dims.length);
      const outer = size(x.dims.slice(0, axis)), n = x.dims[axis], inner = size(x.dims.slice(axis + 1));
      const out = new Float64Array(outer * inner);   // integer tensors are Float64Array here
      for (let o = 0; o < outer; o++) {
        for (let j = 0; j < inner; j++) {
          let best = 0;
          for (let i = 1; i < n; i++) if (x.data[(o * n + i) * inner + j] > x.data[(o * n + best) * inner + j]) best = i;
          out[o * inner + j] = best;
        }
      }
      const dims = x.dims.slice();
      if (attrInt(node, "keepdims", 1)) dims[axis] = 1; else dims.splice(axis, 1);
      return [tensor(out, dims)];
    },
    Unsqueeze(node, [x, axesTensor]) {
      const axes = axesTensor ? Array.from(axesTensor.data) : attrInts(node, "axes", []);
      const rank = x.dims.length + axes.length, dims = x.dims.slice();
      axes.map((a) => axisOf(a, rank)).sort((a, b) => a - b).forEach((a) => dims.splice(a, 0, 1));
      return [tensor(x.data, dims)];
    },
    Concat(node, inputs) {
      const rank = inputs[0].dims.length, axis = axisOf(attrInt(node, "axis", 0), rank);
      const outer = size(inputs[0].dims.slice(0, axis)), inner = size(inputs[0].dims.slice(axis + 1));
      const dims = inputs[0].dims.slice();
      dims[axis] = inputs.reduce((s, t) => s + t.dims[axis], 0);
      const out = new inputs[0].data.constructor(size(dims));
      let p = 0;
      for (let o = 0; o < outer; o++) {
        for (const t of inputs) {
          const block = t.dims[axis] * inner;
          out.set(t.data.subarray(o * block, (o + 1) * block), p);
          p += block;
        }
      }
      return [tensor(out, dims)];
    },
    Reshape(node, [x, shape]) {
      const allowZero = attrInt(node, "allowzero", 0);
      const dims = Array.from(shape.data, (d, i) => (d === 0 && !allowZero ? x.dims[i] : d));
      const known = dims.reduce((a, d) => (d === -1 ? a : a * d), 1);
      const out = dims.map((d) => (d === -1 ? size(x.dims) / known : d));
      if (size(out) !== x.data.length) throw new Error(`tinyonnx: cannot reshape [${x.dims}] to [${dims}]`);
      return [tensor(x.data, out)];
    },
    MatMul(node, [a, b]) {
      if (a.dims.length !== 2 || b.dims.length !== 2) refuse(node, `shapes [${a.dims}] x [${b.dims}]`);
      const [n, k] = a.dims, m = b.dims[1];
      if (b.dims[0] !== k) throw new Error(`tinyonnx: MatMul of [${a.dims}] and [${b.dims}]`);
      const out = new Float32Array(n * m), row = new Float64Array(m);
      for (let i = 0; i < n; i++) {
        row.fill(0);
        for (let j = 0; j < k; j++) {
          const v = a.data[i * k + j];
          if (v === 0) continue;
          const base = j * m;
          for (let c = 0; c < m; c++) row[c] += v * b.data[base + c];
        }
        out.set(row, i * m);
      }
      return [tensor(out, [n, m])];
    },
    BatchNormalization(node, [x, scale, bias, mean, variance]) {
      if (attrInt(node, "training_mode", 0)) refuse(node, "training_mode=1");
      const eps = node.attrs.epsilon ? node.attrs.epsilon.f : 1e-5;
      const [n, c] = x.dims, inner = size(x.dims.slice(2)), out = new Float32Array(x.data.length);
      for (let ch = 0; ch < c; ch++) {
        const g = scale.data[ch] / Math.sqrt(variance.data[ch] + eps), shift = bias.data[ch] - mean.data[ch] * g;
        for (let i = 0; i < n; i++) {
          const base = (i * c + ch) * inner;
          for (let j = 0; j < inner; j++) out[base + j] = x.data[base + j] * g + shift;
        }
      }
      return [tensor(out, x.dims)];
    },
    ConvTranspose(node, [x, w, bias]) {
      if (x.dims.length !== 4) refuse(node, `a ${x.dims.length}-D input`);
      if (attrInt(node, "group", 1) !== 1) refuse(node, "groups");
      if (node.attrs.output_shape) refuse(node, "output_shape");
      if (node.attrs.auto_pad && node.attrs.auto_pad.s !== "NOTSET") refuse(node, `auto_pad=${node.attrs.auto_pad.s}`);
      const [n, cin, h, wd] = x.dims, [, cout, kh, kw] = w.dims;
      const [sh, sw] = attrInts(node, "strides", [1, 1]), [dh, dw] = attrInts(node, "dilations", [1, 1]);
      const [pt, pl, pb, pr] = attrInts(node, "pads", [0, 0, 0, 0]), [oph, opw] = attrInts(node, "output_padding", [0, 0]);
      const ho = sh * (h - 1) + oph + (kh - 1) * dh + 1 - pt - pb, wo = sw * (wd - 1) + opw + (kw - 1) * dw + 1 - pl - pr;
      const acc = new Float64Array(n * cout * ho * wo);
      for (let b = 0; b < n; b++) {
        for (let ci = 0; ci < cin; ci++) {
          for (let ih = 0; ih < h; ih++) {
            for (let iw = 0; iw < wd; iw++) {
              const v = x.data[((b * cin + ci) * h + ih) * wd + iw];
              if (v === 0) continue;                     // after a ReLU about half the inputs are zero
              for (let co = 0; co < cout; co++) {
                const wBase = (ci * cout + co) * kh * kw, oBase = (b * cout + co) * ho * wo;
                for (let y = 0; y < kh; y++) {
                  const oh = ih * sh - pt + y * dh;
                  if (oh < 0 || oh >= ho) continue;
                  for (let xk = 0; xk < kw; xk++) {
                    const ow = iw * sw - pl + xk * dw;
                    if (ow >= 0 && ow < wo) acc[oBase + oh * wo + ow] += v * w.data[wBase + y * kw + xk];
                  }
                }
              }
            }
          }
        }
      }
      if (bias) for (let i = 0; i < acc.length; i++) acc[i] += bias.data[Math.floor(i / (ho * wo)) % cout];
      return [tensor(Float32Array.from(acc), [n, cout, ho, wo])];
    },
  };

  // --- running a graph --------------------------------------------------------------------------------------------
  class Model {
    constructor(graph) {
      this.graph = graph;
      this.inputNames = graph.inputs;
      this.outputNames = graph.outputs;
    }

    run(feeds) {
      const values = Object.assign({}, this.graph.initializers);
      for (const name of this.inputNames) {
        if (!feeds[name]) throw new Error(`tinyonnx: the input ${name} is missing`);
        values[name] = feeds[name];
      }
      for (const node of this.graph.nodes) {
        const inputs = node.inputs.map((name) => (name === "" ? undefined : values[name]));
        inputs.forEach((t, i) => {
          if (t === undefined && node.inputs[i] !== "") throw new Error(`tinyonnx: ${node.op} needs ${node.inputs[i]}`);
        });
        const outputs = OPS[node.op](node, inputs);
        node.outputs.forEach((name, i) => { values[name] = outputs[i]; });
      }
      const result = {};
      for (const name of this.outputNames) result[name] = values[name];
      return result;
    }
  }

  async function load(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return new Model(readModel(new Uint8Array(await response.arrayBuffer())));
  }

  global.tinyonnx = { load, tensor, parse: (bytes) => new Model(readModel(bytes)) };
})(typeof window !== "undefined" ? window : globalThis);
