"""The LLM seam, through the real `openai` client over HTTP to the scripted server."""

from __future__ import annotations

import asyncio
import email.utils
import pickle
import random
import socket
import time

import orjson
import pytest

from synthaug.engine import errors
from synthaug.engine.errors import LLMError, PermanentLLMError, TransientLLMError
from synthaug.engine.llm import (
    AsyncLLMClient,
    Endpoint,
    LLMClient,
    RetryPolicy,
    backoff_delay,
    parse_retry_after,
    schema_validator,
)
from synthaug.engine.ratelimit import MemoryStore, RateLimiter
from tests.llm_server import ScriptedLLMServer, llm_server_fixture  # noqa: F401

SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
    "additionalProperties": False,
}
GOOD = {"question": "What is the capital of Poland?", "answer": "Warsaw"}
MESSAGES = [
    {"role": "system", "content": "Write one question and its answer as JSON."},
    {"role": "user", "content": "Topic: European capitals."},
]


class Sleeps:
    """An injected sleep that records delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def endpoint_for(server: ScriptedLLMServer, **overrides) -> Endpoint:
    values = {
        "name": "scripted",
        "base_url": server.base_url,
        "model": "gen-model",
        "api_key": "sk-test-secret",
        "family": "scripted",
        "timeout": 5.0,
        "max_concurrency": 8,
        "price_in_per_1k": 0.5,
        "price_out_per_1k": 1.5,
    }
    values.update(overrides)
    return Endpoint(**values)


def client_for(server: ScriptedLLMServer, sleeps: Sleeps | None = None, **overrides) -> LLMClient:
    return LLMClient(
        endpoint_for(server, **overrides), sleep=sleeps or Sleeps(), rng=random.Random(7)
    )


def ask(client: LLMClient, **kwargs):
    return client.complete_json(messages=MESSAGES, schema=SCHEMA, schema_name="qa_item", **kwargs)


# --- answers -----------------------------------------------------------------------------------


def test_it_returns_the_parsed_answer_and_sends_a_strict_json_schema(llm_server):
    llm_server.answer(GOOD)
    with client_for(llm_server) as client:
        result = ask(client, max_tokens=200, temperature=0.3, seed=11)

    assert result.data == GOOD
    assert orjson.loads(result.raw_text) == GOOD
    assert result.response_id.startswith("chatcmpl-scripted-")
    assert result.attempts == 1
    assert result.finish_reason == "stop"
    (request,) = llm_server.chat_requests
    assert request.headers["authorization"] == "Bearer sk-test-secret"
    body = request.body
    assert body["model"] == "gen-model"
    assert body["messages"] == MESSAGES
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "qa_item", "schema": SCHEMA, "strict": True},
    }
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (200, 0.3, 11)


def test_it_uses_json_mode_when_the_endpoint_has_no_structured_outputs(llm_server):
    llm_server.answer(GOOD)
    with client_for(llm_server, supports_json_schema=False) as client:
        assert ask(client).data == GOOD
    body = llm_server.chat_requests[0].body
    assert body["response_format"] == {"type": "json_object"}
    assert "max_tokens" not in body
    assert "seed" not in body


def test_it_answers_from_the_prompt_through_the_default_responder(llm_server):
    llm_server.respond_with(
        lambda request: {"question": request["messages"][-1]["content"], "answer": "echo"}
    )
    with client_for(llm_server) as client:
        result = ask(client)
    assert result.data == {"question": "Topic: European capitals.", "answer": "echo"}


def test_it_accepts_json_wrapped_in_a_markdown_fence(llm_server):
    llm_server.answer("```json\n" + orjson.dumps(GOOD).decode() + "\n```")
    with client_for(llm_server) as client:
        assert ask(client).data == GOOD


def test_it_measures_latency(llm_server):
    llm_server.latency(0.3)
    with client_for(llm_server) as client:
        result = ask(client)
    assert 0.3 <= result.latency_s < 3


def test_it_records_token_usage_and_cost():
    completion = {
        "id": "chatcmpl-usage",
        "object": "chat.completion",
        "created": 0,
        "model": "gen-model-2025",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": orjson.dumps(GOOD).decode()},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
    }
    with ScriptedLLMServer() as server, client_for(server) as client:
        server.raw(200, orjson.dumps(completion))
        result = ask(client)
    assert (result.input_tokens, result.output_tokens) == (1200, 300)
    assert result.cost == pytest.approx(1.2 * 0.5 + 0.3 * 1.5)
    assert result.response_id == "chatcmpl-usage"
    assert result.model == "gen-model-2025"


def test_it_bills_every_attempt_that_returned_tokens(llm_server):
    llm_server.truncated(GOOD)
    llm_server.answer(GOOD)
    with client_for(llm_server) as client:
        result = ask(client)
    first, second = (r.body for r in llm_server.chat_requests)
    assert first == second
    assert result.attempts == 2
    # The server counts ~4 characters a token: the cut-off half and the full answer.
    text = orjson.dumps(GOOD).decode()
    assert result.output_tokens == -(-len(text[: len(text) // 2]) // 4) + -(-len(text) // 4)


# --- transient failures are retried by this class, and only by it -------------------------------


def test_it_honours_retry_after_on_429_then_succeeds(llm_server):
    llm_server.status(429, retry_after=2)
    llm_server.answer(GOOD)
    sleeps = Sleeps()
    with client_for(llm_server, sleeps) as client:
        result = ask(client)
        assert client.calls_made == 2
    assert result.data == GOOD
    assert result.attempts == 2
    assert len(llm_server.chat_requests) == 2
    (delay,) = sleeps.delays
    assert 2 <= delay <= 2 + RetryPolicy().backoff_base


def test_it_honours_retry_after_given_as_an_http_date(llm_server):
    llm_server.status(503, retry_after=email.utils.formatdate(time.time() + 4, usegmt=True))
    llm_server.answer(GOOD)
    sleeps = Sleeps()
    with client_for(llm_server, sleeps) as client:
        assert ask(client).data == GOOD
    (delay,) = sleeps.delays
    assert 2.5 <= delay <= 4.6


def test_it_really_waits_when_sleep_is_not_injected(llm_server):
    llm_server.status(429, retry_after=0.4)
    llm_server.answer(GOOD)
    client = LLMClient(endpoint_for(llm_server))
    started = time.monotonic()
    assert ask(client).data == GOOD
    first, second = llm_server.chat_requests
    assert second.time - first.time >= 0.4
    assert time.monotonic() - started >= 0.4
    client.close()


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
def test_it_retries_server_errors_then_succeeds(llm_server, status):
    llm_server.status(status)
    llm_server.status(status)
    llm_server.answer(GOOD)
    sleeps = Sleeps()
    with client_for(llm_server, sleeps) as client:
        result = ask(client)
        assert client.calls_made == 3
    assert result.attempts == 3
    assert len(llm_server.chat_requests) == 3
    policy = RetryPolicy()
    # Full jitter: each pause is within [0, base * 2**(n-1)].
    assert 0 <= sleeps.delays[0] <= policy.backoff_base
    assert 0 <= sleeps.delays[1] <= policy.backoff_base * 2


def test_it_gives_up_after_max_attempts_with_a_transient_error(llm_server):
    for _ in range(5):
        llm_server.status(500)
    sleeps = Sleeps()
    with client_for(llm_server, sleeps) as client:
        with pytest.raises(TransientLLMError) as caught:
            ask(client)
        # The SDK's own retries are off: the server saw exactly the attempts this class made.
        assert client.calls_made == 3
    assert len(llm_server.chat_requests) == 3
    assert [r.headers["x-stainless-retry-count"] for r in llm_server.chat_requests] == ["0"] * 3
    assert caught.value.reason == errors.SERVER_ERROR
    assert caught.value.status == 500
    assert caught.value.attempts == 3
    assert len(sleeps.delays) == 2


def test_it_hands_a_long_retry_after_back_to_the_caller(llm_server):
    llm_server.status(429, retry_after=600)
    sleeps = Sleeps()
    with client_for(llm_server, sleeps) as client, pytest.raises(TransientLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.RATE_LIMITED
    assert caught.value.retry_after == 600
    assert sleeps.delays == []
    assert len(llm_server.chat_requests) == 1


def test_it_classifies_a_hang_past_the_timeout_as_transient_and_retries(llm_server):
    llm_server.hang(10)
    llm_server.answer(GOOD)
    with client_for(llm_server, timeout=0.5) as client:
        started = time.monotonic()
        result = ask(client)
        elapsed = time.monotonic() - started
    assert result.data == GOOD
    assert result.attempts == 2
    assert 0.5 <= elapsed < 5
    assert [r.outcome for r in llm_server.chat_requests] == ["hang", "answer"]


def test_it_reports_timeouts_when_every_attempt_hangs(llm_server):
    for _ in range(3):
        llm_server.hang(10)
    with client_for(llm_server, timeout=0.3) as client, pytest.raises(TransientLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.TIMEOUT
    assert caught.value.status is None
    assert len(llm_server.chat_requests) == 3


def test_it_reports_connection_errors_as_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = Endpoint(name="nobody", base_url=f"http://127.0.0.1:{port}/v1", model="m")
    sleeps = Sleeps()
    with LLMClient(endpoint, sleep=sleeps) as client, pytest.raises(TransientLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.CONNECTION
    assert client.calls_made == 3
    assert len(sleeps.delays) == 2


def test_it_retries_a_reply_that_is_not_a_chat_completion(llm_server):
    llm_server.raw(200, b"<html>bad gateway</html>", content_type="text/html")
    llm_server.raw(200, b"{not json", content_type="application/json")
    llm_server.answer(GOOD)
    with client_for(llm_server) as client:
        result = ask(client)
    assert result.attempts == 3


# --- content failures: two extra attempts, then permanent ---------------------------------------


def test_it_retries_truncated_output_twice_then_gives_up(llm_server):
    for _ in range(4):
        llm_server.truncated(GOOD)
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=5)  # attempts to spare: the content limit is what stops
    with (
        LLMClient(endpoint_for(llm_server), policy=policy, sleep=sleeps) as client,
        pytest.raises(PermanentLLMError) as caught,
    ):
        ask(client)
    assert caught.value.reason == errors.TRUNCATED
    assert caught.value.attempts == 3
    assert caught.value.output_tokens > 0
    assert len(llm_server.chat_requests) == 3
    assert llm_server.pending == 1


def test_a_second_truncated_answer_is_still_retried(llm_server):
    llm_server.truncated(GOOD)
    llm_server.truncated(GOOD)
    llm_server.answer(GOOD)
    with client_for(llm_server) as client:
        result = ask(client)
    assert result.data == GOOD
    assert result.attempts == 3


def test_a_content_failure_that_runs_out_of_attempts_is_transient(llm_server):
    # Two 5xx used two of the three attempts; the truncated third would have been retried.
    llm_server.status(500)
    llm_server.status(503)
    llm_server.truncated(GOOD)
    llm_server.answer(GOOD)
    with client_for(llm_server) as client, pytest.raises(TransientLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.TRUNCATED
    assert caught.value.attempts == 3
    assert caught.value.output_tokens > 0  # the cut-off answer was billed
    assert len(llm_server.chat_requests) == 3
    assert llm_server.pending == 1


def test_it_treats_output_cut_at_max_tokens_as_truncated(llm_server):
    llm_server.respond_with(lambda request: {"question": "q" * 200, "answer": "a"})
    with client_for(llm_server) as client, pytest.raises(PermanentLLMError) as caught:
        ask(client, max_tokens=10)
    assert caught.value.reason == errors.TRUNCATED


def test_it_rejects_output_off_the_schema(llm_server):
    for _ in range(3):
        llm_server.wrong_schema({"question": "only half"})
    with client_for(llm_server) as client, pytest.raises(PermanentLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.SCHEMA_MISMATCH
    assert "answer" in caught.value.message
    assert len(llm_server.chat_requests) == 3


def test_it_recovers_when_the_second_attempt_fits_the_schema(llm_server):
    llm_server.wrong_schema()
    llm_server.answer(GOOD)
    with client_for(llm_server) as client:
        assert ask(client).data == GOOD


def test_it_rejects_output_that_is_not_json(llm_server):
    for _ in range(3):
        llm_server.malformed()
    with client_for(llm_server) as client, pytest.raises(PermanentLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.INVALID_JSON
    assert len(llm_server.chat_requests) == 3


def test_it_rejects_a_json_value_that_is_not_an_object(llm_server):
    for _ in range(3):
        llm_server.answer("[1, 2]")
    with client_for(llm_server) as client, pytest.raises(PermanentLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.SCHEMA_MISMATCH


def test_it_does_not_retry_a_refusal(llm_server):
    llm_server.refusal("I can't help with that.")
    llm_server.answer(GOOD)
    with client_for(llm_server) as client, pytest.raises(PermanentLLMError) as caught:
        ask(client)
    assert caught.value.reason == errors.REFUSAL
    assert "can't help" in caught.value.message
    assert len(llm_server.chat_requests) == 1


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, errors.BAD_REQUEST),
        (401, errors.AUTH),
        (403, errors.FORBIDDEN),
        (404, errors.NOT_FOUND),
        (422, errors.UNPROCESSABLE),
    ],
)
def test_it_never_retries_permanent_http_errors(llm_server, status, reason):
    llm_server.status(status, message="scripted refusal of the request")
    llm_server.answer(GOOD)
    sleeps = Sleeps()
    with client_for(llm_server, sleeps) as client:
        with pytest.raises(PermanentLLMError) as caught:
            ask(client)
        assert client.calls_made == 1
    assert len(llm_server.chat_requests) == 1
    assert sleeps.delays == []
    assert caught.value.reason == reason
    assert caught.value.status == status
    assert "sk-test-secret" not in str(caught.value)


# --- test connection -----------------------------------------------------------------------------


def test_test_connection_makes_one_tiny_call(llm_server):
    with client_for(llm_server) as client:
        result = client.test_connection()
    assert result.data == {"ok": True}
    (request,) = llm_server.chat_requests
    assert request.body["max_tokens"] == 50


def test_test_connection_does_not_retry(llm_server):
    llm_server.status(503)
    with client_for(llm_server) as client, pytest.raises(TransientLLMError):
        client.test_connection()
    assert len(llm_server.chat_requests) == 1


# --- the rate limiter is asked before every attempt ----------------------------------------------


def test_it_waits_for_the_rate_limiter_before_each_attempt(llm_server):
    limiter = RateLimiter(MemoryStore(), "scripted", rpm=2, tpm=0, window=60)
    sleeps = Sleeps()
    client = LLMClient(endpoint_for(llm_server), sleep=sleeps, limiter=limiter)
    ask(client)
    ask(client)
    assert sleeps.delays == []
    ask(client)  # the injected sleep returns at once; a real one would wait out the window
    (wait,) = sleeps.delays
    assert 59 < wait <= 60.25
    client.close()


def test_short_answers_give_no_tokens_back_so_the_provider_never_answers_429(llm_server):
    """The provider counts prompt + max_tokens when it admits a request; a limiter that gave
    back what a short answer did not use would send more than the provider admits."""
    llm_server.latency(0.02)
    llm_server.respond_with(lambda request: {"question": "q", "answer": "a"})  # short answers
    window = 2.0
    llm_server.limits(tpm=1_500, window=window)
    limiter = RateLimiter(MemoryStore(), "scripted", rpm=0, tpm=1_500, window=window, slack=0.1)

    async def run() -> list:
        client = AsyncLLMClient(endpoint_for(llm_server, max_concurrency=2), limiter=limiter)
        try:
            return await asyncio.gather(
                *(
                    client.complete_json(
                        messages=[{"role": "user", "content": f"item {i}"}],
                        schema=SCHEMA,
                        schema_name="qa_item",
                        max_tokens=200,
                    )
                    for i in range(16)
                )
            )
        finally:
            await client.aclose()

    results = asyncio.run(run())
    assert len(results) == 16
    outcomes = [r.outcome for r in llm_server.chat_requests]
    assert outcomes.count("rate_limited") == 0
    assert len(outcomes) == 16  # no retries were needed
    # ... and the limiter did hold requests back: 16 x ~210 tokens is more than one window.
    sent = sorted(r.time for r in llm_server.chat_requests)
    assert sent[-1] - sent[0] >= window


# --- async ---------------------------------------------------------------------------------------


def test_async_client_runs_calls_concurrently(llm_server):
    llm_server.latency(0.2)
    llm_server.respond_with(
        lambda request: {"question": request["messages"][-1]["content"], "answer": "a"}
    )

    async def run() -> list:
        client = AsyncLLMClient(endpoint_for(llm_server, max_concurrency=20))
        try:
            return await asyncio.gather(
                *(
                    client.complete_json(
                        messages=[{"role": "user", "content": f"item {i}"}],
                        schema=SCHEMA,
                        schema_name="qa_item",
                    )
                    for i in range(20)
                )
            )
        finally:
            await client.aclose()

    started = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert sorted(r.data["question"] for r in results) == sorted(f"item {i}" for i in range(20))
    assert elapsed < 1.5  # one after another would take 20 x 0.2 = 4 s
    assert llm_server.max_in_flight >= 10


def test_async_client_caps_requests_in_flight(llm_server):
    llm_server.latency(0.1)

    async def run() -> None:
        async with AsyncLLMClient(endpoint_for(llm_server, max_concurrency=3)) as client:
            await asyncio.gather(
                *(
                    client.complete_json(messages=MESSAGES, schema=SCHEMA, schema_name="qa")
                    for _ in range(12)
                )
            )

    asyncio.run(run())
    assert len(llm_server.chat_requests) == 12
    assert llm_server.max_in_flight == 3


def test_async_client_shares_the_retry_rules(llm_server):
    llm_server.status(429, retry_after=1.5)
    llm_server.truncated(GOOD)
    llm_server.answer(GOOD)
    llm_server.status(404)
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def run():
        async with AsyncLLMClient(endpoint_for(llm_server), sleep=fake_sleep) as client:
            result = await client.complete_json(messages=MESSAGES, schema=SCHEMA, schema_name="q")
            with pytest.raises(PermanentLLMError) as caught:
                await client.complete_json(messages=MESSAGES, schema=SCHEMA, schema_name="q")
            return result, caught.value, client.calls_made

    result, error, calls = asyncio.run(run())
    assert result.data == GOOD
    assert result.attempts == 3
    assert delays
    assert delays[0] >= 1.5
    assert error.reason == errors.NOT_FOUND
    assert calls == len(llm_server.chat_requests) == 4


# --- pure parts ----------------------------------------------------------------------------------


def test_parse_retry_after_reads_seconds_milliseconds_and_dates():
    now = 1_700_000_000.0
    assert parse_retry_after({"retry-after": "3"}) == 3
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "-4"}) == 0


def test_backoff_is_full_jitter_capped_and_floored_by_retry_after():
    rng = random.Random(1)
    for attempt in range(1, 12):
        ceiling = min(20.0, 0.5 * 2 ** (attempt - 1))
        delays = [
            backoff_delay(attempt, base=0.5, cap=20.0, retry_after=None, rng=rng)
            for _ in range(200)
        ]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the range, not bunched at the bottom
    assert 5 <= backoff_delay(1, base=0.5, cap=20, retry_after=5, rng=rng) <= 5.5


def test_schema_validators_are_compiled_once_per_schema():
    same = {
        "additionalProperties": False,
        "required": ["question", "answer"],
        "properties": {"answer": {"type": "string"}, "question": {"type": "string"}},
        "type": "object",
    }
    assert schema_validator(SCHEMA) is schema_validator(same)


def test_schema_name_is_checked_before_any_request(llm_server):
    with client_for(llm_server) as client, pytest.raises(ValueError, match="schema_name"):
        client.complete_json(messages=MESSAGES, schema=SCHEMA, schema_name="has spaces")
    assert llm_server.requests == []


def test_endpoint_repr_hides_the_key():
    endpoint = Endpoint(name="x", base_url="http://h/v1", model="m", api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(endpoint)


def test_errors_survive_pickling_for_celery():
    error = TransientLLMError("slow down", reason=errors.RATE_LIMITED, status=429, retry_after=3)
    error.attempts = 2
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert isinstance(copy, TransientLLMError)
    assert (copy.reason, copy.status, copy.retry_after) == ("rate_limited", 429, 3)
    assert copy.attempts == 2
    refusal = PermanentLLMError("no", reason=errors.REFUSAL)
    permanent = pickle.loads(pickle.dumps(refusal))  # noqa: S301
    assert isinstance(permanent, LLMError)
    assert permanent.reason == errors.REFUSAL
