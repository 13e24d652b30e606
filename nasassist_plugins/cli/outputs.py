"""Where a ``nasassist`` command writes its report files: a folder the user chooses.

``--out-dir DIR`` puts the command's files under their default names in ``DIR``;
``--out`` / ``--json`` name single files. Nothing is written into the current folder
unless the user asks for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nasassist_plugins.errors import CommandError


def add_output_arguments(parser: argparse.ArgumentParser, *, png: str, json_name: str | None) -> None:
    """``--out-dir`` (a folder for the command's files) and ``--out`` (the PNG) [and ``--json``]."""
    files = f"{png}" + (f" and {json_name}" if json_name else "")
    parser.add_argument("--out-dir", type=Path, help=f"folder to write {files} into (created if needed)")
    parser.add_argument("--out", type=Path, help=f"the figure PNG (default: {png} in --out-dir)")
    if json_name:
        parser.add_argument("--json", type=Path, help=f"the full tables as JSON (default: {json_name} in --out-dir)")


def report_paths(args: argparse.Namespace, *, png: str, json_name: str | None = None) -> tuple[Path | None, Path | None]:
    """Where the figure and the JSON go: ``--out``/``--json`` when given, else the default names
    inside ``--out-dir``, else nowhere (``None``). Never the current folder unasked."""
    out_dir = args.out_dir
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise CommandError(f"--out-dir {out_dir} exists and is not a folder")
    figure = args.out if args.out is not None else (out_dir / png if out_dir is not None else None)
    if figure is not None and figure.suffix.lower() != ".png":
        raise CommandError(f"--out must end in .png, got {figure}")
    given_json = getattr(args, "json", None)
    data = given_json if given_json is not None else (out_dir / json_name if out_dir and json_name else None)
    return figure, data
