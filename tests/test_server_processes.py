"""`keras-transformer serve --processes 2`: two server processes on one port, the connections spread over
both (SO_REUSEPORT), each answering as the one-process server does; SIGINT to the parent stops them all."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from keras_transformer.cli.main import main  # noqa: E402
from keras_transformer.serve import Translator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _post(port: int, body: dict) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/translate", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _health(port: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/health")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def test_two_processes_share_the_port_answer_alike_and_stop_together(tiny_bundle):
    server = subprocess.Popen([sys.executable, "-m", "keras_transformer.cli", "serve", str(tiny_bundle), "--port", "0",
                               "--processes", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        lines = []
        for line in server.stdout:  # the banner comes once both processes listen
            lines.append(line)
            if line.startswith("Serving "):
                break
        match = re.search(r"http://127\.0\.0\.1:(\d+) .* in 2 processes", lines[-1])
        assert match, "".join(lines)
        port = int(match.group(1))
        children = set(int(pid) for pid in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split())
        pids = {_health(port)["process"] for _ in range(24)}  # a new connection each time
        assert len(pids) == 2 and pids <= children  # 24 connections all hashed to one process: 2**-23

        texts = ["I sit.", "do you call the girl?", "you do not call the good girls."]
        expected = Translator(tiny_bundle).translate(texts)
        for _ in range(6):
            assert _post(port, {"texts": texts}) == (200, {"translations": expected})
        status, answer = _post(port, {"texts": texts, "beam_size": 0})
        assert status == 400 and answer["error"].startswith("beam_size: expected")
    finally:
        server.send_signal(signal.SIGINT)
        remaining, _ = server.communicate(timeout=60)
    assert server.returncode == 0, remaining
    assert "Traceback" not in remaining
    for pid in pids:  # the server processes stopped with the parent
        assert not os.path.exists(f"/proc/{pid}") or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.mark.parametrize("option, value", [("--processes", "0"), ("--replicas", "0"), ("--threads", "0")])
def test_nonpositive_layout_is_one_line_exit_2(tiny_bundle, capsys, option, value):
    assert main(["serve", str(tiny_bundle), "--port", "0", option, value]) == 2
    assert capsys.readouterr().err == f"keras-transformer serve: error: {option}: expected >= 1, got 0\n"


def test_a_taken_port_is_refused_with_several_processes_too(tiny_bundle, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(tiny_bundle), "--port", str(port), "--processes", "2"]) == 2
    assert capsys.readouterr().err == (f"keras-transformer serve: error: cannot listen on 127.0.0.1:{port}: "
                                       f"Address already in use\n")
