"""`keras-transformer serve` (the HTTP JSON API) and `web` (the browser page): a bundle, served."""

from __future__ import annotations

from .options import add_replica_options, available_cores, check_port

HTTP_EXTRA_HINT = "pip install 'keras-transformer-nmt[http]'"


def add_parsers(commands) -> None:
    from keras_transformer.serve.batching_translator import (DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_QUEUE,
                                                             DEFAULT_MAX_WAIT_MS)

    p = commands.add_parser("serve", help="HTTP translation server (needs the [http] extra)",
                            description="POST /translate {\"texts\": [...], \"beam_size\": 1}; GET /health. "
                                        "Concurrent requests are decoded together (dynamic batching) on every "
                                        "replica; each gets exactly what it would alone.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, metavar="PORT", default=8000, help="TCP port (default 8000)")
    p.add_argument("--processes", type=int, metavar="P",
                   help="server processes sharing the port, each with its own event loop, replicas and batcher "
                        "(default: one per core left, i.e. cores / (replicas x threads); --no-batching: 1)")
    add_replica_options(p, "1 per process")
    p.add_argument("--max-batch-tokens", type=int, metavar="N", default=DEFAULT_MAX_BATCH_TOKENS,
                   help=f"most padded source tokens decoded in one search (default {DEFAULT_MAX_BATCH_TOKENS})")
    p.add_argument("--max-wait-ms", type=float, metavar="MS", default=DEFAULT_MAX_WAIT_MS,
                   help="while other requests are being decoded, how long a free replica waits for more to batch "
                        f"with (default {DEFAULT_MAX_WAIT_MS:g}; a lone request starts at once)")
    p.add_argument("--max-queue", type=int, metavar="N",
                   help=f"requests that may wait; beyond, 503 (default {DEFAULT_MAX_QUEUE}; with --no-batching "
                        "2 x workers + 8)")
    p.add_argument("--no-batching", action="store_true",
                   help="translate each request on its own in --workers threads (the server before dynamic "
                        "batching, for comparison)")
    p.add_argument("--workers", type=int, metavar="N", default=1,
                   help="with --no-batching: translations run at once, each in a worker thread (default 1)")
    p.add_argument("--access-log", action="store_true",
                   help="log a line per request (off by default: at thousands of requests a second, the log "
                        "itself costs a sizeable share of the server's CPU)")
    p.set_defaults(handler=run_serve)

    p = commands.add_parser("web", help="serve the browser page that translates with the bundle (onnxruntime-web)",
                            description="Serves a static page and the bundle's files (read-only); the page "
                                        "translates in the browser with onnxruntime-web.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, metavar="PORT", default=8080, help="TCP port (default 8080)")
    p.set_defaults(handler=run_web)


def run_serve(args) -> int:
    import functools

    from keras_transformer.serve.errors import KerasTransformerError, OptionError

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from keras_transformer.serve import http_server
    except ImportError as error:
        missing = getattr(error, "name", None) or "starlette"
        raise KerasTransformerError(f"the serve command needs the HTTP extra ({missing} is not installed): "
                                    f"{HTTP_EXTRA_HINT}") from None
    check_port(args.port)
    from keras_transformer.serve.translator import Translator

    processes, replicas, threads = serve_layout(args)
    for name, value in (("--processes", processes), ("--replicas", replicas), ("--threads", threads)):
        if value < 1:
            raise OptionError(f"{name}: expected >= 1, got {value}")
    # Loaded here to check the bundle (in one line) before the port is taken; one process serves with it.
    translator = Translator(args.bundle, threads=threads, replicas=replicas if processes == 1 else 1)
    banner = f"{translator!r} x {replicas} replicas" if replicas > 1 and processes > 1 else repr(translator)
    app_options = dict(workers=args.workers, max_queue=args.max_queue, batching=not args.no_batching,
                       max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms)
    if processes == 1:
        from keras_transformer.serve.heap import retain_freed_heap

        retain_freed_heap()
        make_app = functools.partial(http_server.create_app, translator, **app_options)
    else:  # each process loads its own (what app_for_bundle does), so this one is not kept
        del translator
        make_app = functools.partial(http_server.app_for_bundle, args.bundle, threads=threads, replicas=replicas,
                                     **app_options)
    http_server.run_server(make_app, host=args.host, port=args.port, processes=processes,
                           access_log=args.access_log, banner=banner)
    return 0


def serve_layout(args) -> tuple[int, int, int]:
    """(processes, replicas per process, threads per replica): as given; by default one process per core
    left (cores / (replicas x threads)), each with one replica of one thread. --no-batching: 1 process."""
    threads = 1 if args.threads is None else args.threads
    replicas = 1 if args.replicas is None else args.replicas
    if args.processes is not None:
        return args.processes, replicas, threads
    if args.no_batching:
        return 1, replicas, threads
    return max(1, available_cores() // max(1, replicas * threads)), replicas, threads


def run_web(args) -> int:
    from keras_transformer.serve.web_server import run_web_server

    check_port(args.port)
    run_web_server(args.bundle, host=args.host, port=args.port)
    return 0
