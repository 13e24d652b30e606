"""A small client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp).

Built on the ``openai`` package (optional extra ``llm``), with what a search study needs
around it: the API key read from an environment variable (local servers accept any
key), a timeout per request, retries with exponential backoff on 429, 5xx, timeouts
and connection errors (honouring ``Retry-After``), a cap on calls and tokens for the
whole study (:class:`LLMUsage`, shared by every proposer that uses the client), and
clear errors when misconfigured. The SDK's own retries are switched off so that every
attempt is counted here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from nasassist_plugins.mutation.errors import LLMBudgetExceeded, LLMConfigError, LLMError, LLMResponseError

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
        timeout_s: seconds per HTTP request.
        max_retries: retries after the first attempt, on 429/5xx/timeouts/connection errors.
        backoff_s: first backoff; doubles each retry, capped by ``max_backoff_s``.
        max_calls, max_tokens: caps for the study (attempts count as calls).
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
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def check(self) -> None:
        if self.calls >= self.max_calls:
            raise LLMBudgetExceeded(f"LLM call cap reached ({self.calls}/{self.max_calls} calls)")
        if self.tokens >= self.max_tokens:
            raise LLMBudgetExceeded(f"LLM token cap reached ({self.tokens:,}/{self.max_tokens:,} tokens)")


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
        self.config = config
        self.usage = usage or LLMUsage(config.max_calls, config.max_tokens)
        self._sleep = sleep
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=config.api_key(), base_url=config.base_url, timeout=config.timeout_s, max_retries=0
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
            try:
                response = self._client.chat.completions.create(
                    model=self.config.model,
                    messages=list(messages),  # type: ignore[arg-type]
                    temperature=self.config.temperature,
                    max_tokens=max_output_tokens or self.config.max_output_tokens,
                )
                text, prompt_tokens, completion_tokens = _parse_completion(response)
                if prompt_tokens == 0:  # servers that do not report usage: estimate (4 characters a token)
                    prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
            except openai.APIStatusError as exc:
                last = exc
                self._record(f"HTTP {exc.status_code}")
                if exc.status_code not in _RETRY_STATUS:
                    raise LLMError(f"LLM request refused with HTTP {exc.status_code}: {_brief(exc)}") from exc
                self._backoff(attempt, _retry_after(exc))
                continue
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                last = exc
                self._record(type(exc).__name__)
                self._backoff(attempt, None)
                continue
            except (openai.APIResponseValidationError, LLMResponseError, ValueError, TypeError, KeyError) as exc:
                last = exc
                self._record(f"malformed: {type(exc).__name__}")
                self._backoff(attempt, None)
                continue
            self.usage.prompt_tokens += prompt_tokens
            self.usage.completion_tokens += completion_tokens
            self.usage.log.append({"ok": True, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})
            return LLMReply(text, prompt_tokens, completion_tokens, attempts)
        raise LLMError(f"LLM request failed after {attempts} attempts: {_brief(last)}")

    def _record(self, what: str) -> None:
        self.usage.failures += 1
        self.usage.log.append({"ok": False, "error": what})

    def _backoff(self, attempt: int, retry_after: float | None) -> None:
        if attempt >= self.config.max_retries:
            return
        delay = min(self.config.backoff_s * (2**attempt), self.config.max_backoff_s)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.config.max_backoff_s)
        if delay > 0:
            self._sleep(delay)


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
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
