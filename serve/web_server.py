"""`keras-transformer web`: a static server for the browser page and one bundle's files.

The page (built from web/ into web/dist by `make web`) translates in the browser with
onnxruntime-web and tokenizers.js; this server only hands out files, read-only:

    /                         web/dist/index.html
    /<file>                   the other files of web/dist (listed once, at start); FILE.gz, where the
                              build wrote one, goes to browsers that accept gzip
    /bundle/<name>            config.json, encoder.onnx, decoder.onnx, source/target.tokenizer.json of BUNDLE
                              (and shortlist.bin, candidates.onnx when it has a shortlist)

Nothing else of the machine is reachable: no directory listings, no paths outside those lists,
GET and HEAD only. It listens on 127.0.0.1 unless told otherwise. Every response carries the
cross-origin isolation headers (COOP/COEP) that let the page use WebAssembly threads
(SharedArrayBuffer), and a Content-Security-Policy that keeps the page on this origin, so it works
offline.

The standard library alone: no TensorFlow, Keras or onnxruntime here.
"""

from __future__ import annotations

import os
import posixpath
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import bundle_format as fmt
from .bundle import BundleError, read_bundle_config
from .errors import KerasTransformerError

BUNDLE_PREFIX = "/bundle/"
BUNDLE_FILES = (fmt.CONFIG_FILE, fmt.ENCODER_FILE, fmt.DECODER_FILE, fmt.SHORTLIST_FILE, fmt.CANDIDATES_FILE,
                fmt.SOURCE_TOKENIZER_FILE, fmt.TARGET_TOKENIZER_FILE)
STATIC_DIR_ENV = "KERAS_TRANSFORMER_WEB_DIST"  # overrides where the built page is looked for

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}

SECURITY_HEADERS = {
    # Cross-origin isolation: SharedArrayBuffer, hence WebAssembly threads.
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Everything from this origin: the page never reaches outside the machine.
    "Content-Security-Policy": ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
                                "connect-src 'self' blob: data:; img-src 'self' data:; style-src 'self'; "
                                "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class WebServerError(KerasTransformerError, RuntimeError):
    """The page cannot be served: web/dist is not built, or BUNDLE is not a directory."""


def default_static_dir() -> Path:
    """web/dist of the source tree this module sits in (or $KERAS_TRANSFORMER_WEB_DIST)."""
    if os.environ.get(STATIC_DIR_ENV):
        return Path(os.environ[STATIC_DIR_ENV])
    return Path(__file__).resolve().parent.parent / "web" / "dist"


def _static_files(static_dir: Path) -> dict[str, Path]:
    """URL path -> file for every regular file under static_dir (symlinks not followed)."""
    files = {}
    for root, dirs, names in os.walk(static_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(root) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            files["/" + path.relative_to(static_dir).as_posix()] = path
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    return files


def _make_handler(bundle_dir: Path, static_files: dict[str, Path], quiet: bool):
    files = set(static_files.values())
    gzipped = {path: path.with_name(path.name + ".gz") for path in files if path.with_name(path.name + ".gz") in files}

    class Handler(BaseHTTPRequestHandler):
        server_version = "keras-transformer-web"
        sys_version = ""

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._send(head=False)

        def do_HEAD(self):  # noqa: N802
            self._send(head=True)

        def _refuse(self):
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only")

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse  # noqa: N815

        def end_headers(self):
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            super().end_headers()

        def _resolve(self) -> Path | None:
            path = unquote(urlsplit(self.path).path)
            if path in static_files:
                return static_files[path]
            if path.startswith(BUNDLE_PREFIX):
                name = path[len(BUNDLE_PREFIX):]
                if name in BUNDLE_FILES and posixpath.basename(name) == name:
                    return bundle_dir / name
            return None

        def _send(self, head: bool):
            path = self._resolve()
            compressed = None
            if path is not None and path in gzipped and "gzip" in self.headers.get("Accept-Encoding", ""):
                compressed = gzipped[path]
            try:
                data = (compressed or path).read_bytes() if path is not None and path.is_file() else None
            except OSError:
                data = None
            if data is None:
                self.send_error(HTTPStatus.NOT_FOUND, "not found")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(data)))
            if path in gzipped:
                self.send_header("Vary", "Accept-Encoding")
            if compressed is not None:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
            if not quiet:
                sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def make_web_server(bundle_dir, host: str = "127.0.0.1", port: int = 8080, static_dir=None,
                    quiet: bool = True) -> ThreadingHTTPServer:
    """A bound (not yet serving) server for the page and `bundle_dir`'s files; port 0 picks a free port.

    Raises:
        WebServerError: `bundle_dir` is not a directory, or the page is not built (`make web`).
        OSError: the address is in use or cannot be bound.
    """
    bundle_dir = Path(bundle_dir).resolve()
    if not bundle_dir.is_dir():
        raise WebServerError(f"{bundle_dir}: expected a bundle directory (from `keras-transformer export`), "
                             f"got {'a file' if bundle_dir.exists() else 'nothing'}")
    static_dir = Path(static_dir) if static_dir is not None else default_static_dir()
    static_files = _static_files(static_dir) if static_dir.is_dir() else {}
    if "/index.html" not in static_files or "/app.js" not in static_files:
        raise WebServerError(f"{static_dir}: the browser page is not built; run `make web` "
                             f"(npm ci and npm run build in web/) first")
    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    server = server_class((host, port), _make_handler(bundle_dir, static_files, quiet))
    server.daemon_threads = True
    return server


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


class RunningWebServer:
    """A web server serving in a background thread: `.url`, `.close()`; a context manager."""

    def __init__(self, server: ThreadingHTTPServer):
        self.server = server
        self.url = server_url(server)
        self.thread = threading.Thread(target=server.serve_forever, name="keras-transformer-web", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start_web_server(bundle_dir, host: str = "127.0.0.1", port: int = 0, static_dir=None,
                     quiet: bool = True) -> RunningWebServer:
    """Starts serving in a daemon thread (tests, scripts); port 0 (default) picks a free port."""
    return RunningWebServer(make_web_server(bundle_dir, host, port, static_dir, quiet))


def run_web_server(bundle_dir, host: str = "127.0.0.1", port: int = 8080, static_dir=None, quiet: bool = False,
                   log=print) -> None:
    """`keras-transformer web BUNDLE`: serves until interrupted (Ctrl+C).

    A bundle whose files are missing or changed still gets served: the page shows the error.
    """
    server = make_web_server(bundle_dir, host, port, static_dir, quiet)
    try:
        read_bundle_config(bundle_dir)
    except BundleError as error:
        log(f"warning: {error} (the page will show this error)")
    log(f"Serving the translation page for {Path(bundle_dir)} at {server_url(server)} (Ctrl+C stops)")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
