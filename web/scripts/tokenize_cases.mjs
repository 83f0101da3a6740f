// Tokenizes with web/src/tokenizer.js what tests/test_web.py asks, for comparison with Python:
//   node web/scripts/tokenize_cases.mjs CASES.json  ->  stdout {source: [[ids]], target: [[ids]], decoded: [text]}
// CASES.json: {bundle: DIR, texts: [text], ids: [[target ids]]}.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SubwordTokenizer } from "../src/tokenizer.js";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const load = (name) => new SubwordTokenizer(JSON.parse(readFileSync(join(cases.bundle, name), "utf8")), name);
const source = load("source.tokenizer.json");
const target = load("target.tokenizer.json");
process.stdout.write(JSON.stringify({
  source: cases.texts.map((t) => source.encode(t)),
  target: cases.texts.map((t) => target.encode(t)),
  decoded: cases.ids.map((ids) => target.decode(ids)),
}));
