"""Tests of the HTTP server: every endpoint and error code with Starlette's TestClient, the bounded
queue with a translator that blocks until told to go on, and one real uvicorn server on loopback."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from keras_transformer.serve import Translator  # noqa: E402
from keras_transformer.serve.http_server import MAX_BODY_BYTES, MAX_TEXTS, create_app  # noqa: E402

TEXTS = ["I sit.", "", "you do not call the good girls."]
WAIT_S = 10  # bound on every wait in these tests


@pytest.fixture(scope="module")
def translator(tiny_bundle):
    return Translator(tiny_bundle)


@pytest.fixture(scope="module")
def client(translator):
    with TestClient(create_app(translator)) as client:
        yield client


class BlockingTranslator:
    """Upper-cases texts, but only once `release` is set; `entered` is set when a call starts."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls = 0

    def translate(self, texts, **options):
        self.calls += 1
        self.entered.set()
        assert self.release.wait(WAIT_S), "test never released the translator"
        return [t.upper() for t in texts]


def wait_until(condition):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# --- endpoints ----------------------------------------------------------------------------------


def test_health(client, tiny_bundle):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["bundle"] == str(tiny_bundle)
    assert body["model"]["max_target_length"] == 40 and body["in_flight"] == 0
    assert body["max_queue"] == 256 and body["batching"]["replicas"] == 1  # a Translator: batched by default
    assert body["batching"]["queued_requests"] == 0 and "recent_batches" in body["batching"]
    with TestClient(create_app(Translator(tiny_bundle), batching=False)) as per_request:
        body = per_request.get("/health").json()
    assert body["workers"] == 1 and body["max_queue"] == 10 and "batching" not in body


def test_translate_matches_the_translator(client, translator):
    for options in ({}, {"beam_size": 3}, {"beam_size": 2, "max_length": 3, "length_penalty": 0.5},
                    {"max_length": None}):
        response = client.post("/translate", json={"texts": TEXTS, **options})
        assert response.status_code == 200, response.text
        assert response.json() == {"translations": translator.translate(TEXTS, **options)}
    assert client.post("/translate", json={"texts": []}).json() == {"translations": []}


def test_unicode_passes_through(client):
    body = '{"texts": ["\u2603 \U0001F600", "\\ud83d\\ude00", "\\ud800 lone surrogate"]}'.encode()
    response = client.post("/translate", content=body)
    assert response.status_code == 200 and len(response.json()["translations"]) == 3


# --- client errors: JSON bodies, never a 500 ----------------------------------------------------


@pytest.mark.parametrize("body, message", [
    (b"{", "expected a JSON body, got invalid JSON"),
    (b"", "expected a JSON body, got invalid JSON"),
    (b"\xff\xfe\x00", "expected a JSON body, got invalid JSON"),
    (b"[" * 100_000, "expected a JSON body, got invalid JSON (nesting too deep)"),
    (b'["I sit."]', 'expected a JSON object like {"texts": [...]}, got array'),
    (b"{}", "texts: required"),
    (b'{"texts": "I sit."}', "texts: expected a list of strings, got string"),
    (b'{"texts": ["a", "b", 3]}', r"texts[2]: expected a string, got number"),
    (b'{"texts": [null]}', r"texts[0]: expected a string, got null"),
    (b'{"texts": ["a"], "beam_size": "2"}', "beam_size: expected an integer, got string"),
    (b'{"texts": ["a"], "beam_size": 2.0}', "beam_size: expected an integer, got number"),
    (b'{"texts": ["a"], "beam_size": true}', "beam_size: expected an integer, got boolean"),
    (b'{"texts": ["a"], "beam_size": 0}', "beam_size: expected an integer 1..16, got 0"),
    (b'{"texts": ["a"], "beam_size": 17}', "beam_size: expected an integer 1..16, got 17"),
    (b'{"texts": ["a"], "max_length": 0}', "max_length: expected an integer >= 1, got 0"),
    (b'{"texts": ["a"], "length_penalty": "x"}', "length_penalty: expected a number, got string"),
    (b'{"texts": ["a"], "length_penalty": NaN}', "length_penalty: expected a number in 0..10, got nan"),
    (b'{"texts": ["a"], "length_penalty": 1e999}', "length_penalty: expected a number in 0..10, got inf"),
    (b'{"texts": ["a"], "beamsize": 2}', "got unknown field 'beamsize'"),
])
def test_bad_requests_are_400_with_a_json_error(client, body, message):
    response = client.post("/translate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_too_many_texts_is_400(client):
    assert client.post("/translate", json={"texts": ["a"] * MAX_TEXTS}).status_code == 200
    response = client.post("/translate", json={"texts": ["a"] * (MAX_TEXTS + 1)})
    assert response.status_code == 400
    assert response.json()["error"] == f"texts: expected at most {MAX_TEXTS} texts per request, got {MAX_TEXTS + 1}"


def test_body_over_the_limit_is_413_by_header_and_by_bytes_read(client):
    big = json.dumps({"texts": ["x" * MAX_BODY_BYTES]}).encode()
    response = client.post("/translate", content=big)
    assert response.status_code == 413
    assert response.json()["error"] == f"expected a body of at most {MAX_BODY_BYTES} bytes, got {len(big)}"

    def chunks():  # no Content-Length: sent chunked, counted as it arrives
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    response = client.post("/translate", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == f"expected a body of at most {MAX_BODY_BYTES} bytes, got more"
    response = client.post("/translate", content=b"{}", headers={"content-length": "abc"})
    assert response.status_code == 400


def test_unknown_paths_and_methods_are_json(client):
    response = client.get("/nope")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}
    response = client.get("/translate")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed"}
    assert response.headers["allow"] == "POST"


def test_a_failing_translator_is_a_json_500():
    class Broken:
        def translate(self, texts, **options):
            raise RuntimeError("boom")

    with TestClient(create_app(Broken())) as client:
        response = client.post("/translate", json={"texts": ["a"]})
    assert response.status_code == 500
    assert "internal error" in response.json()["error"]


# --- the bounded queue --------------------------------------------------------------------------


def test_full_queue_is_503_and_the_event_loop_stays_free():
    blocking = BlockingTranslator()
    app = create_app(blocking, workers=1, max_queue=0)
    with TestClient(app) as client:
        first = {}
        thread = threading.Thread(target=lambda: first.update(r=client.post("/translate", json={"texts": ["a"]})))
        thread.start()
        try:
            assert blocking.entered.wait(WAIT_S)
            busy = client.post("/translate", json={"texts": ["b"]})
            assert busy.status_code == 503 and "server busy" in busy.json()["error"]
            health = client.get("/health")  # answered while a translation blocks its worker
            assert health.status_code == 200 and health.json()["in_flight"] == 1
        finally:
            blocking.release.set()
            thread.join(WAIT_S)
        assert first["r"].status_code == 200 and first["r"].json() == {"translations": ["A"]}
        assert blocking.calls == 1
        wait_until(lambda: app.state.admission.in_flight == 0)
        assert client.post("/translate", json={"texts": ["c"]}).json() == {"translations": ["C"]}


def test_queued_requests_wait_and_the_one_beyond_is_503():
    blocking = BlockingTranslator()
    app = create_app(blocking, workers=1, max_queue=1)
    results = {}
    with TestClient(app) as client:
        def post(name):
            results[name] = client.post("/translate", json={"texts": [name]})

        threads = [threading.Thread(target=post, args=(name,)) for name in ("a", "b")]
        threads[0].start()
        assert blocking.entered.wait(WAIT_S)
        threads[1].start()
        try:
            wait_until(lambda: app.state.admission.in_flight == 2)  # one running, one queued
            assert client.post("/translate", json={"texts": ["c"]}).status_code == 503
        finally:
            blocking.release.set()
            for thread in threads:
                thread.join(WAIT_S)
    assert [results[n].json() for n in "ab"] == [{"translations": ["A"]}, {"translations": ["B"]}]
    assert app.state.admission.in_flight == 0


# --- dynamic batching ---------------------------------------------------------------------------


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(tiny_bundle, translator):
    app = create_app(Translator(tiny_bundle, replicas=2), max_wait_ms=50)
    requests = [({"texts": [text]} | options) for text in TEXTS * 4 for options in ({}, {"beam_size": 2})]
    answers = [None] * len(requests)
    with TestClient(app) as client:
        barrier = threading.Barrier(len(requests))

        def post(i):
            barrier.wait(WAIT_S)
            answers[i] = client.post("/translate", json=requests[i])

        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        batches = client.get("/health").json()["batching"]["recent_batches"]
    for request, answer in zip(requests, answers):
        options = {k: v for k, v in request.items() if k != "texts"}
        assert answer.status_code == 200 and answer.json() == {"translations": translator.translate(request["texts"],
                                                                                                    **options)}
    assert max(batch["requests"] for batch in batches) > 1


def test_a_full_batching_queue_is_503_at_once(tiny_bundle):
    gated = Translator(tiny_bundle, graph_search=False)
    model, release, entered = gated.model, threading.Event(), threading.Event()

    class Gate:  # the one replica blocks until released
        def start(self, source_ids):
            entered.set()
            assert release.wait(WAIT_S)
            return model.start(source_ids)

        step, select = model.step, model.select

    gated.model = Gate()
    app = create_app(gated, max_queue=1)
    results = {}
    with TestClient(app) as client:
        def post(name):
            results[name] = client.post("/translate", json={"texts": [name]})

        threads = [threading.Thread(target=post, args=(name,)) for name in ("I sit.", "we will sit.")]
        threads[0].start()
        assert entered.wait(WAIT_S)
        threads[1].start()
        try:
            wait_until(lambda: app.state.batcher.stats()["queued_requests"] == 1)  # one running, one waiting
            busy = client.post("/translate", json={"texts": ["did the woman sit?"]})
            assert busy.status_code == 503 and "server busy" in busy.json()["error"]
        finally:
            release.set()
            for thread in threads:
                thread.join(WAIT_S)
    assert [results[n].status_code for n in ("I sit.", "we will sit.")] == [200, 200]


def test_create_app_checks_its_arguments(translator):
    with pytest.raises(ValueError, match="workers: expected >= 1, got 0"):
        create_app(translator, workers=0)
    with pytest.raises(ValueError, match="max_queue: expected >= 0, got -1"):
        create_app(translator, max_queue=-1)


# --- a real server ------------------------------------------------------------------------------


def test_real_uvicorn_server_on_loopback(translator):
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, chosen by the OS
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(translator, workers=2), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started)
        with urllib.request.urlopen(f"{base}/health", timeout=WAIT_S) as response:
            assert response.status == 200 and json.load(response)["status"] == "ok"
        body = json.dumps({"texts": TEXTS, "beam_size": 2}).encode()
        request = urllib.request.Request(f"{base}/translate", data=body, headers={"Content-Type": "application/json"},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            assert json.load(response) == {"translations": translator.translate(TEXTS, beam_size=2)}
        bad = urllib.request.Request(f"{base}/translate", data=b"{", method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(bad, timeout=WAIT_S)
        assert error.value.code == 400 and "invalid JSON" in json.load(error.value)["error"]
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()
    assert not thread.is_alive()
