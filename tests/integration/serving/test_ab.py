"""A/B routes on the running server: weighted split, sticky users, shadow answers, feedback, the report,
promotion through the registry, and version swaps under load with no failed request."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

ROUTE = "ab-bot"  # bot:1@70, bot:2@30, shadow ad2 for a fifth of the users (conftest)


def tiny_request(client, model, user=None):
    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=1,
                                            temperature=0, user=user)
    return answer.id, answer.model


def test_split_follows_the_weights_sticks_per_user_and_shadows(served):
    client = served.client()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: tiny_request(client, ROUTE, f"user-{i}"), range(200)))
    share = Counter(model for _, model in results)
    assert set(share) == {"bot:1", "bot:2"}
    assert abs(share["bot:1"] / 200 - 0.70) < 0.07, share
    for user in ("alice", "bob", "carol"):
        assert len({tiny_request(client, ROUTE, user)[1] for _ in range(5)}) == 1
    served.engine.flush_records()
    rows = served.engine.store.route_answers(ROUTE)
    by_id = {r["id"]: r for r in rows}
    assert all(by_id[rid]["variant"] == model for rid, model in results)
    shadows = [r for r in rows if r["shadow_of"] is not None]
    assert 0.1 < len(shadows) / len(results) < 0.3
    assert all(r["model"] == "ad2" and r["text"] is not None for r in shadows)
    assert {r["shadow_of"] for r in shadows} <= set(by_id)


def test_feedback_report_and_promotion_of_the_winner(served, in_server_home):
    from typer.testing import CliRunner

    from tunewise.cli import app
    from tunewise.registry import get_version, rollback

    client = served.client()
    answers = [tiny_request(client, ROUTE, f"rater-{i}") for i in range(40)]
    served.engine.flush_records()
    for response_id, model in answers:
        score = 1.0 if model == "bot:2" else 0.0
        reply = httpx.post(f"{served.url}/v1/feedback", json={"response_id": response_id, "score": score})
        assert reply.status_code == 200, reply.text
    thumbs = httpx.post(f"{served.url}/v1/feedback", json={"response_id": answers[0][0], "thumbs": "up", "text": "ok"})
    assert thumbs.status_code == 200
    missing = httpx.post(f"{served.url}/v1/feedback", json={"response_id": "chatcmpl-nope", "score": 1})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "response_id"
    both = httpx.post(f"{served.url}/v1/feedback", json={"response_id": answers[0][0], "score": 1, "thumbs": "up"})
    assert both.status_code == 400 and both.json()["error"]["param"] == "score"

    runner = CliRunner()
    report = runner.invoke(app, ["ab", "report", ROUTE, "--json"])
    assert report.exit_code == 0, report.output
    import json

    result = json.loads(report.output)
    assert result["winner"] == "bot:2", result
    variants = {v["variant"]: v for v in result["variants"] if not v["shadow"]}
    assert variants["bot:1"]["requests"] > 0 and variants["bot:1"]["latency_p95_s"] >= variants["bot:1"]["latency_p50_s"]
    assert variants["bot:2"]["feedback_ci95"][0] > variants["bot:1"]["feedback_ci95"][1]

    failures: list[Exception] = []
    seen: list[str] = []
    stop = threading.Event()

    def load() -> None:  # requests to `bot` while its production alias moves
        while not stop.is_set():
            try:
                seen.append(tiny_request(client, "bot")[1])
            except Exception as err:  # noqa: BLE001 - every failure counts
                failures.append(err)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        promoted = runner.invoke(app, ["ab", "promote", ROUTE])
        assert promoted.exit_code == 0, promoted.output
        assert get_version("bot", "production").version == "2"
        _wait_until(lambda: seen[-4:] == ["bot:2"] * 4)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        rollback("bot")  # the other tests expect production 1
    assert not failures and "bot:1" in seen and "bot:2" in seen


def test_swapping_a_route_under_load_fails_no_request(served):
    from tunewise.serve.ab import Route, Variant

    client = served.client()
    before = served.engine.router.routes[ROUTE]
    results: list[str] = []
    failures: list[Exception] = []

    def one(i: int) -> None:
        try:
            results.append(client.chat.completions.create(
                model=ROUTE, messages=[{"role": "user", "content": "hi"}], max_tokens=12, temperature=0,
                user=f"swap-{i}").model)
        except Exception as err:  # noqa: BLE001
            failures.append(err)

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, i) for i in range(24)]
            _wait_until(lambda: len(results) >= 4)
            served.engine.set_route(Route(ROUTE, (Variant("ad1", 100.0),)))
            for future in futures:
                future.result()
        after = [tiny_request(client, ROUTE, f"after-{i}")[1] for i in range(5)]
    finally:
        served.engine.set_route(before)
    assert not failures and len(results) == 24
    assert set(after) == {"ad1"} and {"bot:1", "bot:2"} & set(results)


def _wait_until(condition, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)
