"""`keras-transformer serve` (the HTTP JSON API) and `web` (the browser page): a bundle, served."""

from __future__ import annotations

from .options import add_replica_options, check_port, replicas_and_threads

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
    add_replica_options(p, "one per core")
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
    p.set_defaults(handler=run_serve)

    p = commands.add_parser("web", help="serve the browser page that translates with the bundle (onnxruntime-web)",
                            description="Serves a static page and the bundle's files (read-only); the page "
                                        "translates in the browser with onnxruntime-web.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory written by `export`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, metavar="PORT", default=8080, help="TCP port (default 8080)")
    p.set_defaults(handler=run_web)


def run_serve(args) -> int:
    from keras_transformer.serve.errors import KerasTransformerError

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from keras_transformer.serve import http_server
    except ImportError as error:
        missing = getattr(error, "name", None) or "starlette"
        raise KerasTransformerError(f"the serve command needs the HTTP extra ({missing} is not installed): "
                                    f"{HTTP_EXTRA_HINT}") from None
    check_port(args.port)
    from keras_transformer.serve.heap import retain_freed_heap
    from keras_transformer.serve.translator import Translator

    threads, replicas = replicas_and_threads(args, every_core=not args.no_batching)
    translator = Translator(args.bundle, threads=threads, replicas=replicas)
    retain_freed_heap()
    http_server.run_server(translator, host=args.host, port=args.port, workers=args.workers,
                           max_queue=args.max_queue, batching=not args.no_batching,
                           max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms)
    return 0


def run_web(args) -> int:
    from keras_transformer.serve.web_server import run_web_server

    check_port(args.port)
    run_web_server(args.bundle, host=args.host, port=args.port)
    return 0
