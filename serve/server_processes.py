"""Several server processes on one port, the kernel spreading the connections over them (SO_REUSEPORT).

    run_processes(functools.partial(app_for_bundle, "bundle/"), "127.0.0.1", 8000, processes=2)

Each process binds its own listening socket to the same address with SO_REUSEPORT, so Linux
hashes every new connection to one of them: 64 clients connecting at once spread over the
processes. (One socket shared by the processes, as uvicorn's own `--workers` does, leaves the
connections to whichever process accepts first: in bench/load.py, one process took 54 of 64.)

The parent only supervises: it reserves the port (bound, not listening, so it takes no
connections; port 0 picks one for all), starts the processes (spawned: onnxruntime sessions and
threads do not survive a fork), restarts one that dies, and on SIGINT/SIGTERM asks each to stop
gracefully (uvicorn finishes the requests in flight), then waits for them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time

from .errors import KerasTransformerError, OptionError

log = logging.getLogger("keras_transformer.serve")

STOP_TIMEOUT_S = 30.0  # a process still running this long after being asked to stop is killed
QUICK_DEATH_S = 10.0  # a process that dies this soon after starting is not restarted: the next would too


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to (host, port), ready for uvicorn to listen on; port 0 picks a free one.
    `reuse_port`: SO_REUSEPORT, so that several processes' sockets share the port (Linux spreads the
    connections over them)."""
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise OptionError("several server processes need SO_REUSEPORT, which this system lacks; use --processes 1")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise OSError(f"--host {host}: expected a local address or host name, got {error.strerror!r}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


def _serve_one(make_app, host: str, port: int, access_log: bool, ready) -> None:
    """A server process: its own app (model, batcher) and listening socket on the shared port; sets
    `ready` once uvicorn listens."""
    import uvicorn

    sock = bind_socket(host, port, reuse_port=True)
    server = uvicorn.Server(uvicorn.Config(make_app(), log_level="info", access_log=access_log))

    def signal_ready():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            ready.set()

    threading.Thread(target=signal_ready, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops gracefully on SIGINT, then raises it again
        pass
    finally:
        sock.close()


def run_processes(make_app, host: str, port: int, processes: int, access_log: bool = False,
                  reserved: socket.socket | None = None, on_ready=None) -> int:
    """Runs `processes` server processes on (host, port) until SIGINT/SIGTERM; returns the port.

    `make_app` must pickle (each process calls it). `reserved`: the parent's socket already bound to
    the port with SO_REUSEPORT (`bind_socket`), kept unlistened while the processes run.
    `on_ready()` is called once every process listens (before, new connections go to those that do).
    """
    reserved = reserved or bind_socket(host, port, reuse_port=True)
    port = reserved.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start() -> tuple:
        ready = context.Event()
        process = context.Process(target=_serve_one, args=(make_app, host, port, access_log, ready), daemon=False)
        process.start()
        return process, time.monotonic(), ready

    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [start() for _ in range(processes)]
    announced, failure = False, None
    try:
        while not stopping.wait(0.1 if not announced else 0.5):
            if not announced and all(ready.is_set() for _, _, ready in running):
                announced = True
                if on_ready is not None:
                    on_ready()
            for index, (process, started, _) in enumerate(running):
                if process.is_alive():
                    continue
                if time.monotonic() - started < QUICK_DEATH_S:
                    failure = (f"server process {process.pid} exited with code {process.exitcode} right after "
                               f"starting (its error is above); stopped the others")
                    stopping.set()
                    break
                log.warning("server process %s exited with code %s; starting another", process.pid,
                            process.exitcode)
                running[index] = start()
    finally:
        for process, _, _ in running:
            if process.is_alive():
                _stop_gracefully(process)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process, _, _ in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reserved.close()
    if failure is not None:
        raise KerasTransformerError(failure)
    return port


def _stop_gracefully(process) -> None:
    """SIGTERM: uvicorn's graceful stop. Not SIGINT: after a Ctrl-C the process has had one from the
    terminal already, and uvicorn takes a second SIGINT as "stop now", dropping the requests in flight."""
    try:
        os.kill(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
