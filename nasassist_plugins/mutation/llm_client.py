"""A small client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Built on the ``openai`` package (optional extra ``llm``), with what a search study needs
around it: the API key read from an environment variable (local servers accept any
key), retries with exponential backoff on 429, 5xx, timeouts and connection errors
(honouring ``Retry-After``), caps on calls, tokens and wall-clock seconds for the whole
study or ``improve`` run (:class:`LLMUsage`, shared by every proposer that uses the
client), and clear errors when misconfigured. The SDK's own retries are switched off so
that every attempt is counted here.

**Deadlines are totals.** ``timeout_s`` bounds a whole request — connecting, sending,
waiting and reading — not each socket read: a server that drips one byte every two
seconds is cut off at ``timeout_s`` all the same. The request runs in a helper thread
that the caller stops waiting for at the deadline, while the HTTP transport refuses to
read past it (or past ``max_response_mb``), so the abandoned request ends too.
``budget_s`` bounds all requests and backoffs together. The API key is registered with
:func:`~nasassist_plugins.mutation.redact.register_secret`, and error messages are
sanitised before they are raised.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from nasassist_plugins.mutation.errors import LLMBudgetExceeded, LLMConfigError, LLMError, LLMResponseError
from nasassist_plugins.mutation.redact import redact, register_secret

__all__ = ["LLMConfig", "LLMClient", "LLMReply", "LLMUsage", "DEFAULT_API_KEY_ENV"]

DEFAULT_API_KEY_ENV = "NASASSIST_LLM_API_KEY"
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to reach the model.

    Attributes:
        model: model name as the server knows it (``gpt-4o-mini``, ``qwen2.5-coder:7b``...).
        base_url: the server's OpenAI-compatible root, e.g. ``http://localhost:11434/v1``.
        api_key_env: environment variable holding the key; when it is unset, ``"EMPTY"``
            is sent if ``require_key`` is False (local servers), else configuration fails.
        require_key: refuse to start without the key (set for hosted APIs).
        timeout_s: total seconds for one request, from connecting to the last byte of the
            reply (default 60).
        max_retries: retries after the first attempt, on 429/5xx/timeouts/connection errors.
        backoff_s: first backoff; doubles each retry, capped by ``max_backoff_s``.
        max_calls, max_tokens: caps for the study (attempts count as calls).
        budget_s: total wall-clock seconds for every request and backoff of the study or
            ``improve`` run (``None``: no cap; default 600).
        max_response_mb: replies larger than this are cut off and count as failures (default 8).
        temperature, max_output_tokens: sampling settings of each request.
    """

    model: str
    base_url: str
    api_key_env: str = DEFAULT_API_KEY_ENV
    require_key: bool = False
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_calls: int = 100
    max_tokens: int = 400_000
    budget_s: float | None = 600.0
    max_response_mb: float = 8.0
    temperature: float = 0.4
    max_output_tokens: int = 2048

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise LLMConfigError("LLM model name is empty: pass --llm-model (e.g. gpt-4o-mini or qwen2.5-coder:7b)")
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise LLMConfigError(
                f"LLM base URL must start with http:// or https:// (e.g. http://localhost:11434/v1), got {self.base_url!r}"
            )
        if self.timeout_s <= 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise LLMConfigError("LLM timeout must be positive and backoffs non-negative")
        if self.max_retries < 0 or self.max_calls < 1 or self.max_tokens < 1 or self.max_output_tokens < 1:
            raise LLMConfigError("LLM max_retries must be >= 0 and max_calls/max_tokens/max_output_tokens >= 1")
        if (self.budget_s is not None and not self.budget_s > 0) or not self.max_response_mb > 0:
            raise LLMConfigError("LLM budget_s (or None) and max_response_mb must be positive")

    def api_key(self) -> str:
        """The key from :attr:`api_key_env` (``"EMPTY"`` for keyless local servers)."""
        key = os.environ.get(self.api_key_env, "").strip()
        if key:
            return key
        if self.require_key:
            raise LLMConfigError(f"environment variable {self.api_key_env} is not set; export the API key there")
        return "EMPTY"


@dataclass
class LLMUsage:
    """Calls and tokens spent so far, against the study's caps (share one per study)."""

    max_calls: int
    max_tokens: int
    max_seconds: float | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    seconds: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def remaining_seconds(self) -> float:
        """Wall-clock seconds left in the time budget (``inf`` without one)."""
        return float("inf") if self.max_seconds is None else self.max_seconds - self.seconds

    def check(self) -> None:
        if self.calls >= self.max_calls:
            raise LLMBudgetExceeded(f"LLM call cap reached ({self.calls}/{self.max_calls} calls)")
        if self.tokens >= self.max_tokens:
            raise LLMBudgetExceeded(f"LLM token cap reached ({self.tokens:,}/{self.max_tokens:,} tokens)")
        if self.remaining_seconds() <= 0:
            raise LLMBudgetExceeded(f"LLM time budget spent ({self.seconds:.0f} of {self.max_seconds:g} s)")


@dataclass(frozen=True)
class LLMReply:
    """Text of one completion and its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int


class LLMClient:
    """Chat completions with retries, backoff and a budget (see the module docstring).

    Args:
        config: :class:`LLMConfig`.
        usage: a shared :class:`LLMUsage` (a new one from the config's caps by default).
        sleep: injectable sleep (tests pass a no-op to skip real backoff waits).
    """

    def __init__(self, config: LLMConfig, *, usage: LLMUsage | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise LLMConfigError("the LLM proposer needs the openai package: pip install 'nasassist-plugins[llm]'") from exc
        http = _http_module(openai)
        self.config = config
        self.usage = usage or LLMUsage(config.max_calls, config.max_tokens, config.budget_s)
        self._sleep = sleep
        self._openai = openai
        key = config.api_key()
        if key != "EMPTY":
            register_secret(key)
        transport_class, _ = _transport_classes(http)
        self._transport = transport_class(int(config.max_response_mb * 1024 * 1024))
        self._client = openai.OpenAI(
            api_key=key, base_url=config.base_url, timeout=config.timeout_s, max_retries=0,
            http_client=http.Client(transport=self._transport, timeout=config.timeout_s),
        )

    def complete(self, messages: Sequence[dict[str, str]], *, max_output_tokens: int | None = None) -> LLMReply:
        """One chat completion, retried on transient failures.

        Raises:
            LLMBudgetExceeded: the study's call or token cap is spent.
            LLMError: the request failed for good (after retries, or a non-retryable status).
            LLMResponseError: the server answered with something that is not a completion.
        """
        openai = self._openai
        attempts = 0
        last: Exception | None = None
        for attempt in range(self.config.max_retries + 1):
            self.usage.check()
            attempts += 1
            self.usage.calls += 1
            started = time.monotonic()
            deadline = started + min(self.config.timeout_s, self.usage.remaining_seconds())
            try:
                response = self._create(messages, max_output_tokens or self.config.max_output_tokens, deadline)
                text, prompt_tokens, completion_tokens = _parse_completion(response)
                if prompt_tokens == 0:  # servers that do not report usage: estimate (4 characters a token)
                    prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
            except openai.APIStatusError as exc:
                last = exc
                self._record(f"HTTP {exc.status_code}", started)
                if exc.status_code not in _RETRY_STATUS:
                    raise LLMError(f"LLM request refused with HTTP {exc.status_code}: {_brief(exc)}") from exc
                self._backoff(attempt, _retry_after(exc))
                continue
            except (openai.APITimeoutError, openai.APIConnectionError, TotalTimeout) as exc:
                last = exc
                self._record(type(exc).__name__, started)
                self._backoff(attempt, None)
                continue
            except (openai.APIResponseValidationError, LLMResponseError, ValueError, TypeError, KeyError,
                    RecursionError) as exc:
                last = exc
                self._record(f"malformed: {type(exc).__name__}", started)
                self._backoff(attempt, None)
                continue
            self.usage.seconds += time.monotonic() - started
            self.usage.prompt_tokens += prompt_tokens
            self.usage.completion_tokens += completion_tokens
            self.usage.log.append({"ok": True, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})
            return LLMReply(text, prompt_tokens, completion_tokens, attempts)
        raise LLMError(f"LLM request failed after {attempts} attempts: {_brief(last)}")

    def _create(self, messages: Sequence[dict[str, str]], max_tokens: int, deadline: float) -> Any:
        """One chat completion that returns or raises by ``deadline``, whatever the server does."""
        box: dict[str, Any] = {}

        def request() -> None:
            self._transport.deadline.value = deadline
            try:
                box["response"] = self._client.chat.completions.create(
                    model=self.config.model,
                    messages=list(messages),  # type: ignore[arg-type]
                    temperature=self.config.temperature,
                    max_tokens=max_tokens,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=request, name="nasassist-llm-request", daemon=True)
        worker.start()
        worker.join(max(deadline - time.monotonic(), 0.0) + 0.05)
        if worker.is_alive():  # the transport stops it at its next read; the caller does not wait
            raise TotalTimeout(f"no complete reply within the {self.config.timeout_s:g} s request deadline")
        if "error" in box:
            raise box["error"]
        return box["response"]

    def _record(self, what: str, started: float) -> None:
        self.usage.seconds += time.monotonic() - started
        self.usage.failures += 1
        self.usage.log.append({"ok": False, "error": what})

    def _backoff(self, attempt: int, retry_after: float | None) -> None:
        if attempt >= self.config.max_retries:
            return
        delay = min(self.config.backoff_s * (2**attempt), self.config.max_backoff_s)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.config.max_backoff_s)
        delay = min(delay, max(self.usage.remaining_seconds(), 0.0))
        if delay > 0:
            started = time.monotonic()
            self._sleep(delay)
            self.usage.seconds += time.monotonic() - started


class TotalTimeout(Exception):
    """A request did not complete by its total deadline."""


def _http_module(openai: Any) -> Any:
    """The HTTP library the installed ``openai`` SDK is built on (``httpx``, or a renamed fork of it)."""
    import sys

    for cls in openai.DefaultHttpxClient.__mro__[1:]:
        root = cls.__module__.split(".")[0]
        if cls.__name__ == "Client" and root != "openai":
            return sys.modules[root]
    raise LLMConfigError("cannot find the HTTP library of the openai package")  # pragma: no cover


@functools.lru_cache(maxsize=4)
def _transport_classes(http: Any) -> tuple[type, type]:
    """A deadline-enforcing transport and a bounded body stream for the HTTP library ``http``."""

    class BoundedStream(http.SyncByteStream):  # type: ignore[name-defined,misc]
        """A response body that stops at the deadline or past ``max_bytes``."""

        def __init__(self, inner: Any, deadline: float | None, max_bytes: int, request: Any) -> None:
            self._inner, self._deadline, self._max_bytes, self._request = inner, deadline, max_bytes, request

        def __iter__(self) -> Iterator[bytes]:
            received = 0
            for chunk in self._inner:
                if self._deadline is not None and time.monotonic() > self._deadline:
                    raise http.ReadTimeout("the reply did not complete within the request deadline",
                                           request=self._request)
                received += len(chunk)
                if received > self._max_bytes:
                    raise http.ReadError(f"the reply is larger than {self._max_bytes:,} bytes", request=self._request)
                yield chunk

        def close(self) -> None:
            self._inner.close()

    class DeadlineTransport(http.BaseTransport):  # type: ignore[name-defined,misc]
        """Enforces the calling thread's total deadline (``deadline.value``) on every phase and read."""

        def __init__(self, max_bytes: int) -> None:
            self._inner = http.HTTPTransport()
            self._max_bytes = max_bytes
            self.deadline = threading.local()

        def handle_request(self, request: Any) -> Any:
            deadline = getattr(self.deadline, "value", None)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise http.ConnectTimeout("the request deadline passed before it was sent", request=request)
                phases = {**dict.fromkeys(("connect", "read", "write", "pool")), **(request.extensions.get("timeout") or {})}
                request.extensions["timeout"] = {k: min(v, remaining) if v else remaining for k, v in phases.items()}
            response = self._inner.handle_request(request)
            response.stream = BoundedStream(response.stream, deadline, self._max_bytes, request)
            return response

        def close(self) -> None:
            self._inner.close()

    return DeadlineTransport, BoundedStream


def _parse_completion(response: Any) -> tuple[str, int, int]:
    """Text and token counts of a chat completion; :class:`LLMResponseError` when absent."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise LLMResponseError("the completion has no choices")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str) or not text.strip():
        raise LLMResponseError("the completion has no text content")
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    if not usage:  # servers that do not report usage: estimate (4 characters a token)
        completion_tokens = max(1, len(text) // 4)
    return text, prompt_tokens, completion_tokens


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _brief(exc: BaseException | None, limit: int = 300) -> str:
    if exc is None:
        return "unknown error"
    return redact(f"{type(exc).__name__}: {exc}", limit)
