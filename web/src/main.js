// The page: loads the bundle served next to it, translates as you watch, draws the cross-attention.
//
// Automation contract (tests, scripts):
//   await window.kt.ready                                  resolves once the bundle is loaded (rejects with its error)
//   await window.kt.translate(text, {beamSize: 1, maxLength: null})   -> the translation (a string)
//   await window.kt.translateDetailed(text, options)        -> {text, outputIds, sourceIds, truncated, seconds, ...}
// Query parameters: ?bundle=URL (default "bundle/"), ?threads=N (WebAssembly threads; default: onnxruntime-web's choice).
import * as ort from "onnxruntime-web/wasm";
import { BrowserTranslator } from "./translator.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const bundleUrl = new URL(params.get("bundle") || "bundle/", location.href);

ort.env.wasm.wasmPaths = new URL("ort/", location.href).href; // served by `keras-transformer web`: offline
ort.env.logLevel = "error";
if (params.has("threads")) ort.env.wasm.numThreads = Math.max(1, Number.parseInt(params.get("threads"), 10) || 1);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  $("status").textContent = "The bundle could not be loaded.";
  $("status").classList.add("failed");
}

function setStatus(message) {
  $("status").textContent = message;
}

let translator = null;
let lastResult = null;

const ready = BrowserTranslator.load(ort, bundleUrl, { onProgress: setStatus }).then(
  (loaded) => {
    translator = loaded;
    const threads = ort.env.wasm.numThreads;
    const m = loaded.config.model;
    setStatus(`Ready. Bundle: ${(loaded.info.downloadedBytes / 1e6).toFixed(2)} MB, ${m.encoder_layers ?? m.num_layers}+${m.decoder_layers ?? m.num_layers} layers, d_model ${m.hidden_dim}, ` +
      `${m.num_heads} heads, source ≤ ${m.max_source_length} and target ≤ ${m.max_target_length} tokens. ` +
      `onnxruntime-web ${ort.env.versions?.web ?? ""} on WebAssembly, ${threads} thread${threads === 1 ? "" : "s"}` +
      `${self.crossOriginIsolated ? "" : " (threads need cross-origin isolation)"}.`);
    $("max-length").placeholder = String(m.max_target_length);
    $("translate").disabled = false;
    document.body.dataset.ready = "true";
    return true;
  },
  (error) => {
    showError(`Error: ${error.message || error}`);
    document.body.dataset.ready = "error";
    throw error;
  },
);
ready.catch(() => {}); // reported on the page; callers of kt.ready still see the rejection

async function translateDetailed(text, { beamSize = 1, maxLength = null, lengthPenalty = 1.0, patience = 1.0,
                                        useShortlist = true } = {}, callbacks = {}) {
  await ready;
  return translator.translate(text, { beamSize, maxLength, lengthPenalty, patience, useShortlist }, callbacks);
}

window.kt = {
  ready,
  translate: async (text, options = {}) => (await translateDetailed(text, options)).text,
  translateDetailed,
  attention: async (text, options = {}) => {
    const result = await translateDetailed(text, options);
    return translator.attention(result.sourceIds, result.outputIds, result.endedWithEos);
  },
  get translator() { return translator; },
  ort,
};

// ---------------------------------------------------------------------------------------------- UI

function readOptions() {
  const beamSize = Number.parseInt($("beam-size").value, 10);
  const raw = $("max-length").value.trim();
  return { beamSize, maxLength: raw === "" ? null : Number.parseInt(raw, 10) };
}

async function onTranslate(event) {
  event?.preventDefault();
  if (!translator) return;
  const text = $("source").value;
  const options = readOptions();
  $("translate").disabled = true;
  $("attention-section").hidden = true;
  $("show-attention").disabled = true;
  $("output").textContent = "";
  $("timing").textContent = "";
  $("truncation").hidden = true;
  try {
    const result = await translateDetailed(text, options, {
      onStep: ({ text: partial, position, seconds }) => {
        $("output").textContent = partial;
        $("timing").textContent = `step ${position + 1}, ${(seconds * 1000).toFixed(0)} ms`;
      },
    });
    lastResult = result;
    $("output").textContent = result.text;
    if (result.truncated) {
      $("truncation").textContent = `Note: the text has ${result.tokenCount} tokens; with [EOS] that exceeds the model's ` +
        `max_source_length of ${translator.maxSourceLength}, so only its first ${translator.maxSourceLength - 1} tokens were translated ` +
        "(as Python's Translator does).";
      $("truncation").hidden = false;
    }
    if (result.steps > 0) {
      const generated = result.outputIds.length + (result.endedWithEos ? 1 : 0);
      $("timing").textContent = `${result.outputIds.length} tokens (${result.steps} decoder steps, ` +
        `${options.beamSize === 1 ? "greedy" : `beam ${options.beamSize}`}) in ${(result.seconds * 1000).toFixed(0)} ms: ` +
        `${(generated / result.seconds).toFixed(0)} tokens/s, first token after ${(result.firstTokenSeconds * 1000).toFixed(0)} ms.`;
      $("show-attention").disabled = false;
    } else {
      $("timing").textContent = "Blank text: nothing to translate.";
    }
  } catch (error) {
    $("timing").textContent = `Error: ${error.message || error}`;
  } finally {
    $("translate").disabled = false;
  }
}

let attention = null;

async function onShowAttention() {
  if (!lastResult || lastResult.steps === 0) return;
  $("show-attention").disabled = true;
  try {
    const started = performance.now();
    attention = await translator.attention(lastResult.sourceIds, lastResult.outputIds, lastResult.endedWithEos);
    const layerSelect = $("attention-layer");
    const headSelect = $("attention-head");
    layerSelect.replaceChildren(new Option("average of layers", "avg"),
      ...attention.weights.map((_, i) => new Option(`layer ${i + 1}`, String(i))));
    headSelect.replaceChildren(new Option("average of heads", "avg"),
      ...attention.weights[0].map((_, h) => new Option(`head ${h + 1}`, String(h))));
    layerSelect.value = String(attention.weights.length - 1);
    $("attention-section").hidden = false;
    drawAttention();
    $("attention-note").textContent = `Computed in ${(performance.now() - started).toFixed(0)} ms by re-running the decoder ` +
      "with its cross-attention softmax exposed (a second session, created on first use).";
  } catch (error) {
    $("attention-note").textContent = `Error: ${error.message || error}`;
    $("attention-section").hidden = false;
  } finally {
    $("show-attention").disabled = false;
  }
}

function selectedMatrix() {
  const layerValue = $("attention-layer").value;
  const headValue = $("attention-head").value;
  const layers = layerValue === "avg" ? attention.weights.map((_, i) => i) : [Number(layerValue)];
  const heads = headValue === "avg" ? attention.weights[0].map((_, h) => h) : [Number(headValue)];
  const first = attention.weights[0][0];
  return first.map((row, t) => row.map((_, s) => {
    let total = 0;
    for (const l of layers) for (const h of heads) total += attention.weights[l][h][t][s];
    return total / (layers.length * heads.length);
  }));
}

const label = (token) => token.replaceAll("\u2581", "▁");

function drawAttention() {
  const matrix = selectedMatrix();
  const table = $("attention");
  const header = document.createElement("tr");
  header.append(document.createElement("th"));
  for (const token of attention.sourceTokens) {
    const th = document.createElement("th");
    th.className = "source-token";
    th.textContent = label(token);
    header.append(th);
  }
  const rows = matrix.map((weights, t) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.className = "target-token";
    th.lang = "hi";
    th.textContent = label(attention.targetTokens[t]);
    tr.append(th);
    weights.forEach((w, s) => {
      const td = document.createElement("td");
      td.style.backgroundColor = `rgba(37, 99, 235, ${Math.min(1, Math.max(0, w)).toFixed(3)})`;
      td.title = `${label(attention.targetTokens[t])} → ${label(attention.sourceTokens[s])}: ${w.toFixed(3)}`;
      td.textContent = w >= 0.5 ? w.toFixed(1) : "";
      if (w >= 0.5) td.className = "strong";
      tr.append(td);
    });
    return tr;
  });
  table.replaceChildren(header, ...rows);
}

$("form").addEventListener("submit", onTranslate);
$("show-attention").addEventListener("click", onShowAttention);
$("attention-layer").addEventListener("change", drawAttention);
$("attention-head").addEventListener("change", drawAttention);
$("source").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) onTranslate(event);
});
