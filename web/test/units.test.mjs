// `npm test`: the pure parts of the page (decoding helpers, SHA-256, the ONNX protobuf patch).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { argmax, beamSearch, greedyDecode, lengthPenaltyTerm, logSumExp, topK } from "../src/decoding.js";
import { readGraph, withExtraOutputs } from "../src/onnx_graph.js";
import { sha256HexSync } from "../src/sha256.js";
import { isBlank } from "../src/tokenizer.js";

test("argmax takes the first of tied maxima, like np.argmax", () => {
  assert.equal(argmax(Float32Array.from([1, 3, 3, 2])), 1);
  assert.equal(argmax(Float32Array.from([-Infinity, -Infinity])), 0);
});

test("topK orders by value, ties to the lower index", () => {
  assert.deepEqual(topK(Float32Array.from([1, 5, 5, 2, 5, 0]), 2), [1, 2]);
  assert.deepEqual(topK(Float32Array.from([1, 5, 5, 2, 5, 0]), 4), [1, 2, 4, 3]);
  assert.deepEqual(topK(Float32Array.from([0, 0, 0]), 3), [0, 1, 2]);
});

test("logSumExp and the length normalization", () => {
  assert.ok(Math.abs(logSumExp(Float32Array.from([0, 0])) - Math.log(2)) < 1e-12);
  assert.equal(lengthPenaltyTerm(1, 1.0), 1);
  assert.equal(lengthPenaltyTerm(7, 0), 1);
  assert.equal(lengthPenaltyTerm(4, 0.5), 2);
});

// A fake step model: logits depend on the tokens fed so far in each row.
function fakeModel(table, V) {
  return {
    vocabSize: V,
    rows: [[]],
    select(rows) { this.rows = rows.map((r) => this.rows[r].slice()); },
    async step(tokens) {
      const out = new Float32Array(tokens.length * V);
      tokens.forEach((t, r) => {
        this.rows[r].push(t);
        out.set(table(this.rows[r]), r * V);
      });
      return out;
    },
  };
}

test("greedy stops at EOS and at maxLength", async () => {
  const V = 5;
  const table = (prefix) => (prefix.length >= 3 ? [0, 0, 9, 0, 0] : [0, 0, 0, 0, 9]); // 4, 4, then EOS
  assert.deepEqual(await greedyDecode(fakeModel(table, V), 10), [4, 4]);
  assert.deepEqual(await greedyDecode(fakeModel(table, V), 1), [4]);
});

test("beam search finds the better finished hypothesis and beam 1 is greedy", async () => {
  const V = 5;
  // Greedy first picks 3 (log-prob higher), but 4 leads to EOS with a far higher total.
  const table = (prefix) => {
    const last = prefix[prefix.length - 1];
    if (prefix.length === 1) return [-9, -9, -9, 1.0, 0.9];
    if (last === 4) return [-9, -9, 5, -9, -9];
    return [-9, -9, 0, 0, 0];
  };
  assert.deepEqual(await beamSearch(fakeModel(table, V), 6, 1), await greedyDecode(fakeModel(table, V), 6));
  assert.deepEqual(await beamSearch(fakeModel(table, V), 6, 2), [4]);
});

test("sha256 matches node:crypto", () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 1000]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255);
    assert.equal(sha256HexSync(bytes), createHash("sha256").update(bytes).digest("hex"));
  }
});

test("blank is Python's not text.strip()", () => {
  assert.ok(isBlank("") && isBlank(" \t\n\u3000\u001c\u0085"));
  assert.ok(!isBlank("\ufeff") && !isBlank("\u200b") && !isBlank(" a "));
});

test("extra outputs are appended as a merged graph field", () => {
  // ModelProto{graph: GraphProto{node: NodeProto{input: "x", output: "y", op_type: "Relu"}}}
  const enc = new TextEncoder();
  const ld = (field, payload) => Uint8Array.from([field * 8 + 2, payload.length, ...payload]);
  const node = ld(1, [...ld(1, enc.encode("x")), ...ld(2, enc.encode("y")), ...ld(4, enc.encode("Relu"))]);
  const model = ld(7, [...node]);
  const patched = withExtraOutputs(model, ["y"]);
  const graph = readGraph(patched);
  assert.deepEqual(graph.nodes, [{ opType: "Relu", inputs: ["x"], outputs: ["y"] }]);
});
