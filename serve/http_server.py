"""HTTP translation server on Starlette + uvicorn (the `[http]` extra).

    POST /translate         {"texts": ["How are you?"], "beam_size": 1}  ->  {"translations": ["..."]}
                            optional: "max_length" (int >= 1 or null), "length_penalty" (number in 0..10),
                            "num_hypotheses", "return_scores", "sampling_topk", "sampling_topp",
                            "sampling_temperature", "seed", "no_repeat_ngram_size", "repetition_penalty"
                            (the fields of `DecodingOptions`); with num_hypotheses > 1 or return_scores
                            the answer adds "hypotheses": per text, [{"text", "score", "log_prob"}, ...]
    POST /translate/stream  {"text": "How are you?", ...the same options} -> NDJSON, one line per piece
                            as it is decoded: {"piece": "..."}, then {"done": true, "translation": "..."}
                            (greedy or sampling; beam_size must be 1)
    GET  /health            {"status": "ok", "bundle": ..., "model": {...}, "batching": {queue depth, recent
                            batch sizes, replicas}, "in_flight": ...}

Every error is JSON `{"error": "..."}`: 400 for invalid JSON, wrong types or values, more than
`MAX_TEXTS` texts, a beam_size outside 1..`MAX_BEAM_SIZE`; 413 for a body over `MAX_BODY_BYTES`
(checked on Content-Length and on the bytes actually read); 404/405 for other paths/methods;
503 when the bounded queue is full; 500 only for a server fault.

Concurrency: concurrent requests are decoded together (`BatchingTranslator`: a free replica takes
the waiting requests that share options, up to `max_batch_tokens`, and sorts their sentences by
length together); each gets exactly what it would alone. At most `max_queue` requests wait; any more
get 503 at once instead of waiting without bound. The event loop never decodes: it parses, queues and
answers. `batching=False` runs each request on its own in a pool of `workers` threads instead (the
server before dynamic batching, kept for comparison: bench/load.py), admitting `workers + max_queue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from .batching_translator import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_QUEUE, DEFAULT_MAX_WAIT_MS
from .decoding_options import DecodingOptions, JsonLimits, json_type_name
from .server_processes import bind_socket, run_processes

MAX_BODY_BYTES = 1_000_000  # 1 MB
MAX_TEXTS = 256
MAX_BEAM_SIZE = 16
MAX_LENGTH_PENALTY = 10.0
OPTION_FIELDS = tuple(field.name for field in dataclasses.fields(DecodingOptions)
                      if field.name not in ("batch_size", "batch_type"))  # batches are the server's choice
FIELDS = ("texts", *OPTION_FIELDS)
# The server's caps on what a client may ask (resource and sanity bounds), over DecodingOptions' own checks.
SERVER_LIMITS = JsonLimits({"beam_size": {"high": MAX_BEAM_SIZE}, "num_hypotheses": {"high": MAX_BEAM_SIZE},
                            "length_penalty": {"low": 0.0, "high": MAX_LENGTH_PENALTY}})

log = logging.getLogger("keras_transformer.serve")


class RequestError(Exception):
    """A client error: answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Admission:
    """Counts admitted requests (running + waiting) and refuses any beyond `capacity`.

    Touched only from the event loop thread, so a plain counter needs no lock.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_flight = 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.capacity:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        assert self.in_flight > 0, "leave() without try_enter()"
        self.in_flight -= 1


def create_app(translator, workers: int = 1, max_queue: int | None = None, batching: bool | None = None,
               max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS, max_wait_ms: float = DEFAULT_MAX_WAIT_MS) -> Starlette:
    """The Starlette app serving `translator` (a `Translator`, or anything with its `translate`).

    Args:
        translator: shared by all requests.
        workers: with `batching=False`, threads running translations at once (streams always use them).
        max_queue: requests that may wait (default `DEFAULT_MAX_QUEUE` with batching, else
            `2 * workers + 8`); beyond, 503.
        batching: decode concurrent requests together on the translator's replicas (the default for a
            `Translator`); False: each request on its own, as before (any object with `translate`).
        max_batch_tokens, max_wait_ms: the batching bounds (`BatchingTranslator`).
    """
    from .errors import OptionError

    if workers < 1:
        raise OptionError(f"workers: expected >= 1, got {workers}")
    batching = hasattr(translator, "decode") if batching is None else batching
    max_queue = (DEFAULT_MAX_QUEUE if batching else 2 * workers + 8) if max_queue is None else max_queue
    if max_queue < 0:
        raise OptionError(f"max_queue: expected >= 0, got {max_queue}")
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="translate")
    admission = Admission(workers + max_queue)
    batcher = None
    if batching:
        from .batching_translator import BatchingTranslator

        batcher = BatchingTranslator(translator, max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms,
                                     max_queue=max_queue)

    async def translate(request: Request) -> JSONResponse:
        try:
            texts, options = parse_translate_request(await read_body(request))
        except RequestError as error:
            return _error(error.status, str(error))
        if batcher is not None:
            return await _batched(texts, options)
        if not admission.try_enter():
            return _error(503, f"server busy: {admission.in_flight} requests in flight "
                               f"(capacity {admission.capacity}); retry later")
        try:
            future = asyncio.get_running_loop().run_in_executor(executor, partial(_answer, translator, texts, options))
        except RuntimeError:  # the executor is shut down: the server is stopping
            admission.leave()
            return _error(503, "server shutting down")
        future.add_done_callback(lambda _: admission.leave())  # once the thread is done, even if we are cancelled
        try:
            translations = await asyncio.shield(future)
        except (ValueError, TypeError) as error:  # the request passed our checks but the translator refused it
            return _error(400, str(error))
        except Exception:
            log.exception("translation failed")
            return _error(500, "internal error while translating; see the server log")
        return JSONResponse(translations)

    async def _batched(texts, options) -> JSONResponse:
        from .batching_translator import QueueFull

        try:
            future = batcher.submit(texts, options)
        except QueueFull as error:
            return _error(503, f"server busy: {error}")
        except (ValueError, TypeError) as error:  # passed our checks, refused by the translator: this request only
            return _error(400, str(error))
        try:
            results = await asyncio.wrap_future(future)
        except Exception:
            log.exception("translation failed")
            return _error(500, "internal error while translating; see the server log")
        return JSONResponse(_json_answer(results, options))

    async def health(request: Request) -> JSONResponse:
        info = translator.info() if hasattr(translator, "info") else {}
        body = {"status": "ok", **info, "max_queue": max_queue, "in_flight": admission.in_flight,
                "process": os.getpid()}
        if batcher is not None:
            body["batching"] = {**batcher.stats(), "max_batch_tokens": max_batch_tokens, "max_wait_ms": max_wait_ms}
        else:
            body["workers"] = workers
        return JSONResponse(body)

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), headers=error.headers)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        executor.shutdown(wait=False, cancel_futures=True)
        if batcher is not None:
            batcher.close()

    async def translate_stream(request: Request):
        try:
            text, options = parse_stream_request(await read_body(request))
            stream = iter(translator.stream(text, **options))  # checks the options before anything is sent
        except RequestError as error:
            return _error(error.status, str(error))
        except (ValueError, TypeError) as error:
            return _error(400, str(error))
        if not admission.try_enter():
            return _error(503, f"server busy: {admission.in_flight} requests in flight "
                               f"(capacity {admission.capacity}); retry later")
        loop = asyncio.get_running_loop()

        async def lines():
            pieces = []
            try:
                while True:
                    piece = await loop.run_in_executor(executor, next, stream, None)  # decoding runs in a worker
                    if piece is None:
                        break
                    pieces.append(piece)
                    yield json.dumps({"piece": piece}, ensure_ascii=False) + "\n"
                yield json.dumps({"done": True, "translation": "".join(pieces)}, ensure_ascii=False) + "\n"
            except Exception:
                log.exception("streaming translation failed")
                yield json.dumps({"error": "internal error while translating; see the server log"}) + "\n"
            finally:
                admission.leave()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    app = Starlette(
        routes=[Route("/translate", translate, methods=["POST"]),
                Route("/translate/stream", translate_stream, methods=["POST"]),
                Route("/health", health, methods=["GET"])],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.admission = admission
    app.state.executor = executor
    app.state.batcher = batcher
    return app


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 once it exceeds `limit` bytes, by Content-Length or in fact."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestError(400, f"Content-Length: expected a byte count, got {declared!r}")
        if int(declared) > limit:
            raise RequestError(413, f"expected a body of at most {limit} bytes, got {int(declared)}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"expected a body of at most {limit} bytes, got more")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_translate_request(body: bytes) -> tuple[list[str], DecodingOptions]:
    """The JSON body of POST /translate -> (texts, options).

    The options are validated by `DecodingOptions.from_json` (the same checks as the Python API
    and the CLI), within this server's caps `SERVER_LIMITS`.

    Raises:
        RequestError: 400, phrased "field: expected X, got Y".
    """
    data = _json_object(body)
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise RequestError(400, f"expected fields {', '.join(FIELDS)}, got unknown field {unknown[0]!r}")
    if "texts" not in data:
        raise RequestError(400, "texts: required (a list of strings)")
    texts = data.pop("texts")
    if not isinstance(texts, list):
        raise RequestError(400, f"texts: expected a list of strings, got {json_type_name(texts)}")
    if len(texts) > MAX_TEXTS:
        raise RequestError(400, f"texts: expected at most {MAX_TEXTS} texts per request, got {len(texts)}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, f"texts[{i}]: expected a string, got {json_type_name(text)}")
    try:
        options = options_from_json(data)
    except (TypeError, ValueError) as error:
        raise RequestError(400, str(error)) from None
    return texts, options


def options_from_json(data: dict) -> DecodingOptions:
    """`DecodingOptions.from_json(data, SERVER_LIMITS)`, remembered for the option sets clients repeat
    (checking the fields costs more than the rest of parsing a request)."""
    key = tuple(sorted((name, type(value), value) for name, value in data.items()))
    try:
        return _options_from_key(key)
    except TypeError as error:  # a list or an object among the values: unhashable, checked uncached
        if "unhashable" not in str(error):
            raise
        return DecodingOptions.from_json(data, SERVER_LIMITS)


@functools.lru_cache(maxsize=1024)
def _options_from_key(key: tuple) -> DecodingOptions:
    return DecodingOptions.from_json({name: value for name, _, value in key}, SERVER_LIMITS)


def _json_object(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = "nesting too deep" if isinstance(error, RecursionError) else str(error)
        raise RequestError(400, f"expected a JSON body, got invalid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise RequestError(400, f'expected a JSON object like {{"texts": [...]}}, got {json_type_name(data)}')
    return data


def _answer(translator, texts: list[str], options: DecodingOptions) -> dict:
    """The /translate answer of one request translated on its own (`batching=False`)."""
    if options.num_hypotheses == 1 and not options.return_scores:
        return {"translations": translator.translate(texts, **options.changed())}  # plain calls for plain requests
    return _json_answer(translator.translate_batch(texts, options), options)


def _json_answer(results, options: DecodingOptions) -> dict:
    """The /translate answer: the translations, and the n-best lists with scores when asked for."""
    answer = {"translations": [result.text for result in results]}
    if options.num_hypotheses > 1 or options.return_scores:
        answer["hypotheses"] = [[{"text": h.text, "score": _json_number(h.score),
                                  "log_prob": _json_number(h.log_prob)} for h in result.hypotheses]
                                for result in results]
    return answer


def _json_number(value: float):
    return value if math.isfinite(value) else None


def parse_stream_request(body: bytes) -> tuple[str, dict]:
    """The JSON body of POST /translate/stream -> (text, keyword options of `Translator.stream`)."""
    data = _json_object(body)
    unknown = sorted(set(data) - {"text", *OPTION_FIELDS})
    if unknown:
        raise RequestError(400, f"expected fields text, {', '.join(OPTION_FIELDS)}, got unknown field {unknown[0]!r}")
    if not isinstance(data.get("text"), str):
        raise RequestError(400, f"text: expected a string, got {json_type_name(data.get('text'))}")
    text = data.pop("text")
    try:
        options = options_from_json(data)
    except (TypeError, ValueError) as error:
        raise RequestError(400, str(error)) from None
    return text, options.changed()


def _error(status: int, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def app_for_bundle(bundle_dir, threads: int = 1, replicas: int = 1, **app_options) -> Starlette:
    """One server process' app: its own `Translator` (`replicas` x `threads`) and batcher over the bundle.

    Module-level and given plain arguments, so that `functools.partial(app_for_bundle, ...)` pickles to
    the processes `run_server` starts. `app_options`: those of `create_app`.
    """
    from .heap import retain_freed_heap
    from .translator import Translator

    translator = Translator(bundle_dir, threads=threads, replicas=replicas)
    retain_freed_heap()
    return create_app(translator, **app_options)


def run_server(make_app, host: str = "127.0.0.1", port: int = 8000, processes: int = 1, access_log: bool = False,
               banner: str = "the app") -> None:
    """Serves the app `make_app()` returns with uvicorn until interrupted (Ctrl-C).

        run_server(lambda: create_app(translator))                                   # in this process
        run_server(functools.partial(app_for_bundle, "bundle/"), processes=2)         # in 2 processes

    Args:
        make_app: a zero-argument callable returning the ASGI app; with `processes` > 1 it must pickle
            (a `functools.partial` of a module-level function): each process calls it.
        processes: server processes on the port, each with its own event loop, model and batcher; Linux
            spreads the connections over them (serve/server_processes.py). Requests are parsed and
            decoding loops run in Python: the threads of one process take turns on its interpreter
            lock, processes do not (bench/RESULTS-throughput.md).
        access_log: a log line per request.
        banner: what is served, for the line printed once the socket is bound.

    Raises:
        OSError: the address cannot be bound (in use, not local, unresolvable); one line, naming it.
    """
    import uvicorn

    from .errors import OptionError

    if processes < 1:
        raise OptionError(f"processes: expected >= 1, got {processes}")
    # bound here so that "address in use" is our one-line error (with several processes: the port reserved)
    sock = bind_socket(host, port, reuse_port=processes > 1)
    announce = partial(print, f"Serving {banner} on http://{host}:{sock.getsockname()[1]} (POST /translate, "
                              f"GET /health){f' in {processes} processes' if processes > 1 else ''}; Ctrl-C stops",
                       flush=True)
    if processes > 1:
        run_processes(make_app, host, port, processes, access_log=access_log, reserved=sock, on_ready=announce)
        return
    announce()
    try:
        uvicorn.Server(uvicorn.Config(make_app(), log_level="info", access_log=access_log)).run(sockets=[sock])
    finally:
        sock.close()
