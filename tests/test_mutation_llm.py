"""LLM client and proposer against a real OpenAI-compatible HTTP server on 127.0.0.1 (scripted replies)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mutation_models import SMALL_CNN
from nasassist_plugins.mutation import (
    LLMBudgetExceeded,
    LLMClient,
    LLMConfig,
    LLMConfigError,
    LLMError,
    LLMProposer,
    RelevanceGuidedMutator,
    Sandbox,
    SandboxLimits,
    improve,
)

GOOD_MODEL = SMALL_CNN.replace("nn.Conv2d(8, 16, 3, padding=1)", "nn.Conv2d(8, 24, 3, padding=1)").replace(
    "nn.Linear(16, 10)", "nn.Linear(24, 10)")


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }


class Script:
    """Replies served in order: (status, body or dict, delay seconds); the last one repeats."""

    def __init__(self, *replies: tuple[int, Any, float]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(json.loads(request.get_data() or b"{}"))
            status, body, delay = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if delay:
            time.sleep(delay)
        text = body if isinstance(body, str) else json.dumps(body)
        return Response(text, status=status, content_type="application/json")


@pytest.fixture
def serve():
    """A threaded server, so a reply held back to provoke a client timeout does not block the retry behind it."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()

    def start(*replies: tuple[int, Any, float]) -> tuple[Script, str]:
        script = Script(*replies)
        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(script)
        return script, server.url_for("/v1")

    yield start
    server.clear()
    server.stop()


def client_for(base_url: str, **overrides: Any) -> LLMClient:
    settings = dict(model="test-model", base_url=base_url, timeout_s=2.0, max_retries=2, backoff_s=0.01)
    settings.update(overrides)
    return LLMClient(LLMConfig(**settings), sleep=lambda s: None)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(SandboxLimits(cpu_s=10, wall_s=10, startup_s=90, memory_mb=1024))


def reply_with(code: str, explanation: str = "Widened the last conv, the most relevant layer.") -> dict[str, Any]:
    return completion(f"Here is the model.\n```python\n{code}```\nExplanation: {explanation}")


# ----------------------------------------------------------------------------- client
def test_retries_on_429_and_500_then_succeeds(serve) -> None:
    script, url = serve((429, {"error": {"message": "slow down"}}, 0), (500, {"error": {"message": "oops"}}, 0),
                        (200, completion("hello"), 0))
    client = client_for(url)
    reply = client.complete([{"role": "user", "content": "hi"}])
    assert reply.text == "hello" and reply.attempts == 3
    assert len(script.requests) == 3 and script.requests[0]["model"] == "test-model"
    assert client.usage.calls == 3 and client.usage.failures == 2 and client.usage.tokens == 200


def test_gives_up_after_retries_with_a_clear_error(serve) -> None:
    script, url = serve((503, {"error": {"message": "down"}}, 0))
    with pytest.raises(LLMError, match="after 3 attempts"):
        client_for(url).complete([{"role": "user", "content": "hi"}])
    assert len(script.requests) == 3


def test_non_retryable_status_fails_at_once(serve) -> None:
    script, url = serve((401, {"error": {"message": "bad key"}}, 0))
    with pytest.raises(LLMError, match="HTTP 401"):
        client_for(url).complete([{"role": "user", "content": "hi"}])
    assert len(script.requests) == 1


def test_timeout_and_malformed_json_are_retried(serve) -> None:
    script, url = serve((200, completion("late"), 4.0), (200, "{not json", 0), (200, completion("ok"), 0))
    client = client_for(url, timeout_s=1.0)
    reply = client.complete([{"role": "user", "content": "hi"}])
    assert reply.text == "ok" and reply.attempts == 3 and len(script.requests) == 3
    first, second = (entry["error"] for entry in client.usage.log[:2])
    assert first == "APITimeoutError" and second.startswith("malformed:")


def test_call_cap_is_enforced(serve) -> None:
    _, url = serve((200, completion("x"), 0))
    client = client_for(url, max_calls=2)
    client.complete([{"role": "user", "content": "1"}])
    client.complete([{"role": "user", "content": "2"}])
    with pytest.raises(LLMBudgetExceeded, match="call cap"):
        client.complete([{"role": "user", "content": "3"}])


def test_misconfiguration_is_reported_clearly(monkeypatch) -> None:
    with pytest.raises(LLMConfigError, match="model name is empty"):
        LLMConfig(model="", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(LLMConfigError, match="http://"):
        LLMConfig(model="m", base_url="localhost:11434")
    monkeypatch.delenv("MY_TEST_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="MY_TEST_KEY is not set"):
        LLMClient(LLMConfig(model="m", base_url="http://127.0.0.1:1/v1", api_key_env="MY_TEST_KEY", require_key=True))
    monkeypatch.setenv("MY_TEST_KEY", "sk-test")
    assert LLMConfig(model="m", base_url="http://127.0.0.1:1/v1", api_key_env="MY_TEST_KEY").api_key() == "sk-test"


# ----------------------------------------------------------------------------- source proposals
@pytest.mark.slow
def test_good_llm_proposal_is_accepted_and_scored(serve, default_predictor, sandbox) -> None:
    script, url = serve((200, reply_with(GOOD_MODEL), 0))
    proposer = LLMProposer(client_for(url), fallback=RelevanceGuidedMutator(predictor=default_predictor, sandbox=sandbox, max_source_edits=4))
    result = improve(SMALL_CNN, entry="Net", example_input=(1, 3, 16, 16), max_iterations=1, proposer=proposer,
                     predictor=default_predictor, sandbox=sandbox)
    (row,) = result.history
    assert row.origin == "llm" and row.accepted and row.predicted is not None and np.isfinite(row.predicted)
    assert "Widened" in row.explanation
    prompt = script.requests[0]["messages"][1]["content"]
    assert "# relevance" in prompt and "keeping the same types of operations" in prompt
    assert "output shape (1, 10)" in prompt
    if result.improved:
        assert "nn.Conv2d(8, 24, 3, padding=1)" in result.diff()


HOSTILE_REPLIES = {
    "no code block": completion("I think you should widen the convolution."),
    "os import": reply_with("import os\n" + SMALL_CNN),
    "wrong output shape": reply_with(SMALL_CNN.replace("nn.Linear(16, 10)", "nn.Linear(16, 7)")),
    "parameter blow-up": reply_with(SMALL_CNN.replace("nn.Linear(16, 10)", "nn.Sequential(nn.Linear(16, 4096), nn.Linear(4096, 10))")),
}


@pytest.mark.slow
def test_hostile_or_unusable_llm_replies_are_refused_or_fall_back(serve, default_predictor, sandbox) -> None:
    before = (os.getcwd(), sorted(os.listdir(".")))
    script, url = serve(*[(200, body, 0) for body in HOSTILE_REPLIES.values()])
    proposer = LLMProposer(client_for(url, max_retries=0), fallback=RelevanceGuidedMutator(predictor=default_predictor, sandbox=sandbox, max_source_edits=4))
    result = improve(SMALL_CNN, entry="Net", example_input=(1, 3, 16, 16), max_iterations=4, proposer=proposer,
                     predictor=default_predictor, sandbox=sandbox, param_budget=0.5)
    no_code, os_import, wrong_shape, blow_up = result.history
    assert no_code.origin.startswith("offline:")  # reply without code: fell back to the offline mutator
    assert "no ```python code block" in proposer.events[0]["detail"]
    assert not os_import.accepted and os_import.reason.startswith("forbidden-import")
    assert not wrong_shape.accepted and wrong_shape.reason.startswith("wrong-output-shape")
    assert not blow_up.accepted and blow_up.reason.startswith("parameter-budget")
    assert (os.getcwd(), sorted(os.listdir("."))) == before


@pytest.mark.slow
def test_llm_server_down_falls_back_to_offline_without_crashing(serve, default_predictor, sandbox) -> None:
    _, url = serve((500, {"error": {"message": "down"}}, 0))
    proposer = LLMProposer(client_for(url, max_retries=1), fallback=RelevanceGuidedMutator(predictor=default_predictor, sandbox=sandbox, max_source_edits=4))
    result = improve(SMALL_CNN, entry="Net", example_input=(1, 3, 16, 16), max_iterations=2, proposer=proposer,
                     predictor=default_predictor, sandbox=sandbox)
    assert all(h.origin.startswith("offline:") for h in result.history)
    assert all(not e["ok"] for e in proposer.events)


# ----------------------------------------------------------------------------- parameter proposals
SPACE = {"width": IntDistribution(8, 64, step=8), "act": CategoricalDistribution(("relu", "gelu")),
         "depth": IntDistribution(1, 4)}


def test_llm_parameter_sets_are_filtered_to_the_space_and_filled(serve) -> None:
    body = completion('```json\n[{"width": 32, "act": "gelu", "depth": 2}, {"width": 33, "act": "tanh"},'
                      ' {"width": "48", "depth": 3}, {"width": 16, "act": "relu", "depth": 1}]\n```')
    script, url = serve((200, body, 0))
    proposer = LLMProposer(client_for(url))
    parents = [({"width": 16, "act": "relu", "depth": 1}, 0.5)]
    out = proposer.propose_params(parents, SPACE, 3, np.random.RandomState(0))
    assert out[0] == {"width": 32, "act": "gelu", "depth": 2}
    assert out[1] == {"width": 48, "depth": 3}  # "48" coerced, the invalid values dropped
    assert len(out) == 3 and all(SPACE[k]._contains(SPACE[k].to_internal_repr(v)) for p in out for k, v in p.items())
    assert '"width": 16' in script.requests[0]["messages"][1]["content"]


@pytest.mark.parametrize("reply", [(500, {"error": {"message": "x"}}, 0), (200, completion("no json here"), 0),
                                   (200, "{broken", 0)])
def test_llm_parameter_failures_fall_back_to_the_offline_mutator(serve, reply) -> None:
    _, url = serve(reply)
    proposer = LLMProposer(client_for(url, max_retries=1))
    parents = [({"width": 16, "act": "relu", "depth": 1}, 0.5)]
    out = proposer.propose_params(parents, SPACE, 2, np.random.RandomState(0))
    assert len(out) == 2 and all(p != parents[0][0] for p in out)
    assert proposer.events and not proposer.events[-1]["ok"]


# ----------------------------------------------------------------------------- deadlines and budgets
def _drip(request: Request) -> Response:
    """A server that never finishes: one byte every 2 s (each read succeeds; only a total deadline stops it)."""

    def body():
        for _ in range(300):
            yield b" "
            time.sleep(2)

    return Response(body(), status=200, content_type="application/json")


@pytest.fixture
def drip_url():
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(_drip)
    yield server.url_for("/v1")
    server.clear()
    server.stop()


def test_request_deadline_is_total_not_per_read(drip_url) -> None:
    client = client_for(drip_url, timeout_s=3.0, max_retries=0)
    started = time.monotonic()
    with pytest.raises(LLMError, match="3 s request deadline"):
        client.complete([{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 3.0 + 1.5
    assert client.usage.seconds < 4.5


def test_time_budget_caps_all_requests_and_backoffs(drip_url) -> None:
    client = LLMClient(LLMConfig(model="m", base_url=drip_url, timeout_s=2.0, max_retries=10, backoff_s=0.5,
                                 budget_s=5.0))
    started = time.monotonic()
    with pytest.raises(LLMError):
        client.complete([{"role": "user", "content": "1"}])
    with pytest.raises(LLMBudgetExceeded, match="time budget"):
        client.complete([{"role": "user", "content": "2"}])
    assert time.monotonic() - started < 5.0 + 2.0
    assert client.usage.calls <= 4


def test_improve_with_a_dripping_server_falls_back_within_its_budget(drip_url, default_predictor, sandbox, tmp_path) -> None:
    from nasassist_plugins.cli import main

    out = tmp_path / "r.json"
    started = time.monotonic()
    code = main(["improve", f"{Path(__file__).resolve().parent / 'mutation_cli_model.py'}:Net", "--input-shape",
                 "1,3,16,16", "--max-iter", "1", "--llm-model", "m", "--base-url", drip_url, "--llm-timeout", "2",
                 "--llm-budget", "3", "--quiet", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["llm"]["seconds"] <= 3.5 and all(not e["ok"] for e in report["llm"]["events"])
    assert all(h["origin"].startswith("offline:") for h in report["history"])
    assert time.monotonic() - started < 300  # it used to sit in its first request for more than 300 s


def test_a_validator_crash_falls_back_to_the_offline_mutator(serve, default_predictor, sandbox, monkeypatch) -> None:
    import nasassist_plugins.mutation.llm_proposer as llm_proposer

    def crash(source):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(llm_proposer, "validate_source", crash)
    _, url = serve((200, reply_with(GOOD_MODEL), 0))
    proposer = LLMProposer(client_for(url), fallback=RelevanceGuidedMutator(predictor=default_predictor, sandbox=sandbox,
                                                                             max_source_edits=3))
    result = improve(SMALL_CNN, entry="Net", example_input=(1, 3, 16, 16), max_iterations=1, proposer=proposer,
                     predictor=default_predictor, sandbox=sandbox)
    assert result.history[0].origin.startswith("offline:")
    assert "RecursionError" in proposer.events[0]["detail"]
