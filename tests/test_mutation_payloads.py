"""Hostile model sources against the real sandbox: nothing gets out, nothing survives, no secret leaks.

The payload corpus and the canaries live in ``sandbox_payloads.py`` (shared with
``benchmarks/sandbox_escape.py``, which runs every payload and prints the table). Here
the fast payloads run one test each, the ones that wait for a limit are marked slow, and
the end-to-end cases drive ``nasassist improve`` against a real OpenAI-compatible server
on 127.0.0.1 with a canary API key in the caller's environment.

Strong isolation needs bubblewrap and libseccomp; without them these tests skip, unless
``NASASSIST_REQUIRE_SANDBOX=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mutation_models import SMALL_CNN, ParamWeightedPredictor
from nasassist_plugins.mutation import LLMConfig, LLMProposer, RelevanceGuidedMutator, Sandbox, SandboxLimits, improve
from nasassist_plugins.mutation.redact import redact
from sandbox_payloads import (
    CANARY_KEY,
    KEY_NAME,
    PAYLOADS,
    Canaries,
    descendants,
    processes_of_uid,
    raw,
    run_payload,
)

LIMITS = SandboxLimits(cpu_s=3, wall_s=2, startup_s=120, memory_mb=512, max_params=5_000_000, max_result_mb=16)
MODEL_FILE = Path(__file__).resolve().parent / "mutation_cli_model.py"


def _require_strong(sandbox: Sandbox) -> None:
    report = sandbox.isolation
    if not report.strong:
        message = f"strong isolation unavailable here: {report.summary()}"
        if os.environ.get("NASASSIST_REQUIRE_SANDBOX") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def canary_key():
    old = os.environ.get(KEY_NAME)
    os.environ[KEY_NAME] = CANARY_KEY
    yield CANARY_KEY
    if old is None:
        os.environ.pop(KEY_NAME, None)
    else:
        os.environ[KEY_NAME] = old


@pytest.fixture(scope="module")
def boxes(canary_key):
    checked, unchecked = Sandbox(LIMITS), Sandbox(LIMITS, python_checks=False)
    _require_strong(checked)
    _require_strong(unchecked)
    yield {False: checked, True: unchecked}
    checked.close()
    unchecked.close()


@pytest.fixture(scope="module")
def canaries(tmp_path_factory, canary_key):
    with Canaries(tmp_path_factory.mktemp("canaries")) as c:
        yield c


def _params():
    out = []
    for p in PAYLOADS:
        marks = [pytest.mark.slow] if p.slow else []
        out.append(pytest.param(p, id=p.name, marks=marks))
    return out


@pytest.mark.parametrize("payload", _params())
def test_payload_is_refused_or_contained(payload, boxes, canaries) -> None:
    outcome = run_payload(boxes[payload.raw], payload, canaries)
    assert not outcome.violations, (outcome.reason, outcome.detail, outcome.violations)
    if not outcome.ok:
        assert outcome.reason and outcome.detail


def test_isolation_is_verified_by_the_child(boxes) -> None:
    report = boxes[False].isolation
    assert report.strong and report.mechanism == "bubblewrap" and report.seccomp
    assert report.uid not in (None, 0) and all(report.checks.values()), report.checks
    assert "seccomp" in report.summary()


def test_nothing_survives_the_sandbox(canary_key, tmp_path) -> None:
    """Daemons, fork bombs and sleepers are gone once the sandbox is closed; the caller's children are untouched."""
    sandbox = Sandbox(LIMITS, python_checks=False)
    _require_strong(sandbox)
    nobody_before = processes_of_uid(65534)
    children_before = set(descendants(os.getpid())) - set(descendants(sandbox.pid or -1)) - {sandbox.pid}
    sources = [raw("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)"),
               raw("import threading, time\nfor _ in range(8):\n    threading.Thread(target=time.sleep, args=(600,)).start()"),
               raw("import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(600)")]
    started = time.monotonic()
    results = sandbox.check_many(sources, (1, 3, 8, 8))
    assert time.monotonic() - started < 3 * LIMITS.wall_s + 5
    assert not results[0].ok and not results[2].ok  # fork refused; sleeper killed (the threads may build: they die with it)
    assert len(descendants(sandbox.pid)) == 2  # bubblewrap's init and the supervisor, nothing else
    pid = sandbox.pid
    sandbox.close()
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}")
    assert processes_of_uid(65534) <= nobody_before
    assert set(descendants(os.getpid())) <= children_before


# ----------------------------------------------------------------------------- without strong isolation
@pytest.fixture
def serve():
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    bodies: list[dict] = []
    headers: list[str] = []

    def start(handler):
        def record(request: Request) -> Response:
            bodies.append(json.loads(request.get_data() or b"{}"))
            headers.append(request.headers.get("Authorization", ""))
            return handler(request, len(bodies))

        server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(record)
        return server.url_for("/v1"), bodies, headers

    yield start
    server.clear()
    server.stop()


def _completion(text: str) -> Response:
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}
    return Response(json.dumps(body), status=200, content_type="application/json")


WIDER = SMALL_CNN.replace("nn.Conv2d(8, 16, 3, padding=1)", "nn.Conv2d(8, 24, 3, padding=1)").replace(
    "nn.Linear(16, 10)", "nn.Linear(24, 10)")


def test_without_bubblewrap_generated_code_is_not_run_and_the_llm_is_not_asked(serve, caplog) -> None:
    url, bodies, _ = serve(lambda request, n: _completion(f"```python\n{WIDER}```\nExplanation: wider."))
    sandbox = Sandbox(LIMITS, bwrap="/nonexistent/bwrap")
    try:
        report = sandbox.isolation
        assert not report.strong and "bubblewrap" in report.detail and "apt-get install bubblewrap" in report.fix
        refused = sandbox.check(WIDER, (1, 3, 16, 16))
        assert refused.reason == "isolation-unavailable" and "bubblewrap" in refused.detail
        assert sandbox.check(SMALL_CNN, (1, 3, 16, 16), trusted=True).ok  # the user's own model still builds

        predictor = ParamWeightedPredictor({"conv2": 3.0})
        proposer = LLMProposer(LLMConfig(model="m", base_url=url, max_retries=0),
                               fallback=RelevanceGuidedMutator(predictor=predictor, sandbox=sandbox, max_source_edits=3))
        with caplog.at_level(logging.WARNING, logger="nasassist_plugins.mutation.llm_proposer"):
            result = improve(SMALL_CNN, entry="Net", example_input=(1, 3, 16, 16), max_iterations=2,
                             proposer=proposer, predictor=predictor, sandbox=sandbox)
    finally:
        sandbox.close()
    assert bodies == []  # the LLM was never asked: its code could not have run
    assert result.history and all(h.origin.startswith("offline:") for h in result.history)
    told = [r for r in caplog.records if "not used" in r.getMessage()]
    assert len(told) == 1 and "apt-get install bubblewrap" in told[0].getMessage()

    unsafe = Sandbox(LIMITS, bwrap="/nonexistent/bwrap", allow_weak_isolation=True)
    try:
        assert unsafe.check(WIDER, (1, 3, 16, 16)).ok  # the documented unsafe opt-in runs it weakly
    finally:
        unsafe.close()


# ----------------------------------------------------------------------------- end to end: nothing leaks
HOSTILE_REPLIES = [
    # reads the key three ways (refused statically), then leaks it into a refusal
    "```python\n" + SMALL_CNN.replace("super().__init__()", "super().__init__()\n        raise RuntimeError("
                                      "str(torch.os.environ))") + "```\nExplanation: env.",
    "```python\n" + SMALL_CNN.replace("super().__init__()", "super().__init__()\n        raise RuntimeError("
                                      "'key=sk-' + 'abcdefghijklmnopqrstuvwxyz')") + "```\nExplanation: shaped like a key.",
    # a malicious server echoes the key it was sent: the reply is dropped, never shown
    "@ECHO@",
    "```python\n" + "import torch.nn as nn\nclass Net(nn.Module):\n    def forward(self, x):\n        return "
    + "+".join(["x"] * 2000) + "\n```\nExplanation: deep.",
    f"```python\n{WIDER}```\nExplanation: widened the last conv.",
]


def test_improve_never_leaks_the_canary_key(serve, tmp_path: Path) -> None:
    """The key is in the caller's environment; it must reach the server only in the Authorization header."""

    def handler(request: Request, n: int) -> Response:
        text = HOSTILE_REPLIES[min(n - 1, len(HOSTILE_REPLIES) - 1)]
        if text == "@ECHO@":
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            text = f"```python\n{WIDER}# {key}\n```\nExplanation: your key is {key}"
        return _completion(text)

    url, bodies, headers = serve(handler)
    out_json, out_py = tmp_path / "result.json", tmp_path / "best.py"
    env = {**os.environ, KEY_NAME: CANARY_KEY, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "nasassist_plugins.cli", "improve", f"{MODEL_FILE}:Net", "--input-shape", "1,3,16,16",
         "--max-iter", str(len(HOSTILE_REPLIES)), "--llm-model", "m", "--base-url", url, "--llm-timeout", "20",
         "--sandbox-timeout", "20", "--json", str(out_json), "--out", str(out_py)],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert headers and all(h == f"Bearer {CANARY_KEY}" for h in headers)  # the one legitimate place
    channels = {"stdout": proc.stdout, "stderr": proc.stderr, "json": out_json.read_text(),
                "out": out_py.read_text(), "request bodies": json.dumps(bodies)}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            channels[str(path)] = path.read_text(errors="replace")
    for name, text in channels.items():
        assert CANARY_KEY not in text and CANARY_KEY[3:20] not in text, f"canary key in {name}"
    report = json.loads(out_json.read_text())
    reasons = [h["reason"] for h in report["history"]]
    assert reasons[0].startswith("forbidden-attribute") and "sk-abcdefghijkl" not in json.dumps(report)
    assert any(r.startswith("too-complex") for r in reasons)  # a 4 KB x+x+... reply: refused, no traceback
    assert any("secret value" in e["detail"] for e in report["llm"]["events"])  # the echoing reply was dropped
    assert report["isolation"]["strong"] is True or os.environ.get("NASASSIST_REQUIRE_SANDBOX") != "1"
    assert "Traceback" not in proc.stderr


def test_redact_removes_secrets_and_terminal_controls(monkeypatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-1234567890abcdef")
    text = "a\x1b[31mred\x1b[0m key sk-ABCDEFGHIJKLMNOPQRSTUV and tok-1234567890abcdef\nnext line Bearer abc.def.ghi"
    clean = redact(text, 200)
    assert "\x1b" not in clean and "\n" not in clean
    assert "sk-ABCDEFGHIJKLMNOPQRSTUV" not in clean and "tok-1234567890abcdef" not in clean and "abc.def.ghi" not in clean
    assert len(redact("x" * 10_000, 50)) == 50
