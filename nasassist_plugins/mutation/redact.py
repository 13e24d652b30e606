"""Keep secrets and terminal tricks out of everything the mutation package prints, writes or sends.

Text that comes from generated code (refusal reasons, exception messages), from an LLM
server (replies, error bodies) or from the sandbox passes through :func:`redact` before it
reaches a log line, the ``--json`` report, the terminal or the next prompt:

* every known secret value is replaced by ``[redacted]``: values registered with
  :func:`register_secret` (the LLM client registers its API key) and the values of
  environment variables whose names look secret (``*KEY*``, ``*TOKEN*``, ``*SECRET*``,
  ``*PASSW*``, ``*CREDENTIAL*``, ``*AUTH*``), plus common key shapes (``sk-...``,
  ``Bearer ...``, ``api_key=...``);
* control characters (ANSI escape sequences included) are dropped and whitespace is
  folded, so the text is one printable line;
* the result is capped at ``limit`` characters.

:func:`contains_secret` tells whether a text carries a known secret value (an LLM reply
that does is dropped, not shown).
"""

from __future__ import annotations

import os
import re

__all__ = ["contains_secret", "redact", "register_secret"]

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.IGNORECASE)
_MIN_SECRET_CHARS = 8
_KEY_SHAPES = (
    re.compile(r"\b(?:sk|pk|rk|ghp|gho|ghs|xox[abprs])[-_][A-Za-z0-9_\-]{12,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)\b(api[_-]?key|token|secret|password)(\s*[=:]\s*)[\"']?[^\s\"',;]{6,}"),
)
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_registered: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` as a secret: :func:`redact` replaces it wherever it appears."""
    if isinstance(value, str) and len(value.strip()) >= _MIN_SECRET_CHARS:
        _registered.add(value.strip())


def _secret_values() -> list[str]:
    values = set(_registered)
    for name, value in os.environ.items():
        if _SECRET_NAME.search(name) and len(value.strip()) >= _MIN_SECRET_CHARS:
            values.add(value.strip())
    return sorted(values, key=len, reverse=True)  # longest first: a secret containing another


def contains_secret(text: object) -> bool:
    """Whether ``text`` contains a registered secret or the value of a secret-looking variable."""
    body = str(text)
    return any(secret in body for secret in _secret_values())


def redact(text: object, limit: int = 300) -> str:
    """``text`` as one printable line of at most ``limit`` characters with every secret replaced."""
    body = str(text)
    for secret in _secret_values():
        body = body.replace(secret, REDACTED)
    body = _ANSI.sub("", body)
    body = _CONTROL.sub(" ", body)
    for shape in _KEY_SHAPES:
        body = shape.sub(lambda m: (m.group(1) + m.group(2) if m.lastindex and m.lastindex >= 2 else "") + REDACTED, body)
    body = " ".join(body.split())
    if len(body) > limit:
        body = body[: max(limit - 3, 0)] + "..."
    return body
