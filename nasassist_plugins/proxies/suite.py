"""The training-free suite: AZ-NAS's four components, MeCo, SWAP, NASWOT, #params and FLOPs
from one forward and one backward pass.

:func:`compute_suite` re-initialises a private copy of the model (Kaiming-normal fan-in
weights, zero biases, unit norm scales, as AZ-NAS does), runs it once in train mode on one
batch (the caller's, or standard normal data of the example input's shape with at least
16 samples) and back-propagates once, block by block. Every signal below comes from that
single pass; "larger is better" for all of them.

* **expressivity** (AZ-NAS): for every primary block (see :mod:`._blocks`) the feature map
  ``(B, C, H, W)`` is read as ``B*H*W`` samples of ``C`` channels; the entropy of the
  normalised eigenvalues of their covariance measures how isotropic the features are;
  summed over the blocks.
* **progressivity** (AZ-NAS): the smallest increase of that entropy from one block to the
  next (a network whose expressivity grows at every block scores high).
* **trainability** (AZ-NAS): for every pair of consecutive blocks, a Rademacher vector is
  back-propagated from the later block's output to the earlier one; with ``M`` the
  (pixel-unshuffled) cross-covariance of the two gradients, ``-s - 1/s + 2`` with ``s`` the
  largest singular value of ``M`` is 0 when gradients keep their norm; averaged over
  pairs. An identity block (gradient passed through unchanged) scores ``-inf``.
* **complexity** (AZ-NAS) is the forward FLOPs per sample (``flops``).
* **meco** (MeCo, NeurIPS 2023): for every module output of the first sample, the
  Pearson correlation matrix between its channels (rows of dimension 1) over the other
  dimensions; the sum over modules of its smallest eigenvalue. **meco_opt** uses 8 random
  channels per module, scaled by ``C/8``.
* **swap** (SWAP, ICLR 2024): the number of distinct sample-wise activation patterns: for
  every unit of every activation function (ReLU and its relatives, GELU, SiLU, tanh; as
  modules or functional calls), the on/off pattern of its input over the batch; the
  regularised SWAP-Score, which needs the size distribution of a population, is in
  :mod:`.aggregate`.
* **nwot** (NASWOT): ``log|K|`` of the Hamming-agreement kernel of those patterns.
* **params**, **flops**: trainable parameters; forward FLOPs per sample of the
  convolutions, linear layers and matrix products (2 per multiply-add, the convention of
  ``torch.utils.flop_counter`` and of the ``flops`` proxy), counted during the same pass.

A signal that cannot be computed is NaN and its reason is kept in
:attr:`SuiteResult.errors` and logged; a model that fails on the batch gives NaN for every
signal that runs it (never an exception).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasassist_plugins.proxies._base import describe_exception, forked_rng, reinitialise
from nasassist_plugins.proxies._blocks import CallRecorder, feature_blocks
from nasassist_plugins.proxies._suite_taps import ForwardTap, MecoTap

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SUITE_SIGNALS",
    "SuiteResult",
    "compute_suite",
    "suite_batch",
]

_logger = logging.getLogger(__name__)

#: Signals computed by :func:`compute_suite`, in table order.
SUITE_SIGNALS: tuple[str, ...] = (
    "expressivity", "progressivity", "trainability", "meco", "meco_opt", "swap", "nwot", "params", "flops",
)
#: Smallest batch drawn when the caller gives only a shape (the proxies need a population of samples).
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class SuiteResult:
    """Signals of one model (``nan`` where a signal failed), why each failed, and the cost."""

    values: dict[str, float]
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    batch_size: int = 0
    num_blocks: int = 0

    def __getitem__(self, name: str) -> float:
        return self.values[name]


# ----------------------------------------------------------------------------- batch
def suite_batch(example_input: Any, *, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0,
                device: torch.device | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A random batch shaped like one sample of ``example_input`` (a tensor or a shape).

    Float inputs are standard normal; integer inputs (token ids) are uniform over
    ``0..max`` of the example (or ``0..1`` for a shape). The batch holds
    ``max(batch_size, batch of the example)`` samples.
    """
    if isinstance(example_input, torch.Tensor):
        shape = tuple(example_input.shape)
        floating = example_input.is_floating_point()
        high = int(example_input.max()) + 1 if not floating and example_input.numel() else 2
        device = device or example_input.device
        dtype = dtype or (example_input.dtype if floating else example_input.dtype)
    else:
        try:
            shape = tuple(int(d) for d in example_input)
        except TypeError:
            raise ValueError(f"example_input must be a tensor or a shape, got {type(example_input).__name__}") from None
        floating, high = True, 2
    if len(shape) < 2 or any(d <= 0 for d in shape):
        raise ValueError(f"the example input shape must include a batch dimension and be positive, got {shape}")
    shape = (max(int(batch_size), shape[0]), *shape[1:])
    generator = torch.Generator().manual_seed(seed)
    if floating:
        batch = torch.randn(shape, generator=generator)
        return batch.to(device=device or "cpu", dtype=dtype or torch.float32)
    return torch.randint(0, max(high, 1), shape, generator=generator).to(device=device or "cpu", dtype=dtype)


# ----------------------------------------------------------------------------- init
def _kaiming_init(model: nn.Module) -> None:
    """AZ-NAS initialisation: Kaiming-normal fan-in conv/linear weights; see :func:`._base.reinitialise`."""
    reinitialise(model, lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"))


# ----------------------------------------------------------------------------- AZ-NAS maths
def _as_samples(feature: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` samples of a block output: channels last for (B, C, ...), tokens for (B, T, D)."""
    f = feature.detach().double()
    if f.dim() == 2:
        return f
    if f.dim() == 3:  # (B, T, D): tokens as samples
        return f.reshape(-1, f.shape[-1])
    return f.movedim(1, -1).reshape(-1, f.shape[1])


def _isotropy_entropy(feature: torch.Tensor) -> float:
    x = _as_samples(feature)
    x = x - x.mean(dim=0, keepdim=True)
    sigma = x.t() @ x / max(x.shape[0], 1)
    s = torch.linalg.eigvalsh(sigma).clamp_min(0)
    total = s.sum()
    if not torch.isfinite(total) or total <= 0:
        return 0.0
    p = s / total
    return float(-(p * torch.log(p + 1e-8)).sum())


def _trainability_pair(f_in: torch.Tensor, f_out: torch.Tensor, generator: torch.Generator) -> float | None:
    """``-s - 1/s + 2`` for the block ``f_in -> f_out`` (``None``: not comparable)."""
    g_out = (torch.randint(0, 2, f_out.shape, generator=generator).to(f_out) * 2 - 1)
    (g_in,) = torch.autograd.grad(f_out, f_in, grad_outputs=g_out, retain_graph=True, allow_unused=True)
    if g_in is None:
        return None
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    if g_out.dim() == 4 and g_in.dim() == 4 and g_out.shape[2:] != g_in.shape[2:]:
        ho, hi = g_out.shape[2], g_in.shape[2]
        if hi % ho or g_in.shape[3] % g_out.shape[3] or hi // ho != g_in.shape[3] // g_out.shape[3]:
            return None
        g_in = F.pixel_unshuffle(g_in, hi // ho)
    a, b = _as_samples(g_in), _as_samples(g_out)
    if a.shape[0] != b.shape[0]:
        return None
    mat = a.t() @ b / a.shape[0]
    s = float(torch.linalg.matrix_norm(mat, ord=2))
    return -s - 1.0 / (s + 1e-6) + 2.0


# ----------------------------------------------------------------------------- the suite
def _nan_result(reason: str, batch: int, started: float, params_value: float) -> SuiteResult:
    values = {name: math.nan for name in SUITE_SIGNALS}
    values["params"] = params_value
    errors = {name: reason for name in SUITE_SIGNALS if name != "params"}
    return SuiteResult(values, errors, time.perf_counter() - started, batch, 0)


def compute_suite(
    model: nn.Module,
    inputs: Optional[torch.Tensor] = None,
    *,
    example_input: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    signals: Sequence[str] | None = None,
    copy_model: bool = True,
) -> SuiteResult:
    """All suite signals of ``model`` from one forward and one backward pass.

    Args:
        model: any ``nn.Module`` taking one tensor; never changed (a private copy is
            re-initialised and run).
        inputs: the batch to use (e.g. a batch of the user's data). ``None``: a standard
            normal batch shaped like ``example_input`` with at least ``batch_size`` samples.
        example_input: a tensor or a shape such as ``(1, 3, 32, 32)``; used when ``inputs``
            is ``None``.
        batch_size: smallest synthetic batch (default 16).
        seed: seeds the synthetic batch, the initialisation and the random vectors.
        signals: compute only these (default: all of :data:`SUITE_SIGNALS`); the pass is
            shared, so this only skips the per-signal post-processing.
        copy_model: run on a deep copy (default). ``False`` re-initialises and runs
            ``model`` itself (for a throw-away network, e.g. in a benchmark loop).

    Returns:
        A :class:`SuiteResult`; failed signals are ``nan`` with a reason in ``errors``
        (also logged at WARNING on this module's logger). Never raises for a model that
        fails: every signal that runs the model is then ``nan`` with the model's error.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: neither ``inputs`` nor a usable ``example_input``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"compute_suite expects a torch.nn.Module, got {type(model).__name__}")
    wanted = set(SUITE_SIGNALS if signals is None else signals)
    unknown = wanted - set(SUITE_SIGNALS)
    if unknown:
        raise ValueError(f"unknown suite signals {sorted(unknown)}; available: {', '.join(SUITE_SIGNALS)}")
    started = time.perf_counter()
    if inputs is None:
        if example_input is None:
            raise ValueError("compute_suite needs inputs (a batch) or example_input (a tensor or shape)")
        inputs = suite_batch(example_input, batch_size=batch_size, seed=seed)
    elif not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor batch, got {type(inputs).__name__}")
    batch = int(inputs.shape[0]) if inputs.dim() else 0
    params_value = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
    try:
        work = copy.deepcopy(model) if copy_model else model
    except Exception as exc:  # noqa: BLE001 - e.g. a module holding a lock
        return _logged(model, _nan_result(f"the model cannot be copied ({describe_exception(exc)})", batch, started,
                                          params_value))
    try:
        with forked_rng(inputs.device), torch.enable_grad():
            torch.manual_seed(seed)
            result = _run(work, inputs, wanted, seed, started, params_value)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        result = _nan_result(f"{type(model).__name__} fails on the batch of shape {tuple(inputs.shape)} "
                             f"({describe_exception(exc)})", batch, started, params_value)
    return _logged(model, result)


def _logged(model: nn.Module, result: SuiteResult) -> SuiteResult:
    for name, reason in result.errors.items():
        _logger.warning("suite signal %r failed on %s: %s", name, type(model).__name__, reason)
    return result


def _run(model: nn.Module, inputs: torch.Tensor, wanted: set[str], seed: int, started: float,
         params_value: float) -> SuiteResult:
    generator = torch.Generator().manual_seed(seed + 17)
    _kaiming_init(model)
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    batch = int(inputs.shape[0])
    errors: dict[str, str] = {}
    values: dict[str, float] = {name: math.nan for name in SUITE_SIGNALS}
    values["params"] = params_value

    if inputs.is_floating_point():  # gradients reach every block, even after parameter-free ones
        inputs = inputs.detach().clone().requires_grad_(True)
    acts = ForwardTap(batch)
    meco = MecoTap(model, generator) if wanted & {"meco", "meco_opt"} else None
    try:
        with CallRecorder(model) as recorder, acts:
            output = model(inputs)
    finally:
        if meco is not None:
            meco.remove()
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"forward returned {type(output).__name__}, not a tensor")
    values["flops"] = acts.flops / max(batch, 1)
    acts.flush()

    if meco is not None:
        if meco.order:
            values["meco"], values["meco_opt"] = meco.scores()
        else:
            errors["meco"] = errors["meco_opt"] = "no module output with channel and spatial/token dimensions"

    if acts.units == 0:
        errors["swap"] = errors["nwot"] = "no activation function (ReLU, GELU, SiLU, tanh, ...) runs on the batch"
    else:
        packed = torch.cat(acts.packed)
        values["swap"] = float(torch.unique(packed, dim=0).shape[0]) if packed.shape[1] > 1 else float(
            torch.unique(packed[:, 0]).numel())
        sign, logdet = np.linalg.slogdet(acts.kernel().numpy())
        if sign > 0 and np.isfinite(logdet):
            values["nwot"] = float(logdet)
        else:
            errors["nwot"] = "the activation-pattern kernel is singular (two samples with identical patterns)"

    blocks = feature_blocks(recorder.root)
    if wanted & {"expressivity", "progressivity"}:
        if not blocks:
            errors["expressivity"] = "no feature maps found (no block outputs)"
        else:
            scores = np.array([_isotropy_entropy(f) for _, f in blocks])
            values["expressivity"] = float(scores.sum())
            if len(scores) >= 2:
                values["progressivity"] = float(np.min(scores[1:] - scores[:-1]))
            else:
                errors["progressivity"] = "fewer than two blocks"
        if not blocks:
            errors["progressivity"] = errors["expressivity"]
    if "trainability" in wanted:
        pair_scores = []
        for k in reversed(range(1, len(blocks))):
            f_in, f_out = blocks[k - 1][1], blocks[k][1]
            if not (f_in.requires_grad and f_out.requires_grad):
                continue
            score = _trainability_pair(f_in, f_out, generator)
            if score is not None:
                pair_scores.append(score)
        if pair_scores:
            values["trainability"] = float(np.mean(pair_scores))
        else:
            errors["trainability"] = "no pair of consecutive blocks with comparable gradients"
    for name in SUITE_SIGNALS:
        value = values[name]
        if name not in errors and not (isinstance(value, float) and (math.isfinite(value) or value == -math.inf)):
            errors[name] = f"non-finite value {value!r}"
            values[name] = math.nan
        if name not in wanted:
            values[name] = math.nan
            errors.pop(name, None)
    return SuiteResult(values, errors, time.perf_counter() - started, batch, len(blocks))


# ----------------------------------------------------------------------------- single proxies
def _single(name: str) -> Callable[..., float]:
    def proxy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None, loss_fn: Any) -> float:
        result = compute_suite(model, inputs, signals=[name], copy_model=False, seed=int(torch.initial_seed() % 2**31))
        if name in result.errors:
            raise ValueError(result.errors[name])
        return result.values[name]

    proxy.__name__ = proxy.__qualname__ = name
    proxy.__doc__ = f"The suite's ``{name}`` signal alone (see :func:`compute_suite`; one forward/backward pass)."
    return proxy


def _register_singles() -> None:
    from nasassist_plugins.proxies._base import register_proxy

    summaries = {
        "expressivity": "AZ-NAS expressivity: entropy of the feature covariance spectrum, summed over blocks",
        "progressivity": "AZ-NAS progressivity: smallest expressivity increase between consecutive blocks",
        "trainability": "AZ-NAS trainability: -s - 1/s + 2 of the block Jacobians' spectral norm",
        "meco": "MeCo: sum of the smallest eigenvalue of each module's channel correlation",
        "meco_opt": "MeCo_opt: MeCo on 8 random channels per module, scaled by C/8",
        "swap": "SWAP: number of distinct sample-wise activation patterns",
    }
    for name, summary in summaries.items():
        globals()[name] = register_proxy(name, uses_data=True, summary=summary)(_single(name))


_register_singles()
