// The page's decoding loop (BrowserTranslator: encoder.onnx, then decoder.onnx step by step from
// JavaScript) against generate.onnx (the whole search in onnxruntime's BeamSearch operator) in
// onnxruntime-web's WebAssembly build under node, 1 thread, batch 1, the first 200 sources of a TSV,
// best of 3 interleaved passes; token ids compared. The bundle is fetched over HTTP, as in the page:
//
//   (cd BUNDLE && python3 -m http.server 8765 --bind 127.0.0.1 &)
//   node scripts/generate_vs_loop.mjs http://127.0.0.1:8765/ BUNDLE SOURCES.tsv
import * as ort from "onnxruntime-web";
import fs from "node:fs";
import { BrowserTranslator } from "../src/translator.js";
ort.env.wasm.numThreads = 1;
const [baseUrl, bundleDir, tsv] = process.argv.slice(2);
const texts = fs.readFileSync(tsv, "utf8").split("\n").filter(Boolean).map((l) => l.split("\t")[0]).slice(0, 200);
const tr = await BrowserTranslator.load(ort, baseUrl);
const gen = await ort.InferenceSession.create(fs.readFileSync(`${bundleDir}/generate.onnx`), { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
const i32 = (v) => new ort.Tensor("int32", Int32Array.from([v]), [1]);
async function viaGenerate(text, beams) {
  const ids = tr.sourceIds(text).ids;
  const r = await gen.run({ source_ids: new ort.Tensor("int32", Int32Array.from(ids), [1, ids.length]), max_length: i32(tr.maxTargetLength + 1),
    num_beams: i32(beams), num_return_sequences: i32(1), length_penalty: new ort.Tensor("float32", Float32Array.from([1]), [1]) });
  const out = Array.from(r.sequences.data).slice(1);
  const end = out.indexOf(2);
  return end >= 0 ? out.slice(0, end) : out;
}
for (const beams of [1, 4]) {
  for (const t of texts.slice(0, 20)) { await tr.translate(t, { beamSize: beams }); await viaGenerate(t, beams); }
  const best = { loop: Infinity, generate: Infinity };
  let same = 0;
  for (let pass = 0; pass < 3; pass++) {
    let t0 = performance.now(); const a = [];
    for (const t of texts) a.push((await tr.translate(t, { beamSize: beams })).outputIds);
    best.loop = Math.min(best.loop, performance.now() - t0);
    t0 = performance.now(); const b = [];
    for (const t of texts) b.push(await viaGenerate(t, beams));
    best.generate = Math.min(best.generate, performance.now() - t0);
    same = a.filter((ids, i) => JSON.stringify(ids) === JSON.stringify(b[i])).length;
  }
  console.log(`beam ${beams}: loop ${(texts.length / best.loop * 1e3).toFixed(0)} sent/s, generate.onnx ${(texts.length / best.generate * 1e3).toFixed(0)} sent/s, `
    + `speed-up ${(best.loop / best.generate).toFixed(2)}x, identical ${same}/${texts.length}`);
}
process.exit(0);
