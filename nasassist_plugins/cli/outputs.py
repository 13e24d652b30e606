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
    check_writable("--out-dir", out_dir, folder=True)
    check_writable("--out", figure)
    check_writable("--json", data)
    return figure, data


def check_writable(flag: str, path: Path | None, *, folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work starts.

    ``folder``: the path is a folder to create or fill (an existing file there is an
    error); otherwise a file to create or replace (an existing folder there is an error).
    The nearest existing folder on the way is probed by creating (and removing) a
    temporary file in it, which also catches read-only and virtual file systems.
    """
    import os
    import tempfile

    if path is None:
        return
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            raise CommandError(f"{flag} {path} exists and is not a folder")
        if not folder and path.is_dir():
            raise CommandError(f"{flag} {path} is a folder; give a file name")
        if not folder:
            if not os.access(path, os.W_OK):
                raise CommandError(f"{flag} {path} is not writable")
            return
    ancestor = path if path.is_dir() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CommandError(f"{flag} {path}: {ancestor} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor, prefix=".nasassist-probe-"):
            pass
    except OSError as exc:
        raise CommandError(f"{flag} {path}: cannot write into {ancestor} ({exc.strerror or exc})") from None
