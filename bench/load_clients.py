"""The load generator of bench/load.py, in its own process: N concurrent HTTP/1.1 keep-alive clients.

    python -m bench.load_clients --port P --requests FILE.json

FILE.json holds, per client, the list of requests it sends one after the other (each a JSON body). All
clients connect first, then start together. Prints one JSON object: per request its client, index,
status, latency in seconds and answer, and the CPU seconds this process used (user + system), so that
a figure can be told apart from the load generator's own limit. asyncio with raw sockets: one thread,
about 50 µs of CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

HOST = "127.0.0.1"


async def _exchange(reader, writer, body: bytes) -> tuple[int, bytes]:
    writer.write(b"POST /translate HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


async def _client(number: int, port: int, bodies: list[bytes], start: asyncio.Event, ready, records: list,
                  timeout: float) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    ready()
    await start.wait()
    for index, body in enumerate(bodies):
        started = time.perf_counter()
        try:
            status, answer = await asyncio.wait_for(_exchange(reader, writer, body), timeout)
            records.append((number, index, status, time.perf_counter() - started, json.loads(answer)))
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            records.append((number, index, None, time.perf_counter() - started, f"{type(error).__name__}: {error}"))
            writer.close()
            reader, writer = await asyncio.open_connection(HOST, port)
    writer.close()


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
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    return {"records": records, "duration_s": time.perf_counter() - began}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_clients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="JSON file: per client, its request bodies")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    args = parser.parse_args(argv)
    with open(args.requests, encoding="utf-8") as handle:
        requests = json.load(handle)
    result = asyncio.run(_run(args.port, requests, args.timeout))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
