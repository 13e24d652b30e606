"""Checks that the installed NNI can run experiments, before anything imports it.

NNI 3.0 is the last release (the project was archived in 2024) and it has known traps
on current Python stacks; each one is turned into one clear error here instead of a
silent hang or a traceback deep inside NNI:

* ``filelock>=3.12`` makes every NNI experiment hang silently (NNI's experiment
  manifest lock never returns); NNI needs ``filelock<3.12``.
* ``typeguard>=4.1.3`` breaks NNI's config classes; NNI needs ``typeguard<4.1.3``.
* ``nni.nas`` imports PyTorch-Lightning for its default (PyTorch) evaluators. Without
  it, NAS-Assist switches NNI's framework shortcut off (``nni.set_default_framework("none")``)
  so that ``nni.nas.nn.pytorch`` and ``FunctionalEvaluator`` still work.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from importlib import metadata

from nasassist_plugins.errors import NNIEnvironmentError

_logger = logging.getLogger(__name__)

#: The command that installs a working NNI next to NAS-Assist.
INSTALL_HINT = 'pip install "nasassist-plugins[nni]"  (= nni==3.0 "filelock<3.12" "typeguard<4.1.3" pytorch-lightning)'

SUPPORTED_NNI = "3.0"




def _parse(text: str) -> tuple[int, ...]:
    """Leading numeric release of a version string (``"3.11.0"`` -> ``(3, 11, 0)``, ``"4.1.3rc1"`` -> ``(4, 1, 3)``)."""
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def _version(distribution: str) -> tuple[int, ...] | None:
    try:
        return _parse(metadata.version(distribution))
    except metadata.PackageNotFoundError:
        return None


def _show(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def check_environment() -> None:
    """Raise :class:`NNIEnvironmentError` unless NNI 3.x can run here.

    Called on ``import nasassist_plugins.nni``; cheap (reads package metadata only).
    """
    if importlib.util.find_spec("nni") is None:
        raise NNIEnvironmentError(f"nasassist_plugins.nni needs NNI, which is not installed. Install it with: {INSTALL_HINT}")
    nni_version = _version("nni")
    if nni_version is not None and nni_version[:1] != (3,):
        raise NNIEnvironmentError(
            f"nasassist_plugins.nni supports NNI {SUPPORTED_NNI} (the last release), found nni {_show(nni_version)}. "
            f"Install it with: {INSTALL_HINT}"
        )
    filelock = _version("filelock")
    if filelock is not None and filelock >= (3, 12):
        raise NNIEnvironmentError(
            f"filelock {_show(filelock)} is installed, but NNI 3.0 needs filelock<3.12: with a newer filelock every NNI "
            f'experiment hangs silently. Run: pip install "filelock<3.12"  (or {INSTALL_HINT})'
        )
    typeguard = _version("typeguard")
    if typeguard is not None and typeguard >= (4, 1, 3):
        raise NNIEnvironmentError(
            f'typeguard {_show(typeguard)} is installed, but NNI 3.0 needs typeguard<4.1.3. Run: pip install "typeguard<4.1.3"'
        )


def configure_framework() -> None:
    """Let ``nni.nas`` import without PyTorch-Lightning (NNI imports it for its default evaluators).

    Also imports ``nni.nas.nn.pytorch`` once with NNI's "<class ...> is found to be not a
    nn.Module" warnings silenced: NNI 3.0 predates the helper classes that newer PyTorch
    releases add to ``torch.nn``; the warning is harmless.
    """
    import nni

    if importlib.util.find_spec("pytorch_lightning") is None and "nni.nas" not in sys.modules:
        _use_no_framework(nni)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*", category=RuntimeWarning)
        import nni.nas.nn.pytorch  # noqa: F401


def _use_no_framework(nni) -> None:
    if nni.get_default_framework() == "pytorch":
        nni.set_default_framework("none")
        _logger.info(
            "pytorch-lightning is not installed: NNI's framework shortcut is off; import NAS classes from "
            "nni.nas.nn.pytorch and use FunctionalEvaluator (NNI's Lightning evaluators need pytorch-lightning)."
        )
