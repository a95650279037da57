// edgekit web loader (ES module): load an edgekit app package made by
//   python -m edgekit package BUNDLE --for web --out DIR
// run its self-test, and predict. Needs TF.js (>= 4.22; pass the `tf` namespace in):
//
//   import * as tf from "@tensorflow/tfjs";            // or window.tf from tf.min.js
//   import { loadEdgekitModel } from "./edgekit-web.js";
//   const m = await loadEdgekitModel("./", tf);         // the package folder's URL
//   const check = await m.selfTest();                   // {passed, results: [...]} against the reference
//   const out = await m.predict({ image: Float32Array | tf.Tensor });  // the model's own layout (NCHW)
//
// The primary model is tried first; if it fails to load or its self-test fails, the fallback takes
// over (m.used says which, m.problems says why). Feeds and outputs use the model's own tensor names,
// shapes and layout: the loader moves 4-D inputs to channel-last where the file wants NHWC and turns
// int64 token ids into int32 (TF.js has no int64), refusing values that do not fit.

const DTYPES = { float32: Float32Array, int32: Int32Array, int64: BigInt64Array, uint8: Uint8Array, bool: Uint8Array };

// tf.loadGraphModel starts every weight shard's fetch at once and reads no body until all have
// answered; over HTTP/1.1 a browser opens 6 connections per host, so a model of more than 6 large
// shards deadlocks (MiniLM's 22 shards stopped at 6 in Chromium). Reading each body as it arrives avoids it.
async function readWhole(url, init) {
  const r = await fetch(url, init);
  return new Response(await r.arrayBuffer(), { status: r.status, statusText: r.statusText, headers: r.headers });
}

async function fetchJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function fetchArray(url, dtype) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new DTYPES[dtype](await r.arrayBuffer());
}

function toInt32(name, arr) {
  const out = new Int32Array(arr.length);
  for (let i = 0; i < arr.length; i++) {
    const v = typeof arr[i] === "bigint" ? Number(arr[i]) : arr[i];
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) throw new Error(`input ${name}: ${arr[i]} does not fit int32`);
    out[i] = v;
  }
  return out;
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb);
}

function runnerFor(tf, pkg, entry, graph) {
  const meta = (graph.metadata && graph.metadata.edgekit) || {};
  const sigIn = (graph.signature && graph.signature.inputs) || {};
  const sigOut = (graph.signature && graph.signature.outputs) || {};
  const outKeys = Object.keys(sigOut);
  const specs = Object.fromEntries(pkg.inputs.map((t) => [t.name, t]));

  async function predict(feeds) {
    const made = [];
    try {
      const inputs = {};
      for (const [name, value] of Object.entries(feeds)) {
        const spec = specs[name];
        if (!spec) throw new Error(`unknown input ${name}; the model takes ${Object.keys(specs).join(", ")}`);
        let t;
        if (value instanceof tf.Tensor) t = value;
        else {
          const isInt = spec.dtype.startsWith("int");
          t = tf.tensor(isInt ? toInt32(name, value) : Float32Array.from(value), spec.shape, isInt ? "int32" : "float32");
          made.push(t);
        }
        if (entry.input_layout[name] === "NHWC" && t.rank === 4) { t = tf.transpose(t, [0, 2, 3, 1]); made.push(t); }
        inputs[sigIn[name] ? sigIn[name].name.replace(/:0$/, "") : name] = t;
      }
      const outs = graph.execute(inputs, outKeys.map((k) => sigOut[k].name));
      const list = Array.isArray(outs) ? outs : [outs];
      const result = {};
      for (let i = 0; i < list.length; i++) {
        result[(meta.outputs && meta.outputs[outKeys[i]]) || outKeys[i]] = { data: await list[i].data(), shape: list[i].shape };
      }
      tf.dispose(list);
      return result;
    } finally {
      tf.dispose(made);
    }
  }

  async function selfTest(base) {
    const results = [];
    for (const vec of pkg.selftest.vectors) {
      const feeds = {};
      for (const [name, t] of Object.entries(vec.inputs)) feeds[name] = await fetchArray(base + t.file, t.dtype);
      const got = await predict(feeds);
      for (const [name, t] of Object.entries(vec.expected)) {
        const want = await fetchArray(base + t.file, t.dtype);
        results.push({ output: name, cosine: cosine(got[name].data, want) });
      }
    }
    const min = entry.tolerance.cosine_min;
    const worst = Math.min(...results.map((r) => r.cosine));
    return { passed: results.length > 0 && worst >= min, worst_cosine: worst, cosine_min: min, results };
  }
  return { predict, selfTest };
}

export async function loadEdgekitModel(baseUrl, tf, { runSelfTest = true } = {}) {
  const base = baseUrl.endsWith("/") ? baseUrl : baseUrl + "/";
  const pkg = await fetchJson(base + "model.json");
  const problems = [];
  for (const entry of pkg.models) {
    try {
      const graph = await tf.loadGraphModel(base + entry.file + "/model.json", { fetchFunc: readWhole });
      const r = runnerFor(tf, pkg, entry, graph);
      const check = runSelfTest ? await r.selfTest(base) : null;
      if (check && !check.passed) throw new Error(`self-test failed: worst cosine ${check.worst_cosine} < ${check.cosine_min}`);
      return { package: pkg, used: entry.id, role: entry.role, problems, selfTestResult: check,
               predict: r.predict, selfTest: () => r.selfTest(base), labels: pkg.model.labels,
               preprocessing: pkg.preprocessing };
    } catch (e) {
      problems.push(`${entry.id} (${entry.role}): ${e && e.message ? e.message : e}`);
    }
  }
  throw new Error(`no model in ${base} loaded and passed its self-test: ${problems.join("; ")}`);
}
