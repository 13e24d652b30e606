"""``nasassist improve file.py:Net``: propose a better model (Algorithm 3) and print the diff.

The model file is read as text and every version of the model — the original included —
is built in the sandbox, never imported into this process. Proposals come from the
offline relevance-guided mutator, or from an OpenAI-compatible LLM when ``--llm-model``
and ``--base-url`` are given (falling back to the offline mutator on any LLM failure).
LLM-written code runs only under strong isolation (bubblewrap); without it the command
says why once and carries on with the offline mutator, unless ``--unsafe-weak-sandbox``.
Everything printed or written to ``--json`` passes through the secret redactor.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nasassist_plugins.cli.arguments import POSITIVE, SEED, integer, number
from nasassist_plugins.cli.outputs import check_writable
from nasassist_plugins.cli.score_command import add_weights_argument, load_predictor
from nasassist_plugins.errors import CommandError



def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "improve",
        help="propose a better version of a model (relevance-annotated LLM prompt or offline mutator) and print the diff",
        description=(
            "Runs the improvement loop on the class CLASS of FILE: annotate layers with their relevance, ask the "
            "proposer for a new model, build it in a sandboxed process, score it with the predictor, and repeat "
            "until --threshold or --max-iter. Prints a unified diff headed 'predicted A → B' and the explanation."
        ),
    )
    parser.add_argument("spec", metavar="FILE.py:CLASS")
    parser.add_argument("--input-shape", required=True, help="example input shape, e.g. 1,3,32,32")
    parser.add_argument("--threshold", type=number(), help="stop when a proposal's predicted score reaches this value")
    parser.add_argument("--max-iter", type=integer(minimum=1, maximum=10_000), default=10, help="MAX_ITERATION of Algorithm 3 (default 10)")
    parser.add_argument("--param-budget", type=POSITIVE, default=0.5, help="allowed parameter change, fraction (default 0.5)")
    parser.add_argument("--llm-model", help="model name on an OpenAI-compatible server (with --base-url)")
    parser.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. http://localhost:11434/v1")
    parser.add_argument("--api-key-env", default="NASASSIST_LLM_API_KEY",
                        help="environment variable holding the API key (default NASASSIST_LLM_API_KEY)")
    parser.add_argument("--llm-timeout", type=POSITIVE, default=60.0,
                        help="total seconds per LLM request, connecting to last byte (default 60)")
    parser.add_argument("--llm-budget", type=POSITIVE, default=600.0,
                        help="total seconds for all LLM requests of the run, retries and backoffs included (default 600)")
    parser.add_argument("--max-llm-calls", type=integer(minimum=1), default=40, help="cap on LLM requests, retries included (default 40)")
    parser.add_argument("--sandbox-timeout", type=POSITIVE, default=60.0, help="wall-clock seconds per sandboxed build (default 60)")
    parser.add_argument("--sandbox-memory-mb", type=number(low=64.0), default=2048.0,
                        help="memory for a sandboxed build, at least 64 (default 2048)")
    parser.add_argument("--unsafe-weak-sandbox", action="store_true",
                        help="UNSAFE: where bubblewrap is unavailable, run LLM-written code in a plain child process "
                             "(no namespaces, no private file system); by default it is not run at all")
    parser.add_argument("--seed", type=SEED, default=0)
    add_weights_argument(parser)
    parser.add_argument("--out", type=Path, help="write the best source to this file")
    parser.add_argument("--json", type=Path, help="write the result and history as JSON")
    parser.add_argument("--quiet", action="store_true", help="do not print one line per iteration")
    parser.set_defaults(func=run)


def _split_spec(spec: str) -> tuple[Path, str]:
    path_text, sep, cls = spec.rpartition(":")
    if not sep or not path_text.endswith(".py") or not cls.isidentifier():
        raise CommandError(f"SPEC must be file.py:ClassName, got {spec!r}")
    path = Path(path_text)
    if not path.is_file():
        raise CommandError(f"model file not found: {path}")
    return path, cls


def run(args: argparse.Namespace) -> int:
    from nasassist_plugins.cli.spec import parse_input_shape
    from nasassist_plugins.mutation import (
        LLMConfig,
        LLMProposer,
        RelevanceGuidedMutator,
        Sandbox,
        SandboxLimits,
        improve,
    )
    from nasassist_plugins.mutation.redact import redact

    path, entry = _split_spec(args.spec)
    shape = parse_input_shape(args.input_shape)
    if bool(args.llm_model) != bool(args.base_url):
        raise CommandError("--llm-model and --base-url go together (give both, or neither for the offline mutator)")
    check_writable("--out", args.out)
    check_writable("--json", args.json)
    source = path.read_text(encoding="utf-8")
    predictor = load_predictor(args.weights)
    sandbox = Sandbox(SandboxLimits(wall_s=args.sandbox_timeout, cpu_s=args.sandbox_timeout,
                                    memory_mb=args.sandbox_memory_mb), allow_weak_isolation=args.unsafe_weak_sandbox)
    offline = RelevanceGuidedMutator(predictor=predictor, sandbox=sandbox)
    proposer: object = offline
    llm: LLMProposer | None = None
    if args.llm_model:
        config = LLMConfig(model=args.llm_model, base_url=args.base_url, api_key_env=args.api_key_env,
                           timeout_s=args.llm_timeout, max_calls=args.max_llm_calls, budget_s=args.llm_budget)
        proposer = llm = LLMProposer(config, fallback=offline)

    def progress(row) -> None:  # one line per round, on stderr so stdout stays a clean diff
        if args.quiet:
            return
        outcome = f"predicted {row.predicted:.4f}" if row.accepted else f"refused ({redact(row.reason, 120)})"
        print(f"[{row.iteration}/{args.max_iter}] {redact(row.origin, 60)}: {outcome}", file=sys.stderr, flush=True)

    try:
        result = improve(source, entry=entry, example_input=shape, threshold=args.threshold,
                         max_iterations=args.max_iter, proposer=proposer, predictor=predictor, sandbox=sandbox,
                         param_budget=args.param_budget, seed=args.seed, on_iteration=progress)
        isolation = sandbox.isolation.to_dict()
    finally:
        sandbox.close()
    print(f"{entry}: {result.header()}  ({result.baseline_num_params:,} → {result.num_params:,} parameters, "
          f"{result.iterations} iteration{'s' if result.iterations != 1 else ''}, "
          f"{'threshold reached' if result.converged else 'threshold not reached' if args.threshold is not None else 'no threshold'})")
    diff = result.diff(fromfile=f"a/{path.name}", tofile=f"b/{path.name}")
    print(diff if diff else "(no proposal beat the original model; source unchanged)")
    if result.explanation:
        print(f"Explanation: {redact(result.explanation, 2000)}")
    if args.out is not None:
        args.out.write_text(result.source, encoding="utf-8")
        print(f"wrote {args.out}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = result.to_dict()
        report["isolation"] = isolation
        if llm is not None:
            report["llm"] = {"events": llm.events, "calls": llm.client.usage.calls,
                             "seconds": round(llm.client.usage.seconds, 3), "disabled_reason": llm.disabled_reason}
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0
