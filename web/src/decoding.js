// Greedy and beam search over a cached decoder step: a port of serve/decoding.py for one sentence.
//
// The port is faithful so that outputs are token-identical to Python's `Translator.translate`:
// - `maxLength` caps the generated tokens, EOS included; returned token lists hold neither BOS nor EOS;
// - greedy takes the most likely token, ties to the lowest id (np.argmax);
// - beam search scores only each beam's 2K best tokens (ties to the lower token id), ranks the
//   candidates by score then by the lower (beam, token) index, sets aside EOS among the K best as
//   finished hypotheses (score = log-prob sum / len ** alpha, len = tokens + 1, as CTranslate2), continues with the K best
//   non-EOS candidates, and stops once no live beam can beat the best finished hypothesis (its sum
//   over the largest penalty term it can still reach), or at maxLength, where unfinished beams
//   compete as they are unless round(K * patience) hypotheses already finished. Between hypotheses
//   of equal score the one found first stays.
//
// The model is anything with
//   async step(tokens: Int32Array (rows,), position: number) -> Float32Array (rows * V) logits
//   select(rows: number[])   gather rows of the state (expand to K beams, reorder beams)
//   vocabSize: number        V, the logits' columns
//   vocabIds: Int32Array|null the target id of each column (a shortlist's candidates), or null: column = id

export const BOS_ID = 1;
export const EOS_ID = 2;

/** Length normalization term length ** alpha (length = the hypothesis' tokens + 1), as serve/decoding.py. */
export function lengthPenaltyTerm(length, alpha) {
  return length ** alpha;
}

/** Index of the largest entry of `values[start, start + n)`, the first one on ties (np.argmax). */
export function argmax(values, start = 0, n = values.length - start) {
  let best = start;
  let bestValue = values[start];
  for (let i = start + 1; i < start + n; i++) {
    if (values[i] > bestValue || (Number.isNaN(values[i]) && !Number.isNaN(bestValue))) {
      best = i;
      bestValue = values[i];
      if (Number.isNaN(bestValue)) break; // np.argmax returns the first NaN
    }
  }
  return best - start;
}

/** Indices of the k largest entries of `row`, best first, ties to the lower index (serve.decoding._top_k). */
export function topK(row, k) {
  const picked = [];
  for (let j = 0; j < row.length; j++) {
    const value = row[j];
    const full = picked.length === k;
    if (full && !(value > row[picked[k - 1]])) continue; // an equal value keeps the lower index
    let at = full ? k - 1 : picked.length;
    while (at > 0 && value > row[picked[at - 1]]) at--;
    if (full) picked.pop();
    picked.splice(at, 0, j);
  }
  return picked;
}

/** log(sum(exp(row))) as serve.decoding.log_sum_exp: max + log(sum(exp(x - max))), exps in float32. */
export function logSumExp(row) {
  let top = -Infinity;
  for (let j = 0; j < row.length; j++) if (row[j] > top) top = row[j];
  let total = 0;
  for (let j = 0; j < row.length; j++) total += Math.fround(Math.exp(Math.fround(row[j] - top)));
  return top + Math.log(total);
}

function checkSizes(maxLength, beamSize) {
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`expected maxLength >= 1, got ${maxLength}`);
  if (!Number.isInteger(beamSize) || beamSize < 1) throw new RangeError(`expected beamSize >= 1, got ${beamSize}`);
}

/**
 * Greedy decoding of one sentence (serve.decoding.greedy_decode with B = 1).
 * onStep({tokens, position}) is called after every generated token but EOS (tokens: the output so far).
 */
export async function greedyDecode(model, maxLength, onStep = null) {
  checkSizes(maxLength, 1);
  const output = [];
  let token = BOS_ID;
  for (let position = 0; position < maxLength; position++) {
    const logits = await model.step(Int32Array.of(token), position);
    if (logits.length !== model.vocabSize) throw new Error(`expected step logits of shape (1, ${model.vocabSize}), got ${logits.length} values`);
    token = model.vocabIds ? model.vocabIds[argmax(logits)] : argmax(logits);
    if (token === EOS_ID) break;
    output.push(token);
    if (onStep) onStep({ tokens: output, position });
  }
  return output;
}

/**
 * Beam search for one sentence (serve.decoding._beam_search with B = 1); beamSize 1 is greedyDecode.
 * onStep({tokens, position}) gets the best live beam after each step.
 */
export async function beamSearch(model, maxLength, beamSize, lengthPenalty = 1.0, onStep = null, patience = 1.0) {
  checkSizes(maxLength, beamSize);
  if (beamSize === 1) return greedyDecode(model, maxLength, onStep);
  const K = beamSize;
  const alpha = lengthPenalty;
  // Stop once this many hypotheses have finished (CTranslate2's and fairseq's rule; Infinity: off).
  const enough = Number.isFinite(patience) ? Math.max(1, Math.round(K * patience)) : Infinity;
  let finishedCount = 0;
  model.select(new Array(K).fill(0)); // row k: beam k
  let scores = new Float64Array(K).fill(-Infinity); // log-prob sum of each live beam
  scores[0] = 0; // only beam 0 is live at the first step
  let history = Array.from({ length: K }, () => []);
  let tokens = new Int32Array(K).fill(BOS_ID);
  let bestScore = -Infinity;
  let bestTokens = [];

  const recordBest = (hypothesisScores, sequences) => {
    let beam = 0; // np.argmax: the first best
    for (let k = 1; k < K; k++) if (hypothesisScores[k] > hypothesisScores[beam]) beam = k;
    if (hypothesisScores[beam] > bestScore) {
      bestScore = hypothesisScores[beam];
      bestTokens = sequences[beam].slice();
    }
  };

  for (let position = 0; position < maxLength; position++) {
    const length = position + 1; // tokens per hypothesis after this step
    const logits = await model.step(tokens, position);
    const V = model.vocabSize;
    if (logits.length !== K * V) throw new Error(`expected step logits of shape (${K}, ${V}), got ${logits.length} values`);
    const W = Math.min(2 * K, V);
    const candidates = []; // {score, flat = beam * V + token}
    for (let k = 0; k < K; k++) {
      const row = logits.subarray(k * V, (k + 1) * V);
      const lse = logSumExp(row);
      for (const word of topK(row, W)) candidates.push({ score: scores[k] + (row[word] - lse), flat: k * V + word });
    }
    candidates.sort((a, b) => (a.score > b.score ? -1 : a.score < b.score ? 1 : a.flat - b.flat));
    const ranked = candidates.slice(0, Math.min(2 * K, K * V));
    const beams = ranked.map((c) => Math.floor(c.flat / V));
    const words = ranked.map((c) => (model.vocabIds ? model.vocabIds[c.flat % V] : c.flat % V));
    const isEos = words.map((w) => w === EOS_ID);

    // EOS among the K best candidates finishes a hypothesis.
    const term = lengthPenaltyTerm(length, alpha);
    const finished = [];
    const prefixes = [];
    for (let k = 0; k < K; k++) {
      finished.push(isEos[k] ? ranked[k].score / term : -Infinity);
      prefixes.push(history[beams[k]]);
      if (isEos[k] && Number.isFinite(ranked[k].score)) finishedCount++;
    }
    recordBest(finished, prefixes);

    // The K best candidates not ending in EOS continue (padded with dead beams if too few).
    const order = ranked.map((_, i) => i);
    const keep = [...order.filter((i) => !isEos[i]), ...order.filter((i) => isEos[i])].slice(0, K);
    scores = Float64Array.from(keep, (i) => (isEos[i] ? -Infinity : ranked[i].score));
    const keptBeams = keep.map((i) => beams[i]);
    const keptWords = keep.map((i) => words[i]);
    history = keep.map((i, k) => [...history[keptBeams[k]], keptWords[k]]);
    if (onStep) onStep({ tokens: history[0], position });

    if (length === maxLength) { // at the cap, unfinished beams compete unless K hypotheses finished
      const capTerm = lengthPenaltyTerm(length + 1, alpha); // cut at the cap: tokens + 1
      if (finishedCount < enough) recordBest(Array.from(scores, (s) => s / capTerm), history);
      break;
    }
    const bound = Math.max(lengthPenaltyTerm(length + 1, alpha), lengthPenaltyTerm(maxLength + 1, alpha));
    let reachable = -Infinity;
    for (let k = 0; k < K; k++) reachable = Math.max(reachable, scores[k] / bound);
    if (!(bestScore < reachable) || finishedCount >= enough) break;
    model.select(keptBeams);
    tokens = Int32Array.from(keptWords);
  }
  return bestTokens;
}
