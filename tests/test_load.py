"""Serving under load, short mode: `bench.load` starts `keras-transformer serve` on the tiny bundle
(127.0.0.1, a free port) and 64 clients send 2 requests each at once to a server that admits 3.

Asserted: the invariants (only 200 and 503, never a 500, a hang or a connection error; every 200
equal to the in-process sequential translation; the server up with nothing in flight afterwards),
not that 503s happen."""

import math

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from bench import load  # noqa: E402

CLIENTS, REQUESTS = 64, 2


def test_64_concurrent_clients_get_200_or_503_and_correct_translations(tiny_bundle):
    results = load.run_load_test(tiny_bundle, clients=CLIENTS, requests_per_client=REQUESTS, workers=1, max_queue=2,
                                 threads=1, timeout_s=30, busy_backoff_s=0.01, startup_timeout_s=60,
                                 max_duration_s=60, log=lambda message: None)
    problems = load.check(results)
    assert problems == [], "\n".join(problems + ["server log:", results["server_log_tail"]])
    assert results["requests"] == CLIENTS * REQUESTS == results["ok"] + results["busy"]
    assert results["errors"] == 0 and results["mismatches"] == 0
    assert results["ok"] >= 1  # the first arrivals are admitted: the server does translate under load
    assert results["health_after"] == 200 and results["in_flight_after"] == 0
    assert math.isfinite(results["p50_ms"]) and results["p50_ms"] <= results["p95_ms"]
    assert results["requests_per_s"] > 0 and results["sentences_per_s"] >= results["requests_per_s"]

    section = load.markdown(results)
    assert section.startswith("## Serving under load\n")
    assert f"| {CLIENTS} × {REQUESTS} | 1 | 2 | 128 |" in section and "PASS" in section
    assert f"python -m bench.load --bundle {tiny_bundle} --clients {CLIENTS} --requests {REQUESTS}" in section


def _results(**changes):
    base = dict(expected_requests=4, requests=4, stuck_clients=0, errors=0, error_examples=[], mismatches=0,
                mismatch_examples=[], health_after=200, health_error=None, alive_at_end=True, in_flight_after=0)
    return {**base, **changes}


@pytest.mark.parametrize("changes, message", [
    (dict(errors=1, error_examples=["status 500: internal error"]), "expected only 200 and 503 answers, got 1"),
    (dict(errors=1, error_examples=["status None: TimeoutError: timed out"]), "TimeoutError"),
    (dict(mismatches=2, mismatch_examples=[{"texts": ["a"], "got": ["x"], "expected": ["y"]}]),
     "expected every 200 answer to equal the sequential translation, got 2 different"),
    (dict(requests=3, stuck_clients=1), "expected 4 answered requests, got 3"),
    (dict(health_after=None, health_error="ConnectionRefusedError: refused"), "expected the server up at the end"),
    (dict(alive_at_end=False), "expected the server up at the end"),
    (dict(in_flight_after=1), "expected no request in flight after the load, got 1"),
])
def test_check_reports_each_broken_invariant(changes, message):
    assert load.check(_results()) == []
    problems = load.check(_results(**changes))
    assert len(problems) == 1 and message in problems[0]


def test_request_texts_are_small_deterministic_batches():
    batches = [load.request_texts(load.SENTENCES, client, index) for client in range(8) for index in range(4)]
    assert all(1 <= len(batch) <= load.MAX_BATCH for batch in batches)
    assert {len(batch) for batch in batches} == set(range(1, load.MAX_BATCH + 1))
    assert load.request_texts(load.SENTENCES, 3, 1) == load.request_texts(load.SENTENCES, 3, 1)


def test_main_requires_an_existing_bundle(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        load.main([])
    assert error.value.code == 2 and "--bundle" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        load.main(["--bundle", str(tmp_path / "missing")])
    assert error.value.code == 2 and "keras-transformer demo" in capsys.readouterr().err
