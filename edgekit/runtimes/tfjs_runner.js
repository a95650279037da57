// Runs one TF.js graph model for edgekit (edgekit/runtimes/tfjs.py in Node, chromium.py in a page).
// The same `serve` loop works in both: it takes a request, runs it, and answers, so Node and the
// browser execute the very same code path against the very same model folder.
//
// Request:  {feeds: {name: {dtype, shape, data: base64}}, runs?: N, min_time_ms?: T}
// Answer:   {outputs: {name: {dtype, shape, data: base64}}, times_ms?: [...]} | {error: "..."}
// Feeds are keyed by the model's own input names (the SavedModel signature keys); outputs are
// renamed back from TF's signature names (output_0, ...) with the map the converter stored in
// model.json's userDefinedMetadata.edgekit.
"use strict";

function b64ToBytes(s) {
  if (typeof Buffer !== "undefined") { const b = Buffer.from(s, "base64"); return new Uint8Array(b.buffer, b.byteOffset, b.byteLength); }
  const bin = atob(s); const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToB64(u8) {
  if (typeof Buffer !== "undefined") return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString("base64");
  let s = ""; for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
}

const ARRAYS = { float32: Float32Array, int32: Int32Array, bool: Uint8Array };

function toTensor(tf, spec) {
  const bytes = b64ToBytes(spec.data);
  const copy = bytes.slice().buffer;  // aligned
  const Arr = ARRAYS[spec.dtype];
  if (!Arr) throw new Error(`unsupported input dtype ${spec.dtype} (TF.js has float32, int32, bool)`);
  return tf.tensor(new Arr(copy), spec.shape, spec.dtype);
}

function makeRunner(tf, model) {
  const meta = (model.metadata && model.metadata.edgekit) || {};
  const sigIn = (model.signature && model.signature.inputs) || {};
  const sigOut = (model.signature && model.signature.outputs) || {};
  const outKeys = Object.keys(sigOut);
  const outNodes = outKeys.map((k) => sigOut[k].name);
  const outNames = outKeys.map((k) => (meta.outputs && meta.outputs[k]) || k);

  function execute(feeds) {
    const inputs = {};
    for (const [name, t] of Object.entries(feeds)) {
      const node = sigIn[name] ? sigIn[name].name.replace(/:0$/, "") : name;
      inputs[node] = t;
    }
    const outs = model.execute(inputs, outNodes);
    return Array.isArray(outs) ? outs : [outs];
  }

  async function handle(req) {
    const feeds = {};
    for (const [name, spec] of Object.entries(req.feeds)) feeds[name] = toTensor(tf, spec);
    try {
      const answer = {};
      if (req.runs) {  // timed inside the runtime: execute + reading the outputs back (what an app waits for)
        const once = async () => { const outs = execute(feeds); for (const o of outs) await o.data(); tf.dispose(outs); };
        // Browsers round performance.now() (Chromium: 0.1 ms). A run shorter than 2 ms is timed in
        // groups of k back-to-back runs, each sample the group's time / k.
        let t = performance.now();
        await once();
        const k = Math.min(1000, Math.max(1, Math.ceil(2 / Math.max(performance.now() - t, 0.01))));
        const times = [];
        const t0 = performance.now();
        while (times.length < req.runs || performance.now() - t0 < (req.min_time_ms || 0)) {
          t = performance.now();
          for (let i = 0; i < k; i++) await once();
          times.push((performance.now() - t) / k);
          if (performance.now() - t0 > (req.max_time_ms || 120000)) break;
        }
        answer.times_ms = times;
        answer.runs_per_sample = k;
      }
      const outs = execute(feeds);
      answer.outputs = {};
      for (let i = 0; i < outs.length; i++) {
        const data = await outs[i].data();
        answer.outputs[outNames[i]] = { dtype: outs[i].dtype, shape: outs[i].shape,
          data: bytesToB64(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) };
      }
      tf.dispose(outs);
      return answer;
    } finally {
      tf.dispose(Object.values(feeds));
    }
  }
  return { handle, outNames, backend: tf.getBackend() };
}

if (typeof module !== "undefined" && require.main === module) {
  // Node: node tfjs_runner.js MODEL_DIR NODE_MODULES BACKEND; one JSON request per stdin line.
  const fs = require("fs"), path = require("path"), readline = require("readline");
  const { createRequire } = require("module");
  const [modelDir, nodeModules, backend] = process.argv.slice(2);
  const req = createRequire(path.join(nodeModules, "noop.js"));
  const tf = req("@tensorflow/tfjs");
  const load = async () => {
    const mj = JSON.parse(fs.readFileSync(path.join(modelDir, "model.json"), "utf8"));
    const specs = [], bufs = [];
    for (const group of mj.weightsManifest) {
      specs.push(...group.weights);
      for (const p of group.paths) {
        const file = path.resolve(modelDir, p);
        if (!file.startsWith(path.resolve(modelDir) + path.sep)) throw new Error(`weight path ${p} leaves the model folder`);
        bufs.push(fs.readFileSync(file));
      }
    }
    const all = Buffer.concat(bufs);
    return { modelTopology: mj.modelTopology, format: mj.format, generatedBy: mj.generatedBy,
      convertedBy: mj.convertedBy, signature: mj.signature, userDefinedMetadata: mj.userDefinedMetadata,
      weightSpecs: specs, weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) };
  };
  (async () => {
    const reply = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
    let runner;
    try {
      if (backend === "wasm") req("@tensorflow/tfjs-backend-wasm");
      await tf.setBackend(backend || "cpu");
      await tf.ready();
      const model = await tf.loadGraphModel({ load });
      runner = makeRunner(tf, model);
      reply({ ready: true, backend: tf.getBackend(), tfjs: tf.version.tfjs, outputs: runner.outNames,
              inputs: model.inputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype })) });
    } catch (e) {
      reply({ error: `loading ${modelDir}: ${e && e.message ? e.message : e}` });
      process.exit(3);
    }
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line.trim()) continue;
      try { reply(await runner.handle(JSON.parse(line))); } catch (e) { reply({ error: String(e && e.message ? e.message : e) }); }
    }
  })();
} else if (typeof window !== "undefined") {
  window.edgekitMakeRunner = makeRunner;  // the page (edgekit/runtimes/chromium.py) drives it
}
