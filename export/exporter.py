"""`keras-transformer export RUN --out BUNDLE`: run directory -> checked ONNX bundle.

The bundle is assembled in a temporary sibling directory and renamed to --out only after the
parity check passed; on any failure nothing appears at --out (and an existing bundle there is
left as it was).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .fused_graphs import convert_fused_decoder_step
from .generation_graph import BUILT_BY as GENERATE_BUILT_BY, build_generation_graph
from .onnx_graphs import OPSET, convert_decoder_step, convert_encoder
from .parity import ParityError, check_parity
from .shortlist import DEFAULT_FREQUENT as SHORTLIST_FREQUENT
from keras_transformer.serve import bundle_format as fmt
from keras_transformer.serve.bundle import BundleConfig, sha256_of
from keras_transformer.serve.errors import KerasTransformerError

PARITY_SENTENCES = 64
GRAPH_SEARCH_BEAM_SENTENCES = 16  # beam search through the numpy loop is the slow half of that check


class ExportError(KerasTransformerError, ValueError):
    """The export cannot proceed; the message says why."""


def _sample_pairs(run, limit=PARITY_SENTENCES):
    """Up to `limit` (source, target) pairs: the run's test.tsv, else its validation data, else training data."""
    from keras_transformer.corpus import read_parallel_corpus

    if run.test_path.is_file():
        return read_parallel_corpus(str(run.test_path), max_pairs=limit)[0]
    data = run.read_config().get("data", {})
    columns = {"source_column": data.get("source_column"), "target_column": data.get("target_column")}
    for key in ("valid", "train"):
        if data.get(key):
            try:
                return read_parallel_corpus(data[key], max_pairs=limit, **columns)[0]
            except (OSError, ValueError):
                continue  # the data moved since training: try the next source
    return []


def _parity_batches(pairs, source_tokenizer, target_tokenizer, config, rng):
    """Padded (source_ids, target_ids) for the teacher-forced checks, plus greedy sources.

    Uses up to 8 sample pairs; falls back to random ids so the check never runs on nothing.
    """
    from keras_transformer.serve.batching import encode_sources, pad_batch

    sources, _ = encode_sources(source_tokenizer, [s for s, _ in pairs], config.max_source_length)
    t_limit = config.max_target_length - 1  # decoder inputs: BOS + tokens
    targets = [[fmt.BOS_ID] + ids[:t_limit] for ids in target_tokenizer.encode_batch([t for _, t in pairs])]
    if len(sources) < 2:
        sources = [list(rng.integers(4, config.source_vocab_size, n)) + [fmt.EOS_ID] for n in (9, 3, 5)]
        targets = [[fmt.BOS_ID] + list(rng.integers(4, config.target_vocab_size, n)) for n in (4, 7, 2)]
    return pad_batch(sources[:8]), pad_batch(targets[:8]), sources


def _add_generation_graph(directory: Path, model_config, sources, log, shortlist: dict | None = None) -> dict:
    """Writes generate.onnx from the bundle's final encoder.onnx and decoder.onnx, and checks that
    its greedy and 4-beam (length penalty 0 and 1) searches give the numpy loop's tokens on `sources`;
    with a shortlist (config.json's record) given every id in padded batches, and restricted to each
    sentence's candidates one sentence a call (as the Translator sends them).

    Returns config.json's graphs.generate record. Raises ParityError on any difference."""
    import onnx

    from keras_transformer.serve.batching import decode_sources
    from keras_transformer.serve.decoding_options import DecodingOptions
    from keras_transformer.serve.graph_search import GraphSearch
    from keras_transformer.serve.onnx_model import OnnxStepModel
    from keras_transformer.serve.sessions import session_options
    from keras_transformer.serve.shortlist import Shortlist

    candidates = onnx.load(directory / fmt.CANDIDATES_FILE) if shortlist is not None else None
    graph = build_generation_graph(onnx.load(directory / fmt.ENCODER_FILE), onnx.load(directory / fmt.DECODER_FILE),
                                   model_config.target_vocab_size, candidates_proto=candidates)
    onnx.save(graph, directory / fmt.GENERATE_FILE)
    record = {"model": model_config.to_dict()}
    if shortlist is not None:
        record["shortlist"] = shortlist
    numpy_loop = OnnxStepModel(BundleConfig(directory, record))

    def graph_search(max_batch):
        return GraphSearch(directory / fmt.GENERATE_FILE, session_options(), model_config.decoder_layers,
                           max_batch=max_batch, shortlist=shortlist is not None)

    # checked in padded batches of all the sources, whatever batches the Translator sends it
    searches = [("", graph_search(len(sources)), None)]
    if shortlist is not None:  # and on each sentence's candidates, one sentence a call
        searches.append(("shortlist on, ", graph_search(1), Shortlist.from_file(directory / fmt.SHORTLIST_FILE,
                                                                                 shortlist)))
    checked = {}
    for prefix, in_graph, restricted in searches:
        for label, options, checked_sources in (
                ("greedy", DecodingOptions(), sources),
                ("beam 4, length penalty 0", DecodingOptions(beam_size=4, length_penalty=0.0),
                 sources[:GRAPH_SEARCH_BEAM_SENTENCES]),
                ("beam 4, length penalty 1", DecodingOptions(beam_size=4, length_penalty=1.0),
                 sources[:GRAPH_SEARCH_BEAM_SENTENCES])):
            label = prefix + label
            cap = model_config.max_target_length
            got = decode_sources(numpy_loop, checked_sources, options, cap, in_graph, shortlist=restricted)
            expected = decode_sources(numpy_loop, checked_sources, options, cap, shortlist=restricted)
            identical = sum(a == b for a, b in zip(got, expected))
            checked[label] = f"{identical}/{len(checked_sources)}"
            if identical != len(checked_sources):
                raise ParityError(f"{fmt.GENERATE_FILE}: {label} search in onnxruntime gave other tokens than the "
                                  f"numpy loop for {len(checked_sources) - identical}/{len(checked_sources)} sentences")
    log(f"{fmt.GENERATE_FILE}: the search inside onnxruntime gives the numpy loop's tokens "
        f"({', '.join(f'{k}: {v}' for k, v in checked.items())})")
    inputs, outputs = fmt.generate_io_names(model_config.decoder_layers, shortlist is not None)
    return {"file": fmt.GENERATE_FILE, "inputs": inputs, "outputs": outputs, "built_by": GENERATE_BUILT_BY,
            "identical_to_numpy_loop": checked}


def _bundle_config(model_config, opset, parity, quantization, directory, decoder_built_by, generate=None,
                   shortlist=None):
    encoder_inputs, encoder_outputs = fmt.encoder_io_names(model_config.decoder_layers)
    operands = shortlist["operands"] if shortlist is not None else []
    decoder_inputs, decoder_outputs = fmt.decoder_io_names(model_config.decoder_layers, operands)
    files = [fmt.ENCODER_FILE, fmt.DECODER_FILE, fmt.SOURCE_TOKENIZER_FILE, fmt.TARGET_TOKENIZER_FILE]
    graphs = {
        "encoder": {"file": fmt.ENCODER_FILE, "inputs": encoder_inputs, "outputs": encoder_outputs,
                    "built_by": "tf2onnx"},
        "decoder": {"file": fmt.DECODER_FILE, "inputs": decoder_inputs, "outputs": decoder_outputs,
                    "built_by": decoder_built_by},
    }
    if shortlist is not None:
        files += [fmt.SHORTLIST_FILE, fmt.CANDIDATES_FILE]
        inputs, outputs = fmt.candidates_io_names(operands)
        graphs["candidates"] = {"file": fmt.CANDIDATES_FILE, "inputs": inputs, "outputs": outputs,
                                "built_by": "export.hoisting (the decoder's per-batch nodes)"}
    if generate is not None:
        graphs["generate"] = generate
        files.append(fmt.GENERATE_FILE)
    return {
        "format_version": fmt.FORMAT_VERSION,
        "special_ids": fmt.SPECIAL_IDS,
        "model": {**model_config.to_dict(), "head_dim": model_config.head_dim},
        "graphs": graphs,
        "opset": opset,
        "quantization": quantization,
        "parity": parity,
        **({"shortlist": shortlist} if shortlist is not None else {}),
        "files": {name: sha256_of(directory / name) for name in files},
    }


def _prepare_out(out: Path, force: bool):
    if out.exists():
        if not force:
            raise ExportError(f"{out}: already exists; pass --force to replace it")
        is_bundle = (out / fmt.CONFIG_FILE).is_file() or (out.is_dir() and not any(out.iterdir()))
        if not is_bundle:
            raise ExportError(f"{out}: exists and is not a bundle; refusing to replace it even with --force")
    out.parent.mkdir(parents=True, exist_ok=True)


def _move_into_place(tmp: Path, out: Path):
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def export_bundle(run_dir, out, int8=False, opset=OPSET, force=False, log=print, standard_ops=False,
                  int8_plan=None, shortlist: int | None = None, shortlist_frequent: int = SHORTLIST_FREQUENT,
                  _graph_hook=None) -> dict:
    """Exports run `run_dir` to bundle `out`; returns the bundle's config.

    encoder.onnx is converted by tf2onnx; decoder.onnx is built from the weights with onnxruntime's
    fused operators (`export/fused_graphs.py`), or with `standard_ops` converted by tf2onnx into
    standard ONNX operators only. Without `standard_ops`, generate.onnx wraps the two final graphs
    in onnxruntime's BeamSearch operator (`export/generation_graph.py`), checked token for token
    against the numpy decoding loop. The int8 decoder is the fused one with a plain-operator
    cross-attention (tested equal to Keras in tests/test_fused_graphs.py), then quantized under
    `int8_plan` (default `Int8Plan()`); when no weight is large enough to be int8
    (`Int8Plan.min_weight_elements`), the graphs stay the fp32 ones. `shortlist` K: each source token's K
    likeliest target tokens and the `shortlist_frequent` most frequent ones (export/shortlist.py), and a
    decoder.onnx that computes only the logits of the ids it is given (checked: given every id, the
    tokens of the decoder without it).
    `_graph_hook(tmp_dir)` (tests only) may tamper with the graphs before the parity check."""
    import onnx

    from keras_transformer.run_dir import RunDir
    from keras_transformer.serve.onnx_model import OnnxStepModel

    if opset < 17:
        raise ExportError(f"--opset: expected 17 or more, got {opset}")
    if int8_plan is not None and not int8:
        raise ExportError("int8_plan: expected int8=True with it, got int8=False")
    if shortlist is not None and (standard_ops or shortlist < 1 or shortlist_frequent < 0):
        raise ExportError(f"--shortlist: expected K >= 1 and the fused decoder (not --standard-ops), got K={shortlist}"
                          + (" with --standard-ops" if standard_ops else ""))
    started = time.perf_counter()
    run, out = RunDir(run_dir), Path(out)
    run.read_config()  # a clear error for a directory that is not a run
    model_config = run.transformer_config()
    _prepare_out(out, force)
    model = run.load_model()
    source_tokenizer, target_tokenizer = run.load_tokenizers()

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp.", dir=out.parent))
    try:
        onnx.save(convert_encoder(model, opset), tmp / fmt.ENCODER_FILE)
        if standard_ops:
            decoder_built_by = "tf2onnx (standard ONNX operators)"
            onnx.save(convert_decoder_step(model, opset), tmp / fmt.DECODER_FILE)
        else:
            decoder_built_by = "export.fused_graphs (onnxruntime's fused operators)"
            onnx.save(convert_fused_decoder_step(model, opset), tmp / fmt.DECODER_FILE)
        log(f"Converted (encoder: tf2onnx, decoder: {decoder_built_by}; opset {opset}) "
            f"in {time.perf_counter() - started:.1f}s")
        if _graph_hook is not None:
            _graph_hook(tmp)
        shell = BundleConfig(tmp, {"model": model_config.to_dict()})
        onnx_model = OnnxStepModel(shell)
        pairs = _sample_pairs(run)
        sources, targets, greedy_sources = _parity_batches(
            pairs, source_tokenizer, target_tokenizer, model_config, np.random.default_rng(0))
        report, fp32_outputs = check_parity(model, onnx_model, sources, targets, greedy_sources,
                                            model_config.max_target_length)
        log(f"Parity: {report.summary()}")
        if not report.passed:
            raise ParityError(f"parity check failed, nothing written to {out}: {report.summary()}")

        quantization, plan, exact_cross = None, None, False
        if int8:
            from .int8_check import quantize_and_compare
            from .quantize import Int8Plan, has_int8_weights

            plan = int8_plan or Int8Plan()
            # int8 needs a cross-attention that padding cannot change in the last bit; a model whose
            # weights all stay float32 (plan.min_weight_elements) keeps the faster fused one.
            exact_cross = not standard_ops and has_int8_weights(tmp / fmt.ENCODER_FILE, tmp / fmt.DECODER_FILE,
                                                                plan=plan)
            if exact_cross:
                onnx.save(convert_fused_decoder_step(model, opset, plain_cross_attention=True), tmp / fmt.DECODER_FILE)
            quantization = quantize_and_compare(tmp, fp32_outputs, greedy_sources, pairs, target_tokenizer,
                                                model_config, log, plan)
        shortlisted = None
        if shortlist is not None:  # decoder.onnx replaced by one on a batch's candidates, + candidates.onnx
            from .shortlist import add_shortlist

            shortlisted = add_shortlist(tmp, run, model, model_config, opset, plan if exact_cross else None,
                                        shortlist, shortlist_frequent, greedy_sources, log)
        generate = None
        if not standard_ops:  # BeamSearch is onnxruntime's own operator
            generate = _add_generation_graph(tmp, model_config, greedy_sources, log, shortlisted)
        shutil.copyfile(run.source_tokenizer_path, tmp / fmt.SOURCE_TOKENIZER_FILE)
        shutil.copyfile(run.target_tokenizer_path, tmp / fmt.TARGET_TOKENIZER_FILE)
        config = _bundle_config(model_config, opset, report.to_dict(), quantization, tmp, decoder_built_by, generate,
                                shortlisted)
        config["training"] = run.read_config().get("training", {})  # what `distill` gives a student by default
        (tmp / fmt.CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp made it private; a bundle is meant to be shared
        _move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    sizes = ", ".join(f"{name} {(out / name).stat().st_size / 1e6:.2f} MB"
                      for name in (fmt.ENCODER_FILE, fmt.DECODER_FILE, fmt.GENERATE_FILE) if (out / name).exists())
    log(f"Bundle written to {out} in {time.perf_counter() - started:.1f}s ({sizes}{', int8' if int8 else ''})")
    return config
