// A bundle in the browser: the JavaScript twin of serve/translator.py and serve/onnx_model.py, batch 1.
//
// load(): fetch config.json and the four files (and shortlist.bin and candidates.onnx when there is a
// shortlist), check their sha256
// against config.json, start the two onnxruntime-web sessions and the tokenizers. translate(): source
// ids = tokens cut to max_source_length - 1, then [EOS]; encoder.onnx once; decoder.onnx step by step
// with its key/value cache (greedy or beam search, web/src/decoding.js), on the sentence's shortlist
// candidates when the bundle has one (serve/shortlist.py); detokenize.
import { beamSearch, BOS_ID, EOS_ID, logSumExp } from "./decoding.js";
import { crossAttentionOutputs, withExtraOutputs } from "./onnx_graph.js";
import { sha256Hex } from "./sha256.js";
import { isBlank, SubwordTokenizer, wellFormed } from "./tokenizer.js";

export const FORMAT_VERSION = 1;
export const FILES = {
  config: "config.json",
  encoder: "encoder.onnx",
  decoder: "decoder.onnx",
  source: "source.tokenizer.json",
  target: "target.tokenizer.json",
  shortlist: "shortlist.bin",
  candidates: "candidates.onnx",
};
const UNK_ID = 3;

/** A bundle's vocabulary shortlist (serve/shortlist.py): the frequent target ids, then K per source id. */
export class Shortlist {
  constructor(bytes, record) {
    const Ids = record.dtype === "u2" ? Uint16Array : Uint32Array;
    const ids = new Ids(bytes.buffer, bytes.byteOffset, bytes.byteLength / Ids.BYTES_PER_ELEMENT);
    if (ids.length !== record.frequent + record.source_vocab_size * record.k) {
      throw new BundleError(`${FILES.shortlist}: expected ${record.frequent} + ${record.source_vocab_size} x ${record.k} ids, got ${ids.length}`);
    }
    this.frequent = ids.subarray(0, record.frequent);
    this.table = ids.subarray(record.frequent);
    this.k = record.k;
  }

  /** A sentence's allowed target ids, sorted: its source tokens' K each, the frequent ones, BOS, EOS and UNK. */
  candidates(sourceIds) {
    const set = new Set([BOS_ID, EOS_ID, UNK_ID, ...this.frequent]);
    for (const id of sourceIds) for (const t of this.table.subarray(id * this.k, (id + 1) * this.k)) set.add(t);
    return Int32Array.from([...set].sort((a, b) => a - b));
  }
}

/** A bundle that cannot be used; the message names the file and what is wrong. */
export class BundleError extends Error {
  constructor(message) {
    super(message);
    this.name = "BundleError";
  }
}

async function fetchBytes(baseUrl, name) {
  let response;
  try {
    response = await fetch(new URL(name, baseUrl), { cache: "no-cache" });
  } catch (error) {
    throw new BundleError(`${name}: cannot be downloaded (${error.message}); is \`keras-transformer web\` still running?`);
  }
  if (response.status === 404) throw new BundleError(`${name}: missing from the bundle (HTTP 404)`);
  if (!response.ok) throw new BundleError(`${name}: cannot be downloaded (HTTP ${response.status})`);
  return new Uint8Array(await response.arrayBuffer());
}

function parseJson(bytes, name) {
  let textValue;
  try {
    textValue = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new BundleError(`${name}: expected UTF-8 JSON, got undecodable bytes`);
  }
  try {
    return JSON.parse(textValue);
  } catch (error) {
    throw new BundleError(`${name}: expected JSON, got a parse error (${error.message})`);
  }
}

const megabytes = (n) => `${(n / 1e6).toFixed(2)} MB`;

/** The encoder and cached decoder step of a bundle for one sentence (serve/onnx_model.py's OnnxStepModel). */
class OnnxStepModel {
  constructor(ort, encoder, decoder, config, candidates = null) {
    this.ort = ort;
    this.candidates = candidates; // a shortlist bundle's candidates.onnx: ids -> the projection's operands
    this.encoder = encoder;
    this.decoder = decoder;
    // the decoder's depth: its caches and cross keys/values (bundles before separate depths: num_layers)
    this.numLayers = config.model.decoder_layers ?? config.model.num_layers;
    this.numHeads = config.model.num_heads;
    this.headDim = config.model.hidden_dim / config.model.num_heads;
    this.fullVocabSize = config.model.target_vocab_size;
    this.shortlisted = Boolean(config.shortlist); // decoder.onnx then takes candidates.onnx's operands
    this.vocabIds = null;
    this.vocabSize = this.fullVocabSize;
    this.operands = null; // candidates.onnx's outputs for vocabIds, computed once per sentence
    this.outputNames = ["logits"];
    for (let i = 0; i < this.numLayers; i++) this.outputNames.push(`present_key_${i}`, `present_value_${i}`);
  }

  /**
   * The target ids of the logits' columns (a shortlist's candidates), or null for the whole vocabulary; with a
   * shortlist bundle, candidates.onnx gathers their rows of the output projection here, once per sentence.
   */
  async setVocabulary(ids) {
    this.vocabIds = ids;
    this.vocabSize = ids ? ids.length : this.fullVocabSize; // columns of a step's logits
    if (!this.shortlisted) return;
    const given = ids ?? new Int32Array(0); // no ids: the decoder computes every logit (the shortlist off)
    this.operands = await this.candidates.run({ vocab_ids: new this.ort.Tensor("int32", given, [given.length]) });
  }

  /** Runs encoder.onnx on source ids (one sentence) and resets the state to one row, empty caches. */
  async start(sourceIds) {
    const { ort } = this;
    // a model whose vocabulary was never set (the attention view's) computes every logit: once, not per step
    if (this.shortlisted && !this.operands) await this.setVocabulary(this.vocabIds);
    const S = sourceIds.length;
    const ids = new ort.Tensor("int32", Int32Array.from(sourceIds), [1, S]);
    const encoded = await this.encoder.run({ source_ids: ids });
    this.sourceLength = S;
    this.cross = {};
    for (let i = 0; i < this.numLayers; i++) {
      for (const name of [`cross_key_${i}`, `cross_value_${i}`]) this.cross[name] = encoded[name].data;
    }
    this.rows = 1;
    this.pastLength = 0;
    this.past = {};
    for (let i = 0; i < this.numLayers; i++) {
      this.past[`past_key_${i}`] = new Float32Array(0);
      this.past[`past_value_${i}`] = new Float32Array(0);
    }
  }

  /** Gathers rows of the caches: `rows[k]` is the old row new row k copies (beams expand and reorder). */
  select(rows) {
    const [H, P, Dh] = [this.numHeads, this.pastLength, this.headDim];
    const size = H * P * Dh;
    for (const name of Object.keys(this.past)) {
      const old = this.past[name];
      const gathered = new Float32Array(rows.length * size);
      rows.forEach((row, k) => gathered.set(old.subarray(row * size, (row + 1) * size), k * size));
      this.past[name] = gathered;
    }
    this.rows = rows.length; // every row is the same sentence: cross K/V and the mask are tiled in step
  }

  /** One decoder.onnx step: tokens (rows,) at `position` -> logits (rows * V); the caches grow by one. */
  async step(tokens, position) {
    const { ort } = this;
    const [B, H, S, P, Dh] = [this.rows, this.numHeads, this.sourceLength, this.pastLength, this.headDim];
    const tile = (data) => {
      if (B === 1) return data;
      const out = new data.constructor(data.length * B);
      for (let b = 0; b < B; b++) out.set(data, b * data.length);
      return out;
    };
    const feeds = {
      token_ids: new ort.Tensor("int32", Int32Array.from(tokens), [B, 1]),
      position: new ort.Tensor("int32", Int32Array.of(position), []),
      source_mask: new ort.Tensor("bool", tile(new Uint8Array(S).fill(1)), [B, S]),
    };
    if (this.shortlisted) Object.assign(feeds, this.operands);
    for (const [name, data] of Object.entries(this.cross)) feeds[name] = new ort.Tensor("float32", tile(data), [B, H, S, Dh]);
    for (const [name, data] of Object.entries(this.past)) feeds[name] = new ort.Tensor("float32", data, [B, H, P, Dh]);
    const results = await this.decoder.run(feeds, this.outputNames);
    for (let i = 0; i < this.numLayers; i++) {
      this.past[`past_key_${i}`] = results[`present_key_${i}`].data;
      this.past[`past_value_${i}`] = results[`present_value_${i}`].data;
    }
    this.pastLength = P + 1;
    this.lastResults = results;
    return results.logits.data;
  }
}

export class BrowserTranslator {
  /** Use `await BrowserTranslator.load(ort, baseUrl)`. */
  constructor(ort, config, sessions, tokenizers, decoderBytes, info, shortlist = null) {
    this.ort = ort;
    this.config = config;
    this.shortlist = shortlist;
    this.model = new OnnxStepModel(ort, sessions.encoder, sessions.decoder, config, sessions.candidates);
    this.sourceTokenizer = tokenizers.source;
    this.targetTokenizer = tokenizers.target;
    this.decoderBytes = decoderBytes;
    this.info = info;
    this.queue = Promise.resolve(); // one translation at a time: the model holds one sentence's state
  }

  get maxSourceLength() { return this.config.model.max_source_length; }
  get maxTargetLength() { return this.config.model.max_target_length; }

  /**
   * Downloads and checks the bundle under baseUrl; onProgress(message) reports each stage.
   * @throws {BundleError} naming the file: missing, not what config.json says (sha256), not loadable.
   */
  static async load(ort, baseUrl, { onProgress = () => {}, sessionOptions = {} } = {}) {
    const started = performance.now();
    onProgress(`Downloading ${FILES.config}…`);
    const configBytes = await fetchBytes(baseUrl, FILES.config);
    const config = parseJson(configBytes, FILES.config);
    const version = config && typeof config === "object" ? config.format_version : undefined;
    if (version !== FORMAT_VERSION) {
      throw new BundleError(`${FILES.config}: expected bundle format_version ${FORMAT_VERSION}, got ${JSON.stringify(version ?? null)}`);
    }
    if (typeof config.files !== "object" || config.files === null || typeof config.model !== "object" || config.model === null) {
      throw new BundleError(`${FILES.config}: expected 'files' and 'model' objects`);
    }
    const bytes = {};
    let downloaded = configBytes.length;
    const graphs = config.shortlist ? ["encoder", "decoder", "candidates"] : ["encoder", "decoder"];
    for (const key of [...graphs, "source", "target"]) {
      const name = FILES[key];
      if (!(name in config.files)) throw new BundleError(`${FILES.config}: 'files' lacks ${name}`);
      onProgress(`Downloading ${name}…`);
      bytes[key] = await fetchBytes(baseUrl, name);
      downloaded += bytes[key].length;
      const digest = await sha256Hex(bytes[key]);
      const expected = String(config.files[name]);
      if (digest !== expected) {
        throw new BundleError(`${name}: sha256 mismatch (expected ${expected.slice(0, 12)}…, got ${digest.slice(0, 12)}…): ` +
          "the file is truncated or was changed");
      }
    }
    let shortlist = null;
    if (config.shortlist) {
      const name = FILES.shortlist;
      onProgress(`Downloading ${name}…`);
      const data = await fetchBytes(baseUrl, name);
      downloaded += data.length;
      if ((await sha256Hex(data)) !== String(config.files[name])) {
        throw new BundleError(`${name}: sha256 mismatch: the file is truncated or was changed`);
      }
      shortlist = new Shortlist(data, config.shortlist);
    }
    const tokenizers = {};
    for (const key of ["source", "target"]) {
      const name = FILES[key];
      try {
        tokenizers[key] = new SubwordTokenizer(parseJson(bytes[key], name), name);
      } catch (error) {
        throw error instanceof BundleError ? error : new BundleError(error.message);
      }
    }
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all", ...sessionOptions };
    const sessions = {};
    for (const key of graphs) {
      const name = FILES[key];
      onProgress(`Starting onnxruntime-web on ${name}…`);
      try {
        sessions[key] = await ort.InferenceSession.create(bytes[key], options);
      } catch (error) {
        throw new BundleError(`${name}: onnxruntime-web cannot load it (${error.message || error})`);
      }
    }
    const info = { downloadedBytes: downloaded, loadSeconds: (performance.now() - started) / 1000,
                   files: Object.fromEntries(Object.entries(bytes).map(([k, b]) => [FILES[k], b.length])) };
    info.files[FILES.config] = configBytes.length;
    onProgress(`Bundle loaded: ${megabytes(downloaded)} in ${info.loadSeconds.toFixed(1)} s`);
    return new BrowserTranslator(ort, config, sessions, tokenizers, bytes.decoder, info, shortlist);
  }

  /** Source ids as Translator._source_ids: tokens cut to max_source_length - 1, then [EOS]. */
  sourceIds(text) {
    const ids = this.sourceTokenizer.encode(text);
    const limit = this.maxSourceLength - 1;
    return { ids: ids.slice(0, limit).concat([EOS_ID]), tokenCount: ids.length, truncated: ids.length > limit };
  }

  /**
   * Translates one text; resolves to {text, outputIds, sourceIds, truncated, tokenCount, steps, seconds,
   * firstTokenSeconds}. Blank text gives "" without running the model.
   * onStep({text, tokens, position, seconds}) reports the best hypothesis after every decoder step.
   */
  translate(text, { beamSize = 1, maxLength = null, lengthPenalty = 1.0, patience = 1.0, useShortlist = true } = {},
            { onStep = null } = {}) {
    const run = this.queue.then(() => this._translate(text, beamSize, maxLength, lengthPenalty, onStep, patience,
                                                      useShortlist));
    this.queue = run.catch(() => {});
    return run;
  }

  async _translate(text, beamSize, maxLength, lengthPenalty, onStep, patience = 1.0, useShortlist = true) {
    if (typeof text !== "string") throw new TypeError(`text: expected a string, got ${text === null ? "null" : typeof text}`);
    if (!Number.isInteger(beamSize)) throw new TypeError(`beamSize: expected an integer, got ${beamSize}`);
    if (beamSize < 1) throw new RangeError(`beamSize: expected an integer >= 1, got ${beamSize}`);
    if (maxLength !== null && maxLength !== undefined && !Number.isInteger(maxLength)) {
      throw new TypeError(`maxLength: expected an integer or null, got ${maxLength}`);
    }
    if (maxLength !== null && maxLength !== undefined && maxLength < 1) throw new RangeError(`maxLength: expected an integer >= 1, got ${maxLength}`);
    if (typeof lengthPenalty !== "number" || !Number.isFinite(lengthPenalty)) {
      throw new RangeError(`lengthPenalty: expected a finite number, got ${lengthPenalty}`);
    }
    const cap = Math.min(maxLength ?? this.maxTargetLength, this.maxTargetLength);
    text = wellFormed(text);
    const empty = { text: "", outputIds: [], sourceIds: [], truncated: false, tokenCount: 0, steps: 0, seconds: 0,
                    firstTokenSeconds: null, endedWithEos: false };
    if (isBlank(text)) return empty;
    const started = performance.now();
    const source = this.sourceIds(text);
    await this.model.setVocabulary(this.shortlist && useShortlist ? this.shortlist.candidates(source.ids) : null);
    await this.model.start(source.ids);
    let steps = 0;
    let firstTokenSeconds = null;
    const report = ({ tokens, position }) => {
      steps = position + 1;
      const seconds = (performance.now() - started) / 1000;
      if (firstTokenSeconds === null) firstTokenSeconds = seconds;
      if (onStep) onStep({ text: this.targetTokenizer.decode(tokens), tokens: tokens.slice(), position, seconds });
    };
    if (typeof patience !== "number" || !(patience >= 1)) {
      throw new RangeError(`patience: expected a number >= 1, got ${patience}`);
    }
    const outputIds = await beamSearch(this.model, cap, beamSize, lengthPenalty, report, patience);
    const seconds = (performance.now() - started) / 1000;
    return { text: this.targetTokenizer.decode(outputIds), outputIds, sourceIds: source.ids, truncated: source.truncated,
             tokenCount: source.tokenCount, steps, seconds, firstTokenSeconds, endedWithEos: outputIds.length < cap };
  }

  /**
   * Cross-attention of one translated sentence: weights[layer][head][t][s], the attention of the
   * decoder step that produced output token t (the outputs, then [EOS] if the translation ended with
   * it) over the source tokens (with their [EOS]). Runs a second decoder session, created on first
   * use, whose graph also outputs every layer's cross-attention weights (or the scores they are the
   * softmax of: onnx_graph.js `crossAttentionOutputs`); the decoding sessions
   * stay lean.
   */
  attention(sourceIds, outputIds, endedWithEos = true) {
    const run = this.queue.then(() => this._attention(sourceIds, outputIds, endedWithEos));
    this.queue = run.catch(() => {});
    return run;
  }

  async _attention(sourceIds, outputIds, endedWithEos) {
    if (!this.attentionModel) {
      const found = crossAttentionOutputs(this.decoderBytes, this.model.numLayers);
      const names = found.map((f) => f.name);
      const session = await this.ort.InferenceSession.create(withExtraOutputs(this.decoderBytes, names),
                                                             { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
      this.attentionModel = new OnnxStepModel(this.ort, this.model.encoder, session, this.config, this.model.candidates);
      this.attentionModel.outputNames.push(...names);
      this.attentionNames = found;
    }
    const model = this.attentionModel;
    await model.start(sourceIds);
    const produced = endedWithEos ? [...outputIds, EOS_ID] : outputIds.slice();
    const inputs = [BOS_ID, ...produced.slice(0, -1)];
    const [L, H, S] = [this.model.numLayers, this.config.model.num_heads, sourceIds.length];
    const weights = Array.from({ length: L }, () => Array.from({ length: H }, () => []));
    for (let t = 0; t < inputs.length; t++) {
      await model.step(Int32Array.of(inputs[t]), t);
      this.attentionNames.forEach(({ name, scores }, layer) => {
        const data = model.lastResults[name].data; // (1, H, 1, S): weights, or scores before the softmax
        for (let h = 0; h < H; h++) {
          const row = Array.from(data.subarray(h * S, (h + 1) * S));
          const total = scores ? logSumExp(row) : 0; // scores: the softmax is taken here
          weights[layer][h].push(scores ? row.map((x) => Math.exp(x - total)) : row);
        }
      });
    }
    return {
      weights,
      sourceTokens: this.sourceTokenizer.tokenStrings(sourceIds),
      targetTokens: this.targetTokenizer.tokenStrings(produced),
    };
  }
}
