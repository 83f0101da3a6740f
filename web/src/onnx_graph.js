// Just enough of the ONNX protobuf format to find where the decoder's cross-attention weights are
// computed and to expose them in a second copy of decoder.onnx, for the attention view.
//
// The decoding sessions keep the lean exported graph. The attention view builds its own session
// from the same bytes with extra graph outputs: protobuf merges a repeated embedded message, so
// appending `ModelProto.graph = GraphProto{output: [ValueInfoProto{name}, ...]}` to the file adds
// outputs without re-encoding anything.

function readVarint(bytes, at) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (at >= bytes.length) throw new Error("truncated protobuf varint");
    const byte = bytes[at++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
    scale *= 128;
  }
}

/** Fields of one protobuf message: [{field, wire, value (number) | start, end (length-delimited)}]. */
function fields(bytes, start = 0, end = bytes.length) {
  const out = [];
  let at = start;
  while (at < end) {
    let key;
    [key, at] = readVarint(bytes, at);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      let value;
      [value, at] = readVarint(bytes, at);
      out.push({ field, wire, value });
    } else if (wire === 1) {
      at += 8;
    } else if (wire === 2) {
      let length;
      [length, at] = readVarint(bytes, at);
      if (at + length > end) throw new Error("truncated protobuf field");
      out.push({ field, wire, start: at, end: at + length });
      at += length;
    } else if (wire === 5) {
      at += 4;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
  return out;
}

const utf8 = new TextDecoder();
const text = (bytes, f) => utf8.decode(bytes.subarray(f.start, f.end));

/** The nodes (op_type, inputs, outputs) and graph input names of a serialized ONNX model. */
export function readGraph(bytes) {
  const graphField = fields(bytes).find((f) => f.field === 7 && f.wire === 2);
  if (!graphField) throw new Error("not an ONNX model (no graph)");
  const nodes = [];
  const inputs = [];
  for (const f of fields(bytes, graphField.start, graphField.end)) {
    if (f.wire !== 2) continue;
    if (f.field === 1) { // NodeProto
      const node = { opType: "", inputs: [], outputs: [] };
      for (const g of fields(bytes, f.start, f.end)) {
        if (g.wire !== 2) continue;
        if (g.field === 1) node.inputs.push(text(bytes, g));
        else if (g.field === 2) node.outputs.push(text(bytes, g));
        else if (g.field === 4) node.opType = text(bytes, g);
      }
      nodes.push(node);
    } else if (f.field === 11) { // ValueInfoProto input
      const name = fields(bytes, f.start, f.end).find((g) => g.field === 1 && g.wire === 2);
      if (name) inputs.push(text(bytes, name));
    }
  }
  return { nodes, inputs };
}

/**
 * Per decoder layer, where its cross-attention weights (B, H, 1, S) can be read:
 * - {name, scores: false}: the output of the Softmax whose result a MatMul (or, in the int8
 *   bundles' padding-exact form, a Mul) multiplies with the graph input cross_value_{layer};
 * - {name, scores: true}: the fourth output of the MultiHeadAttention node that attends over
 *   cross_key_{layer} (the fused decoder, export/fused_graphs.py): the masked, scaled scores before
 *   the softmax, which the caller applies.
 */
export function crossAttentionOutputs(bytes, numLayers) {
  const { nodes } = readGraph(bytes);
  const producer = new Map();
  for (const node of nodes) for (const output of node.outputs) producer.set(output, node);
  const source = (name) => { // follow layout-only ops back to where a tensor comes from
    for (let hops = 0; hops < 4; hops++) {
      const node = producer.get(name);
      if (!node || !["Transpose", "Reshape", "Identity", "Cast"].includes(node.opType)) return name;
      name = node.inputs[0];
    }
    return name;
  };
  const layerOf = (name, prefix) => {
    const match = new RegExp(`^${prefix}_(\\d+)$`).exec(source(name));
    return match && Number(match[1]) < numLayers ? Number(match[1]) : null;
  };
  const found = new Array(numLayers).fill(null);
  const softmaxes = new Set(nodes.filter((n) => n.opType === "Softmax").map((n) => n.outputs[0]));
  for (const node of nodes) {
    if (node.opType === "MultiHeadAttention") {
      const layer = layerOf(node.inputs[1] || "", "cross_key");
      if (layer !== null && node.outputs[3]) found[layer] = { name: node.outputs[3], scores: true };
    } else if (node.opType === "MatMul" || node.opType === "Mul") {
      const [a, b] = node.inputs;
      for (const [weights, values] of [[a, b], [b, a]]) {
        const layer = layerOf(values, "cross_value");
        if (layer !== null && softmaxes.has(source(weights))) found[layer] = { name: source(weights), scores: false };
      }
    }
  }
  const missing = found.findIndex((n) => n === null);
  if (missing >= 0) throw new Error(`decoder.onnx: no cross-attention weights found for layer ${missing}`);
  return found;
}

function varint(value) {
  const out = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return out;
}

function lengthDelimited(field, payload) {
  return Uint8Array.from([...varint(field * 8 + 2), ...varint(payload.length), ...payload]);
}

/** A copy of the serialized model with `names` added to its graph outputs. */
export function withExtraOutputs(bytes, names) {
  const encoder = new TextEncoder();
  const outputs = names.map((name) => lengthDelimited(12, lengthDelimited(1, encoder.encode(name))));
  const graph = lengthDelimited(7, Uint8Array.from(outputs.flatMap((o) => [...o])));
  const out = new Uint8Array(bytes.length + graph.length);
  out.set(bytes);
  out.set(graph, bytes.length);
  return out;
}
