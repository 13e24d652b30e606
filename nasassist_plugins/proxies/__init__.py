"""Zero-cost proxies: score an untrained PyTorch network from one batch.

Quick use::

    from nasassist_plugins.proxies import compute_proxies, module_saliency
    scores = compute_proxies(model, input_shape=(64, 3, 32, 32))   # all proxies
    layer_scores = module_saliency(model, (1, 3, 32, 32), method="synflow")

Proxies (see :func:`available_proxies`): ``params``, ``flops``, ``synflow`` (log),
``snip``, ``grasp``, ``fisher``, ``grad_norm``, ``jacov``, ``nwot``, ``zen``, ``zico``, and the
training-free suite's ``expressivity``, ``progressivity``, ``trainability`` (AZ-NAS), ``meco``,
``meco_opt`` (MeCo) and ``swap`` (SWAP). :func:`compute_suite` computes all of the suite's
signals (plus NASWOT, #params and FLOPs) from one forward and one backward pass, and
:mod:`.aggregate` turns a population's signals into AZ-NAS's log-rank score::

    from nasassist_plugins.proxies import compute_suite, aznas_score
    result = compute_suite(model, example_input=(1, 3, 32, 32))   # batch of 16 random inputs
    result.values["expressivity"], result.errors
Each is also a function ``(model, inputs, targets=None, loss_fn=None) -> float`` that
leaves ``model`` unchanged; new ones are added with :func:`register_proxy`.
"""

from __future__ import annotations

from nasassist_plugins.proxies._base import (
    ProxyInputError,
    ProxySpec,
    ProxyTypeError,
    available_proxies,
    get_proxy,
    register_proxy,
)
# Imported in the order the proxies are listed by available_proxies() (registration order).
from nasassist_plugins.proxies.model_stats import params, flops  # isort: skip
from nasassist_plugins.proxies.synflow import synflow  # isort: skip
from nasassist_plugins.proxies.pruning import snip, grasp, fisher, grad_norm  # isort: skip
from nasassist_plugins.proxies.jacov import jacov  # isort: skip
from nasassist_plugins.proxies.nwot import nwot  # isort: skip
from nasassist_plugins.proxies.zen import zen  # isort: skip
from nasassist_plugins.proxies.zico import zico  # isort: skip
from nasassist_plugins.proxies.suite import (  # isort: skip
    SUITE_SIGNALS, SuiteResult, compute_suite, expressivity, meco, meco_opt, progressivity, suite_batch, swap,
    trainability,
)
from nasassist_plugins.proxies.aggregate import (  # isort: skip
    AZNAS_SIGNALS, aznas_score, log_rank_aggregate, signal_ranks, swap_regularised,
)
from nasassist_plugins.proxies.compute import ProxyRun, compute_proxies, run_proxies  # isort: skip
from nasassist_plugins.proxies.saliency import SALIENCY_METHODS, module_saliency  # isort: skip

__all__ = [
    "AZNAS_SIGNALS",
    "SUITE_SIGNALS",
    "SuiteResult",
    "aznas_score",
    "compute_suite",
    "expressivity",
    "log_rank_aggregate",
    "meco",
    "meco_opt",
    "progressivity",
    "signal_ranks",
    "suite_batch",
    "swap",
    "swap_regularised",
    "trainability",
    "ProxyInputError",
    "ProxyRun",
    "ProxySpec",
    "ProxyTypeError",
    "SALIENCY_METHODS",
    "available_proxies",
    "compute_proxies",
    "fisher",
    "flops",
    "get_proxy",
    "grad_norm",
    "grasp",
    "jacov",
    "module_saliency",
    "nwot",
    "params",
    "register_proxy",
    "run_proxies",
    "snip",
    "synflow",
    "zen",
    "zico",
]
