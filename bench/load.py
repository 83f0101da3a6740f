"""Serving under load: `keras-transformer serve` in a subprocess on 127.0.0.1, hit by many
concurrent clients at once.

    python -m bench.load --bundle BUNDLE [--clients 64] [--requests 20] [--smoke]

A bundle is required (training one here would take minutes). Make one with the demo, which trains
on the built-in corpus and exports `RUN/bundle`:

    keras-transformer demo --out runs/demo          # writes runs/demo/bundle
    # or, from any run directory:  keras-transformer export runs/demo --out runs/demo-bundle

What runs: the server is started as `python -m keras_transformer.cli serve BUNDLE --host 127.0.0.1
--port <free port>`; once GET /health answers, `clients` threads start together (a barrier), each
sending `requests_per_client` POST /translate requests one after the other over its own keep-alive
connection: a small batch (1-4 sentences) from a fixed list, greedy (beam 1), with a per-request
timeout. Then GET /health again and the server is stopped (SIGINT, then SIGTERM).

Invariants (`check(results)` lists the broken ones; the run passes when it is empty):
- every answer is 200 or 503 (busy: the bounded queue is full): never a 500, another status, a
  timeout or a connection error;
- every 200 answer equals the sequential translation of the same texts by an in-process
  `serve.Translator` on the same bundle (computed before the server starts);
- the server is still up at the end (GET /health is 200) and its in-flight count is back to 0.

Figures: requests sent, 200s, 503s, errors, p50/p95 latency of the 200s (client side, ms),
throughput (successful requests/s, sentences/s over the whole run), duration.

Every socket is on 127.0.0.1, every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"  # loopback only: the server binds here and every request goes here

# Sentences in the style of the demo corpus (English side), some unseen words among them.
SENTENCES = [
    "I sit.",
    "you do not call the good girls.",
    "do you call the girl?",
    "I did not sit.",
    "are you calling the good woman?",
    "did the woman sit?",
    "they write the old book.",
    "the good man is buying the newspaper.",
    "will they write the good books?",
    "will we call the boy?",
    "the boys are buying the old book.",
    "the girls are reading the books.",
    "she is not reading the new newspaper.",
    "we will sit.",
    "the old women are calling the children.",
    "does the teacher read the letter?",
]
MAX_BATCH = 4  # sentences per request: 1..MAX_BATCH


def request_texts(texts: list[str], client: int, index: int, max_batch: int = MAX_BATCH) -> list[str]:
    """The texts of request `index` of `client`: a deterministic slice of `texts`, 1..max_batch long."""
    size = 1 + (client + index) % max_batch
    start = (7 * client + 3 * index) % len(texts)
    return [texts[(start + k) % len(texts)] for k in range(size)]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def serve_command(bundle_dir, port: int, workers: int | None, max_queue: int | None,
                  threads: int | None) -> list[str]:
    command = [sys.executable, "-m", "keras_transformer.cli", "serve", str(bundle_dir), "--host", HOST,
               "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    if max_queue is not None:
        command += ["--max-queue", str(max_queue)]
    if threads is not None:
        command += ["--threads", str(threads)]
    return command


def _get(port: int, path: str, timeout: float):
    """(status, parsed JSON body) of GET path on the local server."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def _wait_for_health(process: subprocess.Popen, port: int, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before answering /health:\n"
                               f"{_tail(log_path)}")
        try:
            status, _ = _get(port, "/health", timeout=2)
            if status == 200:
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer GET /health within {timeout_s:.0f}s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process: subprocess.Popen, timeout_s: float = 10) -> int | None:
    """SIGINT (uvicorn's graceful stop), then SIGTERM, then SIGKILL; returns the exit code."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


class _Client(threading.Thread):
    """Sends its requests one after the other over one keep-alive connection (reopened after an
    error), recording (status or None, latency in s, texts, translations or error message) each."""

    def __init__(self, number, port, texts, requests, timeout_s, busy_backoff_s, start_barrier, deadline_box):
        super().__init__(name=f"load-client-{number}", daemon=True)
        self.number, self.port, self.texts = number, port, texts
        self.requests, self.timeout_s, self.busy_backoff_s = requests, timeout_s, busy_backoff_s
        self.random = random.Random(number)  # jitter, reproducible per client
        self.start_barrier, self.deadline_box = start_barrier, deadline_box
        self.records: list[tuple] = []

    def run(self):
        try:
            self.start_barrier.wait(self.timeout_s)
        except threading.BrokenBarrierError:
            return
        connection = None
        for index in range(self.requests):
            if time.monotonic() > self.deadline_box[0]:  # the run's overall time bound
                break
            texts = request_texts(self.texts, self.number, index)
            body = json.dumps({"texts": texts, "beam_size": 1}).encode()
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout_s)
                connection.request("POST", "/translate", body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                latency = time.perf_counter() - started
                try:
                    answer = json.loads(payload)
                except ValueError:
                    answer = {"error": f"not JSON: {payload[:200]!r}"}
                if response.status == 200:
                    self.records.append((200, latency, texts, answer.get("translations")))
                else:
                    self.records.append((response.status, latency, texts, str(answer.get("error", answer))))
                if response.will_close:
                    connection.close()
                    connection = None
                if response.status == 503 and self.busy_backoff_s > 0:  # as a polite client would
                    time.sleep(self.busy_backoff_s * (0.5 + self.random.random()))
            except (OSError, http.client.HTTPException) as error:  # timeouts are OSErrors
                latency = time.perf_counter() - started
                self.records.append((None, latency, texts, f"{type(error).__name__}: {error}"))
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()


def run_load_test(bundle_dir, clients: int = 64, requests_per_client: int = 20, texts=None,
                  workers: int | None = None, max_queue: int | None = None, threads: int | None = None,
                  timeout_s: float = 60.0, busy_backoff_s: float = 0.1, startup_timeout_s: float = 120.0,
                  max_duration_s: float = 600.0, log=print) -> dict:
    """Starts the server on `bundle_dir`, runs the load, stops the server; returns the figures.

    Args:
        bundle_dir: a bundle written by `keras-transformer export`.
        clients: concurrent client threads.
        requests_per_client: POST /translate requests each client sends, one after the other.
        texts: the sentences requests are cut from (default `SENTENCES`).
        workers, max_queue, threads: the server's `--workers`, `--max-queue`, `--threads` (None:
            the command's defaults).
        timeout_s: per-request timeout; a request that takes longer counts as an error (a hang).
        busy_backoff_s: after a 503 a client waits this long (x 0.5..1.5, jittered) before its next
            request, as a client honouring "retry later" would; 0 hammers the server instead.
        startup_timeout_s: how long to wait for the server's first /health answer.
        max_duration_s: bound on the whole load phase; clients send nothing after it.

    Returns:
        A dict of figures and settings; `check(results)` lists the broken invariants.

    Raises:
        RuntimeError: the server did not start (the message ends with its log's last lines).
    """
    from keras_transformer.serve.translator import Translator

    if clients < 1 or requests_per_client < 1:
        raise ValueError(f"expected clients >= 1 and requests_per_client >= 1, got {clients} and {requests_per_client}")
    texts = list(SENTENCES if texts is None else texts)
    bundle_dir = Path(bundle_dir)

    log(f"[load] reference translations with an in-process Translator on {bundle_dir} ...")
    translator = Translator(bundle_dir, threads=threads)
    reference: dict[tuple, list[str]] = {}
    for client in range(clients):
        for index in range(requests_per_client):
            key = tuple(request_texts(texts, client, index))
            if key not in reference:
                reference[key] = translator.translate(list(key), beam_size=1)
    del translator

    port = free_port()
    command = serve_command(bundle_dir, port, workers, max_queue, threads)
    log_file = tempfile.NamedTemporaryFile(prefix="bench-load-server-", suffix=".log", delete=False)
    log_path = Path(log_file.name)
    log(f"[load] starting: {shlex.join(command)} (log: {log_path})")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env)
    log_file.close()
    try:
        _wait_for_health(process, port, startup_timeout_s, log_path)
        log(f"[load] {clients} clients x {requests_per_client} requests on http://{HOST}:{port} ...")
        barrier = threading.Barrier(clients + 1)
        deadline_box = [float("inf")]
        threads_ = [_Client(n, port, texts, requests_per_client, timeout_s, busy_backoff_s, barrier, deadline_box)
                    for n in range(clients)]
        for thread in threads_:
            thread.start()
        deadline_box[0] = time.monotonic() + max_duration_s
        barrier.wait(timeout_s)
        started = time.perf_counter()
        join_deadline = time.monotonic() + max_duration_s + timeout_s + 5
        for thread in threads_:
            thread.join(max(0.0, join_deadline - time.monotonic()))
        duration = time.perf_counter() - started
        stuck = sum(thread.is_alive() for thread in threads_)

        health_status, in_flight, health_error = None, None, None
        health_deadline = time.monotonic() + timeout_s
        while True:  # the server is up; its in-flight count drains to 0 (bounded wait)
            try:
                health_status, body = _get(port, "/health", timeout=timeout_s)
                in_flight = body.get("in_flight") if isinstance(body, dict) else None
            except (OSError, http.client.HTTPException, ValueError) as error:
                health_status, health_error = None, f"{type(error).__name__}: {error}"
                break
            if in_flight == 0 or time.monotonic() > health_deadline:
                break
            time.sleep(0.05)
        alive_before_stop = process.poll() is None
    finally:
        exit_code = _stop(process)

    records = [record for thread in threads_ for record in thread.records]
    ok = [r for r in records if r[0] == 200]
    busy = [r for r in records if r[0] == 503]
    errors = [r for r in records if r[0] not in (200, 503)]
    mismatches = [r for r in ok if r[3] != reference[tuple(r[2])]]
    ok_latencies_ms = [1000 * r[1] for r in ok]
    busy_latencies_ms = [1000 * r[1] for r in busy]
    sentences_ok = sum(len(r[2]) for r in ok)
    log_tail = _tail(log_path, 40)
    try:
        log_path.unlink()
    except OSError:
        pass
    return {
        "bundle": str(bundle_dir),
        "clients": clients,
        "requests_per_client": requests_per_client,
        "workers": workers,
        "max_queue": max_queue,
        "threads": threads,
        "timeout_s": timeout_s,
        "busy_backoff_s": busy_backoff_s,
        "server_command": shlex.join(command),
        "expected_requests": clients * requests_per_client,
        "requests": len(records),
        "ok": len(ok),
        "busy": len(busy),
        "errors": len(errors),
        "error_examples": [f"status {r[0]}: {r[3]}" for r in errors[:5]],
        "mismatches": len(mismatches),
        "mismatch_examples": [{"texts": r[2], "got": r[3], "expected": reference[tuple(r[2])]}
                              for r in mismatches[:3]],
        "stuck_clients": stuck,
        "p50_ms": _percentile(ok_latencies_ms, 50),
        "p95_ms": _percentile(ok_latencies_ms, 95),
        "max_ms": max(ok_latencies_ms, default=float("nan")),
        "busy_p50_ms": _percentile(busy_latencies_ms, 50),
        "duration_s": duration,
        "requests_per_s": len(ok) / duration if duration > 0 else float("nan"),
        "sentences_per_s": sentences_ok / duration if duration > 0 else float("nan"),
        "sentences_ok": sentences_ok,
        "health_after": health_status,
        "health_error": health_error,
        "in_flight_after": in_flight,
        "alive_at_end": alive_before_stop,
        "exit_code": exit_code,
        "server_log_tail": log_tail,
    }


def _percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def check(results: dict) -> list[str]:
    """The invariants the run broke, as sentences (empty: all held)."""
    problems = []
    if results["requests"] != results["expected_requests"] or results["stuck_clients"]:
        problems.append(f"expected {results['expected_requests']} answered requests, got {results['requests']} "
                        f"({results['stuck_clients']} clients still running at the time bound)")
    if results["errors"]:
        problems.append(f"expected only 200 and 503 answers, got {results['errors']} others, e.g. "
                        f"{results['error_examples'][:2]}")
    if results["mismatches"]:
        problems.append(f"expected every 200 answer to equal the sequential translation, got "
                        f"{results['mismatches']} different, e.g. {results['mismatch_examples'][:1]}")
    if results["health_after"] != 200 or not results["alive_at_end"]:
        problems.append(f"expected the server up at the end (GET /health 200), got {results['health_after']} "
                        f"({results['health_error'] or 'process alive: ' + str(results['alive_at_end'])})")
    elif results["in_flight_after"] != 0:
        problems.append(f"expected no request in flight after the load, got {results['in_flight_after']}")
    return problems


def _fmt(value, digits=1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def markdown(results: dict) -> str:
    """The "## Serving under load" section: settings, a table of figures, the invariants, the command."""
    problems = check(results)
    default = "default"
    header = ["clients × requests", "workers", "max queue", "sent", "200", "503", "errors", "p50 ms", "p95 ms",
              "requests/s", "sentences/s", "duration s"]
    row = [f"{results['clients']} × {results['requests_per_client']}",
           results["workers"] if results["workers"] is not None else default,
           results["max_queue"] if results["max_queue"] is not None else default,
           _fmt(results["requests"]), _fmt(results["ok"]), _fmt(results["busy"]), _fmt(results["errors"]),
           _fmt(results["p50_ms"]), _fmt(results["p95_ms"]), _fmt(results["requests_per_s"]),
           _fmt(results["sentences_per_s"]), _fmt(results["duration_s"], 2)]
    table = "\n".join(["| " + " | ".join(header) + " |",
                       "|" + "|".join("---:" for _ in header) + "|",
                       "| " + " | ".join(str(cell) for cell in row) + " |"])
    command = f"python -m bench.load --bundle {results['bundle']} --clients {results['clients']} " \
              f"--requests {results['requests_per_client']}"
    for option, key in (("--workers", "workers"), ("--max-queue", "max_queue"), ("--threads", "threads")):
        if results[key] is not None:
            command += f" {option} {results[key]}"
    verdict = "PASS" if not problems else "**FAIL**: " + "; ".join(problems)
    return "\n".join([
        "## Serving under load",
        "",
        f"`keras-transformer serve` in a subprocess on 127.0.0.1; {results['clients']} client threads start "
        f"together, each sending {results['requests_per_client']} POST /translate requests one after the other "
        f"(1–{MAX_BATCH} sentences each, greedy), with a {results['timeout_s']:g} s timeout per request. "
        "503 = refused at once because the bounded queue was full (expected under overload); after one, a "
        f"client waits ~{results['busy_backoff_s']:g} s before its next request. Latencies are of the 200 "
        "answers, client side; throughput counts 200 answers over the whole run.",
        "",
        table,
        "",
        f"Invariants (only 200/503, every 200 equal to the in-process sequential translation, server up with "
        f"nothing in flight afterwards): {verdict}",
        "",
        f"Server: `{results['server_command']}`",
        "",
        "Command:",
        "",
        "```",
        command,
        "```",
        "",
    ])


def run(ctx) -> str:
    """The `python -m bench` entry: 64 clients against the run's fp32 bundle, 2 workers with one
    onnxruntime thread each (the measured best on 2 cores)."""
    results = run_load_test(ctx.artifacts().fp32_bundle, clients=64, requests_per_client=2 if ctx.smoke else 20,
                            workers=2, max_queue=64, threads=1, log=ctx.log)
    return markdown(results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.splitlines()[0],
        epilog="Make a bundle first: `keras-transformer demo --out runs/demo` writes runs/demo/bundle "
               "(or `keras-transformer export RUN --out BUNDLE`).")
    parser.add_argument("--bundle", required=True, help="bundle directory written by `keras-transformer export`")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--requests", type=int, help="requests per client (default 20; 2 with --smoke)")
    parser.add_argument("--workers", type=int, help="server --workers (default: the command's, 1)")
    parser.add_argument("--max-queue", type=int, help="server --max-queue (default: the command's, 2 x workers + 8)")
    parser.add_argument("--threads", type=int, help="server --threads (default: all cores)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request before it counts as a hang")
    parser.add_argument("--busy-backoff", type=float, default=0.1,
                        help="seconds a client waits after a 503 before its next request (default 0.1, jittered)")
    parser.add_argument("--smoke", action="store_true", help="a short run: 2 requests per client")
    parser.add_argument("--output", help="also write the Markdown section to this file")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not Path(args.bundle).is_dir():
        parser.error(f"--bundle {args.bundle}: expected a bundle directory, got none there "
                     "(make one with `keras-transformer demo --out runs/demo`: runs/demo/bundle)")
    requests = args.requests if args.requests is not None else (2 if args.smoke else 20)
    results = run_load_test(args.bundle, clients=args.clients, requests_per_client=requests, workers=args.workers,
                            max_queue=args.max_queue, threads=args.threads, timeout_s=args.timeout,
                            busy_backoff_s=args.busy_backoff,
                            log=lambda message: print(message, file=sys.stderr))
    section = markdown(results)
    print(section)
    if args.output:
        Path(args.output).write_text(section, encoding="utf-8")
    if args.json:
        figures = {k: v for k, v in results.items() if k != "server_log_tail"}
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    problems = check(results)
    if problems:
        print("\n".join(["server log (last lines):", results["server_log_tail"]]), file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
