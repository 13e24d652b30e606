"""Every prompt NAS-Assist sends to a code LLM, and the parsers of the replies. One place, versioned.

Change the wording here and bump :data:`PROMPT_VERSION` (it is stored in each improvement
history and each trial's attributes, so results can be traced to the prompt that made them).

Two requests:

* **source** (the thesis's §2.2 prompt, extended): the model's code with a relevance
  comment on each layer's line (positive: the layer helps the predicted score; negative:
  it does not), the predicted score, the constraints (same operation types, parameter
  budget, input/output shapes), earlier attempts with their predicted scores or refusal
  reasons (feedback the thesis did not use), and a request for exactly one ``python``
  code block plus a short explanation;
* **params**: finished trials of an Optuna/NNI search space (best first) and the space,
  asking for new parameter sets as a JSON list.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nasassist_plugins.mutation.errors import LLMResponseError

__all__ = [
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "Attempt",
    "Constraints",
    "describe_distribution",
    "params_messages",
    "parse_params_reply",
    "parse_source_reply",
    "source_messages",
]

PROMPT_VERSION = "2025.1"

SYSTEM_PROMPT = (
    "You are an expert in neural architecture design who edits PyTorch code. "
    "You only use torch, torch.nn, torch.nn.functional, math and typing. "
    "You never read or write files, import other modules, or use exec/eval/getattr."
)

_SOURCE_TEMPLATE = """\
The PyTorch model below is annotated with comments that give each layer's relevance: how much the \
layer helps the predicted performance. Positive values mean the layer is improving performance; \
negative values mean the layer is not helping. The whole model's predicted score is {score} \
(higher is better){target}.

Come up with a new model based on the relevances and the code, keeping the same types of operations.

Constraints:
- keep the class name `{entry}` and a constructor that takes no arguments;
- input shape {input_shape}, output shape {output_shape} (both must stay the same);
- parameters: {params:,} now; stay within {low:,} .. {high:,} (±{budget:.0%});
- imports only from torch, torch.nn, torch.nn.functional, math, typing; no file, network or system access.
{attempts}
```python
{source}
```

Reply with exactly one ```python code block containing the complete new module, then one short \
paragraph starting with "Explanation:" saying what you changed and why."""

_PARAMS_TEMPLATE = """\
We are searching neural architectures. Each trial sets these parameters:
{space}

Finished trials, best first (score: higher is better):
{trials}

Propose {n} new parameter sets likely to score higher than the best so far. Change the parameters \
that matter least in the best trials; keep the ones the best trials share. Every value must come from \
the space above, and no set may repeat a finished trial.

Reply with one JSON list of {n} objects mapping parameter names to values, in a ```json code block."""


@dataclass(frozen=True)
class Constraints:
    """What a proposed model must keep: entry class, shapes and a parameter budget."""

    entry: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    num_params: int
    param_budget: float = 0.5

    @property
    def param_range(self) -> tuple[int, int]:
        low = int(math.floor(self.num_params * (1 - self.param_budget)))
        high = int(math.ceil(self.num_params * (1 + self.param_budget)))
        return max(low, 0), high


@dataclass(frozen=True)
class Attempt:
    """One earlier proposal shown back to the model: its explanation and what became of it."""

    explanation: str
    predicted: float | None = None
    rejected: str | None = None


def source_messages(annotated_source: str, constraints: Constraints, predicted: float, *,
                    attempts: Sequence[Attempt] = (), target: str = "") -> list[dict[str, str]]:
    """Chat messages asking for an improved version of ``annotated_source``."""
    low, high = constraints.param_range
    lines = []
    if attempts:
        lines.append("\nEarlier attempts (do not repeat them):")
        for k, a in enumerate(attempts[-6:], 1):
            outcome = f"refused: {a.rejected}" if a.rejected else f"predicted score {a.predicted:.4f}"
            lines.append(f"{k}. {_one_line(a.explanation, 200) or '(no explanation)'} -> {outcome}")
    text = _SOURCE_TEMPLATE.format(
        score=f"{predicted:.4f}",
        target=f"; scores are {target}" if target else "",
        entry=constraints.entry,
        input_shape=tuple(constraints.input_shape),
        output_shape=tuple(constraints.output_shape),
        params=constraints.num_params,
        low=low,
        high=high,
        budget=constraints.param_budget,
        attempts="\n".join(lines),
        source=annotated_source.rstrip(),
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]


def params_messages(parents: Sequence[tuple[Mapping[str, Any], float]], distributions: Mapping[str, Any], n: int,
                    *, max_trials: int = 20) -> list[dict[str, str]]:
    """Chat messages asking for ``n`` parameter sets of a search space."""
    space = "\n".join(f"- {name}: {describe_distribution(d)}" for name, d in distributions.items())
    trials = "\n".join(
        f"- score {value:.4f}: {json.dumps(dict(params), default=str, sort_keys=True)}" for params, value in parents[:max_trials]
    ) or "- (none yet)"
    text = _PARAMS_TEMPLATE.format(space=space, trials=trials, n=n)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]


def describe_distribution(distribution: Any) -> str:
    """A one-line description of an Optuna distribution for the prompt."""
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return "one of " + json.dumps(list(choices), default=str)
    low, high = getattr(distribution, "low", None), getattr(distribution, "high", None)
    step = getattr(distribution, "step", None)
    log = getattr(distribution, "log", False)
    kind = "integer" if type(distribution).__name__.startswith("Int") else "float"
    extra = f", step {step}" if step not in (None, 1) else ""
    return f"{kind} in [{low}, {high}]{extra}{', log scale' if log else ''}"


_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_JSON_BLOCK = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_source_reply(text: str) -> tuple[str, str]:
    """``(code, explanation)`` from a reply to :func:`source_messages`.

    Takes the longest fenced code block (a reply may quote a fragment before the full
    module); the explanation is the text after "Explanation:" or, failing that, the prose
    outside the code blocks.

    Raises:
        LLMResponseError: the reply has no fenced code block.
    """
    if not isinstance(text, str):
        raise LLMResponseError("the reply is not text")
    blocks = [b.strip("\n") for b in _CODE_BLOCK.findall(text) if b.strip()]
    if not blocks:
        raise LLMResponseError("the reply contains no ```python code block")
    code = max(blocks, key=len) + "\n"
    prose = _CODE_BLOCK.sub(" ", text)
    match = re.search(r"explanation\s*:\s*(.*)", prose, re.IGNORECASE | re.DOTALL)
    explanation = (match.group(1) if match else prose).strip()
    return code, _one_line(explanation, 1000)


def parse_params_reply(text: str) -> list[dict[str, Any]]:
    """Parameter dictionaries from a reply to :func:`params_messages`.

    Accepts a fenced JSON block or bare JSON; a single object counts as a list of one.

    Raises:
        LLMResponseError: no JSON, or JSON that is not a list of objects.
    """
    candidates = [b for b in _JSON_BLOCK.findall(text or "") if b.strip()] or [text or ""]
    for block in candidates:
        start = min((i for i in (block.find("["), block.find("{")) if i >= 0), default=-1)
        if start < 0:
            continue
        try:
            data = json.loads(block[start:].strip().rstrip("`"))
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            data = [data]
        if isinstance(data, list) and all(isinstance(d, dict) for d in data):
            return [dict(d) for d in data]
    raise LLMResponseError("the reply contains no JSON list of parameter objects")


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
