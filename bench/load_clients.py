"""The load generator of bench/load.py, in its own process: N concurrent HTTP/1.1 keep-alive clients.

    python -m bench.load_clients --port P --requests FILE.json

FILE.json holds, per client, the list of requests it sends one after the other (each a JSON body). All
clients connect first, then start together. Prints one JSON object: per request its client, index,
status, latency in seconds and answer, and the CPU seconds this process used (user + system), so that
a figure can be told apart from the load generator's own limit. asyncio Protocols on one thread; the CPU
seconds are those of the run (from the start signal to the last answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

HOST = "127.0.0.1"


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: `exchange(body)` -> (status, answer bytes). A Protocol, not
    streams: the load generator's CPU per request is part of what the benchmark reports."""

    def __init__(self):
        self.transport, self.buffer, self.waiter, self.closed = None, bytearray(), None, False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buffer[:head_end]).split(b"\r\n")
        status, length = int(head[0].split()[1]), 0
        for line in head[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < head_end + 4 + length:
            return
        answer = bytes(self.buffer[head_end + 4:head_end + 4 + length])
        del self.buffer[:head_end + 4 + length]
        self.waiter.set_result((status, answer))

    def connection_lost(self, error):
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {error}"))

    def exchange(self, request: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


async def _connect(port: int) -> _Connection:
    _, connection = await asyncio.get_running_loop().create_connection(_Connection, HOST, port)
    return connection


def _request(body: bytes) -> bytes:
    return (b"POST /translate HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _client(number: int, port: int, bodies: list[bytes], start: asyncio.Event, ready, records: list,
                  timeout: float) -> None:
    connection = await _connect(port)
    ready()
    await start.wait()
    for index, body in enumerate(bodies):
        started = time.perf_counter()
        try:
            status, answer = await asyncio.wait_for(connection.exchange(_request(body)), timeout)
            records.append((number, index, status, time.perf_counter() - started, answer))
        except (OSError, asyncio.TimeoutError, ValueError) as error:
            records.append((number, index, None, time.perf_counter() - started, f"{type(error).__name__}: {error}"))
            connection.transport.close()
            connection = await _connect(port)
    connection.transport.close()


async def _run(port: int, requests: list[list[dict]], timeout: float) -> dict:
    start, records, connected = asyncio.Event(), [], [0]

    def ready():
        connected[0] += 1
        if connected[0] == len(requests):
            start.set()

    bodies = [[json.dumps(request).encode() for request in client] for client in requests]
    tasks = [asyncio.create_task(_client(n, port, bodies[n], start, ready, records, timeout))
             for n in range(len(requests))]
    await start.wait()
    began, cpu_before = time.perf_counter(), _cpu_seconds()
    await asyncio.gather(*tasks)
    duration, cpu = time.perf_counter() - began, _cpu_seconds() - cpu_before
    # answers are parsed after the clock stops: the generator's own work stays out of the figures
    records = [(*r[:4], json.loads(r[4]) if isinstance(r[4], bytes) else r[4]) for r in records]
    return {"records": records, "duration_s": duration, "cpu_s": cpu}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_clients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="JSON file: per client, its request bodies")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    args = parser.parse_args(argv)
    with open(args.requests, encoding="utf-8") as handle:
        requests = json.load(handle)
    result = asyncio.run(_run(args.port, requests, args.timeout))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
