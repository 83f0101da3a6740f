"""Serving under load: `keras-transformer serve` in a subprocess on 127.0.0.1, many concurrent clients in
another (bench/load_clients.py), against the offline translation of the same sentences.

    python -m bench.load --bundle BUNDLE [--clients 1 8 64] [--sentences SPEC] [--out FILE] [--smoke]

For each server mode (per-request: `--no-batching --workers 1`, the server before dynamic batching;
batched, the default: one process per core, each with its own replica and batcher; batched in one
process with one replica thread per core: `--processes 1 --replicas CORES`) and each load (1, 8 and
64 clients; requests of 1 and of 4 sentences, drawn from a corpus of mixed lengths): every client
sends its requests one after the other over one keep-alive connection, all clients at once.
Figures: sentences/s over the run, p50/p95/p99 latency (client side), 503s, errors, the answers
identical to translating each request alone in-process, and the CPU seconds the client process and
the server's processes used (the clients' share of the cores is not the server's). The ceiling:
`Translator.translate` of the same sentences in one call, in this process, before the servers start
(1 replica, 1 thread: the offline figure a server is compared with), and the in-process latency of
one sentence alone (what a lone HTTP client is compared with). With `--cores`, the default server at
64 clients again restricted to one core (`taskset -c 0`: one process) against all cores.

Invariants checked (`check`): only 200 and 503 answers, every 200 identical to the request translated
alone, the server up with nothing queued at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"  # loopback only: the server binds here and every request goes here

# The demo corpus' held-out style (English side), short to long; --sentences SPEC takes a corpus instead.
SENTENCES = [
    "I sit.", "we will sit.", "did the woman sit?", "do you call the girl?", "they write the old book.",
    "the girls are reading the books.", "you do not call the good girls.", "will we call the boy?",
    "are you calling the good woman?", "the good man is buying the newspaper.", "will they write the good books?",
    "the boys are buying the old book.", "she is not reading the new newspaper.",
    "the old women are calling the children.", "does the teacher read the letter?",
    "the good boys are not calling the girls, and the woman sits.",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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
    """Until the server has announced itself ("Serving ...": all its processes listen) and answers /health."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before answering /health:\n"
                               f"{_tail(log_path)}")
        if "Serving " not in _tail(log_path, 200):
            time.sleep(0.1)
            continue
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


def client_requests(texts: list[str], clients: int, requests: int, per_request: int) -> list[list[list[str]]]:
    """Per client, the texts of each of its requests: consecutive slices of `texts`, different for every
    client and request, so a load mixes lengths as a real one does."""
    plan, cursor = [], 0
    for _ in range(clients):
        own = []
        for _ in range(requests):
            own.append([texts[(cursor + k) % len(texts)] for k in range(per_request)])
            cursor += per_request
        plan.append(own)
    return plan


def _cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a running process and its children (a server's processes; /proc)."""
    total = 0.0
    for process in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            if process == pid:
                return float("nan")
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_load(bundle_dir, server_options: list[str], plan: list[list[list[str]]], reference: dict,
             cores: str | None = None, timeout_s: float = 120.0, log=print) -> dict:
    """Starts `serve` with `server_options` (pinned to `cores` with taskset when given), runs the clients'
    `plan` from the client process, stops the server; returns the figures."""
    port = free_port()
    command = [sys.executable, "-m", "keras_transformer.cli", "serve", str(bundle_dir), "--host", HOST,
               "--port", str(port), *server_options]
    if cores is not None:
        command = ["taskset", "-c", cores, *command]
    log_file = tempfile.NamedTemporaryFile(prefix="bench-load-server-", suffix=".log", delete=False)
    log_path = Path(log_file.name)
    log(f"[load] {shlex.join(command)}")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    log_file.close()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump([[{"texts": texts} for texts in client] for client in plan], handle)
        requests_file = handle.name
    try:
        _wait_for_health(process, port, 120, log_path)
        server_cpu_before = _cpu_seconds(process.pid)
        clients = subprocess.run([sys.executable, "-m", "bench.load_clients", "--port", str(port), "--requests",
                                  requests_file, "--timeout", str(timeout_s)], capture_output=True, text=True,
                                 timeout=timeout_s * 20, cwd=Path(__file__).resolve().parents[1])
        server_cpu = _cpu_seconds(process.pid) - server_cpu_before
        if clients.returncode != 0:
            raise RuntimeError(f"the client process failed: {clients.stderr[-2000:]}")
        result = json.loads(clients.stdout)
        status, health = _get(port, "/health", timeout=10)
        alive = process.poll() is None
    finally:
        _stop(process)
        os.unlink(requests_file)
    records = result["records"]
    ok = [r for r in records if r[2] == 200]
    texts_of = {(r[0], r[1]): plan[r[0]][r[1]] for r in records}
    mismatches = sum(r[4]["translations"] != reference[tuple(texts_of[(r[0], r[1])])] for r in ok)
    latencies = [1000 * r[3] for r in ok]
    sentences = sum(len(texts_of[(r[0], r[1])]) for r in ok)
    batching = health.get("batching", {}) if isinstance(health, dict) else {}
    recent = batching.get("recent_batches", [])
    _tail(log_path)
    log_path.unlink(missing_ok=True)
    return {
        "server": " ".join(server_options) or "(defaults)", "cores": cores or "all",
        "clients": len(plan), "per_request": len(plan[0][0]), "requests": len(records), "ok": len(ok),
        "busy": sum(r[2] == 503 for r in records), "errors": sum(r[2] not in (200, 503) for r in records),
        "mismatches": mismatches, "sentences_per_s": sentences / result["duration_s"],
        "p50_ms": _percentile(latencies, 50), "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99), "duration_s": result["duration_s"],
        "client_cpu_s": result["cpu_s"], "server_cpu_s": server_cpu,
        "health_after": status, "alive_at_end": alive,
        "queued_after": batching.get("queued_requests", 0) + batching.get("running_requests", 0),
        "mean_batch_sentences": float(np.mean([b["sentences"] for b in recent])) if recent else float("nan"),
    }


def _percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def check(results: dict) -> list[str]:
    """The invariants a run broke, as sentences (empty: all held)."""
    problems = []
    if results["errors"]:
        problems.append(f"expected only 200 and 503 answers, got {results['errors']} others")
    if results["mismatches"]:
        problems.append(f"expected every answer identical to the request translated alone, got "
                        f"{results['mismatches']} different")
    if results["health_after"] != 200 or not results["alive_at_end"] or results["queued_after"]:
        problems.append(f"expected the server up and idle at the end, got /health {results['health_after']}, "
                        f"{results['queued_after']} requests still queued")
    return problems


def offline(bundle_dir, texts: list[str]) -> float:
    """Sentences/s of `Translator.translate(texts)` in one call (1 replica, 1 thread), best of 3."""
    from keras_transformer.serve import Translator

    translator = Translator(bundle_dir)
    translator.translate(texts[:64])  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        translator.translate(texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def in_process_latency(bundle_dir, texts: list[str], requests: int = 1000) -> float:
    """p50 milliseconds of `Translator.translate([text])`, one sentence alone after another (1 replica,
    1 thread): what a lone HTTP client's latency is compared with."""
    from keras_transformer.serve import Translator

    translator = Translator(bundle_dir)
    translator.translate(texts[:8])
    latencies = []
    for i in range(requests):
        started = time.perf_counter()
        translator.translate([texts[i % len(texts)]])
        latencies.append(1000 * (time.perf_counter() - started))
    return _percentile(latencies, 50)


def reference_answers(bundle_dir, plans) -> dict:
    """Each distinct request's translations, translated alone in this process."""
    from keras_transformer.serve import Translator

    translator = Translator(bundle_dir)
    answers = {}
    for plan in plans:
        for client in plan:
            for texts in client:
                if tuple(texts) not in answers:
                    answers[tuple(texts)] = translator.translate(texts)
    return answers


def _fmt(value, digits=1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def table(rows: list[dict], ceiling: float) -> str:
    header = ["server", "cores", "clients", "sentences/request", "sentences/s", "range", "÷ offline", "p50 ms",
              "p95 ms", "p99 ms", "503", "errors", "identical", "mean batch", "client CPU s", "server CPU s", "run s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    for r in rows:
        low, high = r.get("range", (r["sentences_per_s"],) * 2)
        cells = [f"`{r['server']}`", r["cores"], r["clients"], r["per_request"], _fmt(r["sentences_per_s"], 0),
                 f"{low:,.0f}–{high:,.0f}", f"{r['sentences_per_s'] / ceiling:.2f}", _fmt(r["p50_ms"]),
                 _fmt(r["p95_ms"]), _fmt(r["p99_ms"]), r["busy"], r["errors"], f"{r['ok'] - r['mismatches']}/{r['ok']}",
                 _fmt(r["mean_batch_sentences"]), _fmt(r["client_cpu_s"]), _fmt(r["server_cpu_s"]),
                 _fmt(r["duration_s"], 2)]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _median_run(rounds: int, run) -> dict:
    """`run()` `rounds` times: the run with the median sentences/s, its range and every run's problems."""
    results = sorted((run() for _ in range(rounds)), key=lambda r: r["sentences_per_s"])
    median = dict(results[len(results) // 2])
    median["range"] = (results[0]["sentences_per_s"], results[-1]["sentences_per_s"])
    median["problems"] = [problem for r in results for problem in check(r)]
    return median


def run_suite(bundle_dir, texts: list[str], clients_list=(1, 8, 64), per_request_list=(1, 4), sentences=256,
              cores_check=True, log=print, rounds: int = 1) -> tuple[str, list[dict]]:
    """Every (server mode, clients, sentences per request) against the offline ceiling, each run `rounds`
    times (the median kept); the Markdown and rows."""
    plans = {}
    for clients in clients_list:
        for per_request in per_request_list:
            requests = max(1, sentences // (clients * per_request))
            plans[clients, per_request] = client_requests(texts, clients, requests, per_request)
    all_texts = [t for plan in plans.values() for client in plan for request in client for t in request]
    log("[load] reference answers and the offline ceiling ...")
    reference = reference_answers(bundle_dir, plans.values())
    ceiling = offline(bundle_dir, all_texts[:sentences * 2])
    lone_before = in_process_latency(bundle_dir, all_texts)
    rows = []
    from keras_transformer.cli.options import available_cores

    threaded = ["--processes", "1", "--replicas", str(available_cores())]
    for server in (["--no-batching", "--workers", "1"], [], threaded):
        for (clients, per_request), plan in plans.items():
            rows.append(_median_run(rounds, lambda: run_load(bundle_dir, server, plan, reference, log=log)))
    if cores_check:
        plan = plans[max(clients_list), 1]
        rows.append(_median_run(rounds, lambda: run_load(bundle_dir, [], plan, reference, cores="0", log=log)))
    lone_after = in_process_latency(bundle_dir, all_texts)
    problems = [f"{row['server']} {row['clients']}x{row['per_request']}: {p}" for row in rows for p in row["problems"]]
    lone_http = [row["p50_ms"] for row in rows if row["server"] == "(defaults)" and row["cores"] == "all"
                 and row["clients"] == 1 and row["per_request"] == 1]
    text = "\n".join([
        f"Offline ceiling: `Translator.translate` of the same sentences in one call, 1 replica, 1 thread: "
        f"**{ceiling:,.0f} sentences/s** (best of 3). In-process latency of one sentence alone "
        f"(`translate([text])`, 1 replica, 1 thread), p50 before / after the servers ran: "
        f"**{lone_before:.2f} / {lone_after:.2f} ms**"
        + (f"; one HTTP client against the default server: p50 **{lone_http[0]:.2f} ms** "
           f"(+{lone_http[0] - (lone_before + lone_after) / 2:.2f} ms)." if lone_http else "."),
        "",
        f"Each row: the run with the median sentences/s of {rounds} (range: the slowest and fastest run).",
        "",
        table(rows, ceiling),
        "",
        "Invariants (only 200/503, every answer identical to the request translated alone, server idle at the "
        "end): " + ("PASS" if not problems else "**FAIL**: " + "; ".join(problems)),
    ])
    return text, rows


def run(ctx) -> str:
    """The `python -m bench` entry: the suite on the run's fp32 bundle."""
    text, _ = run_suite(ctx.artifacts().fp32_bundle, SENTENCES, clients_list=(1, 8, 64) if not ctx.smoke else (4,),
                        per_request_list=(1, 4) if not ctx.smoke else (1,), sentences=512 if not ctx.smoke else 16,
                        cores_check=not ctx.smoke, log=ctx.log)
    return "## Serving under load\n\n" + text + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="bundle directory written by `keras-transformer export`")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--per-request", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sentences", help="corpus SPEC whose sources are sent (default: demo-style sentences)")
    parser.add_argument("--count", type=int, default=2048, help="sentences each load sends (default 2048)")
    parser.add_argument("--no-cores-check", action="store_true", help="skip the one-core run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each row; the median is shown (default 3)")
    parser.add_argument("--out", help="also write the Markdown to this file (appended)")
    args = parser.parse_args(argv)
    texts = SENTENCES
    if args.sentences:
        from keras_transformer.corpus import read_parallel_corpus

        texts = [source for source, _ in read_parallel_corpus(args.sentences)[0]]
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    text, rows = run_suite(args.bundle, texts, args.clients, args.per_request, args.count, not args.no_cores_check,
                           log, args.rounds)
    from bench.common import machine_description

    section = "\n".join([f"## Serving under load: {args.bundle}", "",
                         f"`python -m bench.load {' '.join(shlex.quote(a) for a in (argv or sys.argv[1:]))}`", "",
                         *machine_description(), "", text, ""])
    print(section)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(section + "\n")
    return 1 if any(row["problems"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
