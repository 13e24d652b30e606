"""The ``nasassist`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func`` to the function that runs it. Library errors
(:class:`~nasassist_plugins.errors.NASAssistError`), file-system errors and memory
exhaustion are printed as one clear line and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from nasassist_plugins import __version__
from nasassist_plugins.cli import evaluate_command, graph_command, train_command
from nasassist_plugins.cli import relevance_command, score_command, embed_command
from nasassist_plugins.cli import improve_command
from nasassist_plugins.cli.arguments import OneLineParser
from nasassist_plugins.errors import NASAssistError

_COMMANDS = (graph_command, train_command, evaluate_command, relevance_command, score_command, embed_command,
             improve_command)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nasassist",
        description="NAS-Assist: computational graphs, zero-shot scores and search helpers for neural architectures.",
    )
    parser.add_argument("--version", action="version", version=f"nasassist {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NASAssistError as exc:
        return _fail(args.command, str(exc))
    except OSError as exc:  # an output folder that cannot be written, a file that vanished, a full disk
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return _fail(args.command, f"cannot use{where}: {exc.strerror or exc}")
    except MemoryError:
        return _fail(args.command, "ran out of memory (try a smaller input shape, --limit or batch size)")


def _fail(command: str, message: str) -> int:
    """Print one line naming the problem and return exit status 2."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"nasassist {command}: error: {first}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
