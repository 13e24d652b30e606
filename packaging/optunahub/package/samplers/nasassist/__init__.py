"""NAS-Assist for OptunaHub: the sampler and the pruner of the ``nasassist-plugins`` package.

The implementation lives in the PyPI package ``nasassist-plugins`` (``pip install
nasassist-plugins``); this module only re-exports its public Optuna classes so that
``optunahub.load_module("samplers/nasassist")`` gives the same objects.
"""

from __future__ import annotations

try:
    from nasassist_plugins.optuna import NASAssistPruner, NASAssistSampler
except ImportError as exc:  # pragma: no cover - depends on the user's environment
    raise ImportError(
        "samplers/nasassist needs the nasassist-plugins package: pip install nasassist-plugins "
        "(see requirements.txt beside this file)"
    ) from exc

__all__ = ["NASAssistSampler", "NASAssistPruner"]
