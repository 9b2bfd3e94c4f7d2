"""The scripted OpenAI-compatible test server itself: concurrency, limits, faults, shutdown."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import fastjsonschema
import orjson

from synthaug.engine.llm import Endpoint, LLMClient
from tests.llm_server import ScriptedLLMServer, example_for_schema, llm_server_fixture  # noqa: F401

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def call(server: ScriptedLLMServer, method: str, path: str, body=None, timeout: float = 10):
    """(status, headers, parsed body) of one raw HTTP request to the server."""
    parts = urlsplit(server.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        payload = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if payload else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), orjson.loads(response.read())
    finally:
        connection.close()


def test_it_serves_the_model_list_and_the_chat_wire_format(llm_server):
    status, _, models = call(llm_server, "GET", "/v1/models")
    assert status == 200
    assert models["data"][0]["id"] == llm_server.model

    status, headers, completion = call(llm_server, "POST", "/v1/chat/completions", CHAT)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "m"
    choice = completion["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "ok", "refusal": None}
    assert choice["finish_reason"] == "stop"
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    status, _, error = call(llm_server, "POST", "/v1/embeddings", CHAT)
    assert status == 404
    assert error["error"]["type"] == "not_found"
    assert [r.path for r in llm_server.requests] == [
        "/v1/models",
        "/v1/chat/completions",
        "/v1/embeddings",
    ]


def test_it_handles_fifty_requests_in_flight(llm_server):
    llm_server.latency(0.5)
    endpoint = Endpoint(
        name="s", base_url=llm_server.base_url, model="m", api_key="k", max_concurrency=50
    )
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    with LLMClient(endpoint) as client, ThreadPoolExecutor(max_workers=50) as pool:
        started = time.monotonic()
        results = list(
            pool.map(
                lambda i: client.complete_json(
                    messages=[{"role": "user", "content": str(i)}], schema=schema, schema_name="n"
                ),
                range(50),
            )
        )
        elapsed = time.monotonic() - started
    assert len(results) == 50
    assert elapsed < 3  # fifty half-second replies, not 25 s of them in a row
    assert llm_server.max_in_flight >= 40


def test_the_default_answer_fits_the_requested_schema(llm_server):
    schema = {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 5},
            "difficulty": {"enum": ["easy", "hard"]},
            "score": {"type": "integer", "minimum": 3},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "meta": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}, "note": {"type": ["string", "null"]}},
                "required": ["ok", "note"],
            },
        },
        "required": ["question", "difficulty", "score", "tags", "meta"],
        "additionalProperties": False,
    }
    body = {
        **CHAT,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }
    _, _, completion = call(llm_server, "POST", "/v1/chat/completions", body)
    content = orjson.loads(completion["choices"][0]["message"]["content"])
    fastjsonschema.compile(schema)(content)
    assert content == example_for_schema(schema)


def test_it_cuts_replies_at_max_tokens(llm_server):
    llm_server.answer("x" * 400)
    _, _, completion = call(llm_server, "POST", "/v1/chat/completions", {**CHAT, "max_tokens": 10})
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"]) == 40
    assert completion["usage"]["completion_tokens"] == 10


def test_rate_limit_mode_answers_429_with_retry_after(llm_server):
    llm_server.limits(rpm=3, window=1.0)
    replies = [call(llm_server, "POST", "/v1/chat/completions", CHAT) for _ in range(5)]
    assert [status for status, _, _ in replies] == [200, 200, 200, 429, 429]
    retry_after = float(replies[3][1]["Retry-After"])
    assert 0 < retry_after <= 1.0
    assert replies[3][2]["error"]["type"] == "rate_limit_exceeded"
    time.sleep(retry_after + 0.05)
    assert call(llm_server, "POST", "/v1/chat/completions", CHAT)[0] == 200
    assert [r.outcome for r in llm_server.requests].count("rate_limited") == 2


def test_rate_limit_mode_counts_tokens(llm_server):
    llm_server.limits(tpm=300, window=60)
    big = {**CHAT, "max_tokens": 200}
    assert call(llm_server, "POST", "/v1/chat/completions", big)[0] == 200
    status, headers, _ = call(llm_server, "POST", "/v1/chat/completions", big)
    assert status == 429
    assert 55 < float(headers["Retry-After"]) <= 60


def test_fault_injection_is_random_but_reproducible():
    def outcomes(seed: int) -> list[str]:
        with ScriptedLLMServer() as server:
            server.faults(p429=0.3, p5xx=0.2, ptruncated=0.2, p400=0.1, seed=seed)
            for _ in range(60):
                call(server, "POST", "/v1/chat/completions", CHAT)
            return [r.outcome for r in server.requests]

    first = outcomes(7)
    assert first == outcomes(7)
    assert first != outcomes(8)
    kinds = {o.split(":")[0] if o.startswith("status:4") else o for o in first}
    assert {"answer", "truncated", "status"} <= kinds
    assert 8 <= first.count("status:429") <= 30
    assert any(o in first for o in ("status:500", "status:502", "status:503"))


def test_bad_requests_get_400_every_time_and_other_faults_are_drawn_per_call(llm_server):
    llm_server.faults(p5xx=0.5, bad_requests=0.25, seed=3)
    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": f"item {n}"}]} for n in range(40)
    ]
    first = [call(llm_server, "POST", "/v1/chat/completions", body)[0] for body in bodies]
    again = [call(llm_server, "POST", "/v1/chat/completions", body)[0] for body in bodies]
    bad = [n for n, status in enumerate(first) if status == 400]
    # The same bodies are refused the second time, and only they.
    assert [n for n, status in enumerate(again) if status == 400] == bad
    assert 3 <= len(bad) <= 20
    # The per-call faults do not follow the body: some answered bodies fail once, not twice.
    flips = [n for n in range(40) if n not in bad and (first[n] >= 500) != (again[n] >= 500)]
    assert flips


def test_scripted_replies_come_before_faults(llm_server):
    llm_server.faults(p5xx=1.0, seed=1)
    llm_server.answer({"fine": True})
    assert call(llm_server, "POST", "/v1/chat/completions", CHAT)[0] == 200
    assert call(llm_server, "POST", "/v1/chat/completions", CHAT)[0] >= 500


def test_stopping_releases_hanging_requests_at_once():
    server = ScriptedLLMServer().start()
    server.hang(60)
    finished = threading.Event()

    def hanging_call() -> None:
        with contextlib.suppress(OSError):
            call(server, "POST", "/v1/chat/completions", CHAT, timeout=90)
        finished.set()

    thread = threading.Thread(target=hanging_call)
    thread.start()
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    assert finished.wait(5)
    thread.join()
