"""`Translator`: text in, text out, over any cached step model: an ONNX bundle or the Keras model.

    >>> from keras_transformer.serve import Translator
    >>> translator = Translator("bundle/")                  # onnxruntime, numpy and tokenizers only
    >>> translator.translate(["How are you?", ""], beam_size=4)
    ['आप कैसे हैं?', '']

The decoding front end exists once, here: validate the inputs (`DecodingOptions`), tokenize
(source ids = tokens + [EOS], cut to `max_source_length`), sort the non-blank sentences by source
length, pad, decode them in batches of `batch_size` (the encoder once per batch, then the cached
decoder step until every sentence has ended or the length cap is reached: `serve.decoding`),
detokenize, and restore the input order. `Translator(bundle_dir)` runs it over the bundle's two
onnxruntime sessions; `Translator.for_model(step_model, ...)` over any other `StepModel`, such as
`keras_transformer.KerasStepModel` (`keras_transformer.load_translator(RUN_DIR)` builds that one).

A sentence's translation does not depend on the batch it lands in: padding is masked as a key,
each sentence's search runs on its own rows, and ties break by index. Thread-safe for the ONNX
bundle: the two onnxruntime sessions and the tokenizers are shared read-only, everything else is
local to a call.
"""

from __future__ import annotations

import itertools
import math
import queue
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import bundle_format as fmt
from . import decoding
from .batching import encode_sources, pad_batch, sampling_generators, search_sources
from .bundle import read_bundle_config
from .decoding_options import DecodingOptions
from .errors import OptionError, OptionTypeError
from .tokenizer import SubwordTokenizer


class TruncationWarning(UserWarning):
    """Some source texts were longer than the model's `max_source_length` and were cut to fit."""


@dataclass(frozen=True)
class TranslationHypothesis:
    """One of a text's n-best outputs."""

    text: str
    target_ids: list[int]  # no BOS/EOS
    score: float  # log_prob / (len(target_ids) + 1) ** length_penalty: what beam search ranks by (nan if not computed)
    log_prob: float  # sum of the generated tokens' log-probabilities, EOS included (nan if not computed)


@dataclass(frozen=True)
class Translation:
    """One text's result: its best translation, the token ids on both sides, and its n-best list."""

    text: str
    source_ids: list[int]  # what the encoder saw: tokens + [EOS], cut to max_source_length; [] for blank text
    target_ids: list[int]  # the best hypothesis' (no BOS/EOS)
    score: float = math.nan  # the best hypothesis' score (nan for greedy search without return_scores)
    hypotheses: tuple = ()  # num_hypotheses TranslationHypothesis, best first (empty for blank text)


@dataclass(frozen=True)
class Replica:
    """One step model (its own onnxruntime sessions) with its graph search: what decodes one batch at a
    time. A Translator has `replicas` of them, so that several batches decode at once on several cores."""

    model: decoding.StepModel
    graph_search: object = None  # serve.graph_search.GraphSearch, or None


@dataclass(frozen=True)
class EncodedTexts:
    """Texts checked and tokenized, ready to decode: `sources[k]` are the ids of `texts[todo[k]]`."""

    texts: list[str]
    todo: list[int]  # indices of the non-blank texts
    sources: list[list[int]]  # tokens + [EOS], cut to max_source_length


class Translator:
    """Translates text with an exported bundle (see `serve/bundle_format.py`), or any step model.

    Args:
        bundle_dir: the directory `keras-transformer export` wrote.
        threads: onnxruntime intra-op threads per session; None = 1 (see serve/sessions.py).
        graph_search: run greedy and beam search inside onnxruntime (the bundle's generate.onnx,
            serve/graph_search.py) whenever that search is exactly the numpy loop's; False always
            runs the numpy loop (same tokens, slower).
        replicas: sets of onnxruntime sessions, so that `translate_iterable` and a `BatchingTranslator`
            decode that many batches at once (one per core: replicas x threads = cores).
        shared_sessions: the replicas run the same sessions from several threads instead of each
            holding its own (less memory; onnxruntime sessions are thread-safe).

    Raises:
        BundleError: (a ValueError) if the directory is missing, not a bundle, of another format
            version, or a file is missing, truncated or changed (sha256 mismatch); the message names the file.
    """

    def __init__(self, bundle_dir, threads: int | None = None, graph_search: bool = True, replicas: int = 1,
                 shared_sessions: bool = False):
        for name, value in (("threads", threads), ("replicas", replicas)):
            if value is not None and (not _is_int(value) or value < 1):
                raise OptionError(f"{name}: expected a positive int{' or None' if name == 'threads' else ''}, got "
                                  f"{value!r}")
        bundle = read_bundle_config(bundle_dir)
        first = self._load_replica(bundle, threads, graph_search)
        self._setup(first.model, SubwordTokenizer.from_file(bundle.file(fmt.SOURCE_TOKENIZER_FILE)),
                    SubwordTokenizer.from_file(bundle.file(fmt.TARGET_TOKENIZER_FILE)),
                    bundle.max_source_length, bundle.max_target_length, bundle.path)
        self.graph_search = first.graph_search
        if bundle.shortlist:
            from .shortlist import Shortlist

            self.shortlist = Shortlist.from_file(bundle.file(fmt.SHORTLIST_FILE), bundle.shortlist)
        self._more_replicas = [first if shared_sessions else self._load_replica(bundle, threads, graph_search)
                               for _ in range(replicas - 1)]
        self.bundle, self.threads, self.shared_sessions = bundle, threads, shared_sessions

    @staticmethod
    def _load_replica(bundle, threads, graph_search) -> Replica:
        from .graph_search import GraphSearch  # onnxruntime: only for bundles
        from .onnx_model import OnnxStepModel
        from .sessions import session_options

        search = None
        if graph_search and fmt.GENERATE_FILE in bundle.values.get("files", {}):
            search = GraphSearch(bundle.file(fmt.GENERATE_FILE), session_options(threads), bundle.decoder_layers,
                                 shortlist=bool(bundle.shortlist))
        return Replica(OnnxStepModel(bundle, threads=threads), search)

    @classmethod
    def for_model(cls, model: decoding.StepModel, source_tokenizer: SubwordTokenizer,
                  target_tokenizer: SubwordTokenizer, max_source_length: int, max_target_length: int,
                  path=None) -> "Translator":
        """The same front end over any `StepModel` (e.g. the Keras model's cached step).

        Args:
            model: has `start(source_ids int32 (B, S)) -> state`, `step` and `select`.
            max_source_length: most source tokens the encoder accepts, EOS included.
            max_target_length: most target tokens generated, EOS included.
            path: where the model came from (shown by `repr` and `info`).
        """
        translator = cls.__new__(cls)
        translator._setup(model, source_tokenizer, target_tokenizer, max_source_length, max_target_length,
                          Path(path) if path is not None else None)
        translator.bundle = None
        translator.threads = None
        translator.shared_sessions = False
        return translator

    def _setup(self, model, source_tokenizer, target_tokenizer, max_source_length, max_target_length, path):
        self.model = model
        self.graph_search = None  # a bundle's generate.onnx (serve/graph_search.py), when it has one
        self.shortlist = None  # a bundle's vocabulary shortlist (serve/shortlist.py), when it has one
        self._more_replicas: list[Replica] = []
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_source_length = max_source_length  # most source tokens the encoder accepts, EOS included
        self.max_target_length = max_target_length  # default and cap of `max_length`, EOS included
        self.path = path

    @property
    def replicas(self) -> list[Replica]:
        """The step models that decode batches at once: `model` (with `graph_search`) and the others."""
        return [Replica(self.model, self.graph_search), *self._more_replicas]

    def info(self) -> dict:
        """What a health check reports: the model's source and sizes (JSON-serializable)."""
        info = {"bundle" if self.bundle else "model": str(self.path),
                "source_vocab_size": self.source_tokenizer.vocab_size,
                "target_vocab_size": self.target_tokenizer.vocab_size}
        if self.bundle is not None:
            values, model = self.bundle.values, self.bundle.model
            info.update({
                "format_version": values.get("format_version"),
                "quantization": values.get("quantization"),
                "opset": values.get("opset"),
                "parity": values.get("parity"),
                "search": ("generate.onnx (onnxruntime's BeamSearch) where it reproduces the numpy loop"
                           if self.graph_search is not None else "numpy loop"),
                "model": {key: model.get(key) for key in ("encoder_layers", "decoder_layers", "num_heads", "hidden_dim",
                                                         "intermediate_dim", "max_source_length",
                                                         "max_target_length")},
            })
        return info

    def translate(self, texts: Sequence[str], options: DecodingOptions | None = None,
                  progress: Callable[[int], None] | None = None, **kwargs) -> list[str]:
        """Translates each text; blank texts give "" without running the model.

        Options come as one `DecodingOptions` or as its fields by keyword, e.g.
        `translate(texts, beam_size=4)` (beam_size 1 = greedy; max_length None = the model's
        max_target_length, EOS included). A text whose tokens plus EOS exceed `max_source_length`
        is cut to fit; if any was, ONE `TruncationWarning` is issued for the whole call, naming how
        many and the first index. Characters the tokenizer never saw become [UNK].

        Args:
            texts: a list or tuple of str.
            options: a `DecodingOptions`, or None to build one from `kwargs`.
            progress: called with the number of sentences finished after each batch (blank ones
                count at once), e.g. to draw a progress bar.

        Returns:
            One translation per text (its best hypothesis), in input order. For n-best lists and
            scores use `translate_batch`.

        Raises:
            OptionTypeError: `texts` is not a list/tuple, an element is not a str ("texts[2]:
                expected str, got int"), or an option has the wrong type.
            OptionError: an option out of range (see `DecodingOptions`).
        """
        return [result.text for result in self.translate_batch(texts, options, progress, **kwargs)]

    def translate_batch(self, texts: Sequence[str], options: DecodingOptions | None = None,
                        progress: Callable[[int], None] | None = None, **kwargs) -> list[Translation]:
        """`translate`, returning each text's `Translation`: its best text, the token ids on both
        sides, its score and its n-best list (`num_hypotheses`), as CTranslate2's `translate_batch`."""
        encoded, options = self.encode(texts, options, kwargs)
        if progress is not None and len(encoded.todo) < len(encoded.texts):
            progress(len(encoded.texts) - len(encoded.todo))  # blank texts are done at once
        (results,) = self.decode([encoded], options, self.replicas[0], progress)
        return results

    def translate_iterable(self, texts: Iterable[str], options: DecodingOptions | None = None,
                           buffer_size: int | None = None, progress: Callable[[int], None] | None = None,
                           **kwargs) -> Iterator[Translation]:
        """Translates a stream of texts, yielding each text's `Translation` in input order, with memory that
        does not grow with the stream (CTranslate2's `translate_iterable`).

        Texts are read `buffer_size` at a time (default 16 batches' worth), each window sorted by length
        and decoded in batches, the windows on all `replicas` at once; a window's results are yielded as
        soon as it and the windows before it are done.
        """
        options = _decoding_options(options, kwargs)
        buffer_size = buffer_size or 16 * (options.batch_size if options.batch_type == "examples" else 32)
        if not _is_int(buffer_size) or buffer_size < 1:
            raise OptionError(f"buffer_size: expected a positive int, got {buffer_size!r}")
        free = queue.SimpleQueue()
        for replica in self.replicas:
            free.put(replica)

        def decode(encoded: EncodedTexts) -> list[Translation]:
            replica = free.get()
            try:
                (results,) = self.decode([encoded], options, replica)
            finally:
                free.put(replica)
            return results

        stream = iter(texts)
        windows = (self.encode(window, options)[0]  # in this thread: its warnings are the caller's
                   for window in iter(lambda: list(itertools.islice(stream, buffer_size)), []))
        in_flight = len(self.replicas) + 1  # one window read ahead of the replicas
        with ThreadPoolExecutor(max_workers=len(self.replicas), thread_name_prefix="translate") as pool:
            pending = [pool.submit(decode, window) for window in itertools.islice(windows, in_flight)]
            while pending:
                results = pending.pop(0).result()
                pending.extend(pool.submit(decode, window) for window in itertools.islice(windows, 1))
                if progress is not None:
                    progress(len(results))
                yield from results

    def encode(self, texts: Sequence[str], options: DecodingOptions | None = None,
               kwargs: dict | None = None) -> tuple[EncodedTexts, DecodingOptions]:
        """Checks texts and options and tokenizes the non-blank texts: the half of `translate_batch` that
        may fail on a caller's input (a `BatchingTranslator` runs it at `submit`, for that request alone)."""
        texts = _checked_texts(texts)
        options = _decoding_options(options, kwargs or {})
        todo = [i for i, text in enumerate(texts) if text.strip()]  # blank texts stay ""
        return EncodedTexts(texts, todo, self._source_ids([texts[i] for i in todo], todo)), options

    @staticmethod
    def longest(encoded: EncodedTexts) -> int:
        """Source tokens of the longest encoded text, EOS included (0 when all are blank)."""
        return max(map(len, encoded.sources), default=0)

    def decode(self, requests: list[EncodedTexts], options: DecodingOptions, replica: Replica,
               progress: Callable[[int], None] | None = None) -> list[list[Translation]]:
        """Decodes the sentences of several encoded requests in one search on `replica` (sorted by length
        together, batched by `options`); returns each request's `Translation`s, in its own order."""
        sources = [source for request in requests for source in request.sources]
        found = search_sources(replica.model, sources, options, self.max_target_length, progress,
                               replica.graph_search, self.shortlist if options.use_shortlist else None)
        flat = [hypothesis for hypotheses in found for hypothesis in hypotheses]
        texts_of = iter(self.target_tokenizer.decode_batch([h.tokens for h in flat]))
        found_of = iter(found)
        answers = []
        for request in requests:
            results = [Translation("", [], [])] * len(request.texts)
            for i, source in zip(request.todo, request.sources, strict=True):
                listed = tuple(TranslationHypothesis(next(texts_of), h.tokens, h.score, h.log_prob)
                               for h in next(found_of))
                results[i] = Translation(listed[0].text, source, listed[0].target_ids, listed[0].score, listed)
            answers.append(results)
        return answers

    def stream(self, text: str, options: DecodingOptions | None = None, **kwargs) -> Iterator[str]:
        """Translates one text, yielding its translation piece by piece as tokens are decoded.

        The pieces joined equal `translate([text], options)[0]`. Greedy search or sampling only
        (beam search knows its best hypothesis only at the end): `beam_size` must be 1.

        Raises:
            OptionTypeError, OptionError: as `translate`; OptionError for beam_size > 1.
        """
        (text,) = _checked_texts([text])
        options = _decoding_options(options, kwargs)
        if options.beam_size != 1:
            raise OptionError(f"beam_size: streaming decodes greedily or by sampling (beam_size 1), got "
                              f"{options.beam_size}")
        return self._stream(text, options)  # checked now, decoded as the caller iterates

    def _stream(self, text: str, options: DecodingOptions) -> Iterator[str]:
        if not text.strip():
            return
        (source,) = self._source_ids([text], [0])
        vocab = None
        if self.shortlist is not None and options.use_shortlist:
            vocab, allowed = self.shortlist.for_batch([source])
            state = self.model.start(pad_batch([source]), shortlist=(vocab, allowed))
        else:
            state = self.model.start(pad_batch([source]))
        steps = decoding.greedy_steps(self.model, state, 1, fmt.BOS_ID, fmt.EOS_ID,
                                      options.capped_max_length(self.max_target_length), options,
                                      sampling_generators([source], options), vocab)
        tokens, shown = [], ""
        for _, chosen, _ in steps:
            if int(chosen[0]) == fmt.EOS_ID:
                break
            tokens.append(int(chosen[0]))
            text_so_far = self.target_tokenizer.decode(tokens)
            if text_so_far.startswith(shown) and len(text_so_far) > len(shown):
                yield text_so_far[len(shown):]  # a later token may still change how earlier ones detokenize:
                shown = text_so_far  # then nothing is yielded until the text extends what was shown
        final = self.target_tokenizer.decode(tokens)
        if final != shown:
            yield final[len(shown):] if final.startswith(shown) else final

    def _source_ids(self, texts: list[str], indices: list[int]) -> list[list[int]]:
        """Token ids + [EOS] per text, cut to `max_source_length` (one warning for the whole call)."""
        sources, lengths = encode_sources(self.source_tokenizer, texts, self.max_source_length)
        too_long = [k for k, length in enumerate(lengths) if length > self.max_source_length]
        if too_long:
            first = too_long[0]
            warnings.warn(
                f"{len(too_long)} of {len(texts)} texts exceed max_source_length {self.max_source_length} "
                f"(tokens + EOS) and were truncated to fit (first: texts[{indices[first]}], "
                f"{lengths[first]} tokens)", TruncationWarning, stacklevel=5)
        return sources

    def __repr__(self) -> str:
        if self.bundle is None:
            return f"Translator.for_model({type(self.model).__name__}, path={str(self.path)!r})"
        return f"Translator({str(self.path)!r}, threads={self.threads}, replicas={len(self.replicas)})"


def _decoding_options(options, kwargs: dict) -> DecodingOptions:
    """The call's options: the `DecodingOptions` given, or one built from keyword fields, not both."""
    if options is not None and kwargs:
        raise OptionTypeError("expected a DecodingOptions or keyword options, got both")
    options = DecodingOptions(**kwargs) if options is None else options
    if not isinstance(options, DecodingOptions):
        raise OptionTypeError(f"options: expected DecodingOptions, got {type(options).__name__}")
    return options


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _checked_texts(texts) -> list[str]:
    if not isinstance(texts, (list, tuple)):
        hint = " (wrap a single text in a list)" if isinstance(texts, (str, bytes)) else ""
        raise OptionTypeError(f"texts: expected a list of str, got {type(texts).__name__}{hint}")
    checked = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise OptionTypeError(f"texts[{i}]: expected str, got {type(text).__name__}")
        checked.append(_valid_unicode(text))
    return checked


def _valid_unicode(text: str) -> str:
    """`text` with each lone surrogate (possible from JSON "\\ud800" escapes) replaced by three U+FFFD
    (one per byte of its surrogate-pass UTF-8 form; the browser page does the same), which the
    tokenizer maps to [UNK] like any unseen character; the tokenizers library rejects surrogates."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
