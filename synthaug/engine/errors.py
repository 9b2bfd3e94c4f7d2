"""The project's own exceptions for calls to a language model.

The LLM seam (`synthaug.engine.llm`) translates every error of the `openai` client into one of
these, so nothing else in the project needs to know the client's exception classes. Two kinds
matter to callers:

- `TransientLLMError`: the same request may well succeed later (connection, timeout, 408, 409,
  429, 5xx). The seam has already retried it; a task may re-queue the item later, honouring
  `retry_after` when the server gave one.
- `PermanentLLMError`: sending the same request again will not help (400, 401, 403, 404, 422,
  a refusal, or output that stayed truncated, unparsable or off-schema through its retries).

Every error carries a short machine `reason` ("rate_limited", "schema_mismatch", …) so a batch
page can group failures by reason. Messages never contain the API key or the prompt.
"""

from __future__ import annotations

from typing import Any

# Reasons, as stored with failed items and grouped on the batch page.
RATE_LIMITED = "rate_limited"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
CONNECTION = "connection"
CONFLICT = "conflict"
INVALID_RESPONSE = "invalid_response"
BAD_REQUEST = "bad_request"
AUTH = "auth"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
UNPROCESSABLE = "unprocessable"
CLIENT_ERROR = "client_error"
TRUNCATED = "truncated"
INVALID_JSON = "invalid_json"
SCHEMA_MISMATCH = "schema_mismatch"
REFUSAL = "refusal"
CONTENT_FILTER = "content_filter"


class LLMError(Exception):
    """Base of every error raised by the LLM seam.

    `attempts` is how many HTTP requests the call made before giving up; `input_tokens` and
    `output_tokens` are what those attempts were billed (a truncated answer still costs).
    """

    default_reason = "llm_error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        status: int | None = None,
        attempts: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.status = status
        self.attempts = attempts
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens

    def _state(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "status": self.status,
            "attempts": self.attempts,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default Exception pickling, and Celery
        # pickles exceptions raised in tasks.
        return (_rebuild, (type(self), self.message, self._state()))

    def __str__(self) -> str:
        status = f" HTTP {self.status}" if self.status is not None else ""
        return f"[{self.reason}{status}] {self.message}"

    @property
    def transient(self) -> bool:
        return isinstance(self, TransientLLMError)


class TransientLLMError(LLMError):
    """Worth retrying later; `retry_after` is the server's requested delay in seconds, if any."""

    default_reason = SERVER_ERROR

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "retry_after": self.retry_after}


class PermanentLLMError(LLMError):
    """Retrying the same request will not help."""

    default_reason = BAD_REQUEST


def _rebuild(cls: type[LLMError], message: str, state: dict[str, Any]) -> LLMError:
    return cls(message, **state)
