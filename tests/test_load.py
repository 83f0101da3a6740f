"""Serving under load, short mode: `bench.load` starts `keras-transformer serve` on the tiny bundle
(127.0.0.1, a free port) and 32 clients in their own process send their requests at once, to the
batched server (one process, and two sharing the port) and to the per-request one with a small queue.

Asserted: the invariants (only 200 and 503, never a 500, a hang or a connection error; every 200
identical to the request translated alone; the server up and idle afterwards), not speed."""

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from bench import load  # noqa: E402


@pytest.mark.parametrize("server", [["--processes", "1"], ["--processes", "2"],
                                    ["--no-batching", "--workers", "1", "--max-queue", "2"]])
def test_concurrent_clients_get_200_or_503_and_the_translations_of_their_requests_alone(tiny_bundle, server):
    plan = load.client_requests(load.SENTENCES, clients=32, requests=2, per_request=2)
    reference = load.reference_answers(tiny_bundle, [plan])
    results = load.run_load(tiny_bundle, server, plan, reference, timeout_s=60, log=lambda message: None)
    assert load.check(results) == []
    assert results["requests"] == 64 == results["ok"] + results["busy"] and results["ok"] >= 1
    assert results["client_cpu_s"] > 0 and results["p50_ms"] <= results["p99_ms"]
    if "--no-batching" not in server:  # batched: nobody is refused under a queue of 256, and requests share searches
        assert results["busy"] == 0 and results["mean_batch_sentences"] > 2


def _results(**changes):
    base = dict(errors=0, mismatches=0, health_after=200, alive_at_end=True, queued_after=0)
    return {**base, **changes}


@pytest.mark.parametrize("changes, message", [
    (dict(errors=1), "expected only 200 and 503 answers, got 1 others"),
    (dict(mismatches=2), "expected every answer identical to the request translated alone, got 2 different"),
    (dict(health_after=None), "expected the server up and idle at the end"),
    (dict(alive_at_end=False), "expected the server up and idle at the end"),
    (dict(queued_after=1), "1 requests still queued"),
])
def test_check_reports_each_broken_invariant(changes, message):
    assert load.check(_results()) == []
    problems = load.check(_results(**changes))
    assert len(problems) == 1 and message in problems[0]


def test_client_requests_are_deterministic_slices_of_mixed_lengths():
    plan = load.client_requests(load.SENTENCES, clients=8, requests=3, per_request=4)
    assert len(plan) == 8 and all(len(client) == 3 and all(len(r) == 4 for r in client) for client in plan)
    assert plan == load.client_requests(load.SENTENCES, clients=8, requests=3, per_request=4)
    lengths = {len(text) for client in plan for request in client for text in request}
    assert max(lengths) > 3 * min(lengths)  # short and long sentences in one load
