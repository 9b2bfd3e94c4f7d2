"""The LLM seam: the only module in the project that imports `openai`.

`LLMClient` (threads) and `AsyncLLMClient` (asyncio) send one chat completion that must come
back as a JSON object valid against a JSON Schema, and return an `LLMResult` or raise one of the
project's errors (`synthaug.engine.errors`). Retries have exactly one owner, this module: the
`openai` client is built with `max_retries=0`, so the number of HTTP requests an endpoint sees is
`calls_made`, never that number multiplied by the SDK's own retries.

What is retried, at most `RetryPolicy.max_attempts` requests in all:

- transient failures (connection, timeout, 408, 409, 429, 5xx), with exponential backoff and full
  jitter, or the server's `Retry-After` when it sent one;
- output that is truncated (`finish_reason == "length"`), not JSON, or off-schema: two extra
  attempts (`RetryPolicy.content_retries`), then `PermanentLLMError`. Sampled output varies
  from one try to the next, so a second cut-off answer is still mostly bad luck; the worst
  case (every content failure retried twice in vain) costs one request more per such item
  than a single retry, which the fault benchmark's call budget (1.6 requests per item at 5%
  truncated answers) absorbs.

A content failure that still had retries left when the attempts ran out (two 5xx, then a
truncated answer) is raised as a `TransientLLMError` with the content reason: the transient
failures used the attempts up, so the caller re-queues the item like any transient failure
instead of failing it for an answer it would have retried.

Not retried: 400, 401, 403, 404, 422 and refusals raise `PermanentLLMError` at once.

The retry state machine, error classification, response reading and backoff are plain functions
and one small class (`_Attempts`) shared by the sync and async clients, which only differ in how
they send and sleep.

Security: messages are sent as the caller built them. This module never interpolates sample text
into instructions, and never logs the API key or message content.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import random
import re
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import fastjsonschema
import openai
import orjson

from synthaug.engine import errors
from synthaug.engine.errors import LLMError, PermanentLLMError, TransientLLMError

if TYPE_CHECKING:
    from synthaug.engine.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# Sent when an endpoint needs no key (a local vLLM or Ollama): the client refuses to start
# without one, and such servers ignore the header.
NO_KEY = "no-key"

# Output budget assumed for rate limiting when the caller sets no max_tokens.
DEFAULT_OUTPUT_ESTIMATE = 1024

# Requests go through the client's low-level `post` (its HTTP, auth, timeouts and error
# classes) with the body `build_request` made: `chat.completions.create` would walk that body
# against the SDK's types and build pydantic models of the reply, about as much CPU as the
# rest of a call. The reply is read from its JSON (`read_completion`).
CHAT_PATH = "/chat/completions"

_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FENCED = re.compile(r"^```[A-Za-z]*\s*\n?(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class Endpoint:
    """One configured OpenAI-compatible endpoint, with its key already resolved.

    `rpm`/`tpm` of 0 mean "no limit". Prices are per 1,000 tokens, in the instance's currency.
    """

    name: str
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    family: str = ""
    timeout: float = 60.0
    max_concurrency: int = 4
    rpm: int = 0
    tpm: int = 0
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    supports_json_schema: bool = True

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_in_per_1k + output_tokens * self.price_out_per_1k) / 1000


@dataclass(frozen=True)
class LLMResult:
    """A schema-valid answer.

    `input_tokens`, `output_tokens` and `cost` add up every attempt that returned a response
    (what the endpoint bills, including a truncated first try); `latency_s` is the successful
    attempt's; `attempts` counts HTTP requests made for this call.
    """

    data: dict[str, Any]
    raw_text: str
    response_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    latency_s: float
    attempts: int
    finish_reason: str


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    content_retries: int = 2
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    # A server asking for a longer pause than this gets a TransientLLMError carrying its
    # retry_after at once: the caller re-queues the item instead of a worker sleeping for it.
    max_retry_after: float = 60.0


# --- pure parts, shared by both clients -------------------------------------------------------


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, `retry-after` seconds or HTTP date."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds != seconds or seconds == float("inf"):  # NaN, infinity
            return None
        return max(seconds, 0.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None,
    rng: random.Random,
) -> float:
    """Delay before attempt `attempt + 1`, after `attempt` failed ones (1-based).

    Full jitter (uniform in [0, min(cap, base * 2**(attempt-1))]) spreads clients that failed
    together. A server's Retry-After is a floor; a little jitter on top keeps the clients it
    paused from coming back in the same instant.
    """
    if retry_after is not None:
        return retry_after + rng.uniform(0, base)
    return rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))


_STATUS_REASONS: dict[int, tuple[type[LLMError], str]] = {
    400: (PermanentLLMError, errors.BAD_REQUEST),
    401: (PermanentLLMError, errors.AUTH),
    403: (PermanentLLMError, errors.FORBIDDEN),
    404: (PermanentLLMError, errors.NOT_FOUND),
    408: (TransientLLMError, errors.TIMEOUT),
    409: (TransientLLMError, errors.CONFLICT),
    422: (PermanentLLMError, errors.UNPROCESSABLE),
    429: (TransientLLMError, errors.RATE_LIMITED),
}


def classify_exception(exc: BaseException) -> LLMError:
    """Translate an `openai` (or response-decoding) exception into the project's error."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientLLMError("request timed out", reason=errors.TIMEOUT)
    if isinstance(exc, openai.APIConnectionError):
        return TransientLLMError("could not connect to the endpoint", reason=errors.CONNECTION)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        cls, reason = _STATUS_REASONS.get(status, (None, None))
        if cls is None:
            if status >= 500:
                cls, reason = TransientLLMError, errors.SERVER_ERROR
            else:
                cls, reason = PermanentLLMError, errors.CLIENT_ERROR
        message = _short(getattr(exc, "message", "") or f"HTTP {status}")
        if cls is TransientLLMError:
            return TransientLLMError(
                message,
                reason=reason,
                status=status,
                retry_after=parse_retry_after(exc.response.headers),
            )
        return PermanentLLMError(message, reason=reason, status=status)
    if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError)):
        return TransientLLMError(
            "the endpoint sent an unreadable reply", reason=errors.INVALID_RESPONSE
        )
    return PermanentLLMError(_short(f"{type(exc).__name__}: {exc}"), reason=errors.CLIENT_ERROR)


# Exceptions a request can raise that classify_exception translates; anything else is a bug
# and propagates.
API_EXCEPTIONS: tuple[type[BaseException], ...] = (openai.OpenAIError, json.JSONDecodeError)


@dataclass(frozen=True)
class Reply:
    """The parts of a chat completion the seam uses, read defensively (servers vary)."""

    response_id: str
    model: str
    content: str | None
    refusal: str | None
    finish_reason: str
    input_tokens: int
    output_tokens: int


def read_completion(completion: Any) -> Reply:
    """Read a chat completion, as the JSON object the endpoint sent (what the clients read)
    or as the SDK's ChatCompletion; a reply without a first choice is an `invalid_response`.
    """
    if isinstance(completion, (str, bytes)):
        # The client hands back the text of a reply that was not JSON at all.
        raise TransientLLMError(
            "the reply is not a chat completion", reason=errors.INVALID_RESPONSE
        )
    if isinstance(completion, dict):
        return _read_completion_json(completion)
    choices = getattr(completion, "choices", None)
    if not choices:
        raise TransientLLMError("the reply has no choices", reason=errors.INVALID_RESPONSE)
    choice = choices[0]
    message = getattr(choice, "message", None)
    usage = getattr(completion, "usage", None)
    return Reply(
        response_id=str(getattr(completion, "id", "") or ""),
        model=str(getattr(completion, "model", "") or ""),
        content=getattr(message, "content", None),
        refusal=getattr(message, "refusal", None),
        finish_reason=str(getattr(choice, "finish_reason", "") or ""),
        input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _read_completion_json(completion: dict[str, Any]) -> Reply:
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise TransientLLMError("the reply has no choices", reason=errors.INVALID_RESPONSE)
    choice = choices[0]
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    usage = completion.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    content = message.get("content")
    refusal = message.get("refusal")
    return Reply(
        response_id=str(completion.get("id") or ""),
        model=str(completion.get("model") or ""),
        content=content if content is None or isinstance(content, str) else str(content),
        refusal=refusal if refusal is None or isinstance(refusal, str) else str(refusal),
        finish_reason=str(choice.get("finish_reason") or ""),
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
    )


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def parse_content(reply: Reply, validate: Callable[[Any], Any]) -> dict[str, Any]:
    """The reply's JSON object, or the content error that disqualifies it."""
    if reply.refusal:
        raise PermanentLLMError(_short(reply.refusal), reason=errors.REFUSAL)
    if reply.finish_reason == "content_filter":
        raise PermanentLLMError("the endpoint filtered the output", reason=errors.CONTENT_FILTER)
    if reply.finish_reason == "length":
        raise PermanentLLMError("output cut off at the token limit", reason=errors.TRUNCATED)
    text = (reply.content or "").strip()
    fenced = _FENCED.match(text)
    if fenced:
        # Local servers in JSON mode sometimes wrap the object in a Markdown fence.
        text = fenced.group(1).strip()
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise PermanentLLMError("output is not valid JSON", reason=errors.INVALID_JSON) from None
    if not isinstance(data, dict):
        raise PermanentLLMError("output is not a JSON object", reason=errors.SCHEMA_MISMATCH)
    try:
        validate(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise PermanentLLMError(_short(exc.message), reason=errors.SCHEMA_MISMATCH) from None
    return data


# Content failures get `content_retries` extra attempts, then stand.
CONTENT_REASONS = frozenset({errors.TRUNCATED, errors.INVALID_JSON, errors.SCHEMA_MISMATCH})


@functools.lru_cache(maxsize=256)
def _compile(canonical_schema: bytes) -> Callable[[Any], Any]:
    return fastjsonschema.compile(orjson.loads(canonical_schema))


def schema_validator(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """fastjsonschema's compiled validator for `schema`, compiled once per distinct schema."""
    return _compile(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))


def build_request(
    endpoint: Endpoint,
    *,
    messages: list[dict[str, Any]],
    schema: dict[str, Any],
    schema_name: str,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
) -> dict[str, Any]:
    """Keyword arguments for `chat.completions.create`.

    Structured outputs (`json_schema`, strict) when the endpoint supports them, else JSON mode;
    in JSON mode the model never sees the schema, so the caller's prompt must describe it (and,
    for OpenAI, mention "JSON").
    """
    if not _SCHEMA_NAME.match(schema_name):
        raise ValueError(f"schema_name must match {_SCHEMA_NAME.pattern}: {schema_name!r}")
    if endpoint.supports_json_schema:
        response_format: dict[str, Any] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
        }
    else:
        response_format = {"type": "json_object"}
    request: dict[str, Any] = {
        "model": endpoint.model,
        "messages": messages,
        "response_format": response_format,
    }
    # max_tokens rather than max_completion_tokens: the one every OpenAI-compatible server
    # (vLLM, Ollama, llama.cpp, LM Studio) understands.
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    if temperature is not None:
        request["temperature"] = temperature
    if seed is not None:
        request["seed"] = seed
    return request


def estimate_tokens(messages: list[dict[str, Any]], max_tokens: int | None) -> int:
    """An upper-bound guess for the rate limiter: ~4 characters a token, plus the output budget."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif content is not None:
            chars += len(orjson.dumps(content))
    output = DEFAULT_OUTPUT_ESTIMATE if max_tokens is None else max_tokens
    return chars // 4 + 8 * len(messages) + output


TEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
TEST_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": 'Reply with exactly this JSON object: {"ok": true}'},
]


class _Attempts:
    """The retry state of one `complete_json` call. Not shared between calls or threads."""

    def __init__(self, endpoint: Endpoint, policy: RetryPolicy, rng: random.Random) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.rng = rng
        self.attempts = 0
        self.content_failures = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.last_tokens: int | None = None

    def started(self) -> None:
        self.attempts += 1
        self.last_tokens = None

    def on_reply(
        self, completion: Any, validate: Callable[[Any], Any], latency: float
    ) -> LLMResult | LLMError:
        """Success, or the error to hand to `on_error`."""
        try:
            reply = read_completion(completion)
        except LLMError as exc:
            return exc
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        self.last_tokens = reply.input_tokens + reply.output_tokens
        try:
            data = parse_content(reply, validate)
        except LLMError as exc:
            return exc
        return LLMResult(
            data=data,
            raw_text=reply.content or "",
            response_id=reply.response_id,
            model=reply.model or self.endpoint.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=self.endpoint.cost(self.input_tokens, self.output_tokens),
            latency_s=latency,
            attempts=self.attempts,
            finish_reason=reply.finish_reason,
        )

    def on_error(self, error: LLMError) -> float:
        """Seconds to wait before the next attempt; raises `error` when there is none."""
        error.attempts = self.attempts
        error.input_tokens = self.input_tokens
        error.output_tokens = self.output_tokens
        policy = self.policy
        if isinstance(error, PermanentLLMError) and error.reason in CONTENT_REASONS:
            self.content_failures += 1
            if self.content_failures > policy.content_retries:
                raise error
            delay = 0.0
        elif isinstance(error, TransientLLMError):
            if error.retry_after is not None and error.retry_after > policy.max_retry_after:
                raise error
            delay = backoff_delay(
                self.attempts,
                base=policy.backoff_base,
                cap=policy.backoff_cap,
                retry_after=error.retry_after,
                rng=self.rng,
            )
        else:
            raise error
        if self.attempts >= policy.max_attempts:
            if isinstance(error, PermanentLLMError):  # a content failure with retries left
                raise TransientLLMError(
                    f"{error.message} (out of attempts with retries left)",
                    reason=error.reason,
                    attempts=error.attempts,
                    input_tokens=error.input_tokens,
                    output_tokens=error.output_tokens,
                ) from error
            raise error
        log.info(
            "LLM endpoint %s: attempt %d failed (%s), retrying in %.2fs",
            self.endpoint.name,
            self.attempts,
            error.reason,
            delay,
        )
        return delay

    def spent_tokens(self, outcome: LLMResult | LLMError, estimate: int) -> int:
        """Tokens the last attempt counts for in the endpoint's window, for the limiter.

        Providers count a request against tokens-per-minute when they admit it, by its prompt
        and its ``max_tokens``, whatever it then produces: an answer shorter than the estimate
        gives nothing back (returning it would send more than the provider admits, and earn
        429s); a longer one is charged.
        """
        if self.last_tokens is not None:
            return max(self.last_tokens, estimate)
        if isinstance(outcome, LLMError) and outcome.status is not None:
            return 0  # the server refused it before doing the work
        return estimate  # timed out or dropped: it may have run, assume it did


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the clients -------------------------------------------------------------------------------


class _ClientBase:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        policy: RetryPolicy | None,
        rng: random.Random | None,
        limiter: RateLimiter | None,
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._limiter = limiter
        self._calls_lock = threading.Lock()
        self._calls_made = 0

    @property
    def calls_made(self) -> int:
        """HTTP requests sent so far by this client, every attempt counted."""
        return self._calls_made

    def _count_call(self) -> None:
        with self._calls_lock:
            self._calls_made += 1

    def _prepare(
        self,
        *,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int | None,
        temperature: float | None,
        seed: int | None,
        max_attempts: int | None,
    ) -> tuple[dict[str, Any], Callable[[Any], Any], _Attempts, int]:
        request = build_request(
            self.endpoint,
            messages=messages,
            schema=schema,
            schema_name=schema_name,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        policy = (
            self.policy if max_attempts is None else replace(self.policy, max_attempts=max_attempts)
        )
        attempts = _Attempts(self.endpoint, policy, self._rng)
        return request, schema_validator(schema), attempts, estimate_tokens(messages, max_tokens)


class LLMClient(_ClientBase):
    """A synchronous client for one endpoint; safe to share between threads.

    `sleep` is injectable so tests need not wait; `limiter`, when given, is asked before every
    HTTP attempt (retries count against the endpoint's limits too) and settled after it.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(endpoint, policy=policy, rng=rng, limiter=limiter)
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max(1, endpoint.max_concurrency))
        self._client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key or NO_KEY,
            timeout=endpoint.timeout,
            max_retries=0,
        )

    def complete_json(
        self,
        *,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        max_attempts: int | None = None,
    ) -> LLMResult:
        """One schema-valid JSON object from the endpoint, or `LLMError`."""
        request, validate, attempts, estimate = self._prepare(
            messages=messages,
            schema=schema,
            schema_name=schema_name,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            max_attempts=max_attempts,
        )
        while True:
            if self._limiter is not None:
                wait = self._limiter.acquire(estimate)
                if wait > 0:
                    self._sleep(wait)
            with self._slots:
                attempts.started()
                self._count_call()
                started = time.monotonic()
                try:
                    completion = orjson.loads(
                        self._client.post(CHAT_PATH, body=request, cast_to=bytes)
                    )
                except API_EXCEPTIONS as exc:
                    outcome: LLMResult | LLMError = classify_exception(exc)
                else:
                    outcome = attempts.on_reply(completion, validate, time.monotonic() - started)
            if self._limiter is not None:
                self._limiter.settle(attempts.spent_tokens(outcome, estimate), estimate)
            if isinstance(outcome, LLMResult):
                return outcome
            delay = attempts.on_error(outcome)
            if delay > 0:
                self._sleep(delay)

    def test_connection(self) -> LLMResult:
        """One tiny real call, no retries: proves the URL, key, model and JSON support work."""
        return self.complete_json(
            messages=TEST_MESSAGES,
            schema=TEST_SCHEMA,
            schema_name="connection_test",
            max_tokens=50,
            temperature=0,
            max_attempts=1,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


# Connection pools kept per event loop, for clients made with reuse_http=True: on a loop
# that outlives many chunk runs, each endpoint keeps its connections. A loop's pools go
# with the loop; past _POOLS_PER_LOOP endpoints the oldest pool is closed.
_POOLS_PER_LOOP = 16
_pools: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str, float], openai.AsyncOpenAI]
] = weakref.WeakKeyDictionary()
_closing: set[asyncio.Task[None]] = set()


def _new_async_openai(endpoint: Endpoint) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or NO_KEY,
        timeout=endpoint.timeout,
        max_retries=0,
        # One TLS context per process: building one loads the CA bundle (tens of ms of
        # CPU), and a chunk task makes a client per run.
        http_client=openai.DefaultAsyncHttpxClient(verify=_tls_context()),
    )


def _pooled_async_openai(endpoint: Endpoint) -> openai.AsyncOpenAI:
    """The running loop's client for the endpoint's URL, key and timeout, made once."""
    loop = asyncio.get_running_loop()
    pools = _pools.setdefault(loop, {})
    key = (endpoint.base_url, endpoint.api_key, float(endpoint.timeout))
    client = pools.get(key)
    if client is None:
        if len(pools) >= _POOLS_PER_LOOP:
            oldest = next(iter(pools))
            closing = loop.create_task(pools.pop(oldest).close())
            _closing.add(closing)  # held until done: the loop keeps only weak references
            closing.add_done_callback(_closing.discard)
        client = pools[key] = _new_async_openai(endpoint)
    return client


class AsyncLLMClient(_ClientBase):
    """The asyncio twin of `LLMClient`, for many concurrent calls inside one task.

    At most `endpoint.max_concurrency` requests are in flight at once. Bound to the event loop
    it is first used on (as the underlying HTTP client is): make one per `asyncio.run`. With
    ``reuse_http=True`` (make it inside the running loop) it sends through that loop's
    client for the endpoint, kept open for later clients of the same endpoint: for a loop
    that serves many short runs, such as a worker process's.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
        reuse_http: bool = False,
    ) -> None:
        super().__init__(endpoint, policy=policy, rng=rng, limiter=limiter)
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max(1, endpoint.max_concurrency))
        self._owns_http = not reuse_http
        self._client = _pooled_async_openai(endpoint) if reuse_http else _new_async_openai(endpoint)

    async def complete_json(
        self,
        *,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        schema_name: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        max_attempts: int | None = None,
    ) -> LLMResult:
        """One schema-valid JSON object from the endpoint, or `LLMError`."""
        request, validate, attempts, estimate = self._prepare(
            messages=messages,
            schema=schema,
            schema_name=schema_name,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            max_attempts=max_attempts,
        )
        while True:
            if self._limiter is not None:
                # The limiter's store is synchronous (a Redis round trip): keep it off the loop.
                wait = await asyncio.to_thread(self._limiter.acquire, estimate)
                if wait > 0:
                    await self._sleep(wait)
            async with self._slots:
                attempts.started()
                self._count_call()
                started = time.monotonic()
                try:
                    completion = orjson.loads(
                        await self._client.post(CHAT_PATH, body=request, cast_to=bytes)
                    )
                except API_EXCEPTIONS as exc:
                    outcome: LLMResult | LLMError = classify_exception(exc)
                else:
                    outcome = attempts.on_reply(completion, validate, time.monotonic() - started)
            if self._limiter is not None:
                spent = attempts.spent_tokens(outcome, estimate)
                await asyncio.to_thread(self._limiter.settle, spent, estimate)
            if isinstance(outcome, LLMResult):
                return outcome
            delay = attempts.on_error(outcome)
            if delay > 0:
                await self._sleep(delay)

    async def test_connection(self) -> LLMResult:
        """One tiny real call, no retries."""
        return await self.complete_json(
            messages=TEST_MESSAGES,
            schema=TEST_SCHEMA,
            schema_name="connection_test",
            max_tokens=50,
            temperature=0,
            max_attempts=1,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._client.close()

    async def __aenter__(self) -> AsyncLLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
