"""The bundle format: file names, tensor names and special ids shared by `export/` and `serve/`.

A bundle is a directory::

    config.json              format version, special ids, dims, graph I/O names, sha256 of every file
    encoder.onnx             source_ids -> encoder_output and each decoder layer's cross-attention K/V
    decoder.onnx             one cached decoding step
    generate.onnx            optional: the whole search in one onnxruntime BeamSearch node, over the
                             same two graphs (export/generation_graph.py, serve/graph_search.py)
    shortlist.bin            optional (`export --shortlist`): each source token's likely target tokens
                             (serve/shortlist.py); decoder.onnx then computes only the logits of a
                             batch's candidate target ids
    candidates.onnx          with shortlist.bin: a batch's candidate ids (VOCAB_IDS) -> the output
                             projection's operands for those ids (their rows, gathered once per batch),
                             which decoder.onnx takes as inputs (export/hoisting.py)
    source.tokenizer.json    tokenizers-library BPE for the source language
    target.tokenizer.json    tokenizers-library BPE for the target language

Shapes use B = batch, S = source length, P = past (cached) target length, H = heads (h),
Dh = head dim (d_k = d_model / h), D = hidden dim (d_model), V = target vocabulary size.
"""

FORMAT_VERSION = 1

CONFIG_FILE = "config.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
GENERATE_FILE = "generate.onnx"
SHORTLIST_FILE = "shortlist.bin"
CANDIDATES_FILE = "candidates.onnx"
SOURCE_TOKENIZER_FILE = "source.tokenizer.json"
TARGET_TOKENIZER_FILE = "target.tokenizer.json"

# Special ids, identical in the source and target tokenizers.
PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
UNK_ID = 3
SPECIAL_TOKENS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]

# encoder.onnx
SOURCE_IDS = "source_ids"  # int32 (B, S); PAD_ID pads
ENCODER_OUTPUT = "encoder_output"  # float32 (B, S, D)

# decoder.onnx
TOKEN_IDS = "token_ids"  # int32 (B, 1): the newest target token
POSITION = "position"  # int32 (): its position in the target, = P
SOURCE_MASK = "source_mask"  # bool (B, S): True where the source holds a real token
LOGITS = "logits"  # float32 (B, V): next-token logits; (B, C) for a shortlist's C candidates

# candidates.onnx (shortlist bundles): VOCAB_IDS -> the operands named in config.json's shortlist record
# ("operands"), which decoder.onnx takes after SOURCE_MASK; no ids (C = 0): the step computes every logit
VOCAB_IDS = "vocab_ids"  # int32 (C,): the target ids whose logits the step computes (generate.onnx takes it too)

# generate.onnx (inputs: SOURCE_IDS first)
GENERATE_MAX_LENGTH = "max_length"  # int32 (1,): tokens per output + 1 (BOS counts)
GENERATE_NUM_BEAMS = "num_beams"  # int32 (1,): 1 = greedy
GENERATE_NUM_RETURN = "num_return_sequences"  # int32 (1,): N hypotheses per sentence, N <= num_beams
GENERATE_LENGTH_PENALTY = "length_penalty"  # float32 (1,): scores are log-prob sums / length ** this
GENERATE_SEQUENCES = "sequences"  # int32 (B, N, T): BOS, tokens, EOS padding (first EOS ends it)
GENERATE_SCORES = "sequences_scores"  # float32 (B, N)


def cross_key_name(layer: int) -> str:
    """Encoder output, decoder input: float32 (B, H, S, Dh), layer `layer`'s cross-attention keys."""
    return f"cross_key_{layer}"


def cross_value_name(layer: int) -> str:
    """Encoder output, decoder input: float32 (B, H, S, Dh), cross-attention values."""
    return f"cross_value_{layer}"


def past_key_name(layer: int) -> str:
    """Decoder input: float32 (B, H, P, Dh), self-attention keys of the tokens before this step."""
    return f"past_key_{layer}"


def past_value_name(layer: int) -> str:
    """Decoder input: float32 (B, H, P, Dh), self-attention values of earlier tokens."""
    return f"past_value_{layer}"


def present_key_name(layer: int) -> str:
    """Decoder output: float32 (B, H, P + 1, Dh), the past keys with this step's appended."""
    return f"present_key_{layer}"


def present_value_name(layer: int) -> str:
    """Decoder output: float32 (B, H, P + 1, Dh)."""
    return f"present_value_{layer}"


def encoder_io_names(decoder_layers: int) -> tuple[list[str], list[str]]:
    """encoder.onnx's (inputs, outputs), in order; config.json's graphs.encoder lists them too. The
    cross-attention keys and values are each decoder layer's, so their number is the decoder's depth."""
    outputs = [ENCODER_OUTPUT]
    for i in range(decoder_layers):
        outputs += [cross_key_name(i), cross_value_name(i)]
    return [SOURCE_IDS], outputs


def candidates_io_names(operands) -> tuple[list[str], list[str]]:
    """candidates.onnx's (inputs, outputs): the ids, then the operands the decoder reads (their names are the
    export's: they differ between float32 and int8 projections)."""
    return [VOCAB_IDS], list(operands)


def decoder_io_names(decoder_layers: int, operands=()) -> tuple[list[str], list[str]]:
    """decoder.onnx's (inputs, outputs), in order; config.json's graphs.decoder lists them too. `operands`: a
    shortlist decoder's per-batch inputs (candidates.onnx's outputs)."""
    inputs = [TOKEN_IDS, POSITION, SOURCE_MASK, *operands]
    outputs = [LOGITS]
    for i in range(decoder_layers):
        inputs += [cross_key_name(i), cross_value_name(i), past_key_name(i), past_value_name(i)]
        outputs += [present_key_name(i), present_value_name(i)]
    return inputs, outputs


def generate_io_names(decoder_layers: int, shortlist: bool = False) -> tuple[list[str], list[str]]:
    """generate.onnx's (inputs, outputs), in order (the same for any number of layers)."""
    inputs = [SOURCE_IDS, GENERATE_MAX_LENGTH, GENERATE_NUM_BEAMS, GENERATE_NUM_RETURN, GENERATE_LENGTH_PENALTY]
    return inputs + ([VOCAB_IDS] if shortlist else []), [GENERATE_SEQUENCES, GENERATE_SCORES]


SPECIAL_IDS = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "unk": UNK_ID}  # config.json's special_ids
