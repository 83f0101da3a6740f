// The bundle's tokenizers, via tokenizers.js (@huggingface/tokenizers), made to match serve/tokenizer.py.
//
// tokenizers.js reads the tokenizers-library JSON (normalizers NFC / Replace / Strip, pre-tokenizers
// Metaspace / Punctuation, BPE, Metaspace decoder) and gives the same ids as the Rust library on
// every character of the Basic Multilingual Plane and on the held-out corpus, with four adaptations
// (checked by web/test/ against ids Python computed):
// 1. serve/tokenizer.py sets `encode_special_tokens = True`: typed text such as "[EOS]" is ordinary
//    text. tokenizers.js has no such switch and always matches added tokens in the input, so the
//    encoder is built from a copy of the JSON without `added_tokens` (the special tokens stay in the
//    BPE vocabulary at ids 0..3, which is all decoding needs).
// 2. U+FEFF (zero-width no-break space) is whitespace to JavaScript (`\s`, String.prototype.trim) but
//    not to Oniguruma / Rust, where it is an unknown character ([UNK]). It is swapped for a
//    noncharacter absent from the vocabulary before encoding, which tokenizes the same way.
// 3. serve/translator.py's `_valid_unicode` turns each lone surrogate into three U+FFFD (its UTF-8
//    bytes, "surrogatepass"-encoded, each decode to one replacement character); so does `wellFormed`.
// 4. Decoding turns off tokenizers.js' default `clean_up_tokenization_spaces` (a transformers
//    setting the Rust library does not apply), and drops [PAD]/[BOS] and everything from [EOS] on,
//    keeping [UNK], like SubwordTokenizer.decode.
import { Tokenizer } from "@huggingface/tokenizers";

export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
export const UNK_ID = 3;
export const SPECIAL_TOKENS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"];

// Python's str.isspace() characters: what `text.strip()` removes when Translator decides a text is blank.
const PYTHON_SPACE = /^[\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/u;

/** True if Python's `not text.strip()` is. */
export function isBlank(text) {
  return PYTHON_SPACE.test(text);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` with each lone surrogate replaced as serve/translator.py's `_valid_unicode` does: by three U+FFFD. */
export function wellFormed(text) {
  if (typeof text.isWellFormed === "function" && text.isWellFormed()) return text;
  return text.replace(LONE_SURROGATE, "\ufffd\ufffd\ufffd");
}

const BOM = /\ufeff/g;
const PLACEHOLDERS = Array.from({ length: 32 }, (_, i) => String.fromCharCode(0xfdd0 + i)); // noncharacters

export class SubwordTokenizer {
  /**
   * @param {object} json the parsed `*.tokenizer.json`
   * @param {string} source a name for error messages (the file name)
   */
  constructor(json, source = "<tokenizer>") {
    if (json === null || typeof json !== "object" || typeof json.model !== "object" || json.model === null) {
      throw new Error(`${source}: expected a tokenizers-library tokenizer, got JSON without a 'model'`);
    }
    try {
      this.decoder = new Tokenizer(json, { clean_up_tokenization_spaces: false });
      this.encoder = new Tokenizer({ ...json, added_tokens: [] }, { clean_up_tokenization_spaces: false });
    } catch (error) {
      throw new Error(`${source}: expected a tokenizers-library tokenizer, got JSON tokenizers.js cannot load (${error.message})`);
    }
    const found = SPECIAL_TOKENS.map((_, i) => this.decoder.id_to_token(i));
    if (found.join("\u0000") !== SPECIAL_TOKENS.join("\u0000")) {
      throw new Error(`${source}: expected special tokens ${JSON.stringify(SPECIAL_TOKENS)} at ids 0..3, got ${JSON.stringify(found)}`);
    }
    this.source = source;
    const vocab = this.decoder.get_vocab(true);
    this.vocabSize = vocab.size;
    const tokens = [...vocab.keys()];
    const unused = PLACEHOLDERS.find((c) => !tokens.some((t) => t.includes(c)));
    // With U+FEFF inside the vocabulary, the substitution would change ids: leave the text as it is.
    this.bomPlaceholder = tokens.some((t) => t.includes("\ufeff")) ? null : unused ?? null;
  }

  /** Subword ids of `text`, without [BOS]/[EOS] (SubwordTokenizer.encode). */
  encode(text) {
    let prepared = wellFormed(text);
    if (this.bomPlaceholder !== null) prepared = prepared.replace(BOM, this.bomPlaceholder);
    const { ids } = this.encoder.encode(prepared, { add_special_tokens: false });
    return ids.map((id) => (id === undefined || id === null ? UNK_ID : Number(id)));
  }

  /** The ids `decode` keeps: up to the first [EOS], without [PAD]/[BOS]. */
  clean(ids) {
    const kept = [];
    for (const id of ids) {
      if (id === EOS_ID) break;
      if (id === PAD_ID || id === BOS_ID) continue;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`expected token ids in 0..${this.vocabSize - 1}, got ${id}`);
      }
      kept.push(id);
    }
    return kept;
  }

  /** Detokenized text (SubwordTokenizer.decode): stops at [EOS], skips [PAD]/[BOS], keeps "[UNK]". */
  decode(ids) {
    const kept = this.clean(ids);
    if (kept.length === 0) return "";
    return this.decoder.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** Subword strings of ids (labels of the attention map). */
  tokenStrings(ids) {
    return ids.map((id) => this.decoder.id_to_token(id) ?? "[UNK]");
  }
}
