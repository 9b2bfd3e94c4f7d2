"""A scripted OpenAI-compatible server on 127.0.0.1, for tests and benchmarks.

Tests reach "the LLM" through the real `openai` client over real HTTP to this server, and script
what it answers. It serves `POST /v1/chat/completions` and `GET /v1/models` in the OpenAI wire
format, handles many requests at once (a thread per connection), and records every request.

Use the `llm_server` fixture from a test module with

    from tests.llm_server import llm_server_fixture  # noqa: F401

or suite-wide from tests/conftest.py with the same line. (The fixture function has another
name than the fixture so that a test's `llm_server` argument does not shadow the import.)
Outside pytest (benchmarks):

    with ScriptedLLMServer() as server:
        ...

Scripting, consumed one reply per chat request, in order; when the queue is empty the server
injects random faults (if `faults()` was called) or answers with the default responder:

    server.respond_with(lambda request: {"answer": "..."})   # content from the request JSON
    server.answer({"question": "...", "answer": "..."})      # or a string, sent as it is
    server.latency(0.2)                                      # every reply; `delay=` per reply
    server.status(429, retry_after=2)  /  status(500)  /  status(400)
    server.hang(5)                                           # longer than the client timeout
    server.truncated()   server.refusal("I can't")   server.wrong_schema({...})   server.malformed()
    server.limits(rpm=60, tpm=10_000)                        # 429 + Retry-After when exceeded
    server.faults(p429=0.1, p5xx=0.05, ptimeout=0.05, ptruncated=0.05, p400=0.01, seed=1)
    server.faults(..., bad_requests=0.01)   # 400 for 1% of request bodies, every time they come

The default responder builds a minimal instance of the request's `json_schema` when it has one,
`{"answer": "ok"}` in JSON mode, and "ok" otherwise. A reply longer than the request's
`max_tokens` (~4 characters a token) is cut there with `finish_reason == "length"`.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

Responder = Callable[[dict[str, Any]], Any]

DEFAULT_MODEL = "scripted-model"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any
    time: float  # time.monotonic() at arrival
    outcome: str = ""  # "answer", "status:429", "hang", "truncated", "rate_limited", …


@dataclass
class _Reply:
    kind: str
    content: Any = None
    status: int = 200
    retry_after: float | str | None = None
    message: str | None = None
    seconds: float = 0.0
    delay: float | None = None
    body: bytes = b""
    content_type: str = "application/json"


@dataclass
class _Faults:
    p429: float
    p5xx: float
    ptimeout: float
    ptruncated: float
    p400: float
    bad_requests: float
    seed: int
    rng: random.Random
    hang_seconds: float
    retry_after: float

    def is_bad(self, body: dict[str, Any]) -> bool:
        """Whether this request body is one of the `bad_requests` share: the same every time."""
        if not self.bad_requests:
            return False
        digest = hashlib.sha256(
            str(self.seed).encode() + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        ).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.bad_requests


@dataclass
class _Limits:
    rpm: int | None
    tpm: int | None
    window: float
    log: deque[tuple[float, int]] = field(default_factory=deque)


def count_tokens(text: str) -> int:
    """The server's token count: about four characters a token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        text = content if isinstance(content, str) else orjson.dumps(content).decode()
        total += count_tokens(text) + 3
    return total


def example_for_schema(schema: Any) -> Any:
    """A small value valid against common JSON Schemas (objects, arrays, enums, bounds)."""
    if not isinstance(schema, dict):
        return "ok"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return example_for_schema(schema[combinator][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: example_for_schema(sub) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [example_for_schema(schema.get("items", {})) for _ in range(count)]
    if kind == "string":
        return "x" * max(2, int(schema.get("minLength", 2)))
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "ok"


def default_responder(body: dict[str, Any]) -> Any:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return example_for_schema((response_format.get("json_schema") or {}).get("schema"))
    if response_format.get("type") == "json_object":
        return {"answer": "ok"}
    return "ok"


def _header_seconds(value: float | str) -> str:
    """A Retry-After value: a string (an HTTP date) as it is, seconds as "2" or "0.25"."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return f"{max(value, 0.001):.3f}".rstrip("0")


def _as_text(content: Any) -> str:
    return content if isinstance(content, str) else orjson.dumps(content).decode()


class ScriptedLLMServer:
    """An OpenAI-compatible chat completions server whose replies tests script."""

    def __init__(self, *, host: str = "127.0.0.1", model: str = DEFAULT_MODEL) -> None:
        self.host = host
        self.model = model
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._queue: deque[_Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._responder: Responder = default_responder
        self._latency = 0.0
        self._limits: _Limits | None = None
        self._faults: _Faults | None = None
        self._counter = 0
        self._in_flight = 0
        self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ScriptedLLMServer:
        httpd = _HTTPServer((self.host, 0), _Handler)
        httpd.scripted = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging replies are released at once so no thread outlives the test."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # --- what tests read ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    # --- scripting ----------------------------------------------------------------------------

    def respond_with(self, responder: Responder) -> ScriptedLLMServer:
        """Default content: `responder(request_json)` returns a JSON-able value or a string."""
        self._responder = responder
        return self

    def latency(self, seconds: float) -> ScriptedLLMServer:
        """Delay every reply by `seconds` (a reply's own `delay=` overrides it)."""
        self._latency = seconds
        return self

    def answer(self, content: Any, *, delay: float | None = None) -> ScriptedLLMServer:
        return self._push(_Reply("answer", content=content, delay=delay))

    def status(
        self,
        code: int,
        *,
        retry_after: float | str | None = None,
        message: str | None = None,
        delay: float | None = None,
    ) -> ScriptedLLMServer:
        """An HTTP error with an OpenAI-style error body; `retry_after` in seconds or a date."""
        return self._push(
            _Reply("status", status=code, retry_after=retry_after, message=message, delay=delay)
        )

    def hang(self, seconds: float) -> ScriptedLLMServer:
        """Say nothing for `seconds` (longer than the client's timeout), then answer."""
        return self._push(_Reply("hang", seconds=seconds))

    def truncated(self, content: Any = None, *, delay: float | None = None) -> ScriptedLLMServer:
        """The answer (default: the responder's) cut mid-JSON, finish_reason "length"."""
        return self._push(_Reply("truncated", content=content, delay=delay))

    def refusal(
        self, text: str = "I can't help with that.", *, delay: float | None = None
    ) -> ScriptedLLMServer:
        return self._push(_Reply("refusal", content=text, delay=delay))

    def wrong_schema(self, content: Any = None, *, delay: float | None = None) -> ScriptedLLMServer:
        """Valid JSON that fits no sensible schema (default `{"unexpected": true}`)."""
        value = {"unexpected": True} if content is None else content
        return self._push(_Reply("wrong_schema", content=value, delay=delay))

    def malformed(self, *, delay: float | None = None) -> ScriptedLLMServer:
        """Message content that is not JSON."""
        return self._push(_Reply("malformed", content="Sure! Here it is: {answer: ok", delay=delay))

    def raw(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        delay: float | None = None,
    ) -> ScriptedLLMServer:
        """Exactly these bytes, for replies no real server should send."""
        return self._push(
            _Reply("raw", status=status, body=body, content_type=content_type, delay=delay)
        )

    def limits(
        self, *, rpm: int | None = None, tpm: int | None = None, window: float = 60.0
    ) -> ScriptedLLMServer:
        """Enforce requests and tokens per `window` seconds (sliding), answering 429 beyond.

        Tokens are counted the way OpenAI counts them at admission: prompt tokens plus the
        request's `max_tokens`.
        """
        with self._lock:
            self._limits = _Limits(rpm=rpm, tpm=tpm, window=window)
        return self

    def faults(
        self,
        *,
        p429: float = 0.0,
        p5xx: float = 0.0,
        ptimeout: float = 0.0,
        ptruncated: float = 0.0,
        p400: float = 0.0,
        bad_requests: float = 0.0,
        seed: int = 0,
        hang_seconds: float = 30.0,
        retry_after: float = 0.5,
    ) -> ScriptedLLMServer:
        """Random faults for every unscripted request, reproducible from `seed`.

        The `p*` faults are drawn per call, so a retry of the same request draws afresh, as a
        provider's transient faults do. `bad_requests` is different: that share of request
        bodies (chosen by a hash of the body and `seed`) is answered 400 on every call, as a
        real server answers a request it cannot accept.
        """
        with self._lock:
            self._faults = _Faults(
                p429=p429,
                p5xx=p5xx,
                ptimeout=ptimeout,
                ptruncated=ptruncated,
                p400=p400,
                bad_requests=bad_requests,
                seed=seed,
                rng=random.Random(seed),
                hang_seconds=hang_seconds,
                retry_after=retry_after,
            )
        return self

    def reset(self) -> None:
        """Forget scripted replies, recorded requests, limits, faults and latency."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._limits = None
            self._faults = None
            self._latency = 0.0
            self.max_in_flight = 0
            self._responder = default_responder

    def _push(self, reply: _Reply) -> ScriptedLLMServer:
        with self._lock:
            self._queue.append(reply)
        return self

    # --- serving ------------------------------------------------------------------------------

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> RecordedRequest:
        record = RecordedRequest(method, path, headers, body, time.monotonic())
        with self._lock:
            self._requests.append(record)
        return record

    def _choose(self, body: dict[str, Any]) -> _Reply:
        """The reply to a chat request: rate limit, then the script, then faults, then default."""
        with self._lock:
            limited = self._over_limit(body)
            if limited is not None:
                return _Reply("rate_limited", status=429, retry_after=limited)
            if self._queue:
                return self._queue.popleft()
            faults = self._faults
            if faults is not None:
                if faults.is_bad(body):
                    return _Reply("status", status=400)
                roll = faults.rng.random()
                for threshold, reply in (
                    (faults.p429, _Reply("status", status=429, retry_after=faults.retry_after)),
                    (faults.p5xx, _Reply("status", status=faults.rng.choice((500, 502, 503)))),
                    (faults.ptimeout, _Reply("hang", seconds=faults.hang_seconds)),
                    (faults.ptruncated, _Reply("truncated")),
                    (faults.p400, _Reply("status", status=400)),
                ):
                    if roll < threshold:
                        return reply
                    roll -= threshold
        return _Reply("answer", content=None)

    def _over_limit(self, body: dict[str, Any]) -> float | None:
        """Admit the request into the window, or return the seconds until it would fit."""
        limits = self._limits
        if limits is None:
            return None
        now = time.monotonic()
        log = limits.log
        while log and log[0][0] <= now - limits.window:
            log.popleft()
        tokens = prompt_tokens(body) + int(body.get("max_tokens") or 0)
        used = sum(t for _, t in log)
        requests_ok = limits.rpm is None or len(log) < limits.rpm
        tokens_ok = limits.tpm is None or used + tokens <= limits.tpm
        if requests_ok and tokens_ok:
            log.append((now, tokens))
            return None
        # When enough of the oldest entries leave the window for this request to fit.
        wait_until = now
        freed_tokens = 0
        for freed_requests, (stamp, spent) in enumerate(log, start=1):
            freed_tokens += spent
            wait_until = stamp + limits.window
            fits_requests = limits.rpm is None or len(log) - freed_requests < limits.rpm
            fits_tokens = limits.tpm is None or used - freed_tokens + tokens <= limits.tpm
            if fits_requests and fits_tokens:
                break
        return max(wait_until - now, 0.001)

    def _content(self, body: dict[str, Any], content: Any) -> str:
        return _as_text(self._responder(body) if content is None else content)

    def _completion(
        self, body: dict[str, Any], *, content: str | None, refusal: str | None, finish: str
    ) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            number = self._counter
        max_tokens = body.get("max_tokens")
        if content is not None and max_tokens and count_tokens(content) > max_tokens:
            content, finish = content[: int(max_tokens) * 4], "length"
        used_prompt = prompt_tokens(body)
        used_completion = count_tokens(content or refusal or "")
        return {
            "id": f"chatcmpl-scripted-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": used_prompt,
                "completion_tokens": used_completion,
                "total_tokens": used_prompt + used_completion,
            },
        }

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _handle_chat(self, handler: _Handler, record: RecordedRequest) -> None:
        body = record.body if isinstance(record.body, dict) else {}
        reply = self._choose(body)
        record.outcome = reply.kind if reply.kind != "status" else f"status:{reply.status}"
        if reply.kind == "hang":
            self._wait(reply.seconds)
        else:
            self._wait(self._latency if reply.delay is None else reply.delay)
        if reply.kind in ("status", "rate_limited"):
            headers = {}
            if reply.retry_after is not None:
                headers["Retry-After"] = _header_seconds(reply.retry_after)
            error = {
                "message": reply.message or f"scripted HTTP {reply.status}",
                "type": "rate_limit_exceeded" if reply.status == 429 else "scripted_error",
                "param": None,
                "code": None,
            }
            handler.send_json(reply.status, {"error": error}, headers)
            return
        if reply.kind == "raw":
            handler.send_bytes(reply.status, reply.body, reply.content_type, {})
            return
        if reply.kind == "refusal":
            payload = self._completion(body, content=None, refusal=reply.content, finish="stop")
        elif reply.kind == "truncated":
            text = self._content(body, reply.content)
            cut = text[: max(1, len(text) // 2)]
            payload = self._completion(body, content=cut, refusal=None, finish="length")
        else:  # answer, hang, wrong_schema, malformed
            text = self._content(body, reply.content)
            payload = self._completion(body, content=text, refusal=None, finish="stop")
        handler.send_json(200, payload, {})

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Fifty clients connecting at once must not overflow the listen backlog (default 5).
    request_queue_size = 256
    scripted: ScriptedLLMServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end on their own
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read `requests` instead

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return raw.decode("utf-8", "replace")

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def do_POST(self) -> None:
        scripted = self.server.scripted
        body = self._read_body()
        record = scripted._record("POST", self.path, self._headers(), body)
        if self.path.rstrip("/") != "/v1/chat/completions":
            record.outcome = "status:404"
            self.send_json(404, {"error": {"message": "not found", "type": "not_found"}}, {})
            return
        scripted._enter()
        try:
            scripted._handle_chat(self, record)
        finally:
            scripted._leave()

    def do_GET(self) -> None:
        scripted = self.server.scripted
        scripted._record("GET", self.path, self._headers(), None)
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": scripted.model, "object": "model", "created": 0, "owned_by": "tests"}
            self.send_json(200, {"object": "list", "data": [model]}, {})
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "not_found"}}, {})

    def send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        self.send_bytes(status, orjson.dumps(payload), "application/json", headers)

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str]
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (timed out) before the reply; that is the point of `hang`.
            self.close_connection = True


@pytest.fixture(name="llm_server")
def llm_server_fixture() -> Iterator[ScriptedLLMServer]:
    """A started `ScriptedLLMServer`, stopped at teardown."""
    with ScriptedLLMServer() as server:
        yield server
